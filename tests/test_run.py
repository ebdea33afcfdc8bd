"""The training run as a library function (rnncore.fit), the CLI faults its move fixed,
and `rnncore info`."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import rnncore
from rnncore.config import SETTINGS, field_of
from rnncore.run import RunError, _log_line
from cli_helpers import SMALL, assert_clean_error, corpus, run

TEXT = "the quick brown fox jumps over the lazy dog; " * 60
SMALL_SETTINGS = {"hidden_size": 16, "seq_length": 8, "batch_size": 2}


def quiet_fit(tmp_path, **kwargs):
    """fit() on TEXT into tmp_path/model.npz, echoing into a list."""
    lines = []
    options = {**SMALL_SETTINGS, "print_every": 10, "eval_every": 20, **kwargs}
    result = rnncore.fit(corpus(tmp_path, TEXT), tmp_path / "model.npz", echo=lines.append,
                         **options)
    return result, lines


def read_log(tmp_path):
    with open(tmp_path / "model.metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def test_fit_validates_keeps_best_checkpoints_and_returns_the_history(tmp_path):
    seen = []
    result, lines = quiet_fit(tmp_path, steps=60, keep_best=True, checkpoint_every=25,
                              callback=seen.append)
    assert result.status == "finished" and result.exit_status == 0
    assert result.step == 60 and result.out.endswith("model.npz")
    assert [r["step"] for r in result.history] == list(range(10, 61, 10))
    assert seen == result.history == read_log(tmp_path)
    assert [r["step"] for r in result.history if "val_loss" in r] == [20, 40, 60]
    assert result.best["val_loss"] == min(r["val_loss"] for r in result.history
                                          if "val_loss" in r)
    ckpt = rnncore.load_checkpoint(tmp_path / "model.npz")
    assert ckpt.train_meta["step"] == 60 and ckpt.best_model is not None
    assert lines[-1].startswith(f"saved {tmp_path / 'model.npz'} at step 60; best validation")


def test_fit_resumes_to_the_runs_own_total(tmp_path):
    first, _ = quiet_fit(tmp_path, steps=30, lr_schedule="cosine")
    ckpt = rnncore.load_checkpoint(tmp_path / "model.npz")
    assert ckpt.train_meta["config"]["total_steps"] == 30
    # stop it half-way by callback, then resume without a budget: it ends at 30, not 10,000
    (tmp_path / "model.npz").unlink()
    stopped, _ = quiet_fit(tmp_path, steps=30, lr_schedule="cosine",
                           callback=lambda record: record["step"] >= 10)
    assert stopped.status == "stopped_early" and stopped.step == 10
    resumed, lines = quiet_fit(tmp_path, resume=True)
    assert resumed.step == 30 and resumed.status == "finished"
    assert any(line == f"resuming {tmp_path / 'model.npz'} at step 10" for line in lines)
    # the same cosine, not stretched to 10,000 steps
    assert resumed.history[-1]["lr"] == first.history[-1]["lr"]


def test_resume_from_the_cli_without_steps_uses_the_stored_total(tmp_path):
    out = tmp_path / "m.npz"
    text = corpus(tmp_path, TEXT)
    assert run("train", text, "--out", out, "--steps", 12, *SMALL, cwd=tmp_path).returncode == 0
    proc = run("train", text, "--out", out, "--resume", cwd=tmp_path)
    assert "nothing to do" in proc.stdout
    assert rnncore.load_checkpoint(out).train_meta["step"] == 12


def test_patience_counts_validations_without_improvement_exactly(tmp_path):
    # plain sgd at a rate high enough that validation soon stops improving (on the
    # vanilla cell, whose losses stay below ln V at this rate)
    result, lines = quiet_fit(tmp_path, steps=2000, patience=1, optimizer="sgd",
                              learning_rate=0.8, clip=0.0, eval_every=10, cell="rnn",
                              num_layers=1, dropout=0.0)
    vals = [r["val_loss"] for r in result.history if "val_loss" in r]
    assert result.status == "stopped_early"
    # it stops at the first validation that does not beat the best so far
    worse = next(i for i in range(1, len(vals)) if vals[i] >= min(vals[:i]))
    assert len(vals) == worse + 1
    assert "no validation improvement in 1 evaluations" in lines[-1]


def test_console_train_loss_is_the_logged_mean(tmp_path):
    result, lines = quiet_fit(tmp_path, steps=40)
    step_lines = [l for l in lines if l.startswith("step ")]
    for line, record in zip(step_lines, read_log(tmp_path)):
        assert f"train {record['train_loss']:.4f}" in line


def test_log_lines_fit_80_columns():
    record = {"step": 999999, "epoch": 999, "train_loss": 1.23456, "val_loss": 9.87654,
              "val_bits_per_char": 14.2, "lr": 1.23456e-5, "chars_per_s": 12_345_678.0}
    assert len(_log_line(record, 999999)) <= 80


def test_epoch_budget_and_header(tmp_path):
    result, lines = quiet_fit(tmp_path, epochs=2, eval_every=1000)
    trainer_steps_per_epoch = math.ceil(((len(TEXT) - int(len(TEXT) * 0.05) - 1) // 2) / 8)
    assert result.step == 2 * trainer_steps_per_epoch and result.epoch == 2
    header = lines[0].splitlines()
    assert f"{trainer_steps_per_epoch:,} steps per epoch" in header[3]
    assert all(len(line) <= 80 for line in header[1:])   # the first names the corpus path


def test_minutes_budget_stops_and_saves(tmp_path):
    result, lines = quiet_fit(tmp_path, minutes=0.003, eval_every=10**6)
    assert result.status == "finished" and result.step > 0
    assert rnncore.load_checkpoint(tmp_path / "model.npz").train_meta["step"] == result.step
    with pytest.raises(RunError, match="trained against the clock: give its budget"):
        quiet_fit(tmp_path, resume=True)
    with pytest.raises(RunError, match="cosine schedule .* not --minutes"):
        quiet_fit(tmp_path, minutes=1, lr_schedule="cosine", force=True)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"steps": 5, "epochs": 1}, RunError, "give one budget, not --steps and --epochs"),
    ({"steps": 0}, rnncore.ConfigError, "steps must be a positive integer, got 0"),
    ({"minutes": -1}, rnncore.ConfigError, "minutes must be > 0, got -1"),
    ({"lr_decay": 1.5}, rnncore.ConfigError, r"lr_decay must be in \(0, 1\], got 1.5"),
    ({"hidden": 3}, TypeError, "unknown setting"),
])
def test_bad_fit_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        quiet_fit(tmp_path, **kwargs)
    assert not (tmp_path / "model.npz").exists()


def test_one_table_of_defaults_for_the_cli_and_the_library():
    from rnncore import cli
    parser = cli.build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.items()
                 if a[0] == "train")[1]
    helps = {a.dest: a.help for a in train._actions}
    for name in SETTINGS:
        default = field_of(name).default
        assert f"(default {'off' if default is None else default}" in helps[name]
        assert rnncore.TRAIN_DEFAULTS[name] == default


def test_info_reports_what_the_checkpoint_holds(tmp_path):
    out = tmp_path / "model.npz"
    quiet_fit(tmp_path, steps=40, keep_best=True, lr_schedule="step")
    proc = run("info", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "GRU, 2 layers of 16 units, dropout 0.1, float32" in text   # the defaults
    assert "step 40/40" in text and "schedule step" in text
    assert "best validation" in text and "parameters kept" in text
    assert "corpus.txt" in text and f"{len(set(TEXT))} symbols" in text
    summary = json.loads(run("info", out, "--json", cwd=tmp_path).stdout)
    assert summary["training"]["step"] == 40
    assert summary["vocabulary"] == "".join(sorted(set(TEXT)))
    bare = tmp_path / "bare.npz"
    rnncore.CharRNN(rnncore.Vocab.from_text("ab"), 3).save(bare)
    assert "training state: none" in run("info", bare, cwd=tmp_path).stdout
    assert_clean_error(run("info", tmp_path / "none.npz", cwd=tmp_path), "checkpoint not found")


def test_load_says_which_parameters_it_gives(tmp_path):
    quiet_fit(tmp_path, steps=100, keep_best=True, optimizer="sgd", learning_rate=0.8, clip=0.0)
    ckpt = rnncore.load_checkpoint(tmp_path / "model.npz")
    best = rnncore.CharRNN.load(tmp_path / "model.npz")
    latest = rnncore.CharRNN.load(tmp_path / "model.npz", latest=True)
    np.testing.assert_array_equal(best.params["Why"], ckpt.preferred_model.params["Why"])
    np.testing.assert_array_equal(latest.params["Why"], ckpt.model.params["Why"])


def test_budget_flags_are_exclusive_on_the_cli(tmp_path):
    assert_clean_error(run("train", "c.txt", "--out", "m.npz", "--steps", "3", "--epochs", "1",
                           cwd=tmp_path), "not allowed with argument", status=2)


def test_distributed_without_mpi4py_names_the_install_command(tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None; from rnncore import cli; "
            f"sys.exit(cli.main(['train', {str(corpus(tmp_path, TEXT))!r}, '--out', "
            f"{str(tmp_path / 'm.npz')!r}, '--distributed']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert_clean_error(proc, "--distributed needs mpi4py and an MPI library: pip install "
                             "'rnncore[mpi]'", status=1)
    assert not (tmp_path / "m.npz").exists()


def test_progress_bar_keeps_its_bar_on_an_80_column_terminal(tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import termios
    from cli_helpers import RNNCORE
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


def test_a_resumed_keep_best_run_keeps_the_parameters_its_best_record_names(tmp_path):
    """Resuming a --keep-best run without repeating keep_best=True still keeps the best:
    the parameters the checkpoint holds as the best score exactly the best validation it
    records (a resumed run keeps every setting of the run it continues)."""
    settings = dict(cell="rnn", num_layers=1, hidden_size=32, dropout=0.0, eval_every=20)
    first, _ = quiet_fit(tmp_path, steps=100, keep_best=True, **settings)
    resumed, _ = quiet_fit(tmp_path, resume=True, steps=400, **settings)
    ckpt = rnncore.load_checkpoint(tmp_path / "model.npz")
    best = ckpt.train_meta["best"]
    assert best["step"] > 100, "the test needs a best found after the resume"
    assert ckpt.train_meta["config"]["keep_best"] is True
    val = rnncore.load_corpus(tmp_path / "corpus.txt").split(0.05)[1]
    score = rnncore.evaluate(ckpt.best_model, val)["nats_per_char"]
    assert score == pytest.approx(best["val_loss"], rel=1e-6)
    assert resumed.best == best
