"""Every cell and depth: the compiled kernels against the numpy reference (with dropout
masks and carried state), the model's state and mask contracts, initialisation,
generation and evaluation."""
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rnncore
from rnncore import _cells, layout, reference
from rnncore.train import evaluate

from support import assert_close, gated_model, gradient_floor


def test_cells_kernel_is_compiled():
    assert _cells.__file__.endswith((".so", ".pyd"))


@settings(max_examples=60, deadline=None)
@given(cell=st.sampled_from(layout.CELLS), L=st.integers(1, 3), V=st.integers(2, 30),
       H=st.integers(1, 24), B=st.integers(1, 4), T=st.integers(1, 12),
       dtype=st.sampled_from(["float64", "float32"]),
       clip=st.sampled_from([None, 0.05, 5.0]), p_drop=st.sampled_from([None, 0.0, 0.4]),
       with_state=st.booleans(), one_d=st.booleans(), seed=st.integers(0, 2**16))
def test_kernel_matches_reference(cell, L, V, H, B, T, dtype, clip, p_drop, with_state,
                                  one_d, seed):
    model = gated_model(cell, L, V, H, dtype, seed=seed, scale=0.6)
    rng = np.random.default_rng(seed)
    single = one_d and B == 1
    shape = (T,) if single else (B, T)
    inputs, targets = rng.integers(0, V, shape), rng.integers(0, V, shape)
    state = None
    if with_state:
        state = rng.uniform(-1, 1, model.state_shape(None if single else B)).astype(dtype)
    masks = None
    if p_drop is not None:
        model.dropout = p_drop
        masks = model.dropout_masks(rng, B, T)
        if single:
            masks = masks[:, :, 0]

    loss, grads, state_out = model.loss_and_grads(inputs, targets, state, clip=clip,
                                                  dropout_masks=masks)
    params64 = {k: v.astype(np.float64) for k, v in model.params.items()}
    ref_loss, ref_grads, ref_state = reference.loss_and_grads(
        params64, inputs, targets, None if state is None else state.astype(np.float64),
        clip, None if masks is None else masks.astype(np.float64))

    rtol = 1e-10 if dtype == "float64" else 2e-4
    assert state_out.dtype == np.dtype(dtype)
    assert state_out.shape == model.state_shape(None if single else B)
    assert abs(loss - ref_loss) <= rtol * abs(ref_loss)
    assert_close(state_out, ref_state, rtol, "state")
    assert list(grads) == list(ref_grads)
    for name in ref_grads:
        assert grads[name].dtype == np.dtype(dtype)
        assert_close(grads[name], ref_grads[name], rtol, name, gradient_floor(ref_grads, dtype))
    if clip:
        assert all(np.abs(g).max() <= np.dtype(dtype).type(clip) for g in grads.values())
    # the forward pass alone never drops: it equals the reference without masks
    fwd_loss, fwd_state = model.loss(inputs, targets, state)
    ref_fwd = reference.loss_and_grads(params64, inputs, targets,
                                       None if state is None else state.astype(np.float64))
    assert abs(fwd_loss - ref_fwd[0]) <= rtol * abs(ref_fwd[0])
    assert_close(fwd_state, ref_fwd[2], rtol, "forward-only state")


@pytest.mark.parametrize("cell", layout.CELLS)
def test_state_carries_across_windows(cell):
    model = gated_model(cell, 2, 7, 5, seed=4)
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 7, (3, 12)), rng.integers(0, 7, (3, 12))
    loss_all, state_all = model.loss(x, y)
    loss_a, state_a = model.loss(x[:, :5], y[:, :5])
    loss_b, state_b = model.loss(x[:, 5:], y[:, 5:], state_a)
    assert (5 * loss_a + 7 * loss_b) / 12 == pytest.approx(loss_all, rel=1e-13)
    np.testing.assert_allclose(state_b, state_all, rtol=1e-13)
    # and the training call returns the same state as the forward pass
    _, _, state_train = model.loss_and_grads(x, y)
    np.testing.assert_array_equal(state_train, state_all)


def test_state_shapes_and_initial_state():
    cases = {("rnn", 1): (3, 4), ("gru", 1): (3, 4), ("lstm", 1): (2, 3, 4),
             ("rnn", 2): (2, 3, 4), ("gru", 3): (3, 3, 4), ("lstm", 2): (4, 3, 4)}
    for (cell, L), shape in cases.items():
        model = gated_model(cell, L, 5, 4)
        assert model.state_shape(3) == shape
        assert model.state_shape() == shape[:-2] + (4,)
        z = model.initial_state(3)
        assert z.shape == shape and z.dtype == model.dtype and not z.any()
        x = np.zeros((3, 2), np.intp)
        assert model.loss(x, x)[1].shape == shape
        assert model.loss(x[0], x[0])[1].shape == shape[:-2] + (4,)


def test_lstm_state_rows_are_h_then_c():
    model = gated_model("lstm", 2, 6, 3, seed=2)
    x = np.array([[1, 2, 3]])
    _, state = model.loss(x, x)
    params = model.params
    # layer 0's last c and h, recomputed by hand from the equations
    h, c = np.zeros(3), np.zeros(3)
    for xi in x[0]:
        z = params["Wxh"][:, xi] + params["Whh"] @ h + params["bh"]
        i, f, g, o = np.split(z, 4)
        c = reference.sigmoid(f) * c + reference.sigmoid(i) * np.tanh(g)
        h = reference.sigmoid(o) * np.tanh(c)
    np.testing.assert_allclose(state[0, 0], h, rtol=1e-12)
    np.testing.assert_allclose(state[2, 0], c, rtol=1e-12)


def test_wrong_state_and_masks_are_named():
    model = gated_model("lstm", 2, 5, 4)
    x = np.zeros((3, 2), np.intp)
    with pytest.raises(ValueError, match=r"state has shape \(3, 4\), expected \(4, 3, 4\)"):
        model.loss(x, x, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"dropout_masks has shape \(2, 2, 4\), expected "
                                         r"\(2, 2, 3, 4\)"):
        model.loss_and_grads(x, x, dropout_masks=np.ones((2, 2, 4)))
    with pytest.raises(ValueError, match="cell must be one of rnn, lstm, gru"):
        rnncore.CharRNN(model.vocab, 4, cell="vanilla-ish")
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        rnncore.CharRNN(model.vocab, 4, num_layers=0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        rnncore.CharRNN(model.vocab, 4, dropout=1.0)


def test_dropout_masks_are_scaled_and_slice_by_stream():
    model = gated_model("gru", 2, 5, 6, dropout=0.25)
    masks = model.dropout_masks(np.random.default_rng(0), 8, 50)
    assert masks.shape == (2, 50, 8, 6) and masks.dtype == model.dtype
    assert set(np.unique(masks)) == {0.0, 1 / 0.75}
    assert abs((masks == 0).mean() - 0.25) < 0.03
    # drawn again from the same generator state: the same masks, so a rank that draws the
    # global batch's masks and keeps streams 2..4 gets what the whole batch used there
    again = model.dropout_masks(np.random.default_rng(0), 8, 50)
    np.testing.assert_array_equal(again[..., 2:5, :], masks[..., 2:5, :])


def test_dropout_changes_training_but_not_evaluation():
    model = gated_model("lstm", 2, 6, 5, seed=3)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 6, (2, 7)), rng.integers(0, 6, (2, 7))
    plain = model.loss_and_grads(x, y)[0]
    assert model.loss(x, y)[0] == plain
    ones = np.ones((2, 7, 2, 5))
    assert model.loss_and_grads(x, y, dropout_masks=ones)[0] == pytest.approx(plain, rel=1e-14)
    model.dropout = 0.5
    dropped = model.loss_and_grads(x, y, dropout_masks=model.dropout_masks(rng, 2, 7))[0]
    assert dropped != plain


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_initialisation(cell):
    vocab = rnncore.Vocab.from_text("abcdef")
    H = 16
    model = rnncore.CharRNN(vocab, H, cell=cell, num_layers=2, seed=0)
    for name, p in model.params.items():
        if name.startswith("W"):
            assert np.abs(p).max() <= 1 / np.sqrt(H) and p.std() > 0.5 / np.sqrt(3 * H)
        else:   # every bias zero, the LSTM's forget gate too (docs/init-trials.json)
            assert not p.any(), name
    again = rnncore.CharRNN(vocab, H, cell=cell, num_layers=2, seed=0, dtype="float32")
    for name in model.params:
        np.testing.assert_allclose(again.params[name], model.params[name], rtol=1e-6)


GUIDE = Path(__file__).resolve().parents[2] / "docs" / "user-guide.md"


@pytest.mark.parametrize("where", ["docs/user-guide.md", "CharRNN's docstring"])
def test_the_stated_initialisation_is_the_one_drawn(where):
    if where == "docs/user-guide.md" and not GUIDE.parent.is_dir():
        pytest.skip("no docs/ beside tests/ (a source distribution)")
    text = GUIDE.read_text(encoding="utf-8") if where == "docs/user-guide.md" else \
        rnncore.CharRNN.__doc__
    text = " ".join(text.split())
    # what the text says: the sentence about the gated cells' start
    stated = re.search(r"gated (?:models draw every weight|weights start) uniform\(±1/√H\)"
                       r".{0,60}?(?:every|Every) bias (?:is )?(zero|[-0-9.]+)", text)
    assert stated, f"{where} does not state the gated cells' initialisation"
    bias = 0.0 if stated.group(1) == "zero" else float(stated.group(1))
    end = text.find(". ", stated.end())
    sentence = text[stated.start():end if end >= 0 else None]
    assert not re.search(r"except|forget[- ]gate[^.]{0,40}\b1\.0", sentence), \
        f"{where} makes an exception the code does not: {sentence}"
    # what the code does
    vocab = rnncore.Vocab.from_text("abcdefgh")
    H = 32
    for cell in ("lstm", "gru"):
        model = rnncore.CharRNN(vocab, H, cell=cell, num_layers=2, seed=5)
        for name, p in model.params.items():
            if name.startswith("W"):
                assert np.abs(p).max() <= 1 / np.sqrt(H)
                assert abs(p.std() * np.sqrt(3 * H) - 1) < 0.05   # uniform(±1/√H): σ = 1/√(3H)
            else:
                np.testing.assert_array_equal(p, bias, err_msg=f"{cell} {name}")


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("L", [1, 2])
def test_generation_follows_the_window_forward_pass(cell, L):
    # greedy generation and the window kernel compute the same states
    model = gated_model(cell, L, 9, 7, seed=1, scale=0.8)
    prime = "!#$%&"
    ids = model.vocab.encode(prime)
    completion = model.complete(prime, 6)
    assert len(completion) == 6
    text = prime + completion
    for n in range(len(prime), len(text)):
        ids = model.vocab.encode(text[:n])
        _, state = model.loss(ids, ids)
        h_top = state if state.ndim == 1 else state[L - 1]
        logits = model.params["Why"] @ h_top + model.params["by"]
        assert text[n] == model.vocab.decode([int(np.argmax(logits))])
    # sampling is reproducible and uses only the vocabulary
    s = model.sample(200, prime, temperature=0.9, top_k=4, seed=3)
    assert s == model.sample(200, prime, temperature=0.9, top_k=4, seed=3)
    assert set(s) <= set(model.vocab.decode(range(9)))


@pytest.mark.parametrize("cell", layout.CELLS)
def test_evaluation_of_every_cell(cell):
    model = gated_model(cell, 2, 6, 5, seed=2)
    data = np.random.default_rng(0).integers(0, 6, 300)
    result = evaluate(model, data, window=64)
    ref = reference.loss_and_grads(model.params, data[:-1], data[1:])[0]
    assert result["nats_per_char"] == pytest.approx(ref, rel=1e-10)
    assert result["chars"] == 299


def test_parameters_and_gradient_arrays_replaced_or_edited_are_followed():
    # the kernel is bound to the arrays once; edits in place need nothing, replaced
    # arrays are rebound
    model = gated_model("gru", 2, 5, 4, seed=0)
    x = np.array([[0, 1, 2]])
    first = model.loss(x, x)[0]
    model.params = {k: v * 0.5 for k, v in model.params.items()}
    second = model.loss(x, x)[0]
    assert second != first
    assert second == pytest.approx(reference.loss_and_grads(model.params, x, x)[0], rel=1e-12)
    model.params["Why"][...] *= 2
    third = model.loss(x, x)[0]
    assert third == pytest.approx(reference.loss_and_grads(model.params, x, x)[0], rel=1e-12)
    out_a, out_b = model.zeros_like_params(), model.zeros_like_params()
    model.loss_and_grads(x, x, out=out_a)
    model.loss_and_grads(x, x, out=out_b)
    for name in out_a:
        np.testing.assert_array_equal(out_a[name], out_b[name])
        assert np.abs(out_b[name]).max() > 0


def test_the_kernels_gate_blocks_are_the_layouts():
    # the compiled module keeps a copy of the table (pyx/_cells.pyx): the two must agree
    assert _cells.GATES == layout.GATES
