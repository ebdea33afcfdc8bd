"""What a run shows: the header, the log lines (80 columns), the progress bar, the
hopeless-run warning."""
import math
import subprocess

import pytest

import rnncore

from rnncore.checkpoint import load_checkpoint
from rnncore.report import log_line

from support import (EXPLODING, FOX, SMALL, corpus, quiet_fit, read_log, train_to,
                     warnings_of)


TEXT = FOX


def test_console_train_loss_is_the_logged_mean(tmp_path):
    result, lines = quiet_fit(tmp_path, steps=40)
    step_lines = [l for l in lines if l.startswith("step ")]
    for line, record in zip(step_lines, read_log(tmp_path)):
        assert f"train {record['train_loss']:.4f}" in line


def test_log_lines_fit_80_columns():
    record = {"step": 999999, "epoch": 999, "train_loss": 1.23456, "val_loss": 9.87654,
              "val_bits_per_char": 14.2, "lr": 1.23456e-5, "chars_per_s": 12_345_678.0}
    assert len(log_line(record, 999999)) <= 80


@pytest.mark.slow
def test_progress_bar_keeps_its_bar_on_an_80_column_terminal(tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import termios
    from support import RNNCORE
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([RNNCORE, "train", str(corpus(tmp_path, TEXT)), "--out",
                             str(tmp_path / "m.npz"), "--steps", "400", *SMALL,
                             "--eval-every", "200"], cwd=tmp_path, stdout=follower,
                            stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:     # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    frames = [f for f in output.decode("utf-8", "replace").replace("\r", "\n").split("\n")
              if "|" in f and "step" not in f]
    assert frames, output
    assert all(len(f) <= 80 for f in frames)
    assert all(f.count("█") + f.count(" ") > 15 for f in frames if "%|" in f)
    assert any("train" in f and "nats/char" in f for f in frames)
    log_lines = [l for l in output.decode().replace("\r", "\n").split("\n")
                 if l.startswith("step ")]
    assert [l.split()[1] for l in log_lines] == ["200/400", "400/400"]   # validations only


TEXT_HOPELESS = FOX


@pytest.mark.slow
def test_row_a_run_worse_than_uniform_guessing_says_so_once(tmp_path):
    out = tmp_path / "model.npz"
    proc = train_to(tmp_path, out, "--steps", 600, *EXPLODING)
    [warning] = warnings_of(proc)   # once, though every later line is as bad
    assert warning.startswith("rnncore: warning: the training loss is ")
    assert ("worse than guessing uniformly among the 28 symbols (ln 28 = 3.3322): the model "
            "is learning nothing, most likely because the learning rate (50) is too high"
            in warning)
    assert " at step 300," in warning   # after its first few hundred steps, not before
    assert not [line for line in proc.stderr.splitlines() if "error:" in line]
    assert load_checkpoint(out).train_meta["step"] == 600   # saved, as any finite run is


@pytest.mark.slow
def test_a_short_or_healthy_run_gives_no_warning(tmp_path):
    assert warnings_of(train_to(tmp_path, tmp_path / "short.npz", "--steps", 200, *EXPLODING)) == []
    healthy = train_to(tmp_path, tmp_path / "healthy.npz", "--steps", 400, "--optimizer", "sgd",
                    "--learning-rate", "0.1")
    assert warnings_of(healthy) == []


def test_a_toy_corpus_is_told_its_validation_is_too_small_not_its_rate(tmp_path, capsys):
    # issue 28: a 40-character corpus warned "learning rate too high" while the training
    # loss was 0.0038 and two characters were held out
    text = tmp_path / "toy.txt"
    text.write_text("abcd" * 9 + "abzq")               # the held-out "zq" is never seen
    result = rnncore.fit(text, tmp_path / "m.npz", steps=400, cell="gru", num_layers=1,
                         hidden_size=16, seq_length=5, batch_size=1, learning_rate=0.02,
                         eval_every=100, print_every=100, echo=None, progress=False)
    assert result.history[-1]["train_loss"] < 0.1 < math.log(6) < result.history[-1][
        "val_loss"]
    [warning] = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert "learning rate" not in warning
    assert warning.endswith("the held-out text is only 2 character(s), too few for its loss "
                            "to mean anything; train on a longer corpus or hold out more "
                            "with --val-fraction")
