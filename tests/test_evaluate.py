"""Validation loss, learning-rate schedules."""
import math

import numpy as np
import pytest

from rnncore import reference
from rnncore.train import Trainer, evaluate, learning_rate_at
from conftest import random_model


def test_evaluate_is_stateful_over_windows():
    model = random_model(7, 6, seed=3)
    data = np.random.default_rng(0).integers(0, 7, 300)
    one_window = evaluate(model, data, window=10_000)
    many = evaluate(model, data, window=17)
    assert many["chars"] == one_window["chars"] == 299
    assert many["nats_per_char"] == pytest.approx(one_window["nats_per_char"], rel=1e-12)
    ref = reference.loss_and_grads(model.params, data[:-1], data[1:])[0]
    assert one_window["nats_per_char"] == pytest.approx(ref, rel=1e-12)
    assert many["bits_per_char"] == pytest.approx(many["nats_per_char"] / math.log(2))
    assert many["perplexity"] == pytest.approx(math.exp(many["nats_per_char"]))


def test_evaluate_needs_two_characters():
    with pytest.raises(ValueError, match="at least 2"):
        evaluate(random_model(3, 2), np.array([1]))


def test_schedules():
    assert learning_rate_at(10, 0.1) == 0.1
    assert learning_rate_at(10, 0.1, "step", decay=0.5, epoch=3) == pytest.approx(0.0125)
    assert learning_rate_at(0, 0.1, "cosine", total_steps=100) == pytest.approx(0.1)
    assert learning_rate_at(50, 0.1, "cosine", total_steps=100) == pytest.approx(0.05)
    assert learning_rate_at(100, 0.1, "cosine", total_steps=100) == pytest.approx(0.0)
    # warm-up rises linearly, then the schedule takes over
    assert learning_rate_at(0, 0.1, warmup_steps=10) == pytest.approx(0.01)
    assert learning_rate_at(9, 0.1, warmup_steps=10) == pytest.approx(0.1)
    assert learning_rate_at(10, 0.1, "cosine", total_steps=110, warmup_steps=10) == \
        pytest.approx(0.1)
    with pytest.raises(ValueError, match="schedule must be one of"):
        learning_rate_at(0, 0.1, "exponential")


def test_trainer_follows_the_schedule(hola):
    import rnncore
    model = rnncore.CharRNN(rnncore.Vocab.from_text(hola), 8, seed=0)
    t = Trainer(model, hola, seq_length=10, learning_rate=0.1, lr_schedule="step",
                lr_decay=0.5)
    lrs = []
    for _ in range(12):
        lrs.append(t.current_lr)
        t.train_step()
    # 5 windows per pass: the rate halves after each pass
    assert lrs[:5] == [0.1] * 5 and lrs[5:10] == [0.05] * 5 and lrs[10] == 0.025
    with pytest.raises(ValueError, match="cosine schedule needs total_steps"):
        Trainer(model, hola, lr_schedule="cosine")


def test_evaluate_on_two_characters_is_one_prediction():
    model = random_model(4, 3, seed=2)
    result = evaluate(model, [1, 3])
    assert result["chars"] == 1
    logits = model.params["Why"] @ np.tanh(model.params["Wxh"][:, 1] + model.params["bh"]) \
        + model.params["by"]
    expected = -(logits[3] - np.log(np.exp(logits).sum()))
    assert result["nats_per_char"] == pytest.approx(expected, rel=1e-12)
