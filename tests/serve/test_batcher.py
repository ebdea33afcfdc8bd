"""The request batcher in-process: requests that arrive together run as one round, the
streams of a round never mix (each result is the Python API's), a lone request never
waits for company, a long search runs on its own lane and a long text is fed in slices
while the short requests go on, cancelled work is dropped, and a stop answers what it
can in its grace and fails the rest."""
import time

import numpy as np
import pytest

from rnncore.serve.batcher import Batcher, Job, Stopping
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


# ---- no request stalls another ------------------------------------------------------------
def wait_until(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def test_a_long_search_runs_on_its_own_lane_while_rounds_go_on(model):
    batcher = Batcher(model, long_work=1000)
    try:
        long = Job("complete", ids(model, "!#"), length=4000, beam=64)
        future = batcher.submit(long)
        wait_until(lambda: batcher._long_running is long)
        # while it runs: short searches and a sample, answered by the rounds
        suggest = Job.predicting(model, "suggest", "#$", k=2, max_chars=4, beam=4)
        assert batcher.submit(suggest).result(timeout=30) == \
            model.suggest("#$", 2, 4, 4)
        assert batcher.submit(sample_job(model, "!", 300, seed=1)).result(timeout=30) == \
            model.sample(300, "!", seed=1)
        assert not future.done()
        best = model.beam_search("!#", 4000, beam=64)[0]
        assert model.vocab.decode(future.result(timeout=120)[0][0]) == best.text
        assert batcher.stats()["long_lane"] == {"queued": 0, "running": 0}
    finally:
        batcher.close()


def test_a_long_text_is_fed_in_slices_between_the_short_ones(model):
    batcher = Batcher(model, feed_budget=64)
    try:
        text = "!#$%&'()*" * 300           # 2,700 characters: at least 11 slices of 256
        order = []
        long = Job.predicting(model, "next", text)
        long.future.add_done_callback(lambda _: order.append("long"))
        batcher.submit(long)
        short = Job.predicting(model, "next", "#")
        short.future.add_done_callback(lambda _: order.append("short"))
        batcher.submit(short)
        wait_until(lambda: len(order) == 2)
        assert order == ["short", "long"]
        assert long.future.result().tobytes() == model.next_char_probs(text).tobytes()
        # its states at every 256 characters, and its end, are in the cache now
        assert batcher.cache.stats()["entries"] >= 2700 // 256 + 1
    finally:
        batcher.close()


def test_cancelled_work_stops_costing(model):
    batcher = Batcher(model, long_work=100, feed_budget=16)
    try:
        blocker = Job("complete", ids(model, "!"), length=4000, beam=64)   # about 1 s
        batcher.submit(blocker)
        wait_until(lambda: batcher._long_running is blocker)
        queued = Job("complete", ids(model, "#"), length=2000, beam=16)
        feeding = Job.predicting(model, "next", "!#$%" * 5000)
        for job in (queued, feeding):
            batcher.submit(job)
        wait_until(lambda: batcher.feeding)
        for job in (queued, feeding):
            job.cancelled = True
        wait_until(lambda: queued.future.cancelled() and feeding.future.cancelled())
        assert not batcher.feeding
        fed = batcher.cache.stats()["chars_fed"]
        assert fed < 20000     # dropped before its whole text was fed
    finally:
        batcher.stop()
        batcher.close()


def test_stop_answers_what_it_can_in_the_grace_and_fails_the_rest(model):
    batcher = Batcher(model, long_work=100)
    endless = batcher.submit(sample_job(model, "!", 10 ** 9, seed=1))
    long = batcher.submit(Job("complete", ids(model, "!"), length=5000, beam=32))
    wait_until(lambda: batcher.streams and batcher._long_running is not None)
    quick = batcher.submit(Job.predicting(model, "next", "#"))
    batcher.stop(grace=0.5)
    assert quick.result(timeout=30).shape == (12,)        # answered in the grace
    for future in (endless, long):
        with pytest.raises(Stopping):
            future.result(timeout=30)
    with pytest.raises(Stopping):
        batcher.submit(Job.predicting(model, "next", "#"))
    batcher.close()
