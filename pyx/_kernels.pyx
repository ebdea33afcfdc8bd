# cython: language_level=3
"""Compiled optimizer updates, in place on one flattened parameter and its gradient.

The window's forward and backward passes and generation, for every cell, are in
pyx/_cells.pyx; the BLAS wrappers and vector maths every kernel file shares are in
pyx/kernel_maths.pxd.  Each update is one validating ``def`` and one ``nogil`` loop.

weight_decay (every update): decoupled weight decay, AdamW's (Loshchilov & Hutter 2019),
applied first as PyTorch's AdamW does: param ← param · (1 - lr·weight_decay), then the
update from the gradient alone.  0 leaves the parameter as the plain rule does.
"""
from cython cimport floating
from libc.math cimport sqrt

from kernel_maths cimport (exp_shift_sum, max_of, sigmoid_inplace, tanh_inplace,
                           vecmath_choice)

#: Which maths tanh/exp/sigmoid run on in this process, e.g. "libmvec (tanh, exp), AVX-512
#: loops", and whether that is glibc's vector maths (libmvec) at all: chosen at import
MATHS, USES_LIBMVEC = vecmath_choice(False)


# ---------------------------------------------------------------------------------------
# Optimizer updates, in place on one flattened parameter and its gradient.
# ---------------------------------------------------------------------------------------

cdef int check_same_length(Py_ssize_t n, str name, Py_ssize_t m) except -1:
    if m != n:
        raise ValueError(f"{name} has {m} elements, the parameter has {n}")
    return 0


cdef double keep_factor(double lr, double weight_decay) except? -1.0:
    """1 - lr·weight_decay: what decoupled weight decay leaves of a parameter (as in
    PyTorch's AdamW, not checked against lr: an absurd rate diverges, and the run says so)."""
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    return 1 - lr * weight_decay


cdef inline void decay_weights(floating *param, Py_ssize_t n, double keep) noexcept nogil:
    cdef Py_ssize_t i
    if keep != 1:
        for i in range(n):
            param[i] = <floating> (param[i] * keep)


def sgd_update(floating[::1] param, const floating[::1] grad, double lr,
               double weight_decay=0.0):
    """param ← param·(1 - lr·weight_decay) - lr · grad"""
    cdef Py_ssize_t i, n = param.shape[0]
    check_same_length(n, "grad", grad.shape[0])
    cdef double keep = keep_factor(lr, weight_decay)
    if n == 0:
        return
    with nogil:
        decay_weights(&param[0], n, keep)
        for i in range(n):
            param[i] -= <floating> (lr * grad[i])


def adagrad_update(floating[::1] param, const floating[::1] grad, floating[::1] mem,
                   double lr, double eps, double weight_decay=0.0):
    """mem += grad²;  param -= lr · grad / sqrt(mem + eps)   (min-char-rnn's form)"""
    cdef Py_ssize_t i, n = param.shape[0]
    check_same_length(n, "grad", grad.shape[0])
    check_same_length(n, "mem", mem.shape[0])
    cdef double keep = keep_factor(lr, weight_decay)
    if n == 0:
        return
    with nogil:
        decay_weights(&param[0], n, keep)
        for i in range(n):
            mem[i] += grad[i] * grad[i]
            param[i] -= <floating> (lr * grad[i] / sqrt(mem[i] + eps))


def rmsprop_update(floating[::1] param, const floating[::1] grad, floating[::1] mean_sq,
                   double lr, double decay, double eps, double weight_decay=0.0):
    """mean_sq = decay·mean_sq + (1-decay)·grad²;  param -= lr · grad / (sqrt(mean_sq) + eps)
    (char-rnn's form)"""
    cdef Py_ssize_t i, n = param.shape[0]
    check_same_length(n, "grad", grad.shape[0])
    check_same_length(n, "mean_sq", mean_sq.shape[0])
    cdef double keep = keep_factor(lr, weight_decay)
    if n == 0:
        return
    with nogil:
        decay_weights(&param[0], n, keep)
        for i in range(n):
            mean_sq[i] = <floating> (decay * mean_sq[i] + (1 - decay) * grad[i] * grad[i])
            param[i] -= <floating> (lr * grad[i] / (sqrt(mean_sq[i]) + eps))


def adam_update(floating[::1] param, const floating[::1] grad, floating[::1] m,
                floating[::1] v, double lr, double beta1, double beta2, double eps,
                long step, double weight_decay=0.0):
    """Adam (Kingma & Ba) with bias correction; step counts from 1.  With weight_decay:
    AdamW (the decay decoupled from the moments, PyTorch's torch.optim.AdamW)."""
    cdef Py_ssize_t i, n = param.shape[0]
    check_same_length(n, "grad", grad.shape[0])
    check_same_length(n, "m", m.shape[0])
    check_same_length(n, "v", v.shape[0])
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    cdef double c1 = 1 - beta1 ** step, c2 = 1 - beta2 ** step
    cdef double keep = keep_factor(lr, weight_decay)
    if n == 0:
        return
    with nogil:
        decay_weights(&param[0], n, keep)
        for i in range(n):
            m[i] = <floating> (beta1 * m[i] + (1 - beta1) * grad[i])
            v[i] = <floating> (beta2 * v[i] + (1 - beta2) * grad[i] * grad[i])
            param[i] -= <floating> (lr * (m[i] / c1) / (sqrt(v[i] / c2) + eps))


def ema_update(floating[::1] average, const floating[::1] param, double decay):
    """average ← average + (1 - decay)·(param - average): one step of an exponential
    moving average of the parameters (PyTorch's swa_utils EMA, a lerp by 1 - decay)."""
    cdef Py_ssize_t i, n = average.shape[0]
    check_same_length(n, "param", param.shape[0])
    if not (0 < decay <= 1):
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    cdef double w = 1 - decay
    with nogil:
        for i in range(n):
            average[i] = <floating> (average[i] + w * (param[i] - average[i]))


def elementwise(str function, floating[::1] x):
    """Apply one of vecmath.h's in-place functions to x, for the tests of every maths path:
    "tanh", "sigmoid", or "exp" (x = exp(x - max x); returns Σ x).  Returns None or the sum."""
    cdef Py_ssize_t n = x.shape[0]
    cdef int which = ("tanh", "sigmoid", "exp").index(function) if function in (
        "tanh", "sigmoid", "exp") else -1
    if which < 0:
        raise ValueError(f"unknown elementwise function {function!r}: tanh, sigmoid or exp")
    if n == 0:
        raise ValueError("elementwise: x is empty")
    cdef double total = 0.0
    with nogil:
        if which == 0:
            tanh_inplace(&x[0], n)
        elif which == 1:
            sigmoid_inplace(&x[0], n)
        else:
            total = exp_shift_sum(&x[0], n, max_of(&x[0], n))
    return total if which == 2 else None
