"""Sampling as people use it, from Python: streamed in chunks, several samples as
parallel streams, stopping at a text, greedy without silently ignored options."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnncore import layout
from rnncore.sample import FIRST_CHUNK, StopScanner

from support import gated_model


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("L", [1, 2])
def test_streamed_pieces_are_the_whole_sample(cell, L):
    model = gated_model(cell, L, 7, 8, seed=2, scale=0.8)
    whole = model.sample(1000, "!#", temperature=0.9, top_k=4, seed=5)
    pieces = list(model.sample_stream(1000, "!#", temperature=0.9, top_k=4, seed=5))
    assert "".join(pieces) == whole
    assert len(pieces) > 1 and len(pieces[0]) == FIRST_CHUNK
    assert "".join(model.sample_stream(300, "!", greedy=True)) == model.complete("!", 300)


def test_the_first_piece_comes_before_the_rest_is_generated():
    model = gated_model("lstm", 2, 5, 6)
    # 10**12 characters could never be generated (nor held) before the first piece
    first = next(model.sample_stream(10 ** 12, "!", seed=0))
    assert len(first) == FIRST_CHUNK


@pytest.mark.parametrize("cell", layout.CELLS)
def test_several_samples_are_parallel_independent_streams(cell):
    model = gated_model(cell, 2, 6, 8, seed=4, scale=0.8)
    texts = model.sample(400, "!", seed=3, num_samples=4)
    assert len(texts) == 4 and all(len(t) == 400 for t in texts)
    assert len(set(texts)) == 4
    # one stream is the single sample of the same seed
    assert model.sample(400, "!", seed=3, num_samples=1) == [model.sample(400, "!", seed=3)]
    chunks = list(model.sample_stream(400, "!", seed=3, num_samples=4))
    assert all(len(c) == 4 for c in chunks)
    assert ["".join(c[b] for c in chunks) for b in range(4)] == texts


def test_parallel_streams_follow_the_model_distribution():
    # a model whose next character does not depend on the past: every stream, and every
    # step of every stream, draws from softmax(by)
    P = np.array([0.5, 0.3, 0.2])
    model = gated_model("gru", 1, 3, 4)
    model.params["Why"][...] = 0
    model.params["by"][...] = np.log(P)
    texts = model.sample(2000, seed=1, num_samples=8)
    counts = np.array([[t.count(c) for c in model.vocab.chars] for t in texts]) / 2000
    np.testing.assert_allclose(counts.mean(axis=0), P, atol=0.01)
    np.testing.assert_allclose(counts, np.broadcast_to(P, counts.shape), atol=0.05)


@pytest.mark.parametrize("span", [(10, 12), (63, 65), (62, 67), (190, 193), (500, 501),
                                  (30, 100), (0, 64), (60, 200), (100, 400), (1, 599)])
def test_stop_ends_the_sample_after_the_first_occurrence(span):
    # the first pieces are 64, 128, 256 characters: some stop texts lie in one piece,
    # others start in one and end in another, or are longer than the piece they end in
    model = gated_model("gru", 2, 9, 8, seed=3, scale=0.9)
    whole = model.sample(600, "!", seed=3)
    stop = whole[span[0]:span[1]]
    expected = whole[:whole.find(stop) + len(stop)]
    assert len(expected) < 600
    assert model.sample(600, "!", seed=3, stop=stop) == expected
    assert "".join(model.sample_stream(600, "!", seed=3, stop=stop)) == expected
    # among short stop texts that never appear, and beside streams that never stop
    assert model.sample(600, "!", seed=3, stop=["\u00e9\u00e9", stop, "\u00e9"]) == expected
    # several streams: each cut at its own first occurrence (the others may never stop)
    texts = model.sample(600, "!", seed=3, num_samples=3)
    long_stop = texts[1][span[0]:span[1]]
    cut = model.sample(600, "!", seed=3, num_samples=3, stop=long_stop)
    assert cut == [t[:t.find(long_stop) + len(long_stop)] if long_stop in t else t
                   for t in texts]
    assert cut[1] != texts[1]


@settings(max_examples=200, deadline=None)
@given(st.text("ab", min_size=1, max_size=60), st.lists(st.text("ab", min_size=1, max_size=9),
                                                        min_size=1, max_size=3),
       st.lists(st.integers(0, 60), max_size=8))
def test_the_stop_scanner_is_find_over_the_whole_text(text, stops, cuts):
    # its textbook twin: the earliest end of any stop text in the whole text, whatever
    # pieces the text arrives in
    ends = [text.find(t) + len(t) for t in stops if t in text]
    expected = text[:min(ends)] if ends else text
    bounds = sorted({0, len(text), *[min(c, len(text)) for c in cuts]})
    scanner = StopScanner(tuple(stops))
    got = "".join(scanner.cut(text[a:b]) for a, b in zip(bounds, bounds[1:]))
    assert got == expected and scanner.stopped == bool(ends)


def test_stop_that_never_appears_and_per_stream_stops():
    model = gated_model("lstm", 1, 9, 8, seed=1, scale=0.9)
    assert model.sample(300, "!", seed=2, stop="not in vocab") == model.sample(300, "!", seed=2)
    texts = model.sample(300, "!", seed=4, num_samples=5)
    stop = texts[0][40:42]
    stopped = model.sample(300, "!", seed=4, num_samples=5, stop=stop)
    for text, cut in zip(texts, stopped):
        at = text.find(stop)
        assert cut == (text if at < 0 else text[:at + len(stop)])


def test_greedy_with_drawing_options_is_an_error():
    model = gated_model("rnn", 1, 5, 4)
    for kwargs in ({"temperature": 0.5}, {"top_k": 2}, {"seed": 1}):
        with pytest.raises(ValueError, match="greedy generation draws nothing"):
            list(model.sample_stream(5, greedy=True, **kwargs))


@pytest.mark.parametrize("kwargs,match", [
    ({"stop": ""}, "stop must be a non-empty str"),
    ({"num_samples": 0}, "num_samples must be a positive integer"),
    ({"num_samples": 1.5}, "num_samples must be a positive integer"),
])
def test_bad_sampling_options(kwargs, match):
    model = gated_model("gru", 1, 5, 4)
    with pytest.raises(ValueError, match=match):
        model.sample(5, **kwargs)
