"""Keep-best and patience: the best validation, the parameters kept for it, the stop."""
import json
import math
import re

import numpy as np
import pytest

import rnncore
import rnncore.corpus
import rnncore.train
from rnncore.checkpoint import load_checkpoint

from support import (EXPLODING, FOX, WORDS, corpus, eval_json, fit_then_spoil, held_out, quiet_fit, read_log, run, train_to, train_words, warnings_of)


KEEP_BEST = ["--keep-best", "--val-fraction", "0.1", "--eval-every", "10", "--print-every",
             "10", "--optimizer", "adam", "--learning-rate", "1", "--warmup-steps", "1000"]


def train_then_spoil(tmp_path):
    """80 steps in one run, at a rate rising from 0 (a warm-up longer than the run): it
    learns, then the rate grows too high and validation gets worse, so the best parameters
    are an earlier step's, not the latest."""
    return train_words(tmp_path, *KEEP_BEST, steps=80)


# ---- patience ---------------------------------------------------------------------------
def expected_stop(validations, patience, n_vocab):
    """The step of the validation that makes `patience` in a row without improvement (a
    loss above ln V, worse than uniform guessing, is never an improvement)."""
    best, since = math.inf, 0
    for step, loss in validations:
        if loss < best and loss <= math.log(n_vocab):
            best, since = loss, 0
        else:
            since += 1
            if since == patience:
                return step
    return None


@pytest.mark.slow
def test_keep_best_keeps_the_best_validation_parameters(tmp_path):
    out, proc = train_then_spoil(tmp_path)
    validated = {r["step"]: r["val_loss"] for r in read_log(tmp_path) if "val_loss" in r}
    assert sorted(validated) == [10, 20, 30, 40, 50, 60, 70, 80]
    best_step = min(validated, key=validated.get)
    assert best_step != 80, "the scenario must have a best step before the last"
    ckpt = load_checkpoint(out)
    assert ckpt.train_meta["best"] == {"val_loss": validated[best_step], "step": best_step}
    assert f"best validation {validated[best_step]:.4f} nats/char" in proc.stdout
    assert f"at step {best_step}" in proc.stdout.splitlines()[-1]
    path, _ = held_out(tmp_path, 0.1)
    # eval uses the best parameters unless given --latest: each equals its logged value
    assert eval_json(tmp_path, out, path)["nats_per_char"] == validated[best_step]
    assert eval_json(tmp_path, out, path, "--latest")["nats_per_char"] == validated[80]


@pytest.mark.slow
def test_sample_uses_the_best_parameters_unless_latest(tmp_path):
    out, _ = train_then_spoil(tmp_path)
    ckpt = load_checkpoint(out)
    best = ckpt.best_model.sample(300, prime="a", seed=5)
    latest = ckpt.model.sample(300, prime="a", seed=5)
    assert best != latest, "the scenario must have best and latest parameters that differ"
    args = ["sample", out, "--prime", "a", "--length", "300", "--seed", "5"]
    assert run(*args, cwd=tmp_path).stdout == "a" + best + "\n"
    assert run(*args, "--latest", cwd=tmp_path).stdout == "a" + latest + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("patience", [1, 2, 3])
def test_patience_n_stops_at_the_nth_validation_without_improvement(tmp_path, patience):
    # a run that improves in fits and starts: patience 2 and 3 meet single misses first
    out, proc = train_words(tmp_path, "--patience", patience, "--val-fraction", "0.1",
                      "--eval-every", "5", "--print-every", "1000", "--optimizer", "adam",
                      "--learning-rate", "0.02", steps=1000)
    validations = [(r["step"], r["val_loss"]) for r in read_log(tmp_path) if "val_loss" in r]
    stop = expected_stop(validations, patience, len(set(WORDS)))
    assert stop is not None and stop < 1000, "the scenario must stop early"
    assert all(loss < math.log(len(set(WORDS))) for _, loss in validations[1:])
    assert validations[-1][0] == stop            # not one validation later
    assert load_checkpoint(out).train_meta["step"] == stop
    last = proc.stdout.splitlines()[-2]       # the last line is the best validation
    assert last.startswith(f"stopped early at step {stop}:")
    # the message names the count it stopped at (wording aside)
    assert re.search(rf"\b{patience} (validation|evaluation)s?\b", last), last


TEXT_RUN = FOX


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
    assert "no validation improvement in 1 evaluations" in lines[-2]
    assert lines[-1].startswith("best validation ")


def test_load_says_which_parameters_it_gives(tmp_path):
    path = fit_then_spoil(tmp_path)
    ckpt = rnncore.load_checkpoint(path)
    best, latest = rnncore.CharRNN.load(path), rnncore.CharRNN.load(path, latest=True)
    assert ckpt.best_model is not None and ckpt.preferred_model is ckpt.best_model
    for name in ckpt.model.params:
        np.testing.assert_array_equal(best.params[name], ckpt.best_model.params[name])
        np.testing.assert_array_equal(latest.params[name], ckpt.model.params[name])
    assert not np.array_equal(best.params["Why"], latest.params["Why"])
    # and the kept best is what scored the recorded best validation
    val = rnncore.load_corpus(tmp_path / "corpus.txt").split(0.05)[1]
    assert rnncore.evaluate(best, val)["nats_per_char"] == pytest.approx(
        ckpt.train_meta["best"]["val_loss"], rel=1e-6)


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


TEXT_HOPELESS = FOX


LN_V = math.log(28)


@pytest.mark.slow
def test_row_keep_best_and_patience_never_keep_weights_worse_than_uniform(tmp_path):
    out = tmp_path / "model.npz"
    proc = train_to(tmp_path, out, "--steps", 2000, "--keep-best", "--patience", "2",
                 *EXPLODING)
    # every validation is worse than uniform: none is an improvement, so patience stops it
    # at the second (steps 200 and 400)
    assert "stopped early at step 400: no validation improvement in 2 evaluations" in\
        proc.stdout
    assert "best validation" not in proc.stdout
    ckpt = load_checkpoint(out)
    assert ckpt.best_model is None and ckpt.train_meta["best"] is None


@pytest.mark.slow
def test_keep_best_keeps_the_good_weights_when_training_explodes_later(tmp_path):
    out = tmp_path / "model.npz"
    train_to(tmp_path, out, "--steps", 400, "--keep-best", "--optimizer", "sgd",
          "--learning-rate", "0.1")
    good = load_checkpoint(out).train_meta["best"]
    assert good["step"] == 400 and good["val_loss"] < LN_V
    proc = run("train", corpus(tmp_path, TEXT_HOPELESS), "--out", out, "--steps", 800, "--resume",
               "--learning-rate", "50", "--clip", "0", "--print-every", 100,
               "--eval-every", 200, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(warnings_of(proc)) == 1
    ckpt = load_checkpoint(out)
    assert ckpt.train_meta["best"] == good
    best = json.loads(run("eval", out, tmp_path / "corpus.txt", "--json", cwd=tmp_path).stdout)
    latest = json.loads(run("eval", out, tmp_path / "corpus.txt", "--json", "--latest",
                            cwd=tmp_path).stdout)
    assert best["nats_per_char"] < LN_V < latest["nats_per_char"]


def test_the_callback_sees_the_record_that_patience_stops_at(tmp_path):
    seen = []
    result, _ = quiet_fit(tmp_path, steps=2000, patience=1, optimizer="sgd",
                          learning_rate=0.8, clip=0.0, eval_every=10, cell="rnn",
                          num_layers=1, dropout=0.0, callback=seen.append)
    assert result.status == "stopped_early"
    assert seen == result.history and seen[-1]["step"] == result.step
