"""A run stopped and resumed without repeating any setting logs, validates, keeps and ends
exactly as the run that never stopped."""
import numpy as np
import pytest

import rnncore

from support import corpus

TEXT = "the quick brown fox jumps over the lazy dog; " * 60
KEYS = ("step", "epoch", "train_loss", "lr", "val_loss", "val_bits_per_char")


def records(history):
    return [{k: r[k] for k in KEYS if k in r} for r in history]


REGULARISED = dict(dropout_mode="locked", weight_drop=0.3, weight_decay=0.1, average=0.9)


@pytest.mark.parametrize("cell, optimizer, extra", [
    ("gru", "adam", {}), ("rnn", "rmsprop", {}),
    # the average started before the cut (kept in the checkpoint) and after it
    ("lstm", "adam", dict(REGULARISED, average_start=30)),
    ("gru", "adam", dict(REGULARISED, average_start=70))])
def test_a_resumed_run_is_the_unbroken_run(tmp_path, cell, optimizer, extra):
    settings = dict(cell=cell, num_layers=2 if cell != "rnn" else 1, hidden_size=12,
                    dropout=0.1 if cell != "rnn" else 0.0, seq_length=6, batch_size=3,
                    optimizer=optimizer, lr_schedule="step", lr_decay=0.8, warmup_steps=4,
                    learning_rate=0.01, **extra)
    run = dict(eval_every=20, print_every=10, checkpoint_every=15, keep_best=True,
               patience=50, steps=120)
    text = corpus(tmp_path, TEXT)
    whole = rnncore.fit(text, tmp_path / "whole.npz", echo=None, **settings, **run)
    first = rnncore.fit(text, tmp_path / "cut.npz", echo=None, **settings, **run,
                        callback=lambda r: r["step"] >= 50)
    assert first.status == "stopped_early" and first.step == 50
    rest = rnncore.fit(text, tmp_path / "cut.npz", resume=True, echo=None)
    assert rest.status == "finished" and rest.step == 120
    assert records(first.history + rest.history) == records(whole.history)
    assert rest.best == whole.best
    a, b = rnncore.load_checkpoint(tmp_path / "whole.npz"), rnncore.load_checkpoint(
        tmp_path / "cut.npz")
    for name, p in a.model.params.items():
        np.testing.assert_array_equal(p, b.model.params[name])
        np.testing.assert_array_equal(a.best_model.params[name], b.best_model.params[name])
    assert a.train_meta["config"] == b.train_meta["config"]
    if extra:   # the kept best is of the averaged weights, and saved beside them
        assert (a.average_model is None) == (b.average_model is None) == False  # noqa: E712
        for name, p in a.average_model.params.items():
            np.testing.assert_array_equal(p, b.average_model.params[name])
        assert a.preferred_model is a.best_model
    log = [r for r in rnncore.metrics.read_metrics(tmp_path / "cut.metrics.jsonl")]
    assert records(log) == records(whole.history)


def test_a_resume_that_changes_the_rate_keeps_it_for_the_next_resume(tmp_path):
    text = corpus(tmp_path, TEXT)
    small = dict(cell="rnn", num_layers=1, hidden_size=8, dropout=0.0, seq_length=5,
                 batch_size=2, echo=None, lr_schedule="constant")
    rnncore.fit(text, tmp_path / "m.npz", steps=10, learning_rate=0.01, **small)
    rnncore.fit(text, tmp_path / "m.npz", steps=20, learning_rate=0.05, resume=True,
                echo=None)
    third = rnncore.fit(text, tmp_path / "m.npz", steps=30, resume=True, echo=None,
                        print_every=5)
    assert {r["lr"] for r in third.history} == {0.05}
    assert rnncore.load_checkpoint(tmp_path / "m.npz").train_meta["config"][
        "learning_rate"] == 0.05


def test_epochs_count_in_all_across_a_resume(tmp_path):
    text = corpus(tmp_path, TEXT)
    small = dict(cell="rnn", num_layers=1, hidden_size=8, dropout=0.0, seq_length=50,
                 batch_size=2, echo=None, eval_every=10**6)
    first = rnncore.fit(text, tmp_path / "m.npz", epochs=1, **small)
    second = rnncore.fit(text, tmp_path / "m.npz", epochs=2, resume=True, echo=None)
    assert second.step == 2 * first.step and second.epoch == 2
