"""Generation: greedy completion, sampling distributions, temperature, top-k, seeds."""
import numpy as np
import pytest

import rnncore

from support import (N_DRAWS, P, assert_binomial, fixed_distribution_model, frequencies,
                     random_model)


def test_sampling_follows_the_softmax():
    model = fixed_distribution_model(P)
    assert_binomial(frequencies(model, model.sample(N_DRAWS, seed=1)), P)


def test_temperature_sharpens_and_flattens():
    model = fixed_distribution_model(P)
    for temperature in (0.5, 2.0):
        expected = P ** (1 / temperature) / (P ** (1 / temperature)).sum()
        f = frequencies(model, model.sample(N_DRAWS, temperature=temperature, seed=2))
        assert_binomial(f, expected)


def test_top_k_restricts_to_the_k_most_likely():
    model = fixed_distribution_model(P)
    f = frequencies(model, model.sample(N_DRAWS, top_k=2, seed=3))
    assert_binomial(f, [2 / 3, 1 / 3, 0, 0, 0])
    assert f[2:].sum() == 0


def test_low_temperature_and_top_one_are_greedy():
    model = random_model(12, 16, seed=3, scale=0.8)
    greedy = model.complete("!#", 200)
    assert model.sample(200, "!#", top_k=1, seed=0) == greedy
    assert model.sample(200, "!#", temperature=1e-3, seed=0) == greedy


def test_seed_makes_samples_reproducible():
    model = random_model(12, 16, seed=3)
    assert model.sample(100, seed=7) == model.sample(100, seed=7)
    assert model.sample(100, seed=7) != model.sample(100, seed=8)


def test_complete_returns_only_the_new_characters(hola):
    model = rnncore.CharRNN(rnncore.Vocab.from_text(hola), 8, seed=0)
    out = model.complete("Hola", 5)
    assert len(out) == 5 and set(out) <= set(hola)
    assert model.complete("Hola", 0) == ""
    assert len(model.complete("", 3)) == 3


@pytest.mark.parametrize("prime", ["!#$%&", ""])
def test_every_greedy_character_is_the_argmax_of_the_window_forward_pass(prime):
    # greedy generation and the window kernel compute the same hidden states: each
    # generated character is the argmax of the logits after the prime and every
    # character generated before it (with an empty prime, the first is from the zero state)
    model = random_model(12, 24, seed=5, scale=1.0)
    text = model.complete(prime, 60)
    assert len(text) == 60
    for i, char in enumerate(text):
        ids = model.vocab.encode(prime + text[:i])
        h = model.loss(ids, ids)[1] if len(ids) else np.zeros(model.hidden_size)
        logits = model.params["Why"] @ h + model.params["by"]
        assert model.vocab.encode(char)[0] == int(np.argmax(logits)), i
    assert len(set(text)) >= 3   # the scenario: not a constant run


def test_float32_generation():
    model = random_model(9, 7, dtype="float32", seed=1)
    assert len(model.sample(50, "!", seed=0)) == 50


def test_unseen_prime_characters_are_named(hola):
    model = rnncore.CharRNN(rnncore.Vocab.from_text(hola), 8, seed=0)
    with pytest.raises(ValueError, match="not in the vocabulary: 'XZ'"):
        model.complete("HolaXZ", 3)
    assert len(model.complete("HolaXZ", 3, skip_unknown=True)) == 3


@pytest.mark.parametrize("kwargs,match", [
    ({"n": -1}, "number of characters"),
    ({"n": 5, "temperature": 0}, "temperature must be"),
    ({"n": 5, "temperature": -1}, "temperature must be"),
    ({"n": 5, "top_k": 0}, "top_k must be"),
])
def test_bad_sampling_arguments(kwargs, match):
    model = random_model(5, 4)
    with pytest.raises(ValueError, match=match):
        model.sample(**kwargs)


@pytest.mark.parametrize("temperature", [0, -1, float("inf"), float("nan")])
def test_temperature_must_be_finite_and_positive(temperature):
    model = random_model(5, 4)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        model.sample(5, temperature=temperature)
    assert len(model.complete("!", 5)) == 5      # greedy completion has no temperature


def test_prime_must_be_text():
    with pytest.raises(TypeError, match="prime must be a str, got int"):
        random_model(5, 4).sample(5, prime=3)
