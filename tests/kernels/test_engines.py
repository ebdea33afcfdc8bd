"""The two product engines (rnncore.engines): rnncore's micro-kernel and scipy's BLAS
through cython_blas.  Both compute what the reference computes; the setting and the rule
`auto` pick one per kind of product; the BLAS engine holds scipy's BLAS at one thread
through a run and gives the user's count back.  The whole kernel suite with each engine
forced runs in test_cpu_paths.py's way: a subprocess with RNNCORE_GEMM set."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore import _cells, engines, reference
from rnncore.about import version_report

HERE = Path(__file__).resolve().parent


@pytest.fixture
def engine_setting():
    """Restores the setting a test changes."""
    before = engines.get_gemm_engine()
    yield engines.set_gemm_engine
    engines.set_gemm_engine(before)


def every(engine):
    return dict.fromkeys(engines.KINDS, engine)


def test_auto_is_the_release_table_and_blas_where_the_micro_kernel_is_generic():
    def window(isa, streams, cell="lstm", dtype="float64"):
        return engines.engines_for(isa, "auto", "window", streams, cell, dtype)
    for streams in (1, 2, 32, 1000):
        for cell in ("rnn", "lstm", "gru"):
            for dtype in ("float32", "float64"):
                assert window("generic", streams, cell, dtype) == every("blas")
                if streams > 1:     # two streams and more: the micro-kernel
                    assert window("avx512", streams, cell, dtype) == every("own")
                    assert window("avx2", streams, cell, dtype) == every("own")
    # one stream: BLAS for the gated cells in float64, and the LSTM in float32 on AVX2
    for isa in ("avx512", "avx2"):
        assert window(isa, 1, "lstm", "float64") == window(isa, 1, "gru", "float64") \
            == every("blas")
        assert window(isa, 1, "rnn", "float64") == window(isa, 1, "rnn", "float32") \
            == window(isa, 1, "gru", "float32") == every("own")
    assert window("avx512", 1, "lstm", "float32") == every("own")
    assert window("avx2", 1, "lstm", "float32") == every("blas")
    for forced in engines.ENGINES:
        for use in ("window", "generation"):
            assert engines.engines_for("avx2", forced, use) == \
                every(forced)
    assert engines.describe_auto("avx2") == (
        "one-stream training windows on BLAS (float64: lstm, gru; float32: lstm), the rest "
        "and generation on the micro-kernel")
    assert engines.describe_auto("generic") == \
        "training windows on BLAS, generation on the micro-kernel"


def test_generation_keeps_to_the_micro_kernel_under_auto_on_every_cpu():
    for isa in ("avx512", "avx2", "generic"):
        assert engines.engines_for(isa, "auto", "generation") == every("own")
    weights = _cells.Weights("gru", 2, 5, 8, "float32")
    assert _cells.GenerationKernel(weights, "auto").engines == every("own")
    for B in (1, 3):
        kernel = _cells.WindowKernel(weights, B, 4, "auto")
        assert kernel.engines == engines.engines_for(_cells.MICROKERNEL, "auto", "window", B,
                                                     "gru", "float32")


def test_a_setting_that_is_not_an_engine_is_refused(engine_setting):
    with pytest.raises(ValueError, match="one of own, blas, auto, got 'mkl'"):
        engine_setting("mkl")


@pytest.mark.slow
def test_an_unknown_environment_setting_is_one_warning_and_auto(tmp_path):
    code = "import rnncore.engines as e; print(e.get_gemm_engine())"
    # cwd: not the checkout, whose uncompiled rnncore/ would shadow the installed package
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, RNNCORE_GEMM="mkl"), check=True,
                            cwd=tmp_path)
    assert result.stdout.strip() == "auto"
    assert result.stderr == ("rnncore: warning: RNNCORE_GEMM=mkl is not one of own, blas, "
                             "auto; using auto\n")


@pytest.mark.parametrize("engine", engines.ENGINES)
@pytest.mark.parametrize("step", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_engine_computes_every_kind_of_product(engine, step, dtype):
    rng = np.random.default_rng(1)
    for M, K, N in [(1, 1, 1), (1, 128, 65), (32, 300, 200), (97, 600, 70)]:
        a = rng.standard_normal((M, K)).astype(dtype)
        b = rng.standard_normal((K, N)).astype(dtype)
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(_cells.product(a, b, engine, step, 2),
                                   a.astype(np.float64) @ b, rtol=tol, atol=tol * np.sqrt(K))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("B", [1, 5])
def test_a_window_on_blas_is_the_reference(engine_setting, cell, dtype, B):
    engine_setting("blas")
    vocab = rnncore.Vocab(list("abcdefghijklmnopq"))
    model = rnncore.CharRNN(vocab, 70, cell=cell, num_layers=2, dtype=dtype, seed=2,
                            dropout=0.3)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 17, (B, 9)), rng.integers(0, 17, (B, 9))
    masks = model.dropout_masks(rng, B, 9)
    loss, grads, state = model.loss_and_grads(x, y, clip=0, dropout_masks=masks)
    assert set(model._kernel(B, 9).engines.values()) == {"blas"}
    p64 = {k: v.astype(np.float64) for k, v in model.params.items()}
    want, want_grads, want_state = reference.loss_and_grads(
        p64, x, y, clip=0, dropout_masks=masks.astype(np.float64))
    tol = 1e-10 if dtype == "float64" else 2e-4
    assert abs(loss - want) <= tol * max(1.0, abs(want))
    for name in grads:
        np.testing.assert_allclose(grads[name], want_grads[name], rtol=tol, atol=tol)
    np.testing.assert_allclose(state, want_state, rtol=tol, atol=tol)


def test_both_engines_agree_on_generation(engine_setting):
    vocab = rnncore.Vocab(list(" abcdefgh"))
    model = rnncore.CharRNN(vocab, 40, cell="gru", num_layers=2, seed=3)
    got = {}
    for engine in engines.ENGINES:
        engine_setting(engine)
        got[engine] = (model.sample(30, prime="abc", seed=5, temperature=0.7),
                       model.next_char_probs("abc fed"))
    assert got["own"][0] == got["blas"][0]
    np.testing.assert_allclose(got["own"][1], got["blas"][1], rtol=1e-9)


def test_a_call_on_blas_gives_the_user_their_blas_threads_back(engine_setting):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _cells.BLAS_THREADS_HELD:
        pytest.skip(f"scipy's BLAS here has no known thread controls ({_cells.BLAS_LIBRARY})")
    engine_setting("blas")
    model = rnncore.CharRNN(rnncore.Vocab(list("ab")), 16, seed=0)
    with threadpoolctl.threadpool_limits(limits=3, user_api="blas"):
        assert _cells.blas_threads() == 3
        model.loss_and_grads(np.array([0, 1, 0]), np.array([1, 0, 1]))
        model.sample(5, seed=0)
        assert _cells.blas_threads() == 3


def test_the_version_report_names_the_engines_and_the_blas(engine_setting):
    engine_setting("blas")
    line = version_report().splitlines()[3]
    assert line == (f"products: blas (every product on BLAS); BLAS: scipy's "
                    f"{_cells.BLAS_LIBRARY}" + ("" if _cells.BLAS_THREADS_HELD
                                                else ", its threads not held"))
    engine_setting("auto")
    rule = engines.describe_auto(_cells.MICROKERNEL)
    assert version_report().splitlines()[3].startswith(f"products: auto ({rule}); BLAS: ")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RNNCORE_GEMM") not in (None, ""),
                    reason="this run already forces one engine")
@pytest.mark.parametrize("engine", engines.ENGINES)
def test_the_kernel_suite_passes_on_each_engine(engine):
    """Reference comparisons, the same bits on 1-4 threads, the PyTorch oracle, generation
    and resume, with every product on `engine`."""
    suite = ["test_kernels.py", "test_cells.py", "test_threads.py", "test_products.py",
             "../sample/test_beam.py", "../reference/test_reference.py",
             "../export/test_export.py", "../run/test_resume.py", "../predict/test_predict.py"]
    # a BLAS sums a row differently by the size of the product: alone and in a batch
    # differ in the last bits (rnncore.engines), so that promise is the micro-kernel's
    skip = "not every_micro_kernel and not in_c" + (
        " and not alone_and_in_a_batch" if engine == "blas" else "")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suite, "-m",
         "not slow", "-k", skip],
        cwd=HERE, env=dict(os.environ, RNNCORE_GEMM=engine), capture_output=True, text=True,
        timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
