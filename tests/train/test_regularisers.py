"""The regularisers of issue 27: weight drop (DropConnect on Whh, one mask per window),
locked (variational) dropout, decoupled weight decay and the averaged weights, each
against its numpy twin in rnncore.reference and, where PyTorch has the same operation,
against PyTorch."""
import numpy as np
import pytest

import rnncore
from rnncore import _kernels, layout, reference
from rnncore.optim import WeightAverage, make_optimizer
from rnncore.threads import num_threads

from support import assert_close, gated_model, gradient_floor, require


def window(model, B, T, seed):
    rng = np.random.default_rng(seed)
    V = model.n_vocab
    return rng, rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("mode", ["step", "locked"])
def test_weight_drop_matches_the_reference(cell, dtype, mode):
    model = gated_model(cell, 2, 9, 7, dtype, seed=3, scale=0.6)
    model.dropout, model.dropout_mode, model.weight_drop = 0.3, mode, 0.4
    rng, inputs, targets = window(model, 3, 6, 5)
    state = rng.uniform(-1, 1, model.state_shape(3)).astype(dtype)
    masks = model.dropout_masks(rng, 3, 6)
    weight_masks = model.weight_drop_masks(rng)
    assert set(weight_masks) == {"Whh", "Whh_l1"}
    for m in weight_masks.values():          # scaled DropConnect masks: 0 or 1/(1-p)
        assert set(np.unique(m).tolist()) == {0.0, float(np.asarray(1 / 0.6, dtype))}
    loss, grads, last = model.loss_and_grads(inputs, targets, state, clip=0.5,
                                             dropout_masks=masks, weight_masks=weight_masks)
    p64 = {k: v.astype(np.float64) for k, v in model.params.items()}
    ref_loss, ref_grads, ref_last = reference.loss_and_grads(
        p64, inputs, targets, state.astype(np.float64), 0.5, masks.astype(np.float64),
        {k: m.astype(np.float64) for k, m in weight_masks.items()})
    rtol = 1e-10 if dtype == "float64" else 2e-4
    assert loss == pytest.approx(ref_loss, rel=rtol)
    assert_close(last, ref_last, rtol, "state")
    for name in ref_grads:
        assert_close(grads[name], ref_grads[name], rtol, name,
                     gradient_floor(ref_grads, dtype))
    # the mask made a difference, and the model's own Whh is untouched by it
    plain_loss, _, _ = model.loss_and_grads(inputs, targets, state, dropout_masks=masks)
    assert plain_loss != loss
    assert np.array_equal(model.params["Whh"], p64["Whh"].astype(dtype))
    # and evaluation after a dropped window runs on the real weights again
    assert model.loss(inputs, targets, state)[0] == pytest.approx(
        reference.loss_and_grads(p64, inputs, targets, state.astype(np.float64))[0],
        rel=rtol)


def test_locked_masks_repeat_one_mask_over_the_window_and_step_masks_do_not():
    model = gated_model("gru", 2, 5, 6, dropout=0.5)
    model.dropout_mode = "locked"
    masks = model.dropout_masks(np.random.default_rng(0), 4, 9)
    assert masks.shape == (2, 9, 4, 6)
    assert all(np.array_equal(masks[:, t], masks[:, 0]) for t in range(9))
    assert 0 < (masks == 0).mean() < 1
    model.dropout_mode = "step"
    step = model.dropout_masks(np.random.default_rng(0), 4, 9)
    assert not np.array_equal(step[:, 1], step[:, 0])
    # the step mode draws what it always drew (checkpoints of earlier runs resume alike)
    keep = np.random.default_rng(0).random((2, 9, 4, 6)) >= 0.5
    assert np.array_equal(step, keep / 0.5)


def torch_window(torch, model, inputs, targets, state, masks, weight_masks):
    """Loss and gradients of PyTorch's nn.RNN/LSTM/GRU layers (one per layer, so the
    output masks apply between them) run on raw ⊙ M through autograd."""
    from rnncore.export import torch_tensors
    F = torch.nn.functional
    V, H, L = model.n_vocab, model.hidden_size, model.num_layers
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[model.cell]
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in torch_tensors(model).items()}
    rows = layout.state_rows(model.cell, L)
    h0 = torch.tensor(state).reshape(rows, -1, H)
    out = F.one_hot(torch.as_tensor(inputs), V).double()
    for k in range(L):
        layer = module(V if k == 0 else H, H, batch_first=True, dtype=torch.float64)
        s = "" if k == 0 else f"_l{k}"
        weights = {"weight_ih_l0": tensors[f"rnn.weight_ih_l{k}"],
                   "weight_hh_l0": tensors[f"rnn.weight_hh_l{k}"]
                   * torch.tensor(weight_masks["Whh" + s]),
                   "bias_ih_l0": tensors[f"rnn.bias_ih_l{k}"],
                   "bias_hh_l0": tensors[f"rnn.bias_hh_l{k}"]}
        hk = (h0[k:k + 1], h0[L + k:L + k + 1]) if model.cell == "lstm" else h0[k:k + 1]
        out, _ = torch.func.functional_call(layer, weights, (out, hk))
        out = out * torch.tensor(masks[k]).transpose(0, 1)
    logits = out @ tensors["decoder.weight"].T + tensors["decoder.bias"]
    loss = F.cross_entropy(logits.reshape(-1, V), torch.as_tensor(targets).reshape(-1))
    (loss * inputs.shape[1]).backward()          # Σ_t mean_b, as rnncore
    return loss.item(), {k: t.grad.numpy() for k, t in tensors.items()}


@pytest.mark.parametrize("cell", layout.CELLS)
def test_weight_drop_and_locked_dropout_match_pytorch_autograd(cell):
    torch = require("torch")
    from rnncore.export import torch_tensors
    model = gated_model(cell, 2, 8, 6, seed=2, scale=0.6)
    model.dropout, model.dropout_mode, model.weight_drop = 0.25, "locked", 0.5
    rng, inputs, targets = window(model, 3, 7, 1)
    state = rng.uniform(-1, 1, model.state_shape(3))
    masks, weight_masks = model.dropout_masks(rng, 3, 7), model.weight_drop_masks(rng)
    loss, grads, _ = model.loss_and_grads(inputs, targets, state, clip=0,
                                          dropout_masks=masks, weight_masks=weight_masks)
    t_loss, t_grads = torch_window(torch, model, inputs, targets, state, masks, weight_masks)
    assert loss == pytest.approx(t_loss, rel=1e-12)
    ours = model.with_params(grads)
    for name, g in torch_tensors(ours).items():
        if name.startswith("rnn.bias_hh"):        # rnncore has one bias (gru: bhn's block)
            continue
        np.testing.assert_allclose(g, t_grads[name], rtol=1e-10, atol=1e-12, err_msg=name)


def train_few(threads, dtype="float64", **model_kw):
    text = "the quick brown fox jumps over the lazy dog; " * 30
    model = rnncore.CharRNN(rnncore.Vocab.from_text(text), 24, dtype=dtype, seed=1,
                            cell="lstm", num_layers=2, **model_kw)
    trainer = rnncore.Trainer(model, text, seq_length=9, batch_size=5, optimizer="adam",
                              learning_rate=0.01, weight_decay=0.1, average=0.9,
                              average_start=3)
    with num_threads(threads):
        trainer.train(8)
    return trainer


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_regularised_step_is_the_same_bits_on_any_thread_count(dtype):
    runs = [train_few(n, dtype, dropout=0.3, dropout_mode="locked", weight_drop=0.4)
            for n in (1, 2, 3)]
    for other in runs[1:]:
        for name, p in runs[0].model.params.items():
            assert np.array_equal(p, other.model.params[name]), name
            assert np.array_equal(runs[0].average.arrays[name], other.average.arrays[name])


# ---- decoupled weight decay ------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam"])
def test_weight_decay_is_decoupled_and_spares_the_biases(name, dtype):
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abcdefg"), 5, dtype=dtype, seed=0)
    plain = rnncore.CharRNN(model.vocab, 5, dtype=dtype, seed=0)
    rng = np.random.default_rng(1)
    for p in model.params.values():
        p[...] = rng.normal(size=p.shape)
    plain.params = {k: v.copy() for k, v in model.params.items()}
    grads = {k: rng.normal(size=v.shape).astype(dtype) for k, v in model.params.items()}
    make_optimizer(name, model, weight_decay=0.5).step(grads, 0.1)
    before = {k: v.copy() for k, v in plain.params.items()}
    for k in plain.params:                        # decay first, then the plain update
        if k.startswith("W"):
            plain.params[k] *= plain.params[k].dtype.type(1 - 0.1 * 0.5)
    make_optimizer(name, plain).step(grads, 0.1)
    rtol = 1e-15 if dtype == "float64" else 1e-6
    for k in model.params:
        np.testing.assert_allclose(model.params[k], plain.params[k], rtol=rtol, atol=rtol)
    assert not np.allclose(model.params["Whh"], before["Whh"])   # moved
    with pytest.raises(ValueError, match="weight_decay"):
        _kernels.sgd_update(model.params["by"].copy(), grads["by"], 0.1, -1.0)


def test_adamw_matches_the_reference_and_pytorch():
    torch = require("torch")
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abcdefgh"), 6, seed=0, cell="gru")
    rng = np.random.default_rng(2)
    start = {k: v.copy() for k, v in model.params.items()}
    grads_seq = [{k: rng.normal(size=v.shape) for k, v in start.items()} for _ in range(5)]
    opt = make_optimizer("adam", model, weight_decay=0.3)
    ref = {k: v.copy() for k, v in start.items()}
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in start.items()}
    tensors = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in start.items()}
    torch_opt = torch.optim.AdamW(
        [{"params": [t for k, t in tensors.items() if k.startswith("W")],
          "weight_decay": 0.3},
         {"params": [t for k, t in tensors.items() if not k.startswith("W")],
          "weight_decay": 0.0}], lr=0.05, betas=(0.9, 0.999), eps=1e-8)
    for step, grads in enumerate(grads_seq, start=1):
        opt.step(grads, 0.05)
        for k in ref:
            reference.adamw_step(ref[k], grads[k], *moments[k], 0.05, step,
                                 0.3 if k.startswith("W") else 0.0)
            tensors[k].grad = torch.tensor(grads[k])
        torch_opt.step()
    for k in start:
        np.testing.assert_allclose(model.params[k], ref[k], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(model.params[k], tensors[k].detach().numpy(), rtol=1e-12,
                                   atol=1e-14)


# ---- the averaged weights --------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_average_starts_as_a_copy_and_then_follows_the_ema(dtype):
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abc"), 4, dtype=dtype, seed=0)
    average = WeightAverage(model, 0.75, start=2)
    rng = np.random.default_rng(0)
    expected = None
    for step in range(1, 6):
        for p in model.params.values():
            p[...] = rng.normal(size=p.shape)
        average.update(step)
        if step < 2:
            assert average.arrays is None
            continue
        if expected is None:
            expected = {k: v.copy() for k, v in model.params.items()}
        else:
            for k in expected:
                reference.ema_step(expected[k], model.params[k], 0.75)
        for k in expected:
            np.testing.assert_allclose(average.arrays[k], expected[k],
                                       rtol=1e-15 if dtype == "float64" else 1e-6)
    # the averaged model shares the arrays, and evaluates them, not the latest ones
    averaged = model.with_params(average.arrays)
    x = np.array([[0, 1, 2, 1]])
    assert averaged.loss(x, x)[0] != model.loss(x, x)[0]


def test_the_ema_kernel_checks_its_arguments():
    a = np.zeros(3)
    with pytest.raises(ValueError, match="decay"):
        _kernels.ema_update(a, np.ones(3), 0.0)
    with pytest.raises(ValueError, match="elements"):
        _kernels.ema_update(a, np.ones(4), 0.5)
    _kernels.ema_update(a, np.ones(3), 0.75)
    assert np.array_equal(a, np.full(3, 0.25))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weight_drop_masks_come_from_float32_uniforms_in_layer_order(dtype):
    # rng.random(dtype=float32), kept where >= p (p rounded to float32), scaled 1/(1-p)
    # in the model's dtype: the draw a resume repeats and every MPI rank makes alike
    model = gated_model("lstm", 2, 7, 40, dtype, seed=0)      # Whh: 160 x 40
    model.weight_drop = 0.2
    masks = model.weight_drop_masks(np.random.default_rng(11))
    rng = np.random.default_rng(11)
    for name in ("Whh", "Whh_l1"):
        expected = (rng.random(model.params[name].shape, dtype=np.float32)
                    >= np.float32(0.2)) * np.asarray(1 / 0.8, dtype)
        assert masks[name].dtype == np.dtype(dtype)
        assert np.array_equal(masks[name], expected), name
        assert abs((masks[name] == 0).mean() - 0.2) < 0.025       # 5 sigma
