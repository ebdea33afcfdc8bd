"""Validation, metrics log, keep-best, patience, schedules, eval and plot through the CLI."""
import json
import os
import sys

import numpy as np
import pytest

from rnncore import cli
from rnncore.checkpoint import load_checkpoint
from cli_helpers import SMALL, assert_clean_error, corpus, run

TEXT = "the quick brown fox jumps over the lazy dog; " * 60


def train(tmp_path, *extra, steps=60, text=TEXT):
    out = tmp_path / "model.npz"
    proc = run("train", corpus(tmp_path, text), "--out", out, "--steps", steps, *SMALL,
               "--eval-every", "20", *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def read_log(tmp_path):
    with open(tmp_path / "model.metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def test_validation_is_logged_in_nats_and_bits(tmp_path):
    out, proc = train(tmp_path, "--val-fraction", "0.1")
    assert "(2,430 train, 270 validation)" in proc.stdout
    val_lines = [l for l in proc.stdout.splitlines() if " val " in l]
    assert len(val_lines) == 3  # steps 20, 40, 60
    assert "best validation" in proc.stdout.splitlines()[-1]
    log = read_log(tmp_path)
    assert [r["step"] for r in log if "val_loss" in r] == [20, 40, 60]
    for r in log:
        assert {"step", "epoch", "train_loss", "lr", "chars_per_s", "elapsed"} <= set(r)
    r = [r for r in log if "val_loss" in r][-1]
    assert r["val_bits_per_char"] == pytest.approx(r["val_loss"] / np.log(2))


def test_no_validation_when_fraction_is_zero(tmp_path):
    out, proc = train(tmp_path, "--val-fraction", "0")
    assert " val " not in proc.stdout
    assert all("val_loss" not in r for r in read_log(tmp_path))


def test_metrics_log_survives_resume(tmp_path):
    out, _ = train(tmp_path, steps=40)
    # pretend the interrupted run logged past its last checkpoint
    with open(tmp_path / "model.metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 55, "train_loss": 1.0}) + "\n")
    proc = run("train", tmp_path / "corpus.txt", "--out", out, "--steps", 60, "--resume",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    log = read_log(tmp_path)
    steps = [r["step"] for r in log]
    assert steps == sorted(steps) and 55 not in steps and steps[-1] == 60
    elapsed = [r["elapsed"] for r in log]
    assert elapsed == sorted(elapsed)


def test_keep_best_stores_the_best_validation_model(tmp_path):
    # a learning rate so high that validation gets worse: the best is an early model (a
    # scenario of the vanilla cell's)
    out, proc = train(tmp_path, "--keep-best", "--learning-rate", "0.5", "--optimizer", "sgd",
                      "--clip", "0.5", "--cell", "rnn", "--num-layers", "1", "--dropout", "0",
                      steps=100)
    ckpt = load_checkpoint(out)
    best = ckpt.train_meta["best"]
    assert ckpt.best_model is not None
    log = read_log(tmp_path)
    vals = {r["step"]: r["val_loss"] for r in log if "val_loss" in r}
    assert best["val_loss"] == min(vals.values()) and vals[best["step"]] == best["val_loss"]
    eval_best = json.loads(run("eval", out, tmp_path / "corpus.txt", "--json",
                               cwd=tmp_path).stdout)
    eval_latest = json.loads(run("eval", out, tmp_path / "corpus.txt", "--json", "--latest",
                                 cwd=tmp_path).stdout)
    assert best["step"] != 100, "the scenario must have a best step before the last"
    assert eval_best != eval_latest


def test_patience_stops_early(tmp_path):
    out, proc = train(tmp_path, "--patience", "1", "--learning-rate", "0.8", "--optimizer",
                      "sgd", "--clip", "0", steps=2000)
    assert "stopped early" in proc.stdout
    step = load_checkpoint(out).train_meta["step"]
    assert step < 2000


def test_lr_schedule_is_logged(tmp_path):
    train(tmp_path, "--lr-schedule", "cosine", "--warmup-steps", "10", "--print-every", "5",
          steps=60)
    lrs = {r["step"]: r["lr"] for r in read_log(tmp_path)}
    assert lrs[5] == pytest.approx(2e-3 * 5 / 10)   # the rate used by step 5 (index 4)
    assert lrs[60] < lrs[20] < 2e-3


def test_eval_json(tmp_path):
    out, _ = train(tmp_path, steps=10)
    other = corpus(tmp_path, "the lazy fox — QUICK! ", name="other.txt")
    proc = run("eval", out, other, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"nats_per_char", "bits_per_char", "perplexity", "chars", "unseen_chars"} <= set(result)
    assert result["unseen_chars"] == 7 and set(result["unseen_symbols"]) == set("—QUICK!")
    assert result["chars"] == len("the lazy fox — QUICK! ") - 7 - 1
    text = run("eval", out, other, cwd=tmp_path).stdout
    assert "bits/char" in text and "never seen were dropped" in text


def test_eval_bad_inputs(tmp_path):
    out, _ = train(tmp_path, steps=5)
    assert_clean_error(run("eval", out, "missing.txt", cwd=tmp_path), "corpus file not found")
    assert_clean_error(run("eval", out, corpus(tmp_path, "QQQQ", name="q.txt"), cwd=tmp_path),
                       "fewer than 2 characters the model knows")
    assert_clean_error(run("eval", "nope.npz", out, cwd=tmp_path), "checkpoint not found")


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out, _ = train(tmp_path, steps=40)
    proc = run("plot", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    png = tmp_path / "model.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_or_log(tmp_path, monkeypatch, capsys):
    out, _ = train(tmp_path, steps=20)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    assert cli.main(["plot", str(out)]) == 1
    assert "plotting needs matplotlib: pip install 'rnncore[plot]'" in capsys.readouterr().err
    assert cli.main(["plot", str(tmp_path / "other.npz")]) == 1
    assert "no metrics log" in capsys.readouterr().err


def test_utf8_end_to_end(tmp_path):
    text = "año ñandú 日本語 🙂 " * 60
    out, _ = train(tmp_path, text=text, steps=30)
    proc = run("sample", out, "--prime", "日本", "--length", "20", "--seed", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    generated = proc.stdout.rstrip("\n")
    assert generated.startswith("日本") and len(generated) == 22
    assert set(generated) <= set(text)


def test_conflicting_val_fraction_on_resume(tmp_path):
    out, _ = train(tmp_path, steps=10)
    assert_clean_error(run("train", tmp_path / "corpus.txt", "--out", out, "--steps", 20,
                           "--resume", "--val-fraction", "0.2", cwd=tmp_path),
                       "--val-fraction 0.2 conflicts")


@pytest.mark.parametrize("args,match", [
    (["--val-fraction", "1"], "must be in [0, 1)"),
    (["--val-fraction", "-0.1"], "must be in [0, 1)"),
    (["--eval-every", "0"], "must be a positive integer"),
    (["--patience", "0"], "must be a positive integer"),
    (["--lr-schedule", "exp"], "invalid choice"),
    (["--warmup-steps", "-1"], "must be >= 0"),
])
def test_argparse_errors_for_evaluation_options(tmp_path, args, match):
    proc = run("train", "c.txt", "--out", "m.npz", *args, cwd=tmp_path)
    assert_clean_error(proc, match, status=2)
