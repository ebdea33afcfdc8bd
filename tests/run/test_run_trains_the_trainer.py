"""fit() trains exactly what a Trainer given the same settings trains, every setting
reaching its use; what a run does at its edges (non-finite weights, the clock's end)."""
import math

import numpy as np
import pytest

import rnncore
from rnncore.run import TrainingRun

from support import FOX, corpus

SETTINGS = dict(cell="lstm", num_layers=2, hidden_size=10, dropout=0.2, dtype="float64",
                dropout_mode="locked", weight_drop=0.3, seq_length=9, batch_size=3,
                optimizer="rmsprop", learning_rate=0.003, clip=0.05, clip_norm=0.5,
                lr_schedule="step", lr_decay=0.5, warmup_steps=7, weight_decay=0.2,
                average=0.9, average_start=30, seed=5)


def test_fit_trains_what_the_trainer_trains_with_the_same_settings(tmp_path):
    result = rnncore.fit(corpus(tmp_path, FOX), tmp_path / "m.npz", steps=120,
                         val_fraction=0.0, echo=None, print_every=10, **SETTINGS)
    s = SETTINGS
    model = rnncore.CharRNN(rnncore.Vocab.from_text(FOX), s["hidden_size"], dtype=s["dtype"],
                            seed=s["seed"], cell=s["cell"], num_layers=s["num_layers"],
                            dropout=s["dropout"], dropout_mode=s["dropout_mode"],
                            weight_drop=s["weight_drop"])
    trainer = rnncore.Trainer(model, FOX, seq_length=s["seq_length"],
                              batch_size=s["batch_size"], learning_rate=s["learning_rate"],
                              optimizer=s["optimizer"], clip=s["clip"],
                              clip_norm=s["clip_norm"], lr_schedule=s["lr_schedule"],
                              total_steps=120, warmup_steps=s["warmup_steps"],
                              lr_decay=s["lr_decay"], seed=s["seed"],
                              weight_decay=s["weight_decay"], average=s["average"],
                              average_start=s["average_start"])
    losses = trainer.train(120)
    ckpt = rnncore.load_checkpoint(tmp_path / "m.npz")
    for name, p in model.params.items():
        np.testing.assert_array_equal(ckpt.model.params[name], p, err_msg=name)
        np.testing.assert_array_equal(ckpt.average_model.params[name],
                                      trainer.average.arrays[name], err_msg=name)
    assert result.epoch == trainer.epoch > 0     # the step schedule decayed on the way
    assert [r["train_loss"] for r in result.history] == pytest.approx(
        [np.mean(losses[i:i + 10]) for i in range(0, 120, 10)], rel=1e-12)
    assert result.history[-1]["lr"] == pytest.approx(0.003 * 0.5 ** trainer.epoch)


def test_weights_gone_non_finite_stop_the_run_keeping_the_last_checkpoint(tmp_path):
    out = tmp_path / "m.npz"

    def poison(record):
        if record["step"] == 20:
            run.trainer.model.params["Why"][0, 0] = np.nan
    run = TrainingRun(corpus(tmp_path, FOX), out,
                      {"steps": 40, "print_every": 10, "checkpoint_every": 10,
                       "hidden_size": 8, "seq_length": 5, "batch_size": 2, "cell": "rnn",
                       "num_layers": 1, "dropout": 0.0}, echo=None, callback=poison)
    with pytest.raises(rnncore.RunError, match=r"^training diverged by step 20: the "
                       r"parameters hold nan or inf \(try a lower learning rate or a smaller "
                       r"clip\); the checkpoint at .*m\.npz \(step 10\) was kept$"):
        run.run()
    assert rnncore.load_checkpoint(out).train_meta["step"] == 10


def test_the_clocks_end_validates_and_logs_in_nats_and_bits(tmp_path):
    result = rnncore.fit(corpus(tmp_path, FOX), tmp_path / "m.npz", minutes=0.002,
                         eval_every=10**6, print_every=10**6, echo=None, hidden_size=8,
                         cell="rnn", num_layers=1, dropout=0.0, seq_length=5, batch_size=2)
    last = result.history[-1]
    assert last["step"] == result.step and result.status == "finished"
    assert last["val_bits_per_char"] == last["val_loss"] / math.log(2)
    meta = rnncore.load_checkpoint(tmp_path / "m.npz").train_meta
    assert meta["last_validation"] == {"val_loss": last["val_loss"], "step": result.step}
    assert meta["corpus_path"] == str(tmp_path / "corpus.txt")


def test_a_stop_text_ends_generation_at_once_however_long_the_budget(tmp_path):
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abcd"), 8, seed=3)
    first = model.complete("a", 12)
    stop = first[8:10]
    pieces = list(model.sample_stream(10**6, prime="a", greedy=True, stop=stop))
    assert "".join(pieces) == first[:first.find(stop) + len(stop)]
    assert len(pieces) == 1                  # the first chunk held it: no more are made
