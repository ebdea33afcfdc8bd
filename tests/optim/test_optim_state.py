"""Optimizer state survives a round trip exactly; global-norm clipping touches only what
is over the limit."""
import numpy as np
import pytest

import rnncore
from rnncore.optim import clip_global_norm, make_optimizer


def random_grads(model, rng):
    return {k: rng.normal(size=v.shape).astype(v.dtype) for k, v in model.params.items()}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam"])
def test_round_trip_with_state_then_one_more_identical_step(name, dtype):
    vocab = rnncore.Vocab.from_text("abcdefg")
    first = rnncore.CharRNN(vocab, 5, dtype=dtype, seed=0)
    rng = np.random.default_rng(2)
    opt = make_optimizer(name, first)
    for _ in range(3):
        opt.step(random_grads(first, rng), 0.05)
    arrays, meta = opt.state_dict()
    if name != "sgd":
        assert all(np.abs(a).max() > 0 for a in arrays.values())  # the state is not zero
    second = rnncore.CharRNN(vocab, 5, dtype=dtype, seed=9)      # other weights...
    for k, p in first.params.items():
        second.params[k][...] = p                                  # ...overwritten
    restored = make_optimizer(name, second)
    restored.load_state_dict({k: a.copy() for k, a in arrays.items()}, dict(meta))
    assert restored.step_count == 3
    grads = random_grads(first, rng)
    opt.step(grads, 0.05)
    restored.step(grads, 0.05)
    for k in first.params:
        np.testing.assert_array_equal(second.params[k], first.params[k])
    after, _ = opt.state_dict()
    for k, a in restored.state_dict()[0].items():
        np.testing.assert_array_equal(a, after[k])


def test_loaded_state_is_a_copy_not_the_saved_arrays():
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abc"), 3, seed=0)
    opt = make_optimizer("adagrad", model)
    opt.step(random_grads(model, np.random.default_rng(0)), 0.1)
    arrays, meta = opt.state_dict()
    saved = {k: a.copy() for k, a in arrays.items()}
    other = make_optimizer("adagrad", rnncore.CharRNN(model.vocab, 3, seed=0))
    other.load_state_dict(saved, meta)
    other.step(random_grads(model, np.random.default_rng(1)), 0.1)
    for k, a in arrays.items():
        np.testing.assert_array_equal(saved[k], a)


def test_load_state_refuses_missing_or_misshapen_arrays():
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abc"), 3, seed=0)
    arrays, meta = make_optimizer("rmsprop", model).state_dict()
    missing = {k: v for k, v in arrays.items() if k != "mean_sq.Whh"}
    with pytest.raises(ValueError, match="lacks 'mean_sq.Whh'"):
        make_optimizer("rmsprop", model).load_state_dict(missing, meta)
    wrong = {**arrays, "mean_sq.bh": np.zeros(4)}
    with pytest.raises(ValueError, match="'mean_sq.bh' has shape"):
        make_optimizer("rmsprop", model).load_state_dict(wrong, meta)


def _grads(scale):
    rng = np.random.default_rng(4)
    return {"a": rng.normal(size=(3, 4)) * scale, "b": rng.normal(size=5) * scale}


def _norm(grads):
    return float(np.sqrt(sum((g ** 2).sum() for g in grads.values())))


@pytest.mark.parametrize("max_norm_over_norm", [1.0, 1.5, 100.0])
def test_clip_norm_leaves_gradients_at_or_under_the_limit_untouched(max_norm_over_norm):
    grads = _grads(0.3)
    norm = _norm(grads)
    before = {k: g.copy() for k, g in grads.items()}
    assert clip_global_norm(grads, norm * max_norm_over_norm) == pytest.approx(norm, rel=1e-12)
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_norm_scales_all_gradients_together_to_the_limit(dtype):
    grads = {k: g.astype(dtype) for k, g in _grads(2.0).items()}
    norm = _norm(grads)
    before = {k: g.copy() for k, g in grads.items()}
    returned = clip_global_norm(grads, 0.5)
    assert returned == pytest.approx(norm, rel=1e-6)   # the norm before scaling
    assert _norm(grads) == pytest.approx(0.5, rel=1e-6)
    for k in grads:  # one factor for every gradient: the direction is kept
        np.testing.assert_allclose(grads[k], before[k] * (0.5 / norm), rtol=1e-6)
        assert grads[k].dtype == dtype
