"""Each compiled optimizer update against the same update written in numpy."""
import numpy as np
import pytest

import rnncore
from rnncore.optim import make_optimizer


def numpy_updates(name, params, grads_seq, lr):
    params = {k: v.astype(np.float64) for k, v in params.items()}
    state = {k: [np.zeros_like(v), np.zeros_like(v)] for k, v in params.items()}
    for t, grads in enumerate(grads_seq, start=1):
        for k, p in params.items():
            g = grads[k].astype(np.float64)
            a, b = state[k]
            if name == "sgd":
                p -= lr * g
            elif name == "adagrad":
                a += g * g
                p -= lr * g / np.sqrt(a + 1e-8)
            elif name == "rmsprop":
                a[...] = 0.95 * a + 0.05 * g * g
                p -= lr * g / (np.sqrt(a) + 1e-8)
            elif name == "adam":
                a[...] = 0.9 * a + 0.1 * g
                b[...] = 0.999 * b + 0.001 * g * g
                p -= lr * (a / (1 - 0.9 ** t)) / (np.sqrt(b / (1 - 0.999 ** t)) + 1e-8)
    return params


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam"])
def test_update_matches_numpy(name, dtype):
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abcdefg"), 5, dtype=dtype, seed=0)
    start = {k: v.copy() for k, v in model.params.items()}
    rng = np.random.default_rng(1)
    grads_seq = [{k: rng.normal(size=v.shape).astype(dtype) for k, v in start.items()}
                 for _ in range(4)]
    opt = make_optimizer(name, model)
    for grads in grads_seq:
        opt.step(grads, 0.05)
    expected = numpy_updates(name, start, grads_seq, 0.05)
    rtol = 1e-12 if dtype == "float64" else 2e-5
    for k in start:
        np.testing.assert_allclose(model.params[k], expected[k], rtol=rtol, atol=rtol)


def test_state_round_trip():
    model = rnncore.CharRNN(rnncore.Vocab.from_text("ab"), 3, seed=0)
    opt = make_optimizer("adam", model)
    opt.step(model.zeros_like_params(), 0.1)
    arrays, meta = opt.state_dict()
    other = make_optimizer("adam", model)
    other.load_state_dict(arrays, meta)
    assert other.step_count == 1
    with pytest.raises(ValueError, match="optimizer state is for 'adam', not 'rmsprop'"):
        make_optimizer("rmsprop", model).load_state_dict(arrays, meta)
    with pytest.raises(ValueError, match="no option"):
        make_optimizer("sgd", model, momentum=0.9)
