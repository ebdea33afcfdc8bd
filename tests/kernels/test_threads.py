"""The thread team and the micro-kernel: results are the same bits on any number of
threads (every cell, both dtypes, dropout and clipping, a whole training run, generation),
the team survives a fork, oversubscription and two calling threads, and every version of
the micro-kernel computes a product numpy agrees with."""
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rnncore
from rnncore import _cells
from support import gated_model, ragged_texts

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
CSRC = os.path.join(os.path.dirname(TESTS), "csrc")     # the kernels' C (a source tree's)


@pytest.fixture
def every_call_parallel():
    """Small test models split their steps too (normally they run on one thread)."""
    _cells.set_min_parallel_work(0)
    before = rnncore.get_num_threads()
    yield
    _cells.set_min_parallel_work(1 << 17)
    rnncore.set_num_threads(before)


def window_results(model, threads, x, y, masks, clip=0.05):
    rnncore.set_num_threads(threads)
    loss, grads, state = model.loss_and_grads(x, y, clip=clip, dropout_masks=masks)
    return loss, {k: v.copy() for k, v in grads.items()}, state.copy()


def assert_same_bits(a, b):
    (loss_a, grads_a, state_a), (loss_b, grads_b, state_b) = a, b
    assert loss_a == loss_b
    for name in grads_a:
        assert np.array_equal(grads_a[name], grads_b[name]), name
    assert np.array_equal(state_a, state_b)


def test_the_team_size_is_set_and_read():
    before = rnncore.get_num_threads()
    try:
        rnncore.set_num_threads(3)
        assert rnncore.get_num_threads() == 3
        with rnncore.threads.num_threads(1):
            assert rnncore.get_num_threads() == 1
        assert rnncore.get_num_threads() == 3
        for bad in (0, -1, 1.5, True, "2", 65):
            with pytest.raises(ValueError, match="threads"):
                rnncore.set_num_threads(bad)
    finally:
        rnncore.set_num_threads(before)


def test_the_fma_peak_runs_on_the_threads_asked_whatever_the_team_size():
    # the benchmarks' ceiling: it once ran alone when the team had been sized to 1, and
    # reported one core's peak as the team's (window rates at 130% of "the peak")
    tasks = lambda: len(os.listdir("/proc/self/task"))
    with rnncore.threads.num_threads(1):
        baseline = tasks()           # no worker: a team of one is the caller alone
        seen, running = [], threading.Event()

        def watch():
            running.wait()
            while running.is_set():
                seen.append(tasks())

        watcher = threading.Thread(target=watch)
        watcher.start()
        running.set()
        try:
            assert _cells.fma_peak(3, "float32", seconds=0.2) > 0
        finally:
            running.clear()
            watcher.join()
        assert rnncore.get_num_threads() == 1
    assert max(seen) - baseline - 1 == 2      # the watcher, and two workers beside the caller


@pytest.mark.slow
def test_the_default_is_the_cpus_this_process_may_use():
    assert rnncore.threads.default_threads() == len(os.sched_getaffinity(0))
    assert rnncore.threads.default_threads(ranks_on_host=2) == \
        max(1, len(os.sched_getaffinity(0)) // 2)
    # a fresh process starts with it
    code = "import rnncore; print(rnncore.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=HERE).stdout
    assert int(out) == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_window_is_the_same_bits_on_1_to_4_threads(cell, dtype, every_call_parallel):
    # sizes that make several tiles of every kind: units, rows, panels
    model = gated_model(cell, 2, 11, 70, dtype=dtype, dropout=0.3)
    B, T = 8, 20
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 11, (B, T)), rng.integers(0, 11, (B, T))
    masks = model.dropout_masks(np.random.default_rng(4), B, T)
    one = window_results(model, 1, x, y, masks)
    for threads in (2, 3, 4):
        assert_same_bits(window_results(model, threads, x, y, masks), one)
    # the clip did bite, so it is part of what was compared
    assert any(np.abs(g).max() == np.float64(0.05).astype(dtype) for g in one[1].values())


def test_more_threads_than_cores_give_the_same_bits(every_call_parallel):
    """Workers the OS deschedules in the middle of steps: the others take their tiles."""
    model = gated_model("lstm", 1, 9, 64, dtype="float32")
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 9, (16, 30)), rng.integers(0, 9, (16, 30))
    one = window_results(model, 1, x, y, None)
    for _ in range(3):
        assert_same_bits(window_results(model, 8, x, y, None), one)


def train(threads, cell="gru", steps=6):
    rnncore.set_num_threads(threads)
    model = gated_model(cell, 2, 12, 48, dtype="float32", dropout=0.2, scale=0.3)
    text = "".join(chr(33 + i % 12) for i in range(3000))
    trainer = rnncore.Trainer(model, text, seq_length=12, batch_size=6, optimizer="adam",
                              learning_rate=3e-3, clip=0.5, seed=2)
    losses = trainer.train(steps)
    return losses, model.params


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_training_run_is_the_same_bits_on_1_and_3_threads(cell, every_call_parallel):
    losses_1, params_1 = train(1, cell)
    losses_3, params_3 = train(3, cell)
    assert losses_1 == losses_3
    for name in params_1:
        assert np.array_equal(params_1[name], params_3[name]), name


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_generation_is_the_same_on_any_number_of_threads(cell, every_call_parallel):
    model = gated_model(cell, 2, 8, 40, dtype="float32", scale=0.9)
    results = []
    for threads in (1, 2, 4):
        rnncore.set_num_threads(threads)
        results.append((model.sample(60, prime="#$", seed=1, num_samples=5),
                        [(c.text, c.log_prob) for c in model.beam_search("#", 4, beam=7)]))
    assert results[1] == results[0] and results[2] == results[0]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_feeding_ragged_texts_is_the_same_bits_on_1_to_3_threads(cell, every_call_parallel):
    model = gated_model(cell, 3, 8, 40, dtype="float32", scale=0.9)
    rng = np.random.default_rng(8)
    B = 45                                            # chunks of 5 steps (FEED_ROWS 256)
    chars, starts = ragged_texts(rng, B, 8, 22)
    given = rng.uniform(-0.8, 0.8, (3 * (2 if cell == "lstm" else 1), B, 40)).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        rnncore.set_num_threads(threads)
        state = given.copy()
        model.generation_kernel().feed_rows(chars, starts, state)
        results.append(state)
    assert np.array_equal(results[1], results[0]) and np.array_equal(results[2], results[0])


def test_a_stream_gives_the_same_bits_alone_and_in_a_batch():
    model = gated_model("lstm", 2, 6, 33, dtype="float32", scale=0.9)
    kernel = model.generation_kernel()
    rows = 4
    chars = np.random.default_rng(2).integers(0, 6, (9, 5))
    batch = np.zeros((rows, 5, 33), np.float32)
    kernel.advance(np.ascontiguousarray(chars), batch)
    for b in range(5):
        alone = np.zeros((rows, 1, 33), np.float32)
        kernel.advance(np.ascontiguousarray(chars[:, b:b + 1]), alone)
        assert np.array_equal(alone[:, 0], batch[:, b])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_runs_with_its_own_team(every_call_parallel):
    model = gated_model("gru", 1, 7, 64)
    x = np.arange(40).reshape(4, 10) % 7
    rnncore.set_num_threads(2)
    parent, _ = model.loss(x, x)                   # the parent's workers exist now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the child: no workers came along
        try:
            loss, _ = model.loss(x, x)
            os.write(write, repr(loss).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert float(os.read(read, 100)) == parent


def test_two_python_threads_use_two_models_at_once(every_call_parallel):
    """One of them holds the team, the other runs alone; both get their own results."""
    models = [gated_model("lstm", 1, 9, 48, seed=s) for s in (1, 2)]
    x = np.arange(120).reshape(6, 20) % 9
    alone = [m.loss_and_grads(x, x)[0] for m in models]
    together = [[], []]

    def work(i):
        for _ in range(20):
            together[i].append(models[i].loss_and_grads(x, x)[0])

    workers = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert together[0] == [alone[0]] * 20 and together[1] == [alone[1]] * 20


def compiler():
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


@pytest.mark.slow
@pytest.mark.skipif(compiler() is None, reason="needs a C compiler")
@pytest.mark.parametrize("sanitizer", [None, "thread"])
def test_the_team_in_c_runs_every_tile_once(tmp_path, sanitizer):
    exe = tmp_path / "team_stress"
    flags = ["-O1", "-g", "-pthread"] + ([f"-fsanitize={sanitizer}"] if sanitizer else [])
    built = subprocess.run([compiler(), *flags, "-I", CSRC,
                            os.path.join(TESTS, "csrc", "team_stress.c"),
                            os.path.join(CSRC, "team.c"), "-o", str(exe)],
                           capture_output=True, text=True)
    if built.returncode != 0 and sanitizer:
        pytest.skip(f"this compiler has no -fsanitize={sanitizer}")
    assert built.returncode == 0, built.stderr
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1")
    ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "wrong tile counts: 0" in ran.stdout
    assert "ThreadSanitizer" not in ran.stderr


shapes = st.tuples(st.integers(1, 40), st.integers(1, 300), st.integers(1, 150))


@settings(max_examples=60, deadline=None)
@given(shape=shapes, dtype=st.sampled_from([np.float32, np.float64]),
       transposed=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_the_micro_kernel_computes_the_product(shape, dtype, transposed, seed):
    M, K, N = shape
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if transposed else (M, K)).astype(dtype)
    a = a.T if transposed else a                    # read in place through its strides
    b = rng.standard_normal((K, N)).astype(dtype)
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    got = _cells.matmul(a, b)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(K))


def microkernels_here():
    """The versions this CPU runs (the generic one always)."""
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    versions = ["generic"]
    if " avx2" in flags and " fma" in flags:
        versions.append("avx2")
    if " avx512f" in flags and " avx512vl" in flags and " avx512dq" in flags:
        versions.append("avx512")
    return versions


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RNNCORE_KERNEL") not in (None, ""),
                    reason="this run already forces one micro-kernel")
@pytest.mark.parametrize("version", ["generic", "avx2", "avx512"])
def test_the_kernel_tests_pass_on_every_micro_kernel(version):
    if version not in microkernels_here():
        pytest.skip(f"this CPU does not run the {version} micro-kernel")
    env = dict(os.environ, RNNCORE_KERNEL=version)
    code = "import rnncore._cells as c; print(c.MICROKERNEL)"
    chosen = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, cwd=HERE, check=True).stdout.strip()
    assert chosen == version
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_cells.py",
         "../sample/test_beam.py", "test_threads.py", "-k",
         "not every_micro_kernel and not in_c"],
        cwd=HERE, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_an_unknown_micro_kernel_is_one_warning_and_the_automatic_choice(tmp_path):
    env = dict(os.environ, RNNCORE_KERNEL="avx9")
    code = "import rnncore._cells as c; print(c.MICROKERNEL)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, cwd=tmp_path, check=True)
    assert result.stderr == ("rnncore: warning: RNNCORE_KERNEL=avx9 is not one of avx512, "
                             f"avx2, generic that this CPU runs; using {result.stdout.strip()}\n")
    assert result.stdout.strip() == microkernels_here()[-1]
