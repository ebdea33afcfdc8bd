"""The vector maths of pyx/vecmath.h on every path it can take at run time: libmvec where
the running glibc has it, scalar libm (RNNCORE_VECMATH=scalar), and exp alone from libmvec
as on glibc 2.22-2.34 (RNNCORE_VECMATH=no-tanh)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore import _cells, _kernels
from rnncore.about import version_report

TESTS = Path(__file__).resolve().parent

# every length up to 3 vectors of 16 floats hits each vector width and every remainder
LENGTHS = list(range(1, 50))


def values(n, dtype):
    rng = np.random.default_rng(n)
    x = rng.uniform(-30, 30, n)
    x[: n // 3] = rng.uniform(-2, 2, n // 3)  # where tanh and sigmoid bend
    return x.astype(dtype)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 2e-15), (np.float32, 2e-6)])
def test_tanh_sigmoid_and_exp_match_numpy_at_every_length(dtype, rtol):
    for n in LENGTHS:
        x = values(n, dtype)
        t = x.copy()
        _kernels.elementwise("tanh", t)
        np.testing.assert_allclose(t, np.tanh(x.astype(np.float64)), rtol=rtol, atol=1e-30,
                                   err_msg=f"tanh, n={n}")
        s = x.copy()
        _kernels.elementwise("sigmoid", s)
        np.testing.assert_allclose(s, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=rtol,
                                   atol=1e-30, err_msg=f"sigmoid, n={n}")
        e = x.copy()
        total = _kernels.elementwise("exp", e)
        want = np.exp((x - x.max()).astype(np.float64))  # the difference in x's dtype
        np.testing.assert_allclose(e, want, rtol=rtol, atol=1e-30, err_msg=f"exp, n={n}")
        assert total == pytest.approx(want.sum(), rel=rtol * 4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values(dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e4, -1e4, 20.0, -20.0], dtype)
    t = x.copy()
    _kernels.elementwise("tanh", t)
    np.testing.assert_array_equal(t, np.tanh(x))  # tanh is exactly ±1 from |x| ≈ 19 on
    assert np.signbit(t[1])
    s = x.copy()
    _kernels.elementwise("sigmoid", s)
    np.testing.assert_array_equal(s[[0, 2, 3, 5, 6]], [0.5, 1.0, 0.0, 1.0, 0.0])
    assert np.isnan(s[4])


def test_elementwise_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown elementwise function 'cosh'"):
        _kernels.elementwise("cosh", np.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        _kernels.elementwise("tanh", np.zeros(0))


def test_the_maths_path_is_reported():
    report = version_report()
    assert _cells.MATHS in report and f"micro-kernel, {rnncore.get_num_threads()} thread" in report
    assert _kernels.MATHS == _cells.MATHS  # each module chooses for itself, alike
    setting = os.environ.get("RNNCORE_VECMATH", "")
    if _kernels.MATHS.startswith("scalar libm (built without libmvec"):
        assert not _kernels.USES_LIBMVEC  # RNNCORE_LIBMVEC=0 or not x86-64 glibc: one path
    elif setting == "scalar":
        assert _kernels.MATHS.startswith("scalar libm") and not _kernels.USES_LIBMVEC
    elif setting == "no-tanh":
        assert _kernels.MATHS.startswith("libmvec (exp) and scalar libm (tanh")


def run_tests_with(setting, *paths):
    env = dict(os.environ, RNNCORE_VECMATH=setting)
    # a broken fallback could loop forever: the timeout turns that into a failure
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths],
        cwd=TESTS, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RNNCORE_VECMATH") not in (None, ""),
                    reason="this run already forces one maths path")
@pytest.mark.parametrize("setting", ["scalar", "no-tanh"])
def test_kernel_tests_pass_on_the_other_maths_paths(setting):
    result = run_tests_with(setting, "test_kernels.py", "test_cells.py", "test_vecmath.py")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_an_unknown_setting_is_one_warning_and_the_scalar_path(tmp_path):
    env = dict(os.environ, RNNCORE_VECMATH="avx9")
    # cwd: not a source folder, whose unbuilt rnncore/ the child would import instead
    result = subprocess.run([sys.executable, "-m", "rnncore", "--version"], env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "rnncore: warning: RNNCORE_VECMATH=avx9 is not understood: use libmvec, no-tanh or "
        "scalar; using scalar libm"]
    assert "maths: scalar libm (RNNCORE_VECMATH not understood)" in result.stdout
