"""A training process killed at any moment leaves a loadable checkpoint."""
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from rnncore.checkpoint import load_checkpoint

from support import corpus, rnncore_command, run, run_dying

pytestmark = pytest.mark.slow   # every test here starts a process


# ---- atomic writes under SIGKILL -------------------------------------------------------------
def test_sigkill_at_random_moments_never_leaves_a_broken_checkpoint(tmp_path):
    text = corpus(tmp_path, "all work and no play makes jack a dull boy. " * 300)
    out = tmp_path / "m.npz"
    opts = ["--hidden-size", "192", "--seq-length", "8", "--batch-size", "1"]
    assert run("train", text, "--out", out, "--steps", "1", *opts, cwd=tmp_path).returncode == 0
    rng = np.random.default_rng(0)
    steps_seen = set()
    for trial in range(12):
        proc = subprocess.Popen([*rnncore_command(), "train", text, "--out", out, "--steps",
                                 "100000000", "--resume", "--checkpoint-every", "1"], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        proc.stdout.readline()  # the resume line: it is saving continuously from here on
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        proc.wait()
        ckpt = load_checkpoint(out)  # must load, whatever moment the kill hit
        steps_seen.add(ckpt.train_meta["step"])
    # (where a kill lands is luck here: the test below lands one inside a write for sure)
    # the next run clears what the killed writers left
    assert run("train", text, "--out", out, "--steps", max(steps_seen) + 1, "--resume",
               cwd=tmp_path).returncode == 0
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


@pytest.mark.parametrize("where", ["mid-write", "before-rename"])
def test_a_kill_inside_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, where):
    """Deterministic: the process kills itself inside its third write (after half the
    bytes, or with the whole temporary file fsync'ed but not yet renamed)."""
    text = corpus(tmp_path, "all work and no play makes jack a dull boy. " * 30)
    out = tmp_path / "m.npz"
    opts = ["--hidden-size", "8", "--seq-length", "5", "--batch-size", "1", "--cell", "rnn",
            "--num-layers", "1", "--dropout", "0", "--checkpoint-every", "1"]
    proc = run_dying("train", text, "--out", out, "--steps", 10, *opts, cwd=tmp_path,
                     kill_at=3, where=where)
    assert proc.returncode == -signal.SIGKILL
    ckpt = load_checkpoint(out)                 # the second write's checkpoint, whole
    assert ckpt.train_meta["step"] == 2
    left = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".m.npz.")
    resumed = run("train", text, "--out", out, "--steps", 4, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out).train_meta["step"] == 4
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
