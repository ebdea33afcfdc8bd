"""evaluate(): the held-out loss, state carried; perplexity; the hopeless-run watch."""
import math

import numpy as np
import pytest

from rnncore import reference
from rnncore.train import evaluate

from support import random_model


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


def test_evaluate_on_two_characters_is_one_prediction():
    model = random_model(4, 3, seed=2)
    result = evaluate(model, [1, 3])
    assert result["chars"] == 1
    logits = model.params["Why"] @ np.tanh(model.params["Wxh"][:, 1] + model.params["bh"]) \
        + model.params["by"]
    expected = -(logits[3] - np.log(np.exp(logits).sum()))
    assert result["nats_per_char"] == pytest.approx(expected, rel=1e-12)


def test_a_finite_loss_too_large_for_exp_has_perplexity_inf():
    model = random_model(7, 6, seed=3)
    model.params["Why"] *= 1e4   # confidently wrong: hundreds of thousands of nats/char
    data = np.random.default_rng(0).integers(0, 7, 300)
    result = evaluate(model, data)
    assert math.isfinite(result["nats_per_char"]) and result["nats_per_char"] > 1000
    assert result["perplexity"] == math.inf
    assert result["bits_per_char"] == pytest.approx(result["nats_per_char"] / math.log(2))


def test_hopeless_run_watch_warns_once_past_its_first_steps():
    from rnncore.train import HopelessRunWatch, worse_than_uniform
    ln_v = math.log(28)
    watch = HopelessRunWatch(28, after_steps=300)
    assert watch.check(200, 50.0, train_loss=1000.0) is None          # too early to tell
    assert watch.check(300, 50.0, train_loss=ln_v - 0.01, val_loss=ln_v - 0.01) is None
    warning = watch.check(400, 50.0, val_loss=ln_v + 0.01)
    assert warning.startswith("warning: the validation loss is 3.342 nats/char at step 400")
    assert "(ln 28 = 3.3322)" in warning and "learning rate (50)" in warning
    assert watch.check(500, 50.0, train_loss=1000.0) is None          # once only
    assert worse_than_uniform(ln_v + 1e-9, 28) and not worse_than_uniform(ln_v, 28)


def test_a_bad_validation_beside_a_good_training_loss_is_not_blamed_on_the_rate():
    from rnncore.train import HopelessRunWatch
    ln_v = math.log(28)
    # issue 28's run: a 40-character corpus, 2 characters held out, training loss 0.0038
    tiny = HopelessRunWatch(28, after_steps=300, val_chars=2).check(
        300, 0.002, train_loss=0.0038, val_loss=ln_v + 2)
    assert tiny == ("warning: the validation loss is 5.332 nats/char at step 300, worse than "
                    "guessing uniformly among the 28 symbols (ln 28 = 3.3322), while the "
                    "training loss is 0.0038: the held-out text is only 2 character(s), too "
                    "few for its loss to mean anything; train on a longer corpus or hold out "
                    "more with --val-fraction")
    overfit = HopelessRunWatch(28, after_steps=300, val_chars=50_000).check(
        300, 0.002, train_loss=0.2, val_loss=ln_v + 2)
    assert "training loss is 0.2: the model memorises its training text" in overfit
    assert "learning rate" not in overfit and "learning rate" not in tiny
    # a training loss itself worse than uniform still names the rate, whatever validates
    rate = HopelessRunWatch(28, after_steps=300, val_chars=2).check(
        300, 9.0, train_loss=ln_v + 1, val_loss=ln_v + 2)
    assert rate.startswith("warning: the training loss") and "learning rate (9)" in rate
