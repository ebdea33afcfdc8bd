"""Data-parallel training over MPI: real `mpiexec -n R` jobs on this machine.

Needs mpi4py and an MPI (pip install ".[test]" brings both: mpi4py and MPICH's wheel).
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import rnncore
from rnncore.parallel import stream_share

from support import RNNCORE, assert_clean_error, corpus, run

try:
    import mpi4py  # noqa: F401 (only whether it is installed)
except ImportError:
    mpi4py = None


def find_mpiexec():
    """The mpiexec of this environment (pip's mpich puts it beside python), else PATH's."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


MPIEXEC = find_mpiexec()
needs_mpi = pytest.mark.skipif(mpi4py is None or MPIEXEC is None or RNNCORE is None,
                               reason="needs mpi4py and mpiexec: pip install '.[test]'")
TEXT = "it was the best of times, it was the worst of times; " * 40
FLOAT64 = ["--hidden-size", "12", "--seq-length", "7", "--batch-size", "5", "--dtype",
           "float64", "--seed", "4", "--print-every", "50", "--eval-every", "40"]


def mpirun(n, *args, cwd, timeout=240, **popen):
    return subprocess.run([MPIEXEC, "-n", str(n), RNNCORE, *map(str, args), "--distributed"],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **popen)


def assert_same_run(a_path, b_path, rtol, same_validations=True):
    a, b = rnncore.load_checkpoint(a_path), rnncore.load_checkpoint(b_path)
    for name, p in a.model.params.items():
        q = b.model.params[name]
        assert np.abs(p - q).max() <= rtol * np.abs(q).max(), name
    np.testing.assert_allclose(a.train_arrays["hidden"], b.train_arrays["hidden"], rtol=0,
                               atol=rtol)
    for key in ("step", "epoch", "pointer"):
        assert a.train_meta[key] == b.train_meta[key]
    if not same_validations:   # a run cut in two also validated where it stopped
        return
    assert a.train_meta["best"]["step"] == b.train_meta["best"]["step"]
    assert a.train_meta["best"]["val_loss"] == pytest.approx(b.train_meta["best"]["val_loss"],
                                                             rel=rtol)


def test_stream_shares_are_contiguous_and_cover_every_stream():
    for B in range(1, 12):
        for R in range(1, B + 1):
            shares = [stream_share(B, R, r) for r in range(R)]
            assert shares[0][0] == 0 and shares[-1][1] == B
            assert all(a[1] == b[0] for a, b in zip(shares, shares[1:]))
            sizes = [hi - lo for lo, hi in shares]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_clipping_after_the_kernel_equals_the_kernels_own_clip():
    # the distributed step clips the all-reduced gradients itself; in one process the
    # kernel clips: the two must be the same numbers
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abcdefgh"), 10, seed=1)
    rng = np.random.default_rng(0)
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape)
    x, y = rng.integers(0, 8, (3, 9)), rng.integers(0, 8, (3, 9))
    _, clipped, _ = model.loss_and_grads(x, y, clip=0.05)
    _, raw, _ = model.loss_and_grads(x, y, clip=0)
    assert any(np.abs(g).max() > 0.05 for g in raw.values())
    for name in raw:
        np.testing.assert_array_equal(np.clip(raw[name], -0.05, 0.05), clipped[name])


@pytest.mark.slow
@needs_mpi
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_ranks_compute_what_one_process_computes(tmp_path, optimizer):
    text = corpus(tmp_path, TEXT)
    # 5 streams over 2 ranks: shares of 3 and 2, weighted; clipping active in both forms.
    # The vanilla cell: with a 2-layer GRU the runs' rounding differences (1e-15 after 20
    # steps) grow through clipping and Adam to 1e-7 by step 200, so 200 steps compare
    # only the cell whose dynamics do not amplify them.
    opts = [*FLOAT64, "--cell", "rnn", "--num-layers", "1", "--dropout", "0",
            "--weight-drop", "0", "--weight-decay", "0", "--average", "0",
            "--optimizer", optimizer, "--clip", "0.02", "--clip-norm", "0.5",
            "--learning-rate", "0.05", "--steps", "200"]
    one = run("train", text, "--out", tmp_path / "one.npz", *opts, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = mpirun(2, "train", text, "--out", tmp_path / "two.npz", *opts, cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert_same_run(tmp_path / "two.npz", tmp_path / "one.npz", rtol=1e-10)
    # only rank 0 prints and logs: one header, one final line, one log line per record
    assert two.stdout.count("corpus ") == 1 and "on 2 MPI processes" in two.stdout
    assert two.stdout.count("saved ") == 1
    log = (tmp_path / "two.metrics.jsonl").read_text().splitlines()
    assert len(log) == len((tmp_path / "one.metrics.jsonl").read_text().splitlines())


@pytest.mark.slow
@needs_mpi
@pytest.mark.parametrize("cell, extra", [
    ("lstm", []), ("gru", []),
    ("gru", ["--dropout-mode", "locked", "--weight-drop", "0.4", "--weight-decay", "0.1",
             "--average", "0.9", "--average-start", "20"])])
def test_two_ranks_train_a_gated_stack_with_dropout_as_one_process(tmp_path, cell, extra):
    # the dropout masks (and the recurrent weights' masks) are drawn for all 5 streams on
    # every rank from the run's one generator and sliced, so the ranks drop exactly what
    # one process drops
    text = corpus(tmp_path, TEXT)
    opts = [*FLOAT64, "--cell", cell, "--num-layers", "2", "--dropout", "0.3",
            "--optimizer", "adam", "--learning-rate", "0.01", "--steps", "80", *extra]
    one = run("train", text, "--out", tmp_path / "one.npz", *opts, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = mpirun(2, "train", text, "--out", tmp_path / "two.npz", *opts, cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert_same_run(tmp_path / "two.npz", tmp_path / "one.npz", rtol=1e-10)
    if extra:
        a, b = (rnncore.load_checkpoint(tmp_path / f"{n}.npz").average_model
                for n in ("one", "two"))
        for name, p in a.params.items():
            np.testing.assert_allclose(b.params[name], p, rtol=0, atol=1e-10)
    no_dropout = run("train", text, "--out", tmp_path / "plain.npz",
                     *[o if o != "0.3" else "0" for o in opts], cwd=tmp_path)
    assert no_dropout.returncode == 0, no_dropout.stderr
    plain = rnncore.load_checkpoint(tmp_path / "plain.npz").model.params["Whh"]
    assert not np.allclose(plain, rnncore.load_checkpoint(tmp_path / "one.npz").model.params["Whh"])


@pytest.mark.slow
@needs_mpi
def test_a_run_resumes_across_different_numbers_of_ranks(tmp_path):
    text = corpus(tmp_path, TEXT)
    opts = [*FLOAT64, "--optimizer", "adam", "--learning-rate", "0.01"]
    assert run("train", text, "--out", tmp_path / "straight.npz", *opts, "--steps", 90,
               cwd=tmp_path).returncode == 0
    # 2 ranks, then 1 process
    proc = mpirun(2, "train", text, "--out", tmp_path / "a.npz", *opts, "--steps", 30,
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run("train", text, "--out", tmp_path / "a.npz", "--resume", "--steps", 90,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_same_run(tmp_path / "a.npz", tmp_path / "straight.npz", rtol=1e-10,
                    same_validations=False)
    # 1 process, then 3 ranks, then 2
    assert run("train", text, "--out", tmp_path / "b.npz", *opts, "--steps", 30,
               cwd=tmp_path).returncode == 0
    proc = mpirun(3, "train", text, "--out", tmp_path / "b.npz", "--resume", "--steps", 60,
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stdout
    proc = mpirun(2, "train", text, "--out", tmp_path / "b.npz", "--resume", "--steps", 90,
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_same_run(tmp_path / "b.npz", tmp_path / "straight.npz", rtol=1e-10,
                    same_validations=False)


def _rank_pid(rank, tag):
    """The pid of the MPI rank `rank` of the job whose environment carries `tag`."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if f"PMI_RANK={rank}".encode() in env and tag.encode() in env:
            return int(pid)
    return None


@pytest.mark.slow
@needs_mpi
def test_a_killed_rank_ends_the_job_and_the_last_checkpoint_loads(tmp_path):
    text = corpus(tmp_path, TEXT * 10)
    tag = f"RNNCORE_TEST_JOB={tmp_path.name}"
    proc = subprocess.Popen(
        [MPIEXEC, "-n", "2", RNNCORE, "train", str(text), "--out", str(tmp_path / "m.npz"),
         "--steps", "100000000", "--hidden-size", "16", "--batch-size", "4",
         "--checkpoint-every", "20", "--print-every", "20", "--distributed"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, tag.split("=")[0]: tmp_path.name})
    try:
        logged = 0
        for line in proc.stdout:
            logged += line.startswith("step ")
            if logged == 2:    # step 40 logged: the checkpoint of step 20 is on disk
                break
        pid = _rank_pid(1, tag)
        assert pid is not None
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        assert time.monotonic() - killed_at < 30
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert rnncore.load_checkpoint(tmp_path / "m.npz").train_meta["step"] >= 20


@pytest.mark.slow
@needs_mpi
def test_an_exception_on_one_rank_aborts_every_rank(tmp_path):
    # the callback runs on rank 0 only: its exception is that rank's alone
    script = tmp_path / "boom.py"
    script.write_text(
        "import rnncore\n"
        "def boom(record):\n"
        "    raise RuntimeError('callback failed')\n"
        f"rnncore.fit({str(corpus(tmp_path, TEXT))!r}, {str(tmp_path / 'm.npz')!r},\n"
        "            steps=10**8, hidden_size=8, batch_size=2, seq_length=5,\n"
        "            print_every=5, callback=boom, distributed=True)\n")
    started = time.monotonic()
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert time.monotonic() - started < 60
    assert "rnncore: error: rank 0: callback failed (aborting every process)" in proc.stderr


@pytest.mark.slow
@needs_mpi
def test_interrupt_saves_once_and_every_rank_exits(tmp_path):
    text = corpus(tmp_path, TEXT * 10)
    proc = subprocess.Popen(
        [MPIEXEC, "-n", "2", RNNCORE, "train", str(text), "--out", str(tmp_path / "m.npz"),
         "--steps", "100000000", "--hidden-size", "16", "--batch-size", "4",
         "--checkpoint-every", "100000000", "--print-every", "20", "--distributed"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("step "):
                break
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stdout.count("interrupted at step") == 1 and "Traceback" not in stderr
    step = rnncore.load_checkpoint(tmp_path / "m.npz").train_meta["step"]
    assert f"interrupted at step {step}:" in stdout


@pytest.mark.slow
@needs_mpi
def test_setup_errors_are_said_once(tmp_path):
    proc = mpirun(2, "train", tmp_path / "missing.txt", "--out", tmp_path / "m.npz",
                  cwd=tmp_path)
    assert_clean_error(proc, "corpus file not found", status=1)
    proc = mpirun(3, "train", corpus(tmp_path, TEXT), "--out", tmp_path / "m.npz",
                  "--batch-size", "2", cwd=tmp_path)
    assert_clean_error(proc, "--batch-size 2 is smaller than the 3 MPI processes", status=1)
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.slow
@needs_mpi
def test_distributed_in_a_lone_process_is_an_error(tmp_path):
    proc = run("train", corpus(tmp_path, TEXT), "--out", tmp_path / "m.npz", "--distributed",
               cwd=tmp_path)
    assert_clean_error(proc, "this process is alone (MPI world size 1)", status=1)
    assert not (tmp_path / "m.npz").exists()
