"""The request batcher in-process: requests that arrive together run as one round, the
streams of a round never mix (each result is the Python API's), a lone request never
waits for company, and a stream nobody reads any more is dropped."""
import time

import numpy as np
import pytest

from rnncore.serve.batcher import Batcher, Job
from support import gated_model


@pytest.fixture(scope="module")
def model():
    return gated_model("gru", 2, 12, 16, seed=3, scale=0.8)


def ids(model, text):
    return model.vocab.encode(text).astype(np.intp)


def sample_job(model, prime, length, seed, temperature=1.0, top_k=0, top_p=1.0, stops=()):
    return Job("sample", ids(model, prime), length=length, temperature=temperature,
               top_k=top_k, top_p=top_p, seed=seed, stops=stops, greedy=False)


def test_requests_that_arrive_together_run_as_one_round_and_never_mix(model):
    batcher = Batcher(model, start=False)
    texts = ["!#$", "", "%%&'()", "*+", "!!!!!!!!!!!", "#"]
    nexts = [Job.predicting(model, "next", t) for t in texts]
    suggests = [Job.predicting(model, "suggest", t, k=3, max_chars=4, beam=8)
                for t in texts]
    completes = [Job("complete", ids(model, t or "!"), length=7, beam=b)
                 for t, b in zip(texts, [1, 3, 1, 3, 2, 2])]
    samples = [sample_job(model, t, 40 + 13 * i, seed=i, temperature=0.5 + 0.2 * i,
                          top_k=[0, 3][i % 2], top_p=[1.0, 0.8, 0.95][i % 3],
                          stops=("+",) if i == 2 else ())
               for i, t in enumerate(texts)]
    jobs = nexts + suggests + completes + samples
    for job in jobs:
        batcher.submit(job)
    batcher.start()
    try:
        results = [job.future.result(timeout=30) for job in jobs]
    finally:
        batcher.close()
    assert batcher.round_sizes[0] == len(jobs)     # all of them in the first round
    for t, p in zip(texts, results[:6]):
        np.testing.assert_allclose(p, model.next_char_probs(t), rtol=1e-12, atol=1e-15)
    for t, found in zip(texts, results[6:12]):
        expected = model.suggest(t, k=3, max_chars=4, beam=8)
        assert [s.word for s in found] == [s.word for s in expected]
        np.testing.assert_allclose([s.log_prob for s in found],
                                   [s.log_prob for s in expected], rtol=1e-12)
    for job, found in zip(completes, results[12:18]):
        prime = model.vocab.decode(job.ids)
        best = model.beam_search(prime, 7, beam=job.settings["beam"])[0]
        assert model.vocab.decode(found[0][0]) == best.text
    for job, t, text in zip(samples, texts, results[18:]):
        s = job.settings
        assert text == model.sample(s["length"], t, seed=s["seed"],
                                    temperature=s["temperature"], top_k=s["top_k"] or None,
                                    top_p=s["top_p"], stop=list(s["stops"]) or None)


def test_a_lone_request_never_waits_for_company(model):
    batcher = Batcher(model, gather=5.0)    # a gathering window far longer than a step
    try:
        for _ in range(3):
            start = time.perf_counter()
            batcher.submit(Job("next", ids(model, "!#$"))).result(timeout=30)
            assert time.perf_counter() - start < 1.0
        assert batcher.round_sizes == [1, 1, 1]
    finally:
        batcher.close()


def test_short_requests_are_answered_while_a_long_sample_runs(model):
    batcher = Batcher(model, chunk=8)
    try:
        job = sample_job(model, "!", 10 ** 8, seed=1)
        pieces = []
        job.on_piece = pieces.append
        long = batcher.submit(job)
        time.sleep(0.05)
        start = time.perf_counter()
        probs = batcher.submit(Job("next", ids(model, "#"))).result(timeout=30)
        assert not long.done()       # it came back while the long sample runs
        np.testing.assert_allclose(probs, model.next_char_probs("#"), rtol=1e-12)
        assert time.perf_counter() - start < 5
        job.cancelled = True
        with pytest.raises(Exception):
            long.result(timeout=30)
        assert long.cancelled()
        done = "".join(pieces)
        assert done == model.sample(len(done), "!", seed=1)   # what it had generated
    finally:
        batcher.close()


def test_pieces_arrive_in_order_and_a_cancelled_stream_is_dropped(model):
    batcher = Batcher(model, chunk=16)
    try:
        pieces = []
        job = sample_job(model, "!", 100, seed=2)
        job.on_piece = pieces.append
        assert batcher.submit(job).result(timeout=30) == "".join(pieces)
        assert len(pieces) == 7 and all(len(p) == 16 for p in pieces[:-1])
        dropped = sample_job(model, "!", 10 ** 7, seed=3)
        future = batcher.submit(dropped)
        time.sleep(0.05)
        dropped.cancelled = True
        deadline = time.monotonic() + 10
        while batcher.streams and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not batcher.streams and future.cancelled()
        assert batcher.submit(Job("next", ids(model, "!"))).result(timeout=30).shape == (12,)
    finally:
        batcher.close()


def test_unknown_kinds_and_a_closed_batcher_are_refused(model):
    batcher = Batcher(model)
    with pytest.raises(ValueError, match="a job's kind is one of"):
        batcher.submit(Job("bogus", ids(model, "!")))
    batcher.close()
    with pytest.raises(RuntimeError, match="the server is stopping"):
        batcher.submit(Job("next", ids(model, "!")))
