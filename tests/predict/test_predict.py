"""Predictive text from Python: next-character probabilities, word suggestions against
brute force, nucleus sampling against its textbook twin, several stop texts, several
primes advanced as one batch."""
import itertools
import math

import numpy as np
import pytest

import rnncore
from rnncore import layout, reference
from rnncore.predict import (Suggestion, beam_from_state, feed_texts, is_separator,
                             start_text, word_prefix)
from rnncore.sample import primed_state
from support import (N_DRAWS, P, assert_binomial, continuation_log_prob,
                     fixed_distribution_model, frequencies, gated_model, ragged_texts)


def word_model(cell="gru", L=1, chars=" ,abc", H=6, seed=0, dtype="float64", scale=0.9):
    """A small model over `chars` (two separators, three letters by default)."""
    model = gated_model(cell, L, len(chars), H, dtype=dtype, seed=seed, scale=scale)
    vocab = rnncore.Vocab(sorted(chars))
    fresh = rnncore.CharRNN(vocab, H, dtype=dtype, cell=cell, num_layers=L)
    for name, p in model.params.items():
        fresh.params[name][...] = p
    return fresh


def reference_next_probs(model, text):
    """The textbook twin of next_char_probs: each character's probability from the numpy
    reference's loss of the whole text followed by it."""
    ids = model.vocab.encode(text)
    params = {k: v.astype(np.float64) for k, v in model.params.items()}
    out = np.empty(model.n_vocab)
    for c in range(model.n_vocab):
        if len(ids) == 0:
            by = params["by"]
            out[c] = np.exp(by[c] - by.max()) / np.exp(by - by.max()).sum()
            continue
        seq = np.concatenate([ids, [c]])
        loss, _, _ = reference.loss_and_grads(params, seq[:-1], seq[1:], None, clip=None)
        loss_before = 0.0
        if len(ids) > 1:
            loss_before, _, _ = reference.loss_and_grads(params, ids[:-1], ids[1:], None,
                                                         clip=None)
        # mean losses: the last character's log p is the difference of the sums
        out[c] = np.exp(-(loss * len(ids) - loss_before * (len(ids) - 1)))
    return out


# ---- next-character probabilities ----------------------------------------------------
@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 2e-5)])
@pytest.mark.parametrize("text", ["", "a", "ab, c", "cab ba,a"])
def test_next_char_probs_is_the_reference(cell, L, dtype, tol, text):
    model = word_model(cell, L, dtype=dtype, seed=L)
    probs = model.next_char_probs(text)
    assert probs.dtype == np.float64 and probs.shape == (model.n_vocab,)
    assert np.isclose(probs.sum(), 1.0, rtol=1e-12)
    # the empty text reads as the start text (a space here: no newline in " ,abc")
    np.testing.assert_allclose(probs, reference_next_probs(model, text or " "), rtol=tol,
                               atol=tol)


@pytest.mark.parametrize("chars,start", [("\n ab", "\n\n"), (" ab,", " "), ("ab,", "")])
def test_the_empty_text_reads_as_the_start_text(chars, start):
    model = word_model("gru", 2, chars=chars, seed=2)
    assert start_text(model.vocab) == start
    # the same bits as that text, for every question predictive text answers
    assert model.next_char_probs("").tobytes() == model.next_char_probs(start).tobytes()
    assert model.suggest("", k=2, max_chars=3) == model.suggest(start, k=2, max_chars=3)
    assert model.next_char_probs("Q", skip_unknown=True).tobytes() == \
        model.next_char_probs(start).tobytes()
    if not start:   # no separator to start after: the zero state, whose logits are by
        by = model.params["by"]
        np.testing.assert_allclose(model.next_char_probs(""), np.exp(by) / np.exp(by).sum(),
                                   rtol=1e-12)


def test_next_chars_ranks_the_distribution():
    model = word_model("lstm", 2)
    probs = model.next_char_probs("ab")
    ranked = model.next_chars("ab")
    assert [c for c, _ in ranked] == [model.vocab.chars[j] for j in np.argsort(-probs,
                                                                              kind="stable")]
    assert [p for _, p in ranked] == sorted(probs, reverse=True)
    assert model.next_chars("ab", k=2) == ranked[:2]
    with pytest.raises(ValueError, match="k must be a positive integer"):
        model.next_chars("ab", k=0)


def test_unknown_characters_as_complete_treats_them():
    model = word_model()
    with pytest.raises(ValueError, match="'QZ'"):
        model.next_char_probs("aQbZ")
    with pytest.raises(ValueError, match="'Q'"):
        model.suggest("aQ")
    np.testing.assert_array_equal(model.next_char_probs("aQbZ", skip_unknown=True),
                                  model.next_char_probs("ab"))
    assert model.suggest("aQb", skip_unknown=True) == model.suggest("ab")


# ---- word suggestions against brute force --------------------------------------------
def logsumexp(values):
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def brute_force_words(model, text, max_chars):
    """Every completion of the word at the end of `text` (the next word when it ends in
    a separator) with at most max_chars characters, scored with model.loss: its
    characters, then any separator.  Most probable first; each word once, at its best."""
    chars = model.vocab.chars
    seps = [c for c in chars if is_separator(c)]
    letters = [c for c in chars if not is_separator(c)]
    prefix = word_prefix(text)
    started = bool(prefix)
    best = {}
    for m in range(0, max_chars + 1):
        for lead in range(0, m + 1 if not started else 1):
            for seq in itertools.product(seps, repeat=lead):
                for word in itertools.product(letters, repeat=m - lead):
                    if not started and not word:
                        continue
                    completion = "".join(seq) + "".join(word)
                    score = logsumexp([continuation_log_prob(
                        model, text, model.vocab.encode(completion + s)) for s in seps])
                    full = prefix + "".join(word)
                    if full not in best or score > best[full][1]:
                        best[full] = (completion, score)
    ranked = sorted(((w, c, s) for w, (c, s) in best.items()), key=lambda r: -r[2])
    return ranked


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("text", ["ab", "c", "ab,", "", "ba c"])
def test_exhaustive_word_beam_is_brute_force(cell, L, text):
    model = word_model(cell, L, seed=3 * L + len(text))
    max_chars, k = 3, 6
    expected = brute_force_words(model, text or start_text(model.vocab), max_chars)[:k]
    # width >= every continuation of max_chars characters: nothing is ever pruned
    found = model.suggest(text, k=k, max_chars=max_chars, beam=model.n_vocab ** max_chars)
    assert all(isinstance(s, Suggestion) for s in found)
    assert len(found) == len(expected)
    for s, (word, completion, score) in zip(found, expected):
        assert abs(s.log_prob - score) <= 1e-10 * max(1.0, abs(score)), (s, score)
    gaps = np.diff([score for _, _, score in expected])
    if (np.abs(gaps) > 1e-9).all():
        assert [(s.word, s.completion) for s in found] == [(w, c) for w, c, _ in expected]


def test_narrow_beams_stay_valid_and_never_beat_the_exhaustive_search():
    model = word_model("lstm", 2, seed=5)
    exact = model.suggest("ab", k=3, max_chars=3, beam=125)
    for beam in (3, 4, 8):
        found = model.suggest("ab", k=3, max_chars=3, beam=beam)
        for s in found:
            assert s.word.startswith("ab") and len(s.completion) <= 3
            assert not any(is_separator(c) for c in s.completion)
        assert found[0].log_prob <= exact[0].log_prob + 1e-12


@pytest.mark.parametrize("text", ["ab,", "", "ba "])
@pytest.mark.parametrize("beam", [3, 4, 8])
def test_keeping_k_words_after_a_separator_finds_the_first_k_of_keeping_more(text, beam):
    """After a separator a word may come in several spellings (more separators before
    it); the search keeps each word once, so it can stop at its k-th word: those are the
    first k words a search keeping `beam` of them finds, each spelled at its best."""
    model = word_model("gru", 2, seed=7, scale=1.2)
    few = model.suggest(text, k=3, max_chars=4, beam=beam)
    many = model.suggest(text, k=beam, max_chars=4, beam=beam)
    assert len(few) == min(3, len(many)) and len({s.word for s in many}) == len(many)
    assert [(s.word, s.completion) for s in few] == [(s.word, s.completion) for s in many[:3]]
    np.testing.assert_allclose([s.log_prob for s in few], [s.log_prob for s in many[:3]],
                               rtol=1e-12)


def test_suggestions_of_the_demo_model(hola):
    model = rnncore.CharRNN(rnncore.Vocab.from_text(hola), hidden_size=64, seed=0)
    rnncore.Trainer(model, hola, seq_length=10, learning_rate=1e-2, optimizer="sgd",
                    clip=5.0).train(3000)
    found = model.suggest("Hola mundo, aprendien")
    assert found[0].word == "aprendiendo" and found[0].completion == "do"
    assert len(found) == 3 and found[0].log_prob > math.log(0.5)
    assert [s.log_prob for s in found] == sorted((s.log_prob for s in found), reverse=True)
    # after a separator: the next word, with the separators that lead into it
    after = model.suggest("Hola mundo,")[0]
    assert after.word == "aprendiendo" and after.completion == " aprendiendo"


def test_word_boundaries():
    assert word_prefix("Hola mundo, apren") == "apren"
    assert word_prefix("Hola mundo,") == "" and word_prefix("") == ""
    assert word_prefix("año 2024") == "2024"
    for sep in " \n\t,.!?-_'\"()[]+=$€\u00a0\u200b\x00":
        assert is_separator(sep), repr(sep)
    for c in "aZñé5٣ß\u0301":   # letters, digits, a combining mark
        assert not is_separator(c), repr(c)


def test_suggest_arguments_are_checked():
    model = word_model()
    for bad in (dict(k=0), dict(beam=0), dict(max_chars=-1), dict(k=True)):
        with pytest.raises(ValueError):
            model.suggest("ab", **bad)
    assert model.suggest("ab", max_chars=0) == [Suggestion("ab", "", pytest.approx(
        math.log(sum(model.next_char_probs("ab")[:2]))))]


# ---- plain beams, batched ---------------------------------------------------------------
@pytest.mark.parametrize("cell", layout.CELLS)
def test_batched_beams_are_beam_search(cell):
    model = gated_model(cell, 2, 5, 6, seed=4, scale=0.9)
    primes = ["#!$%", "", "#", "%%%%%%"]
    state = feed_texts(model, [model.vocab.encode(p).astype(np.intp) for p in primes])
    found = beam_from_state(model, state, 4, 7, keep=7)
    for prime, beams in zip(primes, found):
        expected = model.beam_search(prime, 4, beam=7)
        assert [model.vocab.decode(t) for t, _ in beams] == [c.text for c in expected]
        np.testing.assert_allclose([s for _, s in beams], [c.log_prob for c in expected],
                                   rtol=1e-12)


# ---- several primes as one batch ---------------------------------------------------------
@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_feeding_several_texts_at_once_is_feeding_each(cell, dtype, tol):
    model = gated_model(cell, 2, 7, 8, dtype=dtype, seed=1)
    texts = ["#!$%&'", "", '"', "!!!!!!!!!!!!", "'&%"]
    state = feed_texts(model, [model.vocab.encode(t).astype(np.intp) for t in texts])
    for r, text in enumerate(texts):
        alone = feed_texts(model, [model.vocab.encode(text).astype(np.intp)])
        np.testing.assert_allclose(state[:, r], alone[:, 0], rtol=tol, atol=tol)


def reference_state(model, ids, state=None):
    """(S·L, H) the numpy reference's state after feeding `ids` from `state` (S·L, H)
    (None: zeros), in float64."""
    rows = layout.state_rows(model.cell, model.num_layers)
    if len(ids) == 0:
        return np.zeros((rows, model.hidden_size)) if state is None else state
    params = {name: p.astype(np.float64) for name, p in model.params.items()}
    _, _, last = reference.loss_and_grads(params, ids, ids, state=state, clip=0.0)
    return np.reshape(last, (rows, model.hidden_size))


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-5)])
def test_feeding_layer_after_layer_in_chunks_is_the_reference(cell, dtype, tol):
    """Feeding runs layer after layer over chunks of FEED_ROWS = 256 rows (streams ×
    steps: 6 steps for 40 streams, 256 for one): texts that span several chunks, that
    begin inside one and at its edges, through three layers, end where the numpy
    reference ends."""
    model = gated_model(cell, 3, 7, 8, dtype=dtype, seed=4)
    rng = np.random.default_rng(5)
    lengths = [int(n) for n in rng.integers(0, 31, 36)] + [30, 24, 18, 6]
    id_lists = [rng.integers(0, 7, n).astype(np.intp) for n in lengths]
    state = feed_texts(model, id_lists)
    for r, ids in enumerate(id_lists):
        np.testing.assert_allclose(state[:, r], reference_state(model, ids), rtol=tol, atol=tol)
    long = rng.integers(0, 7, 700).astype(np.intp)               # 3 chunks at one stream
    for fed in (feed_texts(model, [long]), primed_state(model, long)):
        np.testing.assert_allclose(fed[:, 0], reference_state(model, long), rtol=tol,
                                   atol=tol)


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("B", [45, 300])
def test_feed_rows_from_given_states_is_the_reference(cell, B):
    """Streams that join in every chunk, with states of their own, through three layers,
    more streams than a chunk's rows (300: a chunk is one step), each ends where the numpy
    reference ends from its state."""
    model = gated_model(cell, 3, 7, 8, seed=6)
    rng = np.random.default_rng(7)
    chars, starts = ragged_texts(rng, B, 7, 24)
    rows = layout.state_rows(cell, 3)
    given = rng.uniform(-0.8, 0.8, (rows, B, 8))
    state = given.copy()
    model.generation_kernel().feed_rows(chars, starts, state)
    for b in range(B):
        ids = chars[b, starts[b]:]
        if len(ids) == 0:
            np.testing.assert_array_equal(state[:, b], given[:, b])
            continue
        np.testing.assert_allclose(state[:, b], reference_state(model, ids, given[:, b]),
                                   rtol=1e-12, atol=1e-12)


def test_feed_rows_keeps_a_state_it_was_given_until_its_text_begins():
    model = gated_model("lstm", 2, 5, 4, seed=2)
    kernel = model.generation_kernel()
    rng = np.random.default_rng(0)
    state = rng.standard_normal((4, 3, 4))
    start = state.copy()
    chars = np.array([[0, 1, 2, 3], [4, 4, 1, 2], [3, 3, 3, 3]], np.intp)
    kernel.feed_rows(chars, np.array([4, 2, 0], np.intp), state)
    np.testing.assert_array_equal(state[:, 0], start[:, 0])   # nothing to feed
    one = np.ascontiguousarray(start[:, 1:2])
    kernel.feed(np.array([1, 2], np.intp), one)
    np.testing.assert_allclose(state[:, 1], one[:, 0], rtol=1e-12)


def test_feed_rows_and_friends_refuse_bad_input():
    model = gated_model("gru", 1, 5, 4)
    kernel = model.generation_kernel()
    state = np.zeros((1, 2, 4))
    with pytest.raises(ValueError, match="not a character index"):
        kernel.feed_rows(np.array([[0, 5], [0, 0]], np.intp), np.zeros(2, np.intp), state)
    with pytest.raises(ValueError, match="starts"):
        kernel.feed_rows(np.zeros((2, 2), np.intp), np.array([0, 3], np.intp), state)
    with pytest.raises(ValueError, match="one per stream"):
        kernel.feed_rows(np.zeros((3, 2), np.intp), np.zeros(3, np.intp), state)
    out = np.zeros((4, 2), np.intp)
    ok = dict(uniforms=np.zeros((4, 2)), temperature=np.ones(2), top_k=np.zeros(2, np.intp),
              top_p=np.ones(2))
    for name, value, match in [("top_p", np.array([1.0, 0.0]), "top_p"),
                               ("top_p", np.array([1.5, 1.0]), "top_p"),
                               ("temperature", np.array([-1.0, 1.0]), "temperature"),
                               ("top_k", np.array([-1, 0], np.intp), "top_k")]:
        args = dict(ok, **{name: value})
        with pytest.raises(ValueError, match=match):
            kernel.sample_rows(state, out, args["uniforms"], args["temperature"],
                               args["top_k"], args["top_p"])


def test_several_primes_complete_and_sample_as_one_batch():
    model = gated_model("gru", 2, 9, 12, seed=6, scale=0.8)
    primes = ["#!", "$$$%&'", "", ")"]
    assert model.complete(primes, 30) == [model.complete(p, 30) for p in primes]
    assert model.complete(primes, 6, beam=3) == [model.complete(p, 6, beam=3)
                                                for p in primes]
    texts = model.sample(40, prime=primes, seed=3)
    assert isinstance(texts, list) and len(texts) == 4 and all(len(t) == 40 for t in texts)
    assert model.sample(40, prime=primes, seed=3) == texts
    nested = model.sample(20, prime=primes, seed=3, num_samples=2)
    assert [len(n) for n in nested] == [2] * 4
    # the draws of stream b are column b of the seed's (n, B) uniforms: with a prime
    # list of one, exactly the single-prime sample
    assert model.sample(40, prime=["#!"], seed=9) == [model.sample(40, prime="#!", seed=9)]
    with pytest.raises(TypeError, match="prime must be a str"):
        model.sample(5, prime=[])


# ---- nucleus sampling ---------------------------------------------------------------------
def nucleus_twin(logits, temperature, top_k, top_p, u):
    """The textbook draw: softmax(logits / T), keep the top_k (ties kept), then the
    smallest set of the most likely whose probabilities reach top_p (ties kept), then
    the inverse-CDF draw of u over what is kept."""
    z = (logits - logits.max()) / temperature
    w = np.exp(z)
    if 0 < top_k < len(w):
        w[logits < np.sort(logits)[::-1][top_k - 1]] = 0
    if top_p < 1:
        order = np.sort(w)[::-1]
        reach = np.searchsorted(np.cumsum(order), top_p * w.sum())
        w[w < order[min(reach, len(w) - 1)]] = 0
    cdf = np.cumsum(w)
    return int(np.searchsorted(cdf, u * cdf[-1], side="right"))


def test_nucleus_draw_is_its_textbook_twin():
    rng = np.random.default_rng(0)
    for trial in range(40):
        V = int(rng.integers(2, 30))
        logits = rng.standard_normal(V) * 2
        model = fixed_distribution_model(np.exp(logits) / np.exp(logits).sum())
        T = float(rng.choice([0.5, 1.0, 1.7]))
        top_k = int(rng.choice([0, 1, 3, V]))
        top_p = float(rng.choice([0.05, 0.3, 0.6, 0.9, 0.999, 1.0]))
        n = 200
        uniforms = rng.random((n, 1))
        out = np.empty((n, 1), np.intp)
        state = np.zeros((1, 1, 4))
        model.generation_kernel().sample_rows(state, out, uniforms, np.array([T]),
                                              np.array([top_k], np.intp),
                                              np.array([top_p]))
        # the kernel's logits are by exactly (Why = 0)
        by = model.params["by"].astype(np.float64)
        expected = [nucleus_twin(by, T, top_k, top_p, u) for u in uniforms[:, 0]]
        assert out[:, 0].tolist() == expected, (trial, V, T, top_k, top_p)


def test_top_p_draws_from_the_nucleus():
    model = fixed_distribution_model(P)   # 0.5, 0.25, 0.15, 0.07, 0.03
    assert_binomial(frequencies(model, model.sample(N_DRAWS, top_p=0.7, seed=1)),
                    [2 / 3, 1 / 3, 0, 0, 0])
    assert set(model.sample(2000, top_p=0.4, seed=2)) == {"a"}
    f = frequencies(model, model.sample(N_DRAWS, top_p=0.85, seed=3))
    assert_binomial(f, [0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0, 0])
    # after top_k: {a, b} renormalised to 2/3, 1/3; a alone reaches 0.6
    assert set(model.sample(2000, top_k=2, top_p=0.6, seed=4)) == {"a"}
    # top_p=1 is no nucleus at all: the same draws as without it
    assert model.sample(500, top_p=1.0, seed=5) == model.sample(500, seed=5)


def test_top_p_is_checked():
    model = fixed_distribution_model(P)
    for bad in (0, -0.1, 1.5, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="top_p"):
            model.sample(5, top_p=bad)
    with pytest.raises(ValueError, match="greedy generation draws nothing: top_p"):
        list(model.sample_stream(5, greedy=True, top_p=0.5))


# ---- several stop texts ---------------------------------------------------------------
def test_the_first_of_several_stop_texts_ends_the_sample():
    model = gated_model("rnn", 1, 6, 8, seed=3, scale=1.2)
    whole = model.sample(3000, "!", seed=7)
    stops = ["$%", "&", "'!#"]
    ends = [whole.find(s) + len(s) for s in stops if s in whole]
    assert ends, "the test needs a sample that contains a stop text"
    assert model.sample(3000, "!", seed=7, stop=stops) == whole[:min(ends)]
    assert model.sample(3000, "!", seed=7, stop=tuple(stops)) == whole[:min(ends)]
    # each stream of a batch stops on its own
    texts = model.sample(300, "!", seed=7, stop=["&"], num_samples=4)
    assert all(t.endswith("&") and t.count("&") == 1 or "&" not in t for t in texts)
    for bad in ([""], ["a", 3], 5, []):
        if bad == []:
            assert model.sample(10, "!", seed=1, stop=bad) == model.sample(10, "!", seed=1)
            continue
        with pytest.raises(ValueError, match="stop must be"):
            model.sample(10, "!", stop=bad)


def test_searches_too_large_for_the_machine_are_refused_by_name():
    # refused before anything is allocated, naming what would not fit (not numpy's
    # MemoryError half way, nor the system's killer)
    from rnncore import NotEnoughMemory
    from rnncore.layout import physical_memory
    model = word_model("gru", 2)
    beam = int(physical_memory() // 20)          # ~20 bytes a beam would already not fit
    with pytest.raises(NotEnoughMemory, match="word searches of width"):
        model.suggest("ab", beam=beam)
    state = feed_texts(model, [model.vocab.encode("ab").astype(np.intp)])
    with pytest.raises(NotEnoughMemory, match="beam searches of width"):
        beam_from_state(model, state, 5, beam)
