"""A training process killed at any moment leaves a loadable checkpoint."""
import os
import subprocess
import time

import numpy as np
import pytest

from rnncore.checkpoint import load_checkpoint

from support import corpus, rnncore_command, run

pytestmark = pytest.mark.slow   # every test here starts a process


# ---- atomic writes under SIGKILL -------------------------------------------------------------
def test_sigkill_at_random_moments_never_leaves_a_broken_checkpoint(tmp_path):
    text = corpus(tmp_path, "all work and no play makes jack a dull boy. " * 300)
    out = tmp_path / "m.npz"
    opts = ["--hidden-size", "192", "--seq-length", "8", "--batch-size", "1"]
    assert run("train", text, "--out", out, "--steps", "1", *opts, cwd=tmp_path).returncode == 0
    rng = np.random.default_rng(0)
    steps_seen, killed_mid_write = set(), 0
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
        # a temporary file left behind shows this kill landed inside a write
        killed_mid_write += any(n.endswith(".tmp") for n in os.listdir(tmp_path))
    assert len(steps_seen) > 1
    assert killed_mid_write >= 1
    # the next run clears what the killed writers left
    assert run("train", text, "--out", out, "--steps", max(steps_seen) + 1, "--resume",
               cwd=tmp_path).returncode == 0
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
