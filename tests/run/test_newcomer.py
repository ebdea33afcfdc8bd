"""What a new user tripped on (issue 20), each fixed and held: the memory check before
allocating, 80-column lines, the --minutes bar, eval's bar, Ctrl-C semantics, short
argparse errors, type hints."""
import inspect
import os
import signal
from pathlib import Path

import pytest

import rnncore
from rnncore import cli
from rnncore.run import Reporter, _progress_bar

from support import corpus

TEXT = "the quick brown fox jumps over the lazy dog; " * 60
SMALL = {"hidden_size": 16, "seq_length": 8, "batch_size": 2, "cell": "rnn",
         "num_layers": 1, "dropout": 0.0}


# ---- memory: one line, before anything is allocated ----------------------------------
def test_a_model_too_large_for_the_machine_is_one_line_before_anything_is_written(tmp_path):
    with pytest.raises(rnncore.NotEnoughMemory) as e:
        rnncore.fit(corpus(tmp_path, TEXT), tmp_path / "m.npz", hidden_size=100_000,
                    steps=10, echo=None)
    message = str(e.value)
    assert message.startswith("training a gru of 2 layers x 100,000 units (16 streams x 50) "
                              "would need ")
    assert "GB, more than this machine's" in message and "\n" not in message
    assert message.endswith(": lower --hidden-size, --num-layers, --batch-size or "
                            "--seq-length")
    assert isinstance(e.value, MemoryError) and isinstance(e.value, rnncore.RnncoreError)
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt"]


def test_a_charrnn_too_large_is_refused_before_its_parameters_are_drawn():
    vocab = rnncore.Vocab.from_text("abc")
    with pytest.raises(rnncore.NotEnoughMemory, match="the parameters of a lstm of 3 "
                       r"layer\(s\) x 1,000,000 units would need [\d,.]+ GB"):
        rnncore.CharRNN(vocab, 1_000_000, cell="lstm", num_layers=3)


def test_the_cli_says_it_in_one_line(tmp_path, capsys):
    status = cli.main(["train", str(corpus(tmp_path, TEXT)), "--out", str(tmp_path / "m.npz"),
                       "--hidden-size", "100000"])
    err = capsys.readouterr().err.splitlines()
    assert status == 1 and len(err) == 1
    assert err[0].startswith("rnncore: error: training a gru of 2 layers x 100,000 units")


# ---- 80 columns ------------------------------------------------------------------------
def test_every_line_of_a_run_fits_80_columns(tmp_path):
    lines = []
    rnncore.fit(corpus(tmp_path, TEXT, name="c.txt"), tmp_path / "m.npz", steps=40,
                keep_best=True, eval_every=20, print_every=10, echo=lines.append, **SMALL)
    text = "\n".join(lines).splitlines()
    assert text[-1].startswith("best validation ") and text[-2].startswith("saved ")
    long = [line for line in text if len(line) > 80 and str(tmp_path) not in line]
    assert not long


def test_the_header_and_last_lines_of_the_guides_example_fit_80_columns():
    """The transcript of the user guide's Train and sample section, line by line."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    if not docs.is_dir():
        pytest.skip("no docs/ beside tests/ (a source distribution)")
    guide = (docs / "user-guide.md").read_text(encoding="utf-8")
    block = guide.split("$ rnncore train tinyshakespeare.txt")[1].split("$ rnncore sample")[0]
    for line in block.splitlines()[1:]:
        assert len(line) <= 80, line


def test_every_info_line_fits_80_columns():
    vocab = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    summary = {"model": {"cell": "gru", "num_layers": 2, "hidden_size": 256, "dropout": 0.1,
                         "dtype": "float32", "n_vocab": 65, "parameters": 658_497},
               "vocabulary": vocab + "".join(map(chr, range(0x400, 0x480))),
               "best_parameters_kept": False,
               "training": {"step": 2000, "epoch": 1, "target_steps": 2000,
                            "training_seconds": 64.0, "streams": 16, "window": 50,
                            "optimizer": "adam", "learning_rate": 0.002,
                            "lr_schedule": "constant", "warmup_steps": 0, "lr_decay": 0.97,
                            "clip": 5.0, "clip_norm": 1.0, "val_fraction": 0.05, "seed": 0,
                            "best_validation": {"val_loss": 1.6622, "step": 2000},
                            "last_validation": {"val_loss": 1.7, "step": 2500}},
               "corpus": {"path": "tinyshakespeare.txt", "sha256": "86c4e6aa9db7c042" * 4,
                          "training_chars": 1_059_625}}
    lines = cli.info_lines("shakespeare.npz", summary)
    assert all(len(line) <= 80 for line in lines), [l for l in lines if len(l) > 80]
    quoted = [line.strip() for line in lines if line.startswith("  '") or
              line.startswith('  "')]
    assert "".join(eval(q) for q in quoted) == summary["vocabulary"]   # every symbol, once
    assert "last validation: 1.7000 nats/char at step 2,500" in lines


# ---- the bars --------------------------------------------------------------------------
def test_under_minutes_the_bar_counts_the_seconds_of_the_budget(capsys):
    bar = _progress_bar(True, None, 0, minutes=2)
    assert bar.total == 120 and bar.unit == "s"
    bar.close()
    reporter = Reporter("m.npz", None, True, True, 10)
    reporter.bar, reporter.timed = _progress_bar(True, None, 0, minutes=2), True
    reporter.step([2.0, 1.0], 30, 39.4)
    assert reporter.bar.n == pytest.approx(39.4)
    assert reporter.bar.postfix == "step 30, train 1.5000 nats/char"
    reporter.close()


def test_the_bars_loss_at_a_logged_step_is_the_log_lines(tmp_path):
    reporter = Reporter(str(tmp_path / "m.npz"), None, True, True, 10)
    reporter.bar, reporter.timed, reporter.target = _progress_bar(True, 100, 0), False, 100
    record = {"step": 10, "epoch": 0, "train_loss": 2.345678, "lr": 0.1, "chars_per_s": 1e5,
              "elapsed": 1.0}
    reporter.step([2.0, 2.691356], 10, 1.0)
    reporter.record(record)
    assert reporter.bar.postfix == "train 2.3457 nats/char"
    assert "train 2.3457" in rnncore.run._log_line(record, 100)
    reporter.close()


def test_eval_shows_a_bar_on_a_terminal(tmp_path, capsys, monkeypatch):
    path = corpus(tmp_path, TEXT)
    model = rnncore.CharRNN(rnncore.Vocab.from_text(TEXT), 8, seed=0)
    model.save(tmp_path / "m.npz")
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: True, raising=False)
    assert cli.main(["eval", str(tmp_path / "m.npz"), str(path)]) == 0
    out = capsys.readouterr()
    assert "characters predicted" in out.out
    assert "/2.70k" in out.err and "char/s" in out.err     # a bar of the 2,699 predictions


# ---- Ctrl-C --------------------------------------------------------------------------
def interrupt_at(step, times=1):
    def callback(record):
        if record["step"] == step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
    return callback


def test_ctrl_c_saves_at_once_without_a_validation_and_records_the_last_one(tmp_path):
    result = rnncore.fit(corpus(tmp_path, TEXT), tmp_path / "m.npz", steps=200,
                         eval_every=20, print_every=10, echo=None,
                         callback=interrupt_at(40), **SMALL)
    assert result.status == "interrupted" and result.step == 41
    assert "val_loss" not in result.history[-1] and result.history[-1]["step"] == 41
    meta = rnncore.load_checkpoint(tmp_path / "m.npz").train_meta
    assert meta["step"] == 41
    val_40 = next(r["val_loss"] for r in result.history if r["step"] == 40)
    assert meta["last_validation"] == {"val_loss": val_40, "step": 40}


def test_a_second_ctrl_c_says_what_is_happening(tmp_path, capsys):
    result = rnncore.fit(corpus(tmp_path, TEXT), tmp_path / "m.npz", steps=200,
                         eval_every=20, print_every=10, echo=None,
                         callback=interrupt_at(40, times=2), **SMALL)
    assert result.status == "interrupted" and result.step == 41
    err = capsys.readouterr().err.splitlines()
    assert err == [f"rnncore: already stopping: finishing step 41, then saving "
                   f"{tmp_path / 'm.npz'}; a moment"]


# ---- argparse, types -------------------------------------------------------------------
def test_a_usage_error_is_the_one_line_that_matters(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "c.txt", "--out", "m.npz", "--hidden-size", "0"])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "rnncore train: error: argument --hidden-size: must be a positive integer, got 0",
        "(`rnncore train --help` lists the options)"]


def test_the_package_ships_type_hints():
    assert (Path(rnncore.__file__).parent / "py.typed").exists()
    for function in (rnncore.fit, rnncore.evaluate, rnncore.load_checkpoint,
                     rnncore.CharRNN.sample, rnncore.CharRNN.complete, rnncore.Trainer.train):
        assert inspect.signature(function).return_annotation is not inspect.Signature.empty
    hints = inspect.signature(rnncore.CharRNN.__init__).parameters
    assert hints["hidden_size"].annotation is int


@pytest.mark.parametrize("flag, value, says", [
    ("--lr-decay", "1.5", "argument --lr-decay: must be in (0, 1], got 1.5"),
    ("--dropout", "1", "argument --dropout: must be in [0, 1), got 1"),
    ("--eval-every", "0", "argument --eval-every: must be a positive integer, got 0"),
    ("--warmup-steps", "-1", "argument --warmup-steps: must be >= 0, got -1")])
def test_the_cli_checks_a_setting_with_the_configs_one_validation(capsys, flag, value, says):
    with pytest.raises(SystemExit):
        cli.main(["train", "c.txt", "--out", "m.npz", flag, value])
    assert capsys.readouterr().err.splitlines()[0] == f"rnncore train: error: {says}"
