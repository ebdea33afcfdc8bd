"""--resume: bit for bit as if the run had never stopped, what a resume may change, the
budget it continues to, the metrics log across it, --force."""
import json
import shutil

import numpy as np
import pytest

import rnncore
import rnncore.corpus
import rnncore.train
from rnncore.checkpoint import load_checkpoint

from support import (FOX, SMALL, assert_clean_error, corpus, digest, quiet_fit, read_log, run, text_of_random_words, train_fox, trained)


# ---- exact resume ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("optimizer,batch,dtype", [
    ("sgd", "1", "float64"), ("adagrad", "3", "float32"), ("rmsprop", "2", "float64"),
    ("adam", "4", "float32"), ("adam", "1", "float64"),
])
def test_resume_is_bit_identical(tmp_path, optimizer, batch, dtype):
    text = corpus(tmp_path, "abracadabra, said the rabbit; " * 12)
    opts = ["--hidden-size", "12", "--seq-length", "7", "--batch-size", batch,
            "--optimizer", optimizer, "--dtype", dtype, "--seed", "3", "--learning-rate", "0.01"]
    straight, halves = tmp_path / "straight.npz", tmp_path / "halves.npz"
    # 37 steps crosses several epoch boundaries with their shorter final window
    assert run("train", text, "--out", straight, "--steps", 37, *opts, cwd=tmp_path).returncode == 0
    assert run("train", text, "--out", halves, "--steps", 18, *opts, cwd=tmp_path).returncode == 0
    proc = run("train", text, "--out", halves, "--steps", 37, "--resume", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stdout
    a, b = load_checkpoint(straight), load_checkpoint(halves)
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])
    for k in a.train_arrays:
        np.testing.assert_array_equal(a.train_arrays[k], b.train_arrays[k])
    # the training state is identical; only bookkeeping of when validation ran may differ
    # (the first half validated at its own end)
    bookkeeping = ("elapsed", "best", "evals_since_best")
    assert {k: v for k, v in a.train_meta.items() if k not in bookkeeping} == \
        {k: v for k, v in b.train_meta.items() if k not in bookkeeping}


@pytest.mark.slow
def test_resume_may_change_the_learning_rate_only(tmp_path):
    out = trained(tmp_path, steps=4)
    proc = run("train", corpus(tmp_path), "--out", out, "--steps", 6, "--resume",
               "--learning-rate", "0.0005", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(out).train_meta["config"]["learning_rate"] == 0.0005


@pytest.mark.slow
def test_resume_past_the_target_does_nothing(tmp_path):
    out = trained(tmp_path, steps=4)
    before = digest(out)
    proc = run("train", corpus(tmp_path), "--out", out, "--steps", 3, "--resume", cwd=tmp_path)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout
    assert digest(out) == before


TEXT = FOX


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


@pytest.mark.slow
def test_resume_from_the_cli_without_steps_uses_the_stored_total(tmp_path):
    out = tmp_path / "m.npz"
    text = corpus(tmp_path, TEXT)
    assert run("train", text, "--out", out, "--steps", 12, *SMALL, cwd=tmp_path).returncode == 0
    proc = run("train", text, "--out", out, "--resume", cwd=tmp_path)
    assert "nothing to do" in proc.stdout
    assert rnncore.load_checkpoint(out).train_meta["step"] == 12


OPTS = ["--hidden-size", "16", "--seq-length", "8", "--batch-size", "2"]


TEXT_RUN_PROMISES = text_of_random_words(500)


def train(tmp_path, *extra, steps, name="model.npz"):
    out = tmp_path / name
    proc = run("train", corpus(tmp_path, TEXT_RUN_PROMISES), "--out", out, "--steps", steps, *OPTS,
               *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out, proc


# ---- the metrics log across a resume ------------------------------------------------------
@pytest.mark.slow
def test_resume_keeps_the_log_up_to_the_checkpoint_and_appends(tmp_path):
    every = ["--print-every", "10", "--eval-every", "20", "--val-fraction", "0.1"]
    out, _ = train(tmp_path, *every, steps=40)
    before = read_log(tmp_path)
    assert [r["step"] for r in before] == [10, 20, 30, 40]
    with open(tmp_path / "model.metrics.jsonl", "a") as f:  # what an interrupted run
        for step in (50, 55):                                # logged after its checkpoint
            f.write(json.dumps({"step": step, "train_loss": -1.0}) + "\n")
    proc = run("train", tmp_path / "corpus.txt", "--out", out, "--steps", 70, "--resume",
               *every, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    log = read_log(tmp_path)
    assert [r["step"] for r in log] == [10, 20, 30, 40, 50, 60, 70]
    assert log[:4] == before                     # the checkpoint step's own line included
    assert all(r["train_loss"] > 0 for r in log)  # the stale lines are gone
    assert [r["step"] for r in log if "val_loss" in r] == [20, 40, 60, 70]
    elapsed = [r["elapsed"] for r in log]
    assert elapsed == sorted(elapsed)


@pytest.mark.slow
def test_resume_without_a_metrics_log_starts_one(tmp_path):
    out, _ = train(tmp_path, "--print-every", "5", steps=10)
    (tmp_path / "model.metrics.jsonl").unlink()
    proc = run("train", tmp_path / "corpus.txt", "--out", out, "--steps", 20, "--resume",
               "--print-every", "5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [r["step"] for r in read_log(tmp_path)] == [15, 20]


# ---- --force ----------------------------------------------------------------------------
@pytest.mark.slow
def test_force_overwrites_an_existing_run_from_scratch(tmp_path):
    out, _ = train(tmp_path, "--print-every", "5", steps=20)
    proc = run("train", tmp_path / "corpus.txt", "--out", out, "--steps", 6, "--force",
               "--hidden-size", "8", "--print-every", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ckpt = load_checkpoint(out)
    assert ckpt.model.hidden_size == 8 and ckpt.train_meta["step"] == 6
    assert [r["step"] for r in read_log(tmp_path)] == [3, 6]   # a new log, not appended


@pytest.mark.slow
def test_metrics_log_survives_resume(tmp_path):
    out, _ = train_fox(tmp_path, steps=40)
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


@pytest.mark.slow
def test_conflicting_val_fraction_on_resume(tmp_path):
    out, _ = train_fox(tmp_path, steps=10)
    assert_clean_error(run("train", tmp_path / "corpus.txt", "--out", out, "--steps", 20,
                           "--resume", "--val-fraction", "0.2", cwd=tmp_path),
                       "--val-fraction 0.2 conflicts")


def test_a_silent_resume_on_another_corpus_restarts_its_streams_quietly(tmp_path):
    quiet_fit(tmp_path, steps=10)
    shutil.copy(tmp_path / "model.npz", tmp_path / "copy.npz")
    other = tmp_path / "other.txt"
    other.write_text(FOX[::-1], encoding="utf-8")          # the same characters, reversed
    result = rnncore.fit(other, tmp_path / "model.npz", resume=True, steps=20, echo=None)
    assert result.step == 20
    lines = []
    rnncore.fit(other, tmp_path / "copy.npz", resume=True, steps=20, echo=lines.append)
    assert "note: the corpus differs from the checkpoint's; its streams restart at the " \
           "beginning" in lines
