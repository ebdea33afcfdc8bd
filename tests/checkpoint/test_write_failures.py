"""A checkpoint or metrics log the file system refuses to write (disk full, I/O error,
read-only, quota, file too large): one line naming the file and the checkpoint kept, exit
status 1, no temporary file left, and the kept checkpoint loads and resumes.

For real on a small tmpfs when the tests run as root; through RLIMIT_FSIZE (a real write
failure the kernel gives any user) and through injected errors otherwise."""
import errno
import json
import os
import resource
import shutil
import signal
import subprocess

import pytest

from rnncore import cli
from rnncore.checkpoint import load_checkpoint
from rnncore.metrics import read_metrics

from support import SMALL, assert_clean_error, corpus, digest, rnncore_command, run


def _start(tmp_path, directory, steps=20):
    """A checkpoint at step `steps` in `directory`, saved every 10 steps."""
    out = directory / "model.npz"
    proc = run("train", corpus(tmp_path), "--out", out, "--steps", steps, *SMALL,
               "--checkpoint-every", 10, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out


def _assert_kept(out, step, before):
    """The checkpoint is the one from before, whole, and nothing temporary is left."""
    assert digest(out) == before
    assert load_checkpoint(out).train_meta["step"] == step
    leftovers = [n for n in os.listdir(out.parent) if n.endswith(".tmp") or n.endswith(".lock")]
    assert leftovers == []
    log = out.parent / "model.metrics.jsonl"
    if log.exists():   # whole lines only
        lines = log.read_text().splitlines(keepends=True)
        assert all(line.endswith("\n") and json.loads(line) for line in lines)


def _resumes(tmp_path, out, steps):
    proc = run("train", corpus(tmp_path), "--out", out, "--steps", steps, "--resume",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(out).train_meta["step"] == steps


# how each file is made to hit the limit: (extra train options, which file fails)
CHECKPOINT_FAILS = (["--steps", 40, "--checkpoint-every", 10], "checkpoint")
METRICS_FAILS = (["--steps", 3000, "--checkpoint-every", 100000, "--print-every", 1],
                 "metrics log")


def _failing_path(out, what):
    return out if what == "checkpoint" else out.parent / "model.metrics.jsonl"


# ---- a real full disk ---------------------------------------------------------------------
def system_tool(name):
    """The system's `name` (mount, umount), also where PATH is a venv's alone (the wheel
    tests run with no compiler, and no /usr/bin, on the PATH)."""
    for path in (shutil.which(name), f"/usr/bin/{name}", f"/bin/{name}"):
        if path and os.path.exists(path):
            return path
    pytest.skip(f"no {name} here")


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the injected-error tests cover this")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run([system_tool("mount"), "-t", "tmpfs", "-o", "size=256k", "tmpfs", disk],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run([system_tool("umount"), disk], check=True)


def _fill(disk):
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


@pytest.mark.slow
@pytest.mark.parametrize("extra,what", [CHECKPOINT_FAILS, METRICS_FAILS])
def test_row_full_disk_names_the_file_and_the_checkpoint_kept(tmp_path, small_disk, extra,
                                                              what):
    out = _start(tmp_path, small_disk)
    before = digest(out)
    filler = _fill(small_disk)
    proc = run("train", corpus(tmp_path), "--out", out, "--resume", *extra, cwd=tmp_path)
    assert_clean_error(proc, f"could not write the {what} {_failing_path(out, what)} (No "
                             f"space left on device); the checkpoint at {out} (step 20) was "
                             "kept", status=1)
    _assert_kept(out, 20, before)
    filler.unlink()
    _resumes(tmp_path, out, 40)


@pytest.mark.slow
def test_a_read_only_file_system_after_the_start(tmp_path, small_disk):
    out = _start(tmp_path, small_disk)
    before = digest(out)
    subprocess.run([system_tool("mount"), "-o", "remount,ro", small_disk], check=True)
    try:
        proc = run("train", corpus(tmp_path), "--out", out, "--resume", "--steps", 40,
                   cwd=tmp_path)
        assert_clean_error(proc, f"directory {small_disk} is not writable (Read-only file "
                                 "system)", status=1)
        _assert_kept(out, 20, before)
    finally:
        subprocess.run([system_tool("mount"), "-o", "remount,rw", small_disk], check=True)
    _resumes(tmp_path, out, 40)


# ---- a real write failure for any user: the file size limit ------------------------------
def _file_size_limit(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # so write() fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return apply


@pytest.mark.slow
@pytest.mark.parametrize("extra,what", [CHECKPOINT_FAILS, METRICS_FAILS])
def test_a_file_size_limit_is_a_clean_write_failure(tmp_path, extra, what):
    out = _start(tmp_path, tmp_path)
    before = digest(out)
    # the checkpoint (about 16 kB) cannot be written under 4 kB; the log can grow to 20 kB
    limit = 4096 if what == "checkpoint" else os.path.getsize(out) + 4096
    proc = subprocess.run([*rnncore_command(), "train", corpus(tmp_path), "--out", out,
                           "--resume", *map(str, extra)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, preexec_fn=_file_size_limit(limit))
    assert_clean_error(proc, f"could not write the {what} {_failing_path(out, what)} (File "
                             f"too large); the checkpoint at {out} (step 20) was kept",
                       status=1)
    _assert_kept(out, 20, before)
    _resumes(tmp_path, out, 40)


# ---- injected errors: every errno, every step of the writers ----------------------------------
ERRORS = [errno.ENOSPC, errno.EIO, errno.EROFS, errno.EDQUOT]


def _raise(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def _resume_in_process(tmp_path, out, capsys, *extra):
    status = cli.main(["train", str(corpus(tmp_path)), "--out", str(out), "--resume",
                       *map(str, extra)])
    return status, capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("code", ERRORS)
@pytest.mark.parametrize("step_that_fails", ["fsync", "replace"])
def test_injected_checkpoint_write_failure(tmp_path, monkeypatch, capsys, code,
                                           step_that_fails):
    out = _start(tmp_path, tmp_path)
    before = digest(out)
    with monkeypatch.context() as patch:
        patch.setattr(os, step_that_fails, _raise(code))
        status, err = _resume_in_process(tmp_path, out, capsys, *CHECKPOINT_FAILS[0])
    assert status == 1
    assert err == (f"rnncore: error: could not write the checkpoint {out} "
                   f"({os.strerror(code)}); the checkpoint at {out} (step 20) was kept\n")
    _assert_kept(out, 20, before)
    _resumes(tmp_path, out, 40)


@pytest.mark.slow
@pytest.mark.parametrize("code", ERRORS)
def test_injected_metrics_log_failure_leaves_whole_lines(tmp_path, monkeypatch, capsys, code):
    out = _start(tmp_path, tmp_path)
    log = tmp_path / "model.metrics.jsonl"
    before = digest(out)
    real_write, calls = os.write, []

    def write_half_then_fail(fd, data):
        """Half of the first line reaches the log, then the device fails."""
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(".metrics.jsonl"):
            return real_write(fd, data)
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:len(data) // 2]))
        raise OSError(code, os.strerror(code))

    lines_before = log.read_text()
    with monkeypatch.context() as patch:
        patch.setattr(os, "write", write_half_then_fail)
        status, err = _resume_in_process(tmp_path, out, capsys, *METRICS_FAILS[0])
    assert status == 1 and len(calls) == 2
    assert err == (f"rnncore: error: could not write the metrics log {log} "
                   f"({os.strerror(code)}); the checkpoint at {out} (step 20) was kept\n")
    assert log.read_text() == lines_before   # the half line was taken back
    _assert_kept(out, 20, before)
    _resumes(tmp_path, out, 40)


@pytest.mark.slow
def test_injected_failure_rewriting_the_metrics_log_leaves_no_temporary_file(
        tmp_path, monkeypatch, capsys):
    out = _start(tmp_path, tmp_path)
    log = tmp_path / "model.metrics.jsonl"
    with open(log, "a") as f:   # a line past the checkpoint, which resuming must drop
        f.write(json.dumps({"step": 25, "train_loss": 1.0}) + "\n")
    before = digest(out), digest(log)
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", _raise(errno.ENOSPC))
        status, err = _resume_in_process(tmp_path, out, capsys, "--steps", 40)
    assert status == 1
    assert err.startswith(f"rnncore: error: could not write the metrics log {log} (No space")
    assert (digest(out), digest(log)) == before
    _assert_kept(out, 20, before[0])
    _resumes(tmp_path, out, 40)
    assert [r["step"] for r in read_metrics(log)][-1] == 40
    assert 25 not in [r["step"] for r in read_metrics(log)]


def test_a_fresh_run_whose_first_save_fails_says_nothing_was_written(tmp_path, monkeypatch,
                                                                     capsys):
    out = tmp_path / "model.npz"
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", _raise(errno.EIO))
        status = cli.main(["train", str(corpus(tmp_path)), "--out", str(out), "--steps", "5",
                           *SMALL])
    err = capsys.readouterr().err
    assert status == 1
    assert err == (f"rnncore: error: could not write the checkpoint {out} "
                   "(Input/output error); no checkpoint was written\n")
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt", "model.metrics.jsonl"]


@pytest.mark.slow
def test_a_forced_run_whose_first_save_fails_keeps_the_earlier_file(tmp_path, monkeypatch,
                                                                    capsys):
    out = _start(tmp_path, tmp_path)
    before = digest(out)
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", _raise(errno.ENOSPC))
        status = cli.main(["train", str(corpus(tmp_path)), "--out", str(out), "--steps", "5",
                           "--force", *SMALL])
    assert status == 1
    assert capsys.readouterr().err == (
        f"rnncore: error: could not write the checkpoint {out} (No space left on device); "
        f"the earlier file at {out} was kept\n")
    _assert_kept(out, 20, before)
