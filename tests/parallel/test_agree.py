"""What MPI ranks share: the losses, the best validation, the stop decisions (patience,
the callback, a Ctrl-C one rank sees, rank 0's clock) — every rank the same, as one
process, and no rank left waiting."""
import json
import os
import signal
import subprocess
import sys

import pytest

import rnncore
from rnncore.train import learning_rate_at

from support import corpus, read_log
from test_parallel import FLOAT64, MPIEXEC, TEXT, _rank_pid, mpirun, needs_mpi, run

pytestmark = [pytest.mark.slow, needs_mpi]
PATIENT = [*FLOAT64, "--steps", 400, "--eval-every", 10, "--print-every", 10, "--optimizer",
           "sgd", "--learning-rate", "0.2", "--clip", "5", "--patience", 1, "--cell", "rnn",
           "--num-layers", 1, "--dropout", 0]


def test_patience_stops_every_rank_where_one_process_stops(tmp_path):
    text = corpus(tmp_path, TEXT)
    one = run("train", text, "--out", tmp_path / "one.npz", *PATIENT, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = mpirun(2, "train", text, "--out", tmp_path / "two.npz", *PATIENT, cwd=tmp_path,
                 timeout=240)                 # a rank left waiting would time out here
    assert two.returncode == 0, two.stderr
    a, b = (rnncore.load_checkpoint(tmp_path / f"{n}.npz").train_meta for n in ("one", "two"))
    assert a["step"] == b["step"] < 400, "the scenario must stop on patience"
    assert a["best"]["step"] == b["best"]["step"]
    assert b["best"]["val_loss"] == pytest.approx(a["best"]["val_loss"], rel=1e-9)
    one_log = read_log(tmp_path, "one.metrics.jsonl")
    two_log = read_log(tmp_path, "two.metrics.jsonl")
    assert [r["step"] for r in one_log] == [r["step"] for r in two_log]
    for x, y in zip(one_log, two_log):      # the logged losses are every stream's mean
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-9)
        assert ("val_loss" in x) == ("val_loss" in y)
    stops = [line for line in two.stdout.splitlines() if line.startswith("stopped early")]
    assert len(stops) == 1                  # rank 0 alone speaks


def test_the_callback_stops_every_rank_at_rank_zeros_answer(tmp_path):
    text = corpus(tmp_path, TEXT)
    script = tmp_path / "script.py"
    script.write_text(
        "import json, sys, rnncore\n"
        f"result = rnncore.fit({str(text)!r}, {str(tmp_path / 'm.npz')!r}, steps=200,\n"
        "    hidden_size=8, seq_length=5, batch_size=4, cell='gru', num_layers=1,\n"
        "    print_every=5, eval_every=10**6, echo=None, distributed=True,\n"
        "    callback=lambda record: record['step'] >= 15)\n"
        "from mpi4py import MPI\n"
        "with open(f'answer-{MPI.COMM_WORLD.Get_rank()}.json', 'w') as f:\n"
        "    json.dump([result.status, result.step], f)\n")
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    # a file per rank: mpiexec merges the ranks' stdout, and two lines written at once
    # can arrive as one
    answers = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("answer-*.json"))]
    assert answers == [["stopped_early", 15]] * 2
    assert rnncore.load_checkpoint(tmp_path / "m.npz").train_meta["step"] == 15


def test_a_ctrl_c_one_rank_sees_stops_every_rank_at_the_same_step(tmp_path):
    # SIGINT to rank 1 alone (not through mpiexec, which would signal every rank): its
    # request travels in the step's all-reduce, so rank 0 saves and both stop together
    text = corpus(tmp_path, TEXT * 10)
    tag = f"RNNCORE_TEST_JOB={tmp_path.name}"
    proc = subprocess.Popen(
        [MPIEXEC, "-n", "2", sys.executable, "-c",
         "import sys; from rnncore.cli import main; sys.exit(main())", "train", str(text),
         "--out", str(tmp_path / "m.npz"), "--steps", "100000000", "--hidden-size", "16",
         "--batch-size", "4", "--print-every", "20", "--checkpoint-every", "100000000",
         "--distributed"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, tag.split("=")[0]: tmp_path.name})
    try:
        for line in proc.stdout:
            if line.startswith("step "):
                break
        pid = _rank_pid(1, tag)
        assert pid is not None
        os.kill(pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stdout.count("interrupted at step") == 1 and "Traceback" not in stderr
    step = rnncore.load_checkpoint(tmp_path / "m.npz").train_meta["step"]
    assert f"interrupted at step {step}: saved" in stdout


def test_the_clock_of_rank_zero_stops_every_rank_at_the_same_step(tmp_path):
    # --minutes: rank 0 alone reads the clock; every rank must stop at its step
    text = corpus(tmp_path, TEXT)
    script = tmp_path / "script.py"
    script.write_text(
        "import json, rnncore\n"
        f"result = rnncore.fit({str(text)!r}, {str(tmp_path / 'm.npz')!r}, minutes=0.03,\n"
        "    hidden_size=8, seq_length=5, batch_size=4, cell='gru', num_layers=1,\n"
        "    print_every=10**6, eval_every=10**6, echo=None, distributed=True)\n"
        "from mpi4py import MPI\n"
        "with open(f'answer-{MPI.COMM_WORLD.Get_rank()}.json', 'w') as f:\n"
        "    json.dump([result.status, result.step], f)\n")
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("answer-*.json"))]
    assert len(answers) == 2 and answers[0] == answers[1]
    assert answers[0][0] == "finished" and answers[0][1] > 1
    assert rnncore.load_checkpoint(tmp_path / "m.npz").train_meta["step"] == answers[0][1]


def test_a_schedule_over_minutes_follows_rank_zeros_clock_on_every_rank(tmp_path):
    # every rank updates with the rate of rank 0's training time (it travels with the
    # gradients): the parameters stay identical (each save compares their digests) and
    # every logged rate is the schedule's at the time its step started
    text = corpus(tmp_path, TEXT)
    script = tmp_path / "script.py"
    script.write_text(
        "import json, rnncore\n"
        f"result = rnncore.fit({str(text)!r}, {str(tmp_path / 'm.npz')!r}, minutes=0.04,\n"
        "    hidden_size=8, seq_length=5, batch_size=4, cell='gru', num_layers=1,\n"
        "    dtype='float64', lr_schedule='cosine', lr_floor=0.1, learning_rate=0.01,\n"
        "    print_every=1, eval_every=10**6, checkpoint_every=7, echo=None,\n"
        "    distributed=True)\n"
        "from mpi4py import MPI\n"
        "with open(f'answer-{MPI.COMM_WORLD.Get_rank()}.json', 'w') as f:\n"
        "    json.dump([result.status, result.step], f)\n")
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("answer-*.json"))]
    assert len(answers) == 2 and answers[0] == answers[1] and answers[0][1] > 14
    log = [json.loads(line) for line in (tmp_path / "m.metrics.jsonl").open()]
    for before, record in zip(log, log[1:]):    # the rate of the time its step started
        expected = learning_rate_at(record["step"] - 1, 0.01, "cosine", min_fraction=0.1,
                                    seconds=before["elapsed"], total_seconds=2.4)
        assert record["lr"] == pytest.approx(expected, rel=1e-3, abs=1e-5), record
    assert log[-1]["lr"] < 0.5 * log[0]["lr"]
