# cython: language_level=3
"""Shared by every kernel file: BLAS on row-major arrays and vectorised elementwise maths.

Everything here is an inline ``noexcept nogil`` function or an extern declaration, so this
file needs no module of its own; a kernel file ``cimport``s what it uses.

BLAS on row-major arrays.  numpy's C order is row-major; BLAS is column-major.  A
row-major M×N matrix stored with leading dimension ld is, read by BLAS, the column-major
N×M matrix that is its transpose, with the same ld.  Hence:
  gemm:  C = op(A)·op(B)  (row-major)   <=>   Cᵀ = op(B)ᵀ·op(A)ᵀ  (column-major):
         call BLAS with A and B swapped and M and N swapped; the trans flags stay.
  gemv:  y = op(A)·x with A row-major M×N  <=>  y = op'(Aᵀ)·x with Aᵀ column-major N×M:
         call BLAS with the trans flag flipped and (m, n) = (N, M).
This is the only place column-major is mentioned.
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv

ctypedef int blas_int  # scipy's cython_blas takes C int sizes (LP64)

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


cdef inline void gemm_rm(bint trans_a, bint trans_b, blas_int M, blas_int N, blas_int K,
                         floating alpha, const floating *A, blas_int lda,
                         const floating *B, blas_int ldb,
                         floating beta, floating *C, blas_int ldc) noexcept nogil:
    """C (M,N) = alpha · op(A) (M,K) · op(B) (K,N) + beta · C, all row-major."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is double:
        dgemm(&tb, &ta, &N, &M, &K, &alpha, <double *> B, &ldb, <double *> A, &lda,
              &beta, C, &ldc)
    else:
        sgemm(&tb, &ta, &N, &M, &K, &alpha, <float *> B, &ldb, <float *> A, &lda,
              &beta, C, &ldc)


cdef inline void gemv_rm(bint trans, blas_int M, blas_int N, floating alpha,
                         const floating *A, blas_int lda, const floating *x,
                         floating beta, floating *y) noexcept nogil:
    """y = alpha · op(A) · x + beta · y, A row-major (M,N), x and y contiguous."""
    cdef char t = b'N' if trans else b'T'
    cdef blas_int one = 1
    if floating is double:
        dgemv(&t, &N, &M, &alpha, <double *> A, &lda, <double *> x, &one, &beta, y, &one)
    else:
        sgemv(&t, &N, &M, &alpha, <float *> A, &lda, <float *> x, &one, &beta, y, &one)


cdef inline void rows_times_wt(Py_ssize_t B, Py_ssize_t N, Py_ssize_t K,
                               const floating *X, const floating *W, floating beta,
                               floating *Y) noexcept nogil:
    """Y (B,N) = X (B,K) · Wᵀ + beta · Y, W (N,K): a gemv when B == 1, else a GEMM."""
    if B == 1:
        gemv_rm(False, <blas_int> N, <blas_int> K, <floating> 1.0, W, <blas_int> K, X,
                beta, Y)
    else:
        gemm_rm(False, True, <blas_int> B, <blas_int> N, <blas_int> K, <floating> 1.0,
                X, <blas_int> K, W, <blas_int> K, beta, Y, <blas_int> N)


cdef inline void rows_times_w(Py_ssize_t B, Py_ssize_t N, Py_ssize_t K,
                              const floating *X, const floating *W, floating beta,
                              floating *Y) noexcept nogil:
    """Y (B,K) = X (B,N) · W + beta · Y, W (N,K): a gemv when B == 1, else a GEMM."""
    if B == 1:
        gemv_rm(True, <blas_int> N, <blas_int> K, <floating> 1.0, W, <blas_int> K, X,
                beta, Y)
    else:
        gemm_rm(False, False, <blas_int> B, <blas_int> K, <blas_int> N, <floating> 1.0,
                X, <blas_int> N, W, <blas_int> K, beta, Y, <blas_int> K)


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
