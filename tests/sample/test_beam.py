"""Beam-search completion against brute force: every continuation scored with model.loss,
for every cell, 1 and 2 layers, both dtypes."""
import itertools

import numpy as np
import pytest

from rnncore import layout
from rnncore.sample import Completion

from support import continuation_log_prob, gated_model


def brute_force(model, prime, n):
    """Every n-character continuation with its log-probability, most probable first."""
    ranked = [(model.vocab.decode(np.array(c)), continuation_log_prob(model, prime, c))
              for c in itertools.product(range(model.n_vocab), repeat=n)]
    return sorted(ranked, key=lambda r: -r[1])


def reference_beam_search(model, prime, n, width):
    """Textbook beam search in Python, each candidate scored whole by brute force."""
    beams = [()]
    for _ in range(n):
        candidates = [seq + (j,) for seq in beams for j in range(model.n_vocab)]
        scored = sorted(((continuation_log_prob(model, prime, c), c) for c in candidates),
                        key=lambda r: -r[0])
        beams = [c for _, c in scored[:width]]
    return [(model.vocab.decode(np.array(c)), continuation_log_prob(model, prime, c))
            for c in beams]


def assert_same_ranking(found, expected, tol):
    """Same texts in the same order (up to the order of scores closer than tol), and the
    same log-probabilities to tol."""
    assert len(found) == len(expected)
    for (text, score), (want_text, want_score) in zip(found, expected):
        assert abs(score - want_score) <= tol * max(1.0, abs(want_score)), (text, score,
                                                                           want_score)
    by_text = dict(expected)
    for text, score in found:
        assert abs(by_text[text] - score) <= tol * max(1.0, abs(score))
    gaps = np.diff([s for _, s in expected])
    if (np.abs(gaps) > 10 * tol).all():
        assert [t for t, _ in found] == [t for t, _ in expected]


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("V,n,prime", [(5, 4, "#!$%"), (3, 5, ""), (4, 3, "#")])
def test_exhaustive_beam_is_brute_force(cell, L, V, n, prime):
    model = gated_model(cell, L, V, 6, seed=V * 10 + n, scale=0.9)
    expected = brute_force(model, prime, n)
    found = model.beam_search(prime, n, beam=V ** n)
    assert all(isinstance(c, Completion) for c in found)
    assert_same_ranking(found, expected, 1e-10)
    assert model.complete(prime, n, beam=V ** n) == expected[0][0]
    # every continuation is there once, and their probabilities sum to one
    assert sorted(t for t, _ in found) == sorted(t for t, _ in expected)
    assert np.isclose(np.exp([s for _, s in found]).sum(), 1.0, rtol=1e-10)


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("L", [1, 2])
def test_exhaustive_beam_in_float32(cell, L):
    model = gated_model(cell, L, 4, 5, dtype="float32", seed=7, scale=0.9)
    expected = brute_force(model, "!#", 4)
    assert_same_ranking(model.beam_search("!#", 4, beam=4 ** 4), expected, 2e-5)


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("width", [2, 3, 7])
def test_narrow_beam_matches_the_textbook_search(cell, L, width):
    model = gated_model(cell, L, 5, 6, seed=width, scale=0.9)
    expected = reference_beam_search(model, "$#", 5, width)
    found = model.beam_search("$#", 5, beam=width)
    assert [t for t, _ in found] == [t for t, _ in expected]
    np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-10)


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("width", [1, 3, 5, 8, 20])
def test_equal_scores_keep_the_first_candidates(cell, width):
    """A decoder of zeros makes every continuation equally likely, so every kept beam is
    chosen by the tie-break alone: the first candidates in (beam, character) order, as the
    textbook search's stable sort keeps them."""
    model = gated_model(cell, 1, 5, 6, seed=width, scale=0.9)
    model.params["Why"][:] = 0
    model.params["by"][:] = 0
    expected = reference_beam_search(model, "$#", 4, width)
    found = model.beam_search("$#", 4, beam=width)
    assert [t for t, _ in found] == [t for t, _ in expected]
    assert len({s for _, s in found}) == 1


@pytest.mark.parametrize("width,n", [(2, 2), (3, 2), (30, 2), (100, 3)])
def test_a_beam_whose_score_is_nan_comes_last(width, n):
    """A character whose input weights are NaN makes every extension of its beam NaN: the
    search keeps the finite beams first (NaN orders below every number) and ranks them as
    the textbook search does without it."""
    model = gated_model("gru", 1, 6, 9, seed=1, scale=0.9)
    best = model.vocab.encode(model.complete("$", 1))[0]
    model.params["Wxh"][:, best] = np.nan
    found = model.beam_search("$", n, beam=width)        # 100 of 6³: kept by a sort
    finite = [(t, s) for t, s in found if np.isfinite(s)]
    assert found[:len(finite)] == finite and len(finite) == width
    assert all(t[0] != model.vocab.decode(np.array([best])) for t, _ in finite)
    scores = [s for _, s in finite]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_width_one_is_greedy(cell, L, dtype):
    model = gated_model(cell, L, 11, 9, dtype=dtype, seed=3, scale=0.8)
    for prime in ("", "&", "!#$%&'"):
        greedy = model.complete(prime, 120)
        (best,) = model.beam_search(prime, 120, beam=1)
        assert best.text == greedy
        assert best.log_prob == pytest.approx(continuation_log_prob(model, prime,
                                                                    model.vocab.encode(greedy)),
                                              rel=1e-9 if dtype == "float64" else 1e-4)


def test_beam_finds_a_better_path_than_greedy():
    # a model whose greedy first step leads into a flat distribution: beam search finds
    # the better path through the less likely first character
    model = gated_model("rnn", 1, 3, 4, seed=0)
    model.params["Why"][...] = 0
    model.params["Whh"][...] = 0
    model.params["Wxh"][...] = 0
    model.params["Wxh"][0, 1] = 8.0      # after '"' the hidden unit saturates...
    model.params["Why"][2, 0] = 20.0     # ...and '#' becomes almost certain
    model.params["by"][...] = np.log([0.5, 0.4, 0.1])
    greedy = model.complete("!", 2)
    best = model.beam_search("!", 2, beam=3)[0]
    assert greedy[0] == "!" and best.text == '"#'
    assert best.log_prob > continuation_log_prob(model, "!", model.vocab.encode(greedy))
    assert best.text == brute_force(model, "!", 2)[0][0]


def test_more_beams_than_continuations_and_zero_length():
    model = gated_model("gru", 2, 3, 4)
    assert len(model.beam_search("!", 2, beam=100)) == 9
    assert model.beam_search("!", 0, beam=4) == [Completion("", 0.0)]
    assert model.complete("!", 0, beam=4) == ""


@pytest.mark.parametrize("beam", [0, -1, 2.5, True])
def test_bad_beam_width(beam):
    model = gated_model("lstm", 1, 3, 4)
    with pytest.raises(ValueError, match="beam width must be a positive integer"):
        model.beam_search("!", 3, beam=beam)


def test_beam_prime_checks():
    model = gated_model("rnn", 1, 3, 4)
    with pytest.raises(ValueError, match="not in the vocabulary: 'Q'"):
        model.beam_search("!Q", 3, beam=2)
    assert model.beam_search("!Q", 3, beam=2, skip_unknown=True) == \
        model.beam_search("!", 3, beam=2)


def test_readme_example_beam_finds_what_greedy_misses():
    import rnncore
    text = "Hola mundo, aprendiendo redes recurrentes!"
    model = rnncore.CharRNN(rnncore.Vocab.from_text(text), hidden_size=64, dtype="float64",
                            seed=0)
    rnncore.Trainer(model, text, seq_length=10, batch_size=1, learning_rate=1e-2,
                    optimizer="sgd", clip=5.0).train(800)
    prime = "Hola mundo, aprendien"
    assert model.complete(prime, 21) == "do redes recurecurend"
    assert model.complete(prime, 21, beam=5) == "do redes recurrentes!"
    found = model.beam_search(prime, 21, beam=5)
    assert [round(c.log_prob, 3) for c in found] == [-7.157, -7.797, -7.813, -8.275, -8.418]
    assert round(model.beam_search(prime, 21, beam=1)[0].log_prob, 3) == -8.447
