"""The generation options, each to its promised value: --stop, --num-samples, the prime
with unknown characters in beams and samples, through the library and the CLI; and
options combined where the combination differs from the simple case (several primes with
several samples each, a beam of K printing N ≠ K, ties in next_chars)."""
import numpy as np
import pytest

import rnncore
from rnncore import cli

from support import fixed_distribution_model, gated_model, saved_small_model


@pytest.fixture(scope="module")
def model():
    vocab = rnncore.Vocab.from_text("the cat sat on a mat.")
    m = gated_model("gru", 2, len(vocab), 8, seed=1, scale=0.9)
    m.vocab = vocab
    return m


def test_skip_unknown_in_a_beam_is_the_beam_of_the_prime_without_them(model):
    clean = model.beam_search("the cat ", 6, beam=4)
    assert model.beam_search("thQe cXat ", 6, beam=4, skip_unknown=True) == clean
    assert model.complete("thQe cXat ", 6, skip_unknown=True, beam=4) == clean[0].text
    assert model.complete("thQe cXat ", 6, skip_unknown=True) == model.complete("the cat ", 6)
    with pytest.raises(ValueError, match="'QX'"):
        model.beam_search("thQe cXat ", 6, beam=4)


def test_skip_unknown_in_a_sample_feeds_the_prime_without_them(model):
    assert model.sample(40, prime="thQe", seed=3, skip_unknown=True) == \
        model.sample(40, prime="the", seed=3)


def test_stop_ends_right_after_its_first_occurrence_in_the_generated_text(model):
    whole = model.sample(300, prime="the", seed=7)
    stop = whole[40:42]
    at = whole.find(stop)
    assert model.sample(300, prime="the", seed=7, stop=stop) == whole[:at + len(stop)]
    # the prime is not searched: a stop text the prime holds does not end it at once
    assert model.sample(20, prime="the", seed=7, stop="the")[:1] == whole[:1]


def test_num_samples_are_the_columns_of_one_seed(model):
    many = model.sample(50, prime="a", seed=11, num_samples=3)
    assert len(many) == 3 and len(set(many)) == 3
    assert model.sample(50, prime="a", seed=11, num_samples=3) == many     # reproducible
    pieces = list(model.sample_stream(50, prime="a", seed=11, num_samples=3))
    assert ["".join(p[i] for p in pieces) for i in range(3)] == many


def test_the_cli_prints_each_of_n_samples_under_its_header(tmp_path, capsys, model):
    path = saved_small_model(tmp_path / "m.npz", "gru")
    saved = rnncore.CharRNN.load(path)
    expected = saved.sample(30, prime="the", seed=5, num_samples=3)
    assert cli.main(["sample", str(path), "--prime", "the", "--length", "30", "--seed", "5",
                     "--num-samples", "3"]) == 0
    assert capsys.readouterr().out == "".join(
        f"=== sample {i} of 3 ===\nthe{text}\n" for i, text in enumerate(expected, 1))


def test_the_cli_stops_at_the_stop_text(tmp_path, capsys):
    path = saved_small_model(tmp_path / "m.npz", "lstm")
    saved = rnncore.CharRNN.load(path)
    whole = saved.sample(200, prime="a", seed=2)
    stop = whole[30:32]
    assert cli.main(["sample", str(path), "--prime", "a", "--length", "200", "--seed", "2",
                     "--stop", stop]) == 0
    assert capsys.readouterr().out == "a" + whole[:whole.find(stop) + len(stop)] + "\n"


def test_the_cli_beam_with_skip_unknown_echoes_and_completes_the_clean_prime(tmp_path, capsys):
    path = saved_small_model(tmp_path / "m.npz", "rnn")
    saved = rnncore.CharRNN.load(path)
    assert cli.main(["sample", str(path), "--prime", "thQe c", "--length", "8", "--beam", "3",
                     "--skip-unknown"]) == 0
    assert capsys.readouterr().out == "the c" + saved.complete("the c", 8, beam=3) + "\n"


# ---- combined options, where the combination differs from the simple case ---------------
def textbook_sample(model, prime, uniforms):
    """The characters drawn after `prime` by the uniform numbers `uniforms` (n,) at
    temperature 1: each step's distribution from next_char_probs of the text so far, the
    draw its inverse CDF (the first character whose cumulative probability passes u)."""
    text = ""
    for u in uniforms:
        cdf = np.cumsum(model.next_char_probs(prime + text))
        text += model.vocab.chars[int(np.searchsorted(cdf, u * cdf[-1], side="right"))]
    return text


def test_several_primes_with_several_samples_each_are_the_promised_streams():
    model = gated_model("gru", 2, 7, 8, seed=5, scale=1.2)
    primes, N, n = ["!#$", "%%%%", "&"], 2, 25
    nested = model.sample(n, prime=primes, seed=4, num_samples=N)
    # stream p·N + s is sample s of prime p, drawing column p·N + s of the seed's
    # (n, P·N) uniform numbers
    uniforms = np.random.default_rng(4).random((n, len(primes) * N))
    assert nested == [[textbook_sample(model, p, uniforms[:, i * N + s]) for s in range(N)]
                      for i, p in enumerate(primes)]
    assert len({t for texts in nested for t in texts}) == len(primes) * N
    pieces = list(model.sample_stream(n, prime=primes, seed=4, num_samples=N))
    assert ["".join(p[b] for p in pieces) for b in range(6)] == sum(nested, [])


def beam_lines(out):
    lines = out.splitlines()
    return [(float(h.split("log-prob ")[1].rstrip(" =")), t) for h, t in
            zip(lines[0::2], lines[1::2])]


@pytest.mark.parametrize("K,N", [(6, 2), (3, 3), (8, 5)])
def test_cli_beam_k_with_n_samples_prints_the_n_best_of_k_beams(tmp_path, capsys, K, N):
    path = saved_small_model(tmp_path / "m.npz", "gru")
    saved = rnncore.CharRNN.load(path)
    prime = "the c"
    found = saved.beam_search(prime, 9, beam=K)
    assert cli.main(["sample", str(path), "--prime", prime, "--length", "9", "--beam", str(K),
                     "--num-samples", str(N)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0::2] == [f"=== beam {i} of {N}: log-prob {c.log_prob:.4f} ==="
                                      for i, c in enumerate(found[:N], 1)]
    assert [t for _, t in beam_lines(out)] == [prime + c.text for c in found[:N]]


def test_the_n_best_of_a_wider_beam_are_not_a_narrower_beam():
    # the case where --beam K --num-samples N differs from --beam N: a width-N search
    # prunes what the width-K one keeps
    vocab = rnncore.Vocab.from_text("the cat sat on a mat.")
    for seed in range(40):
        model = gated_model("gru", 2, len(vocab), 8, seed=seed, scale=1.5)
        model.vocab = vocab
        wide, narrow = model.beam_search("the c", 9, beam=8)[:2], model.beam_search(
            "the c", 9, beam=2)
        if [c.text for c in wide] != [c.text for c in narrow]:
            assert wide[0].log_prob >= narrow[0].log_prob
            return
    pytest.fail("no seed where a wider beam finds other paths")


def test_next_chars_ties_are_in_vocabulary_order():
    probs = np.array([0.1, 0.3, 0.1, 0.3, 0.2])
    model = fixed_distribution_model(probs)
    assert [c for c, _ in model.next_chars("ab")] == ["b", "d", "e", "a", "c"]
    assert [c for c, _ in model.next_chars("ab", k=3)] == ["b", "d", "e"]
    # a vocabulary in another order breaks the ties the other way
    flipped = fixed_distribution_model(probs[::-1].copy())
    assert [c for c, _ in flipped.next_chars("")] == ["b", "d", "a", "c", "e"]
