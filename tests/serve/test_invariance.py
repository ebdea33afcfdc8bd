"""The same answer in any batch, in-process: every kind of request gives the same bits
alone as inside a round of 1, 7 or 32 other mixed requests, in both dtypes, on either
lane, with its text's state fed whole or from the state cache, on either product engine;
and those bits are the Python API's."""
import numpy as np
import pytest

from rnncore import engines
from rnncore.predict import Suggestion
from rnncore.serve.batcher import Batcher, Job
from support import gated_model

V = 20     # '!' .. '4': fifteen separators, then the digits 0-4 make words


@pytest.fixture(scope="module", params=[(dtype, engine) for dtype in ("float64", "float32")
                                        for engine in ("auto", "blas")])
def model(request):
    """Each dtype under `auto` (generation on the micro-kernel) and with every product
    forced onto the BLAS engine, which generation calls one row at a time."""
    dtype, engine = request.param
    before = engines.get_gemm_engine()
    engines.set_gemm_engine(engine)
    yield gated_model("gru", 2, V, 16, dtype=dtype, seed=3, scale=0.9)
    engines.set_gemm_engine(before)


def ids(model, text):
    return model.vocab.encode(text).astype(np.intp)


def make(model, kind, text, i):
    """A job of `kind` on `text`, its settings varied by i."""
    if kind == "next":
        return Job.predicting(model, "next", text)
    if kind == "suggest":
        job = Job.predicting(model, "suggest", text, k=1 + i % 3, max_chars=3 + i % 4,
                             beam=[4, 8, 16][i % 3])
        if i % 2:
            job.settings["next"] = 5
        return job
    if kind == "complete":
        return Job("complete", ids(model, text or "0"), length=5 + i % 9, beam=1 + i % 4)
    return Job("sample", ids(model, text), length=20 + 37 * (i % 5), seed=i,
               temperature=[1.0, 0.6, 1.7][i % 3], top_k=[0, 3][i % 2],
               top_p=[1.0, 0.9][(i // 2) % 2], stops=(("00",) if i % 4 == 1 else ()),
               greedy=False)


def texts(rng, count):
    chars = "".join(chr(33 + i) for i in range(V))
    return ["".join(rng.choice(list(chars), int(rng.integers(0, 90)))) for _ in range(count)]


def run_round(model, jobs, **options):
    """The results of `jobs` submitted together, in one round of a fresh batcher."""
    batcher = Batcher(model, start=False, **options)
    for job in jobs:
        batcher.submit(job)
    batcher.start()
    try:
        results = [job.future.result(timeout=60) for job in jobs]
    finally:
        batcher.close()
    assert batcher.round_sizes[0] == len(jobs)
    return results


def bits(result):
    """A result as something == compares bit for bit."""
    if isinstance(result, np.ndarray):
        return result.dtype.str, result.tobytes()
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], np.ndarray):
        return bits(result[0]), bits(result[1])      # suggestions and next
    if isinstance(result, list):
        return [bits(r) for r in result]
    if isinstance(result, tuple) and isinstance(result[0], np.ndarray):
        return result[0].tobytes(), float(result[1]).hex()
    if isinstance(result, Suggestion):
        return result.word, result.completion, float(result.log_prob).hex()
    return result


KINDS = ["next", "suggest", "complete", "sample"]


@pytest.mark.parametrize("others", [1, 7, 32])
def test_a_request_alone_and_among_others_is_the_same_bits(model, others):
    rng = np.random.default_rng(others)
    for i, kind in enumerate(KINDS * 2):
        text = texts(rng, 1)[0]
        alone = run_round(model, [make(model, kind, text, i)])[0]
        crowd = [make(model, KINDS[int(rng.integers(4))], t, int(rng.integers(100)))
                 for t in texts(rng, others)]
        at = int(rng.integers(others + 1))
        jobs = crowd[:at] + [make(model, kind, text, i)] + crowd[at:]
        among = run_round(model, jobs)[at]
        assert bits(among) == bits(alone), (kind, text, i)


def test_the_round_answers_are_the_python_apis_bits(model):
    rng = np.random.default_rng(5)
    jobs = [make(model, kind, t, i) for i, (kind, t) in
            enumerate(zip(KINDS * 6, texts(rng, 24)))]
    for job, got in zip(jobs, run_round(model, jobs)):
        text = model.vocab.decode(job.ids) if job.kind in ("complete", "sample") \
            else job.text
        s = job.settings
        if job.kind == "next":
            assert bits(got) == bits(model.next_char_probs(text))
        elif job.kind == "suggest":
            found = model.suggest(text, s["k"], s["max_chars"], s["beam"])
            if "next" in s:
                got, probs = got
                assert bits(probs) == bits(model.next_char_probs(text))
            assert bits(got) == bits(found)
        elif job.kind == "complete":
            best = model.beam_search(text, s["length"], beam=s["beam"])[0]
            assert model.vocab.decode(got[0][0]) == best.text
            assert float(got[0][1]).hex() == float(best.log_prob).hex()
        else:
            assert got == model.sample(s["length"], text, seed=s["seed"],
                                       temperature=s["temperature"],
                                       top_k=s["top_k"] or None, top_p=s["top_p"],
                                       stop=list(s["stops"]) or None)


def mixed_jobs(model):
    rng = np.random.default_rng(11)
    return [make(model, kind, t, i) for i, (kind, t) in enumerate(zip(KINDS * 4,
                                                                       texts(rng, 16)))]


def test_the_long_lane_and_the_cache_change_no_bit(model):
    plain = run_round(model, mixed_jobs(model))
    # every search on the long lane (a kernel of its own, on one thread)
    assert bits(run_round(model, mixed_jobs(model), long_work=0)) == bits(plain)
    # fed in slices of 16 characters over several rounds, then from the cache's states
    batcher = Batcher(model, feed_budget=16)
    try:
        first = [batcher.submit(j).result(timeout=60) for j in mixed_jobs(model)]
        again = [batcher.submit(j).result(timeout=60) for j in mixed_jobs(model)]
        stats = batcher.cache.stats()
    finally:
        batcher.close()
    assert bits(first) == bits(again) == bits(plain)
    assert stats["hits"] >= 12 and stats["chars_reused"] > 0
