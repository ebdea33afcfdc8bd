"""Every bad argument to the kernels' doorway raises a clear error, never a crash."""
import numpy as np
import pytest

import rnncore
from rnncore import _kernels, doorway

from support import random_model


@pytest.fixture
def model():
    return random_model(6, 4, seed=0)


def test_inputs_transposed_to_time_major_are_caught_through_the_state(model):
    x = np.zeros((3, 2), int)  # a (T,B) array where (B,T) was meant
    with pytest.raises(ValueError, match=r"state has shape \(2, 4\), expected \(3, 4\)"):
        model.loss_and_grads(x, x, state=np.zeros((2, 4)))


def test_float_indices_are_rejected(model):
    with pytest.raises(TypeError, match="inputs must be an integer array"):
        model.loss_and_grads(np.array([0.0, 1.0]), np.array([1, 2]))
    with pytest.raises(TypeError, match="targets must be an integer array"):
        model.loss_and_grads(np.array([0, 1]), np.array([1.0, 2.0]))


@pytest.mark.parametrize("bad", [6, -1, 100])
def test_index_out_of_range_is_rejected(model, bad):
    with pytest.raises(ValueError, match=rf"inputs\[0, 1\] = {bad} is not a character index in \[0, 6\)"):
        model.loss_and_grads([0, bad], [1, 2])
    with pytest.raises(ValueError, match=r"targets\[0, 0\]"):
        model.loss_and_grads([0, 1], [bad, 2])


def test_empty_window_is_rejected(model):
    with pytest.raises(ValueError, match="window is empty"):
        model.loss_and_grads(np.zeros(0, int), np.zeros(0, int))
    with pytest.raises(ValueError, match="window is empty"):
        model.loss_and_grads(np.zeros((0, 3), int), np.zeros((0, 3), int))


def test_mismatched_targets_and_bad_rank(model):
    with pytest.raises(ValueError, match="targets has shape"):
        model.loss_and_grads([0, 1, 2], [1, 2])
    with pytest.raises(ValueError, match=r"must be \(T,\) or \(B, T\)"):
        model.loss_and_grads(np.zeros((1, 2, 3), int), np.zeros((1, 2, 3), int))


def test_state_of_any_layout_is_accepted(model):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, (3, 5)), rng.integers(0, 6, (3, 5))
    h0 = rng.uniform(-1, 1, (3, 4))
    expected = model.loss_and_grads(x, y, h0)[0]
    fortran = np.asfortranarray(h0)
    strided = np.zeros((3, 8))
    strided[:, ::2] = h0
    assert model.loss_and_grads(x, y, fortran)[0] == expected
    assert model.loss_and_grads(x, y, strided[:, ::2])[0] == expected
    assert model.loss_and_grads(x, y, h0.astype(np.float32))[0] == pytest.approx(expected, rel=1e-6)


def test_bad_state(model):
    with pytest.raises(ValueError, match=r"state has shape \(5,\), expected \(4,\)"):
        model.loss_and_grads([0], [1], state=np.zeros(5))
    with pytest.raises(TypeError, match="state must be a float array"):
        model.loss_and_grads([0], [1], state=np.array(["a"] * 4))


def test_bad_clip(model):
    for clip in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="clip must be"):
            model.loss_and_grads([0], [1], clip=clip)


def test_replaced_parameter_of_wrong_dtype_or_shape(model):
    model.params["Whh"] = model.params["Whh"].astype(np.float32)
    with pytest.raises(TypeError, match=r"params\['Whh'\] has dtype float32"):
        model.loss_and_grads([0], [1])
    model.params["Whh"] = np.zeros((4, 5))
    with pytest.raises(ValueError, match=r"params\['Whh'\] has shape \(4, 5\)"):
        model.loss_and_grads([0], [1])
    for not_c_contiguous in (np.asfortranarray(np.arange(16.0).reshape(4, 4)),
                             np.ones((4, 8))[:, ::2]):
        model.params["Whh"] = not_c_contiguous
        with pytest.raises(ValueError, match="C-contiguous"):
            model.loss_and_grads([0], [1])


def test_bad_model_arguments():
    vocab = rnncore.Vocab.from_text("ab")
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        rnncore.CharRNN(vocab, 0)
    with pytest.raises(ValueError, match="hidden_size"):
        rnncore.CharRNN(vocab, 2.5)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        rnncore.CharRNN(vocab, 4, dtype="float16")
    with pytest.raises(TypeError, match="vocab must be"):
        rnncore.CharRNN("ab", 4)


def test_what_the_compiled_entry_points_trust_is_checked_before_them():
    # the kernels trust their arguments (a RNNCORE_CYTHON_DEBUG=1 build checks them again,
    # with these same checks): each is refused in the Python layer, by rnncore.doorway
    m = random_model(5, 3)
    p = tuple(m.params.values())
    kernel = m._kernel(1, 2)
    x = np.zeros((1, 2), np.intp)
    with pytest.raises(ValueError, match=r"parameter Why must be a C-contiguous float64 "
                                         r"array of shape \(5, 3\)"):
        doorway.check_bound(kernel, p[:2] + (np.zeros((4, 3)),) + p[3:], "parameter", False)
    frozen = tuple(a.copy() for a in p)
    for a in frozen:
        a.flags.writeable = False
    doorway.check_bound(kernel, frozen, "parameter", False)  # read-only parameters are fine
    with pytest.raises(ValueError, match="gradient Wxh must be a writable"):
        doorway.check_bound(kernel, frozen, "gradient", True)
    with pytest.raises(ValueError, match=r"inputs has shape \(1, 3\), this kernel runs "
                                         r"\(1, 2\) windows"):
        doorway.check_run(kernel, np.zeros((1, 3), np.intp), x, 0.0)
    with pytest.raises(ValueError, match=r"targets\[0, 1\] = 5 is not a character index"):
        doorway.check_run(kernel, x, np.array([[0, 5]]), 0.0)
    with pytest.raises(ValueError, match=r"targets\[0, 1\] = 5 is not a character index"):
        m.loss_and_grads(x, np.array([[0, 5]]))
    with pytest.raises(ValueError, match="grad has 3 elements"):
        _kernels.sgd_update(np.zeros(4), np.zeros(3), 0.1)


def test_indices_are_checked_exactly_in_any_layout():
    rng = np.random.default_rng(1)
    for dtype in (np.intp, np.int32, np.int64, np.uint8):
        a = rng.integers(0, 7, (3, 4, 5)).astype(dtype)
        doorway.check_indices(a, 7, "a")
        a[1, 2, 3] = 7
        a[2, 0, 0] = 9
        with pytest.raises(ValueError, match=r"^a\[1, 2, 3\] = 7 is not a character index "
                                             r"in \[0, 7\)$"):
            doorway.check_indices(a, 7, "a")
        with pytest.raises(ValueError, match=r"^a\[1, 2, 3\] = 7"):
            doorway.check_indices(np.asfortranarray(a), 7, "a")
    negative = np.zeros(6, np.intp)
    negative[4] = -3
    with pytest.raises(ValueError, match=r"^chars\[4\] = -3 is not a character index"):
        doorway.check_indices(negative, 5, "chars")
    doorway.check_indices(np.zeros((0, 3), np.intp), 5, "chars")
