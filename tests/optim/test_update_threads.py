"""The optimizer's updates and the moving average shared out among threads: every element
in exactly one range, and the same bits on any number of threads."""
import os
import subprocess
import sys

import numpy as np
import pytest

import rnncore
from rnncore import optim
from rnncore.optim import ALIGN, WeightAverage, element_ranges, make_optimizer


@pytest.mark.parametrize("sizes", [[99840, 589824, 589824, 589824, 24960, 1536, 1536, 65],
                                   [5, 3], [0, 40], [], [40, 0, 40], [1], [17, 1000, 3]])
@pytest.mark.parametrize("parts", [1, 2, 3, 4, 7])
def test_ranges_cover_every_element_once_in_order_cut_at_aligned_offsets(sizes, parts):
    ranges = element_ranges(sizes, parts)
    assert len(ranges) == parts
    seen = [(i, e) for part in ranges for i, lo, hi in part for e in range(lo, hi)] \
        if sum(sizes) < 5000 else None
    if seen is not None:   # in order: the parts, one after the other, are the sequence
        assert seen == [(i, e) for i, n in enumerate(sizes) for e in range(n)]
    counts = [0] * len(sizes)
    for part in ranges:
        for i, lo, hi in part:
            assert 0 <= lo < hi <= sizes[i]
            assert lo % ALIGN == 0 or lo == 0          # cuts within an array are aligned
            counts[i] += hi - lo
    assert counts == list(sizes)
    if sum(sizes) >= 1000 * parts:   # and the shares are even, to an aligned cut
        shares = [sum(hi - lo for _, lo, hi in part) for part in ranges]
        assert max(shares) - min(shares) <= 2 * ALIGN


def big_model(dtype):
    """A 2-layer LSTM of 96 units: 112,000 parameters, over MIN_SPLIT_ELEMENTS, so an
    update is really split."""
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abcdefghijklmnopqrstuvwxyz ,.;"), 96,
                            cell="lstm", num_layers=2, dtype=dtype, seed=1)
    assert model.num_parameters() > optim.MIN_SPLIT_ELEMENTS
    return model


def random_grads(model, rng):
    return {k: rng.normal(size=v.shape).astype(v.dtype) for k, v in model.params.items()}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam"])
def test_every_optimizer_updates_the_same_bits_on_any_number_of_threads(name, dtype):
    rng = np.random.default_rng(4)
    grads_seq = [random_grads(big_model(dtype), rng) for _ in range(3)]
    results = []
    for threads in (1, 2, 3, 4):
        model = big_model(dtype)
        opt = make_optimizer(name, model, weight_decay=0.1)
        average = WeightAverage(model, 0.9, start=1)
        for step, grads in enumerate(grads_seq, start=1):
            opt.step(grads, 0.01, threads=threads)
            average.update(step, threads=threads)
        results.append((model.params, opt.state_dict()[0], average.arrays))
    first = results[0]
    for other in results[1:]:
        for a, b in zip(first, other):
            assert a.keys() == b.keys()
            for k in a:
                assert np.array_equal(a[k], b[k]), k


def test_the_team_size_is_the_default_and_a_lone_thread_calls_the_kernel_directly(
        monkeypatch):
    calls = []
    monkeypatch.setattr(optim, "run_calls", lambda c, threads: calls.append(threads))
    model = big_model("float32")
    make_optimizer("adam", model).step(model.zeros_like_params(), 0.1)
    assert calls == [None]           # None: the team's size, read at the call
    seen = []
    real = optim._HELPERS.get
    monkeypatch.undo()
    monkeypatch.setattr(optim._HELPERS, "get", lambda n: seen.append(n) or real(n))
    with rnncore.threads.num_threads(1):
        make_optimizer("adam", model).step(model.zeros_like_params(), 0.1)
    assert seen == []                # one thread: no helper asked for
    with rnncore.threads.num_threads(3):
        make_optimizer("adam", model).step(model.zeros_like_params(), 0.1)
    assert seen == [2]               # three: the caller and two helpers


def test_a_small_update_stays_on_the_calling_thread(monkeypatch):
    monkeypatch.setattr(optim._HELPERS, "get", lambda n: pytest.fail("asked for helpers"))
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abc"), 8, seed=0)
    make_optimizer("adam", model).step(model.zeros_like_params(), 0.1, threads=2)


def test_an_error_in_a_helpers_range_is_raised_in_the_caller():
    def kernel(a, b):
        if a[0] != 0:
            raise ValueError("helper failed")
    x = np.zeros(1 << 17)
    x[len(x) // 2:] = 1            # the helper's range, the second half
    with pytest.raises(ValueError, match="helper failed"):
        optim.run_calls([(kernel, (x, x), ())], threads=2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_updates_on_threads_of_its_own(tmp_path):
    # the parent's helper thread does not exist in a child: the child makes its own
    code = """
import os, numpy as np, rnncore
from rnncore.optim import make_optimizer
model = rnncore.CharRNN(rnncore.Vocab.from_text("abcdefghijklmnopqrstuvwxyz ,.;"), 96,
                        cell="lstm", num_layers=2, dtype="float32", seed=1)
opt = make_optimizer("adam", model)
grads = {k: np.ones_like(v) for k, v in model.params.items()}
opt.step(grads, 0.01, threads=2)
pid = os.fork()
if pid == 0:
    opt.step(grads, 0.01, threads=2)
    os._exit(0 if np.isfinite(model.params["Whh"]).all() else 3)
_, status = os.waitpid(pid, 0)
raise SystemExit(os.waitstatus_to_exitcode(status))
"""
    # cwd: not the checkout, whose uncompiled rnncore/ would shadow the installed package
    proc = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
