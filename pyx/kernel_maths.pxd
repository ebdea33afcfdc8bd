# cython: language_level=3
"""Shared by every kernel file: vectorised elementwise maths (pyx/vecmath.h).

Everything here is an inline ``noexcept nogil`` function or an extern declaration, so this
file needs no module of its own; a kernel file ``cimport``s what it uses.  (The products
have their own contract: gemm.pxd.)
"""
from cython cimport floating

cdef extern from "vecmath.h" nogil:
    # the run-time choice of libmvec or scalar libm, made per module (vecmath.c)
    const char *rnncore_vecmath_describe()
    int rnncore_vecmath_uses_libmvec()
    const char *rnncore_vecmath_setting_error()
    void rnncore_tanh_d(double *x, Py_ssize_t n)
    void rnncore_tanh_f(float *x, Py_ssize_t n)
    void rnncore_sigmoid_d(double *x, Py_ssize_t n)
    void rnncore_sigmoid_f(float *x, Py_ssize_t n)
    double rnncore_exp_shift_sum_d(double *x, Py_ssize_t n, double shift)
    double rnncore_exp_shift_sum_f(float *x, Py_ssize_t n, float shift)
    double rnncore_max_d(const double *x, Py_ssize_t n)
    float rnncore_max_f(const float *x, Py_ssize_t n)
    void rnncore_clip_d(double *x, Py_ssize_t n, double limit)
    void rnncore_clip_f(float *x, Py_ssize_t n, float limit)


cdef inline void tanh_inplace(floating *x, Py_ssize_t n) noexcept nogil:
    if floating is double:
        rnncore_tanh_d(x, n)
    else:
        rnncore_tanh_f(x, n)


cdef inline void sigmoid_inplace(floating *x, Py_ssize_t n) noexcept nogil:
    if floating is double:
        rnncore_sigmoid_d(x, n)
    else:
        rnncore_sigmoid_f(x, n)


cdef inline double max_of(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is double:
        return rnncore_max_d(x, n)
    else:
        return rnncore_max_f(x, n)


cdef inline double exp_shift_sum(floating *x, Py_ssize_t n, double shift) noexcept nogil:
    """x = exp(x - shift); returns Σ x."""
    if floating is double:
        return rnncore_exp_shift_sum_d(x, n, shift)
    else:
        return rnncore_exp_shift_sum_f(x, n, <float> shift)


cdef inline void clip_values(floating *a, Py_ssize_t n, floating limit) noexcept nogil:
    """a = clamp(a, -limit, limit), nan kept"""
    if floating is double:
        rnncore_clip_d(a, n, limit)
    else:
        rnncore_clip_f(a, n, limit)


cdef inline tuple vecmath_choice(bint warn):
    """(description, uses libmvec) of this module's maths path, chosen now (vecmath.c).
    An RNNCORE_VECMATH it does not understand gives the scalar path and, where `warn`
    (one module of the package), one line on stderr: a traceback at import would reach
    the user of every command."""
    if warn and rnncore_vecmath_setting_error() != NULL:
        import sys
        sys.stderr.write(f"rnncore: warning: {rnncore_vecmath_setting_error().decode()}; "
                         "using scalar libm\n")
    return rnncore_vecmath_describe().decode(), bool(rnncore_vecmath_uses_libmvec())
