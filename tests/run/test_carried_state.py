"""State a run carries over a resume, checked against the value it promises (not only
against the unbroken run, which would share a mistake): the patience count, the train
loss a record averages when a run ends off the print cadence, and --minutes as the time
of this invocation."""
import json
import math
import time

import numpy as np
import pytest

import rnncore

from support import FOX, WORDS, corpus, rewrite_npz

SMALL = dict(cell="rnn", num_layers=1, hidden_size=16, dropout=0.0, seq_length=8,
             batch_size=2, echo=None, lr_schedule="constant")


def since_best(validations, n_vocab):
    """[(step, validations in a row without improvement after it)], as promised: a loss
    that does not beat the best so far, or is above ln V, is no improvement."""
    best, since, counts = math.inf, 0, []
    for step, loss in validations:
        if loss < best and loss <= math.log(n_vocab):
            best, since = loss, 0
        else:
            since += 1
        counts.append((step, since))
    return counts


def test_the_patience_count_carried_over_a_resume_is_the_count_of_misses(tmp_path):
    text = corpus(tmp_path, WORDS)
    V = len(set(WORDS))
    settings = dict(SMALL, optimizer="adam", learning_rate=0.02, val_fraction=0.1,
                    eval_every=5, print_every=1000)
    # the unbroken run tells where the misses are: cut the run right after a miss, so the
    # count the checkpoint carries is not 0
    probe = rnncore.fit(text, tmp_path / "probe.npz", steps=400, **settings)
    counts = since_best([(r["step"], r["val_loss"]) for r in probe.history
                         if "val_loss" in r], V)
    cut, carried = next((s, c) for s, c in counts if c >= 1 and s >= 20)
    first = rnncore.fit(text, tmp_path / "m.npz", steps=400, patience=carried + 2,
                        callback=lambda r: r["step"] >= cut, **settings)
    assert first.step == cut
    meta = rnncore.load_checkpoint(tmp_path / "m.npz").train_meta
    assert meta["evals_since_best"] == carried
    # resumed with that patience, it stops at the validation that makes patience misses
    # in a row, counting the ones before the cut
    rest = rnncore.fit(text, tmp_path / "m.npz", resume=True, echo=None)
    validations = [(r["step"], r["val_loss"]) for r in first.history + rest.history
                   if "val_loss" in r]
    expected = next(s for s, c in since_best(validations, V) if c == carried + 2)
    assert rest.status == "stopped_early" and rest.step == expected
    assert rnncore.load_checkpoint(tmp_path / "m.npz").train_meta[
        "evals_since_best"] == carried + 2


def trainer_losses(steps):
    """The per-step training losses of SMALL's run on FOX, from the same configs fit
    builds (train's defaults but for SMALL's settings)."""
    model = rnncore.CharRNN(rnncore.Vocab.from_text(FOX), seed=0, config=rnncore.ModelConfig(
        cell="rnn", num_layers=1, hidden_size=16, dropout=0.0, dtype="float32"))
    trainer = rnncore.Trainer(model, FOX, rnncore.TrainConfig(seq_length=8, batch_size=2,
                                                                  lr_schedule="constant"))
    return trainer.train(steps)


def test_a_record_off_the_print_cadence_averages_the_steps_since_the_last_record(tmp_path):
    text = corpus(tmp_path, FOX)
    opts = dict(SMALL, dtype="float32", val_fraction=0.0, print_every=10)
    first = rnncore.fit(text, tmp_path / "m.npz", steps=25, **opts)
    rest = rnncore.fit(text, tmp_path / "m.npz", steps=37, resume=True, echo=None)
    losses = trainer_losses(37)
    # records at 10, 20, the end at 25 (steps 21..25), then after the resume 30 (26..30:
    # five steps, not ten) and the end at 37 (31..37)
    spans = {10: (0, 10), 20: (10, 20), 25: (20, 25), 30: (25, 30), 37: (30, 37)}
    history = first.history + rest.history
    assert [r["step"] for r in history] == list(spans)
    for record in history:
        lo, hi = spans[record["step"]]
        assert record["train_loss"] == pytest.approx(np.mean(losses[lo:hi]), rel=1e-12), \
            record["step"]


def test_minutes_is_the_time_of_this_invocation_not_of_the_run(tmp_path):
    text = corpus(tmp_path, FOX)
    out = tmp_path / "m.npz"
    first = rnncore.fit(text, out, steps=5, **SMALL)
    # the checkpoint says an hour of training went before
    with np.load(out) as npz:
        meta = json.loads(str(npz["train"]))
    meta["elapsed"] = 3600.0
    rewrite_npz(out, train=np.array(json.dumps(meta)))
    started = time.monotonic()
    rest = rnncore.fit(text, out, minutes=0.02, resume=True, echo=None, print_every=10**6,
                       eval_every=10**6)
    took = time.monotonic() - started
    assert rest.status == "finished" and rest.step > first.step + 1
    assert 1.2 <= took < 600           # 0.02 minutes of this call (a busy machine: slow)
    elapsed = rnncore.load_checkpoint(out).train_meta["elapsed"]
    assert 3600 + 1.2 <= elapsed < 3600 + took       # the run's total goes on counting
    assert rest.history[-1]["elapsed"] == pytest.approx(elapsed, abs=1e-3)
