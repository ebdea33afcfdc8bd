# cython: language_level=3
"""The cells' elementwise maths on a tile of units (csrc/cellmath.h: what each does), and
one fused wrapper per function, the one place the dtype picks the C version."""
from cython cimport floating
from libc.stddef cimport ptrdiff_t

cdef extern from "cellmath.h" nogil:
    void rnncore_add_input_f(ptrdiff_t G, ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, float *Z, const float *X, ptrdiff_t ldx, ptrdiff_t H, const Py_ssize_t *idx, ptrdiff_t istride)
    void rnncore_add_input_d(ptrdiff_t G, ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, double *Z, const double *X, ptrdiff_t ldx, ptrdiff_t H, const Py_ssize_t *idx, ptrdiff_t istride)
    void rnncore_store_gates_f(ptrdiff_t G, ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, const float *Z, float *out, ptrdiff_t ld, ptrdiff_t H)
    void rnncore_store_gates_d(ptrdiff_t G, ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, const double *Z, double *out, ptrdiff_t ld, ptrdiff_t H)
    void rnncore_store_h_f(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, const float *T, float *h, ptrdiff_t H, const float *mask, float *y)
    void rnncore_store_h_d(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, const double *T, double *h, ptrdiff_t H, const double *mask, double *y)
    void rnncore_lstm_c_f(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, const float *Z, const float *c_prev, float *c_out, ptrdiff_t H, float *Tc)
    void rnncore_lstm_c_d(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, const double *Z, const double *c_prev, double *c_out, ptrdiff_t H, double *Tc)
    void rnncore_lstm_h_f(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, const float *Z, float *Tc, float *aux, ptrdiff_t H)
    void rnncore_lstm_h_d(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, const double *Z, double *Tc, double *aux, ptrdiff_t H)
    void rnncore_gru_in_f(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, float *Z, const float *X, ptrdiff_t ldx, ptrdiff_t H, const Py_ssize_t *idx, ptrdiff_t istride, const float *bhn, float *Tc)
    void rnncore_gru_in_d(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, double *Z, const double *X, ptrdiff_t ldx, ptrdiff_t H, const Py_ssize_t *idx, ptrdiff_t istride, const double *bhn, double *Tc)
    void rnncore_gru_n_f(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, float *Z, const float *X, ptrdiff_t ldx, ptrdiff_t H, const Py_ssize_t *idx, ptrdiff_t istride, const float *Tc)
    void rnncore_gru_n_d(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, double *Z, const double *X, ptrdiff_t ldx, ptrdiff_t H, const Py_ssize_t *idx, ptrdiff_t istride, const double *Tc)
    void rnncore_gru_h_f(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, float *Z, const float *h_prev, ptrdiff_t H, float *out)
    void rnncore_gru_h_d(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, double *Z, const double *h_prev, ptrdiff_t H, double *out)
    void rnncore_dh_f(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, float *dh, const float *dH, const float *mask, const float *carry, ptrdiff_t H)
    void rnncore_dh_d(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, double *dh, const double *dH, const double *mask, const double *carry, ptrdiff_t H)
    void rnncore_rnn_backward_f(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, const float *dh, const float *h, float *da, ptrdiff_t H)
    void rnncore_rnn_backward_d(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, const double *dh, const double *h, double *da, ptrdiff_t H)
    void rnncore_lstm_backward_f(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, const float *dh, const float *gates, const float *tanh_c, const float *c_prev, float *dc_next, int has_next, float *da, ptrdiff_t H)
    void rnncore_lstm_backward_d(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, const double *dh, const double *gates, const double *tanh_c, const double *c_prev, double *dc_next, int has_next, double *da, ptrdiff_t H)
    void rnncore_gru_backward_f(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, const float *dh, const float *gates, const float *hn, const float *h_prev, float *carry, float *da, float *da_h, ptrdiff_t H)
    void rnncore_column_sums_f(float *out, const float *a, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t n)
    void rnncore_column_sums_d(double *out, const double *a, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t n)
    void rnncore_scatter_rows_f(float *acc, ptrdiff_t V, const float *a, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t n, const Py_ssize_t *idx, ptrdiff_t B, ptrdiff_t T)
    void rnncore_scatter_rows_d(double *acc, ptrdiff_t V, const double *a, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t n, const Py_ssize_t *idx, ptrdiff_t B, ptrdiff_t T)
    void rnncore_gru_backward_d(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, const double *dh, const double *gates, const double *hn, const double *h_prev, double *carry, double *da, double *da_h, ptrdiff_t H)


cdef inline void add_input(ptrdiff_t G, ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, floating *Z, const floating *X, ptrdiff_t ldx, ptrdiff_t H, const Py_ssize_t *idx, ptrdiff_t istride) noexcept nogil:
    if floating is double:
        rnncore_add_input_d(G, B, nu, UW, seg, Z, X, ldx, H, idx, istride)
    else:
        rnncore_add_input_f(G, B, nu, UW, seg, Z, X, ldx, H, idx, istride)

cdef inline void store_gates(ptrdiff_t G, ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, const floating *Z, floating *out, ptrdiff_t ld, ptrdiff_t H) noexcept nogil:
    if floating is double:
        rnncore_store_gates_d(G, B, nu, UW, seg, Z, out, ld, H)
    else:
        rnncore_store_gates_f(G, B, nu, UW, seg, Z, out, ld, H)

cdef inline void store_h(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, const floating *T, floating *h, ptrdiff_t H, const floating *mask, floating *y) noexcept nogil:
    if floating is double:
        rnncore_store_h_d(B, nu, UW, T, h, H, mask, y)
    else:
        rnncore_store_h_f(B, nu, UW, T, h, H, mask, y)

cdef inline void lstm_c(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, const floating *Z, const floating *c_prev, floating *c_out, ptrdiff_t H, floating *Tc) noexcept nogil:
    if floating is double:
        rnncore_lstm_c_d(B, nu, UW, seg, Z, c_prev, c_out, H, Tc)
    else:
        rnncore_lstm_c_f(B, nu, UW, seg, Z, c_prev, c_out, H, Tc)

cdef inline void lstm_h(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, const floating *Z, floating *Tc, floating *aux, ptrdiff_t H) noexcept nogil:
    if floating is double:
        rnncore_lstm_h_d(B, nu, UW, seg, Z, Tc, aux, H)
    else:
        rnncore_lstm_h_f(B, nu, UW, seg, Z, Tc, aux, H)

cdef inline void gru_in(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, floating *Z, const floating *X, ptrdiff_t ldx, ptrdiff_t H, const Py_ssize_t *idx, ptrdiff_t istride, const floating *bhn, floating *Tc) noexcept nogil:
    if floating is double:
        rnncore_gru_in_d(B, nu, UW, seg, Z, X, ldx, H, idx, istride, bhn, Tc)
    else:
        rnncore_gru_in_f(B, nu, UW, seg, Z, X, ldx, H, idx, istride, bhn, Tc)

cdef inline void gru_n(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, floating *Z, const floating *X, ptrdiff_t ldx, ptrdiff_t H, const Py_ssize_t *idx, ptrdiff_t istride, const floating *Tc) noexcept nogil:
    if floating is double:
        rnncore_gru_n_d(B, nu, UW, seg, Z, X, ldx, H, idx, istride, Tc)
    else:
        rnncore_gru_n_f(B, nu, UW, seg, Z, X, ldx, H, idx, istride, Tc)

cdef inline void gru_h(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, floating *Z, const floating *h_prev, ptrdiff_t H, floating *out) noexcept nogil:
    if floating is double:
        rnncore_gru_h_d(B, nu, UW, seg, Z, h_prev, H, out)
    else:
        rnncore_gru_h_f(B, nu, UW, seg, Z, h_prev, H, out)

cdef inline void dh(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, floating *dh, const floating *dH, const floating *mask, const floating *carry, ptrdiff_t H) noexcept nogil:
    if floating is double:
        rnncore_dh_d(B, nu, NC, dh, dH, mask, carry, H)
    else:
        rnncore_dh_f(B, nu, NC, dh, dH, mask, carry, H)

cdef inline void rnn_backward(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, const floating *dh, const floating *h, floating *da, ptrdiff_t H) noexcept nogil:
    if floating is double:
        rnncore_rnn_backward_d(B, nu, NC, dh, h, da, H)
    else:
        rnncore_rnn_backward_f(B, nu, NC, dh, h, da, H)

cdef inline void lstm_backward(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, const floating *dh, const floating *gates, const floating *tanh_c, const floating *c_prev, floating *dc_next, int has_next, floating *da, ptrdiff_t H) noexcept nogil:
    if floating is double:
        rnncore_lstm_backward_d(B, nu, NC, dh, gates, tanh_c, c_prev, dc_next, has_next, da, H)
    else:
        rnncore_lstm_backward_f(B, nu, NC, dh, gates, tanh_c, c_prev, dc_next, has_next, da, H)

cdef inline void gru_backward(ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, const floating *dh, const floating *gates, const floating *hn, const floating *h_prev, floating *carry, floating *da, floating *da_h, ptrdiff_t H) noexcept nogil:
    if floating is double:
        rnncore_gru_backward_d(B, nu, NC, dh, gates, hn, h_prev, carry, da, da_h, H)
    else:
        rnncore_gru_backward_f(B, nu, NC, dh, gates, hn, h_prev, carry, da, da_h, H)

cdef inline void column_sums(floating *out, const floating *a, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t n) noexcept nogil:
    if floating is double:
        rnncore_column_sums_d(out, a, rows, ld, n)
    else:
        rnncore_column_sums_f(out, a, rows, ld, n)

cdef inline void scatter_rows(floating *acc, ptrdiff_t V, const floating *a, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t n, const Py_ssize_t *idx, ptrdiff_t B, ptrdiff_t T) noexcept nogil:
    if floating is double:
        rnncore_scatter_rows_d(acc, V, a, rows, ld, n, idx, B, T)
    else:
        rnncore_scatter_rows_f(acc, V, a, rows, ld, n, idx, B, T)
