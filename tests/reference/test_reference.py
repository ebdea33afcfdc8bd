"""The numpy reference of every cell and depth against calculus, and against PyTorch."""
import numpy as np
import pytest

from rnncore import layout, reference

from support import require


def random_params(cell, V, H, L, seed, scale=0.5, dtype=np.float64):
    """O(scale) weights (recurrent ones scaled by 1/sqrt(H) to keep the recurrence
    contracting) and nonzero biases, so every term of the gradient is exercised."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in layout.param_shapes(cell, V, H, L).items():
        p = rng.standard_normal(shape) * scale
        if name.startswith("Whh"):
            p /= max(1.0, np.sqrt(H) * scale / 0.9)
        params[name] = p.astype(dtype)
    return params


def random_masks(L, T, B, H, p, seed):
    rng = np.random.default_rng(seed)
    return (rng.random((L, T, B, H)) >= p) / (1 - p)


def random_state(cell, L, B, H, seed):
    rows = layout.state_rows(cell, L)
    state = np.random.default_rng(seed).uniform(-0.8, 0.8, (rows, B, H))
    return state[0] if rows == 1 else state


def numeric_grads(params, inputs, targets, state, masks, eps=1e-6):
    T = np.shape(inputs)[-1]
    out = {}
    for name, p in params.items():
        numeric = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = reference.loss_and_grads(params, inputs, targets, state, None, masks)[0]
            p[i] = old - eps
            down = reference.loss_and_grads(params, inputs, targets, state, None, masks)[0]
            p[i] = old
            numeric[i] = T * (up - down) / (2 * eps)   # the gradient is of T · mean loss
        out[name] = numeric
    return out


def assert_close(a, b, rtol, name):
    scale = max(np.abs(b).max(), 1e-30)
    err = np.abs(np.asarray(a) - b).max() / scale
    assert err <= rtol, f"{name}: relative error {err:.3g} > {rtol}"


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("L", [1, 2, 3])
def test_reference_gradients_match_finite_differences(cell, L):
    V, H, B, T = 5, 3, 2, 4
    params = random_params(cell, V, H, L, seed=L)
    rng = np.random.default_rng(10 + L)
    inputs, targets = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    state = random_state(cell, L, B, H, seed=3)
    masks = random_masks(L, T, B, H, 0.3, seed=4)
    _, grads, _ = reference.loss_and_grads(params, inputs, targets, state, None, masks)
    assert list(grads) == list(params)
    numeric = numeric_grads(params, inputs, targets, state, masks)
    for name in params:
        assert grads[name].shape == params[name].shape
        assert_close(grads[name], numeric[name], 1e-6, f"{cell} L={L} {name}")


@pytest.mark.parametrize("cell", layout.CELLS)
def test_state_carries_across_windows(cell):
    # two windows with the state carried equal one long window
    V, H, L, B = 6, 4, 2, 3
    params = random_params(cell, V, H, L, seed=1)
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, V, (B, 9)), rng.integers(0, V, (B, 9))
    loss_all, _, state_all = reference.loss_and_grads(params, x, y)
    loss_a, _, state_a = reference.loss_and_grads(params, x[:, :4], y[:, :4])
    loss_b, _, state_b = reference.loss_and_grads(params, x[:, 4:], y[:, 4:], state_a)
    assert (4 * loss_a + 5 * loss_b) / 9 == pytest.approx(loss_all, rel=1e-13)
    np.testing.assert_allclose(state_b, state_all, rtol=1e-13)
    assert state_all.shape == (layout.state_rows(cell, L), B, H)


def test_state_shapes():
    x = np.zeros((3, 2), np.intp)
    for cell, L, batched, single in [("rnn", 1, (3, 4), (4,)), ("gru", 1, (3, 4), (4,)),
                                     ("lstm", 1, (2, 3, 4), (2, 4)),
                                     ("rnn", 2, (2, 3, 4), (2, 4)),
                                     ("lstm", 3, (6, 3, 4), (6, 4))]:
        params = random_params(cell, 5, 4, L, seed=0)
        assert reference.loss_and_grads(params, x, x)[2].shape == batched
        assert reference.loss_and_grads(params, x[0], x[0])[2].shape == single


def test_single_layer_rnn_names_are_the_seeds():
    assert tuple(layout.param_shapes("rnn", 7, 5)) == layout.PARAM_NAMES
    assert layout.param_shapes("gru", 7, 5, 2) == {
        "Wxh": (15, 7), "Whh": (15, 5), "Wxh_l1": (15, 5), "Whh_l1": (15, 5), "Why": (7, 5),
        "bh": (15,), "bhn": (5,), "bh_l1": (15,), "bhn_l1": (5,), "by": (7,)}
    for cell in layout.CELLS:
        for L in (1, 3):
            params = random_params(cell, 4, 2, L, seed=0)
            assert layout.infer_config(params) == (cell, L)


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("L", [1, 2])
def test_reference_matches_torch_autograd(cell, L):
    torch = require("torch")
    V, H, B, T = 7, 5, 3, 6
    params = random_params(cell, V, H, L, seed=5)
    rng = np.random.default_rng(6)
    inputs, targets = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    state = random_state(cell, L, B, H, seed=7)
    masks = random_masks(L, T, B, H, 0.25, seed=8)
    loss, grads, state_out = reference.loss_and_grads(params, inputs, targets, state, None,
                                                      masks)

    # PyTorch, one layer module at a time so the dropout masks can be ours
    module_class = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    st = torch.tensor(np.asarray(state).reshape(-1, B, H))
    x = torch.nn.functional.one_hot(torch.tensor(inputs.T), V).double()   # (T, B, V)
    finals = []
    for k in range(L):
        s = layout.layer_suffix(k)
        layer = module_class(x.shape[2], H, dtype=torch.float64)
        bias_hh = torch.zeros_like(tp["bh" + s])
        if cell == "gru":
            bias_hh = torch.cat([torch.zeros(2 * H, dtype=torch.float64), tp["bhn" + s]])
        weights = {"weight_ih_l0": tp["Wxh" + s], "weight_hh_l0": tp["Whh" + s],
                   "bias_ih_l0": tp["bh" + s], "bias_hh_l0": bias_hh}
        h0 = st[k:k + 1] if cell != "lstm" else (st[k:k + 1], st[L + k:L + k + 1])
        out, final = torch.func.functional_call(layer, weights, (x, h0))
        finals.append(final)
        x = out * torch.tensor(masks[k])
    logits = x @ tp["Why"].T + tp["by"]                                    # (T, B, V)
    ce = torch.nn.functional.cross_entropy(logits.reshape(T * B, V),
                                           torch.tensor(targets.T.reshape(-1)),
                                           reduction="sum")
    (ce / B).backward()
    assert loss == pytest.approx(ce.item() / (B * T), rel=1e-12)
    for name in params:
        assert_close(grads[name], tp[name].grad.numpy(), 1e-10, f"{cell} L={L} {name}")
    if cell == "lstm":
        torch_state = torch.cat([torch.cat([f[0] for f in finals]),
                                 torch.cat([f[1] for f in finals])])
    else:
        torch_state = torch.cat(finals)
    np.testing.assert_allclose(np.asarray(state_out).reshape(-1, B, H),
                               torch_state.detach().numpy(), rtol=1e-12)
