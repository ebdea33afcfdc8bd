# cython: language_level=3
"""The BLAS engine: scipy's BLAS (scipy.linalg.cython_blas) on rnncore's row-major arrays.

Every product of the window and of generation can run on rnncore's micro-kernel
(gemm.pxd) or here, one single-threaded call per tile (csrc/blas_threads.h holds the
library at one thread through a run).  The row-major ↔ column-major swap is written once,
in gemm_rm: a row-major C (M, N) is the column-major Cᵀ (N, M) = Bᵀ · Aᵀ, so BLAS is
called with the operands swapped; an operand is described by its two strides, one of which
is 1 (which one picks 'N' or 'T').  One row (M = 1) is a matrix-vector product, gemv."""
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv

cdef extern from "blas_threads.h" nogil:
    ctypedef int (*rnncore_blas_get_threads_t)()
    ctypedef void (*rnncore_blas_set_threads_t)(int)
    void rnncore_blas_bind(rnncore_blas_get_threads_t get, rnncore_blas_set_threads_t set)
    void rnncore_blas_enter()
    void rnncore_blas_leave()
    int rnncore_blas_threads()


cdef inline void gemm_rm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const floating *A,
                         Py_ssize_t a_rs, Py_ssize_t a_ks, const floating *B,
                         Py_ssize_t b_rs, Py_ssize_t b_cs, floating beta, floating *C,
                         Py_ssize_t ldc) noexcept nogil:
    """C (M, N; row stride ldc) = A (M, K) · B (K, N) + beta·C, A[r, k] at A + r·a_rs + k·a_ks
    and B[k, n] at B + k·b_rs + n·b_cs, each with one of its strides 1."""
    cdef char ta = b'N' if b_cs == 1 else b'T'         # Bᵀ as BLAS sees B's memory
    cdef char tb = b'N' if a_ks == 1 else b'T'         # Aᵀ likewise
    cdef int m = <int> N, n = <int> M, k = <int> K, ldc_ = <int> max(ldc, N, 1)
    cdef int lda = <int> max(b_rs if b_cs == 1 else b_cs, (N if b_cs == 1 else K), 1)
    cdef int ldb = <int> max(a_rs if a_ks == 1 else a_ks, (K if a_ks == 1 else M), 1)
    cdef int inc_x, one = 1
    cdef floating alpha = 1
    if M == 0 or N == 0:
        return
    if M == 1:          # C (1, N) = a (1, K) · B: y (N) = Bᵀ a
        inc_x = <int> (a_ks if K > 1 else 1)
        if floating is double:
            if b_cs == 1:
                dgemv(b'N', &m, &k, &alpha, <double *> B, &lda, <double *> A, &inc_x,
                      &beta, C, &one)
            else:
                dgemv(b'T', &k, &m, &alpha, <double *> B, &lda, <double *> A, &inc_x,
                      &beta, C, &one)
        else:
            if b_cs == 1:
                sgemv(b'N', &m, &k, &alpha, <float *> B, &lda, <float *> A, &inc_x,
                      &beta, C, &one)
            else:
                sgemv(b'T', &k, &m, &alpha, <float *> B, &lda, <float *> A, &inc_x,
                      &beta, C, &one)
        return
    if floating is double:
        dgemm(&ta, &tb, &m, &n, &k, &alpha, <double *> B, &lda, <double *> A, &ldb, &beta, C,
              &ldc_)
    else:
        sgemm(&ta, &tb, &m, &n, &k, &alpha, <float *> B, &lda, <float *> A, &ldb, &beta, C,
              &ldc_)
