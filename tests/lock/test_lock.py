"""One writer per checkpoint: the lock itself, and two real training processes on one --out."""
import os
import select
import signal
import subprocess
import time

import pytest

from rnncore.lock import CheckpointInUse, CheckpointLock, lock_path

from support import SMALL, assert_clean_error, corpus, digest, rnncore_command, run

FOREVER = ["--steps", "100000000", "--print-every", "100000000", "--eval-every", "100000000",
           "--checkpoint-every", "100000000"]


def test_a_second_holder_is_refused_with_the_holders_pid(tmp_path):
    out = tmp_path / "model.npz"
    with CheckpointLock(out) as first:
        assert first.held and open(lock_path(out)).read() == f"{os.getpid()}\n"
        with pytest.raises(CheckpointInUse) as refused:
            with CheckpointLock(out):
                pass
        assert refused.value.pid == os.getpid()
        assert str(out) in str(refused.value) and f"pid {os.getpid()}" in str(refused.value)
        assert first.held   # the refusal did not disturb the holder
    assert not os.path.exists(lock_path(out))   # released and cleaned up
    with CheckpointLock(out):   # and free again
        pass


def test_a_lock_file_nobody_holds_blocks_no_one(tmp_path):
    out = tmp_path / "model.npz"
    with open(lock_path(out), "w") as f:   # as a killed holder leaves it
        f.write("999999\n")
    with CheckpointLock(out):
        assert open(lock_path(out)).read() == f"{os.getpid()}\n"


def test_an_unwritable_directory_is_an_oserror_not_a_lock(tmp_path):
    with pytest.raises(OSError):
        with CheckpointLock(tmp_path / "missing" / "model.npz"):
            pass


# ---- two real processes ---------------------------------------------------------------------
def _start_holder(tmp_path, text, out, *extra):
    """A training process that runs until stopped, writing nothing after its start: it
    holds the lock and has printed its header, so its set-up (which probes the directory
    with a temporary file) is over."""
    proc = subprocess.Popen([*rnncore_command(), "train", text, "--out", out, *SMALL, *FOREVER,
                             *extra], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            if open(lock_path(out)).read() == f"{proc.pid}\n":
                break
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    else:
        proc.kill()
        raise AssertionError(f"the first run never took the lock: {proc.communicate()}")
    fd, seen = proc.stdout.fileno(), b"\n"   # read raw: a text reader would buffer ahead
    while b"\ncorpus " not in seen and select.select([fd], [], [],
                                                      max(0.0, deadline - time.time()))[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        seen += chunk
    if b"\ncorpus " not in seen or proc.poll() is not None:
        proc.kill()
        raise AssertionError(f"the first run never started training: {proc.communicate()}")
    return proc


def _snapshot(directory):
    return {name: digest(directory / name) for name in sorted(os.listdir(directory))}


@pytest.mark.slow
def test_row_a_second_run_on_the_same_out_stops_at_once_and_changes_nothing(tmp_path):
    text = corpus(tmp_path)
    out = tmp_path / "model.npz"
    assert run("train", text, "--out", out, "--steps", 4, *SMALL, cwd=tmp_path).returncode == 0
    holder = _start_holder(tmp_path, text, out, "--resume")
    try:
        before = _snapshot(tmp_path)
        for how in ([], ["--force"], ["--resume"]):   # fresh, overwrite, continue
            proc = run("train", text, "--out", out, "--steps", 8, *SMALL, *how, cwd=tmp_path)
            assert_clean_error(proc, f"{out} is being written by another rnncore process "
                                     f"(pid {holder.pid})", status=1)
            assert _snapshot(tmp_path) == before
        # a fresh --out is locked as well, before it even exists
        fresh = tmp_path / "fresh.npz"
        other = _start_holder(tmp_path, text, fresh)
        try:
            assert_clean_error(run("train", text, "--out", fresh, *SMALL, cwd=tmp_path),
                               f"(pid {other.pid})")
        finally:
            other.kill()
            other.wait()
    finally:
        holder.send_signal(signal.SIGINT)
        stdout, stderr = holder.communicate(timeout=60)
    assert holder.returncode == 130, stderr
    assert not os.path.exists(lock_path(out))
    proc = run("train", text, "--out", out, "--steps", 4, "--resume", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr   # free again once the holder is gone


@pytest.mark.slow
def test_a_killed_holder_never_blocks(tmp_path):
    text = corpus(tmp_path)
    out = tmp_path / "model.npz"
    holder = _start_holder(tmp_path, text, out)
    holder.kill()
    holder.wait()
    assert os.path.exists(lock_path(out))   # left behind by SIGKILL, but not held
    proc = run("train", text, "--out", out, "--steps", 4, "--force", *SMALL, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(lock_path(out))
