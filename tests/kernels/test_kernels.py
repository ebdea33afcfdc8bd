"""The compiled kernels against the numpy reference, and the reference against calculus."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rnncore
from rnncore import _kernels, layout, reference

from support import assert_close, gradient_floor, random_model


def test_kernels_are_compiled():
    # a silent pure-Python fallback would be a bug: the extension must be what runs
    assert _kernels.__file__.endswith((".so", ".pyd"))


@settings(max_examples=200, deadline=None)
@given(V=st.integers(2, 80), H=st.integers(1, 128), B=st.integers(1, 5),
       T=st.integers(1, 40), dtype=st.sampled_from(["float64", "float32"]),
       clip=st.sampled_from([None, 0.05, 5.0]), with_h0=st.booleans(),
       one_d=st.booleans(), seed=st.integers(0, 2**16))
def test_kernel_matches_reference(V, H, B, T, dtype, clip, with_h0, one_d, seed):
    model = random_model(V, H, dtype, seed=seed, scale=0.3)
    rng = np.random.default_rng(seed)
    shape = (T,) if one_d and B == 1 else (B, T)
    inputs = rng.integers(0, V, shape)
    targets = rng.integers(0, V, shape)
    h0 = rng.uniform(-1, 1, shape[:-1] + (H,)).astype(dtype) if with_h0 else None

    loss, grads, h_last = model.loss_and_grads(inputs, targets, h0, clip=clip)
    params64 = {k: v.astype(np.float64) for k, v in model.params.items()}
    ref_loss, ref_grads, ref_h = reference.loss_and_grads(
        params64, inputs, targets, None if h0 is None else h0.astype(np.float64), clip=clip)

    rtol = 1e-10 if dtype == "float64" else 1e-4
    assert h_last.shape == ref_h.shape and h_last.dtype == np.dtype(dtype)
    assert abs(loss - ref_loss) <= rtol * abs(ref_loss)
    assert_close(h_last, ref_h, rtol, "h_last")
    for name in layout.PARAM_NAMES:
        assert grads[name].dtype == np.dtype(dtype) and grads[name].shape == ref_grads[name].shape
        assert_close(grads[name], ref_grads[name], rtol, name, gradient_floor(ref_grads, dtype))
    if clip:
        assert all(np.abs(g).max() <= np.dtype(dtype).type(clip) for g in grads.values())


@pytest.mark.parametrize("B", [1, 3])
def test_reference_gradients_match_finite_differences(B):
    # the gradient is of Σ_t mean_b CE = T · (mean loss)
    model = random_model(6, 5, seed=3, scale=0.4)
    rng = np.random.default_rng(4)
    T = 7
    inputs, targets = rng.integers(0, 6, (B, T)), rng.integers(0, 6, (B, T))
    h0 = rng.uniform(-0.5, 0.5, (B, 5))
    params = {k: v.copy() for k, v in model.params.items()}
    _, grads, _ = reference.loss_and_grads(params, inputs, targets, h0, clip=None)
    eps = 1e-6
    for name, p in params.items():
        numeric = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = reference.loss_and_grads(params, inputs, targets, h0, clip=None)[0]
            p[i] = old - eps
            down = reference.loss_and_grads(params, inputs, targets, h0, clip=None)[0]
            p[i] = old
            numeric[i] = T * (up - down) / (2 * eps)
        assert_close(grads[name], numeric, 1e-6, name)
    # and the kernels agree with the reference on the very same window
    model.params = params
    _, kgrads, _ = model.loss_and_grads(inputs, targets, h0, clip=None)
    for name in params:
        assert_close(kgrads[name], grads[name], 1e-12, name)


def test_min_char_rnn_gradient_at_one_stream():
    # at B=1 the gradient is min-char-rnn's: of the cross-entropy summed over the window
    model = random_model(5, 4, seed=7)
    x, y = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4])
    loss, grads, _ = model.loss_and_grads(x, y, clip=None)
    Wxh, Whh, Why, bh, by = (model.params[k] for k in layout.PARAM_NAMES)
    h, total, dby = np.zeros(4), 0.0, np.zeros(5)
    for xi, yi in zip(x, y):
        h = np.tanh(Wxh[:, xi] + Whh @ h + bh)
        z = Why @ h + by
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        total += -np.log(p[yi])
        dy = p.copy()
        dy[yi] -= 1
        dby += dy
    assert loss == pytest.approx(total / 4, rel=1e-12)
    np.testing.assert_allclose(grads["by"], dby, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_loss_is_finite_for_extreme_logits(dtype):
    model = random_model(30, 16, dtype, seed=1, scale=1.0)
    for p in model.params.values():
        p *= 1e3
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 30, (2, 12)), rng.integers(0, 30, (2, 12))
    loss, grads, h = model.loss_and_grads(x, y)
    assert np.isfinite(loss) and loss > 0
    assert all(np.isfinite(g).all() for g in grads.values())
    ref_loss = reference.loss_and_grads(model.params, x, y)[0]
    assert np.isfinite(ref_loss)
    assert loss == pytest.approx(ref_loss, rel=1e-4)


def test_forward_only_loss_matches_training_loss():
    model = random_model(9, 6, seed=2)
    rng = np.random.default_rng(1)
    x, y, h0 = rng.integers(0, 9, (2, 8)), rng.integers(0, 9, (2, 8)), rng.normal(size=(2, 6))
    loss, _, h_last = model.loss_and_grads(x, y, h0)
    loss2, h_last2 = model.loss(x, y, h0)
    assert loss2 == loss
    np.testing.assert_array_equal(h_last, h_last2)


def test_hidden_state_carries_across_windows():
    # two windows with the state carried equal one long window (forward)
    model = random_model(7, 5, seed=4)
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 7, 12), rng.integers(0, 7, 12)
    loss_all, h_all = model.loss(x, y)
    loss_a, h_a = model.loss(x[:5], y[:5])
    loss_b, h_b = model.loss(x[5:], y[5:], h_a)
    assert (5 * loss_a + 7 * loss_b) / 12 == pytest.approx(loss_all, rel=1e-13)
    np.testing.assert_allclose(h_b, h_all, rtol=1e-13)


def test_read_only_parameters_and_inputs_are_accepted():
    model = random_model(5, 4, seed=0)
    writable = random_model(5, 4, seed=0)
    x = np.array([[0, 1, 2]])
    y = np.array([[1, 2, 3]])
    for a in (*model.params.values(), x, y):
        a.flags.writeable = False
    h0 = np.zeros((1, 4))
    h0.flags.writeable = False
    loss, grads, h = model.loss_and_grads(x, y, h0)
    expected = writable.loss_and_grads(x, y, np.zeros((1, 4)))
    assert loss == expected[0]
    np.testing.assert_array_equal(h, expected[2])
    for k in grads:
        np.testing.assert_array_equal(grads[k], expected[1][k])
    assert model.complete("!", 30) == writable.complete("!", 30)
    assert model.sample(30, "!", seed=1) == writable.sample(30, "!", seed=1)


def test_workspace_is_reused_and_results_are_fresh():
    model = random_model(5, 4, seed=0)
    x, y = np.array([0, 1, 2]), np.array([1, 2, 3])
    _, g1, h1 = model.loss_and_grads(x, y)
    g1_copy = {k: v.copy() for k, v in g1.items()}
    h1_copy = h1.copy()
    model.loss_and_grads(y, x)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g1_copy[k])  # not overwritten by the next call
    np.testing.assert_array_equal(h1, h1_copy)
    assert len(model._kernels.windows) == 1


def test_out_gradients_are_written_in_place():
    model = random_model(5, 4, seed=0)
    out = model.zeros_like_params()
    _, grads, _ = model.loss_and_grads([0, 1], [1, 2], out=out)
    assert all(grads[k] is out[k] for k in out)
    assert any(np.abs(g).max() > 0 for g in out.values())


def test_float32_model_holds_float32_parameters():
    vocab = rnncore.Vocab.from_text("abc")
    m32 = rnncore.CharRNN(vocab, 8, dtype="float32", seed=1)
    m64 = rnncore.CharRNN(vocab, 8, dtype=np.float64, seed=1)
    for name in m32.params:
        assert m32.params[name].dtype == np.float32 and m32.params[name].flags.c_contiguous
        np.testing.assert_allclose(m32.params[name], m64.params[name], rtol=1e-6)
    assert np.all(m64.params["bh"] == 0) and np.all(m64.params["by"] == 0)
    assert 0.005 < m64.params["Whh"].std() < 0.02


def test_clipping_keeps_nan_so_divergence_is_not_hidden():
    model = random_model(5, 4, seed=0)
    model.params["Why"][2, 1] = np.nan
    loss, grads, _ = model.loss_and_grads([0, 1, 2], [1, 2, 3], clip=1.0)
    assert np.isnan(loss)
    assert np.isnan(grads["Why"]).any()


def test_vector_maths_is_reported():
    # on x86-64 Linux with a recent glibc the build uses libmvec; either way it is reported
    assert isinstance(_kernels.USES_LIBMVEC, bool)


def test_hypothesis_keeps_no_example_database():
    # conftest's profile: a test run writes no .hypothesis/ folder into the working directory
    assert settings().database is None
