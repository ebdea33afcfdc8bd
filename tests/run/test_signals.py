"""Ctrl-C and SIGTERM: the step finishes, the checkpoint is saved, the status is 130."""
import signal
import subprocess
import time

import pytest

from rnncore.checkpoint import load_checkpoint

from support import corpus, rnncore_command, run, text_of_random_words

pytestmark = pytest.mark.slow   # every test here starts a process


# ---- SIGTERM ----------------------------------------------------------------------------
def test_sigterm_finishes_the_step_saves_and_exits_130(tmp_path):
    text = corpus(tmp_path, text_of_random_words(20000, seed=1))
    out = tmp_path / "m.npz"
    proc = subprocess.Popen([*rnncore_command(), "train", text, "--out", out, "--steps",
                             "100000000", "--hidden-size", "32", "--print-every", "10",
                             "--checkpoint-every", "1000000"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:   # wait until training is under way
        if proc.stdout.readline().startswith("step "):
            break
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    line = [l for l in stdout.splitlines() if l.startswith("interrupted at step ")][-1]
    step = int(line.split()[3].rstrip(":"))
    assert f"saved {out}" in line
    assert load_checkpoint(out).train_meta["step"] == step >= 10


def test_row_interrupt_saves_a_consistent_checkpoint(tmp_path):
    big = corpus(tmp_path, "to be or not to be, that is the question. " * 400)
    out = tmp_path / "m.npz"
    proc = subprocess.Popen([*rnncore_command(), "train", big, "--out", out, "--steps",
                             "10000000", "--hidden-size", "32", "--checkpoint-every", "1000000"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until training is under way
        line = proc.stdout.readline()
        if line.startswith("step "):
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted at step" in stdout
    ckpt = load_checkpoint(out)
    assert ckpt.train_meta["step"] >= 100
    # and it resumes from exactly there
    step = ckpt.train_meta["step"]
    proc = run("train", big, "--out", out, "--steps", step + 5, "--resume", cwd=tmp_path)
    assert proc.returncode == 0 and load_checkpoint(out).train_meta["step"] == step + 5
