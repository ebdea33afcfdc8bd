# cython: language_level=3
"""rnncore's own matrix product (csrc/gemm.h): C (m, nv·lanes) = A (m, K) · P (K, nv·lanes)
over a packed panel P, A read in place through (row, k) strides, C's vectors stored at
C + r·ldc + v·ldv.  The fused wrappers below are the one place the dtype picks the C
function."""

cdef extern from "gemm.h" nogil:
    enum: RNNCORE_GEMM_NV_MAX
    const char *rnncore_gemm_isa()
    int rnncore_gemm_use(const char *name)
    const char *rnncore_gemm_setting_error()
    int rnncore_gemm_lanes_f()
    int rnncore_gemm_lanes_d()
    int rnncore_gemm_mr_f(int nv)
    int rnncore_gemm_mr_d(int nv)
    void rnncore_gemm_f(long m, int nv, long K, const float *A, long a_rs, long a_ks,
                        const float *P, long ldp, float *C, long ldc, long ldv, int accumulate)
    void rnncore_gemm_d(long m, int nv, long K, const double *A, long a_rs, long a_ks,
                        const double *P, long ldp, double *C, long ldc, long ldv,
                        int accumulate)
    long rnncore_tile_work_f(long m, long n)
    long rnncore_tile_work_d(long m, long n)
    void rnncore_tile_product_f(long m, long n, long K, const float *A, long a_rs, long a_ks,
                                const float *P, long ldp, long panel_stride, float *C,
                                long ldc, const float *bias, float *work)
    void rnncore_tile_product_d(long m, long n, long K, const double *A, long a_rs,
                                long a_ks, const double *P, long ldp, long panel_stride,
                                double *C, long ldc, const double *bias, double *work)
    double rnncore_fma_loop(int is_double, long iters)
    void rnncore_pack_f(float *P, long ldp, const float *S, long s_k, long s_n, long K,
                        long n, long width)
    void rnncore_pack_d(double *P, long ldp, const double *S, long s_k, long s_n, long K,
                        long n, long width)

from cython cimport floating


cdef inline void gemm(Py_ssize_t m, int nv, Py_ssize_t K, const floating *A,
                      Py_ssize_t a_rs, Py_ssize_t a_ks, const floating *P, Py_ssize_t ldp,
                      floating *C, Py_ssize_t ldc, Py_ssize_t ldv) noexcept nogil:
    """C (m, nv vectors) = A (m, K) · P (K, nv vectors); see csrc/gemm.h."""
    if floating is double:
        rnncore_gemm_d(m, nv, K, A, a_rs, a_ks, P, ldp, C, ldc, ldv, 0)
    else:
        rnncore_gemm_f(m, nv, K, A, a_rs, a_ks, P, ldp, C, ldc, ldv, 0)


cdef inline void tile_product(Py_ssize_t m, Py_ssize_t n, Py_ssize_t K, const floating *A,
                              Py_ssize_t a_rs, Py_ssize_t a_ks, const floating *P,
                              Py_ssize_t ldp, Py_ssize_t panel_stride, floating *C,
                              Py_ssize_t ldc, const floating *bias,
                              floating *work) noexcept nogil:
    """C (m, n) = A (m, K) · P (K, n) [+ bias], the whole of one tile on packed copies;
    see csrc/gemm.h."""
    if floating is double:
        rnncore_tile_product_d(m, n, K, A, a_rs, a_ks, P, ldp, panel_stride, C, ldc, bias,
                               work)
    else:
        rnncore_tile_product_f(m, n, K, A, a_rs, a_ks, P, ldp, panel_stride, C, ldc, bias,
                               work)


cdef inline void pack(floating *P, Py_ssize_t ldp, const floating *S, Py_ssize_t s_k,
                      Py_ssize_t s_n, Py_ssize_t K, Py_ssize_t n,
                      Py_ssize_t width) noexcept nogil:
    """P[k, c] = S[k·s_k + c·s_n] for c < n, 0 up to width (k < K), P's row stride ldp."""
    if floating is double:
        rnncore_pack_d(P, ldp, S, s_k, s_n, K, n, width)
    else:
        rnncore_pack_f(P, ldp, S, s_k, s_n, K, n, width)
