/* The cells' elementwise maths on one tile of units (pyx/step.pxd): everything of a step
 * but the product and tanh/sigmoid (pyx/vecmath.h), as loops over the tile's B rows and
 * nu units, vectorised along the units and compiled for SSE2, AVX2 and AVX-512 like
 * vecmath.h's loops (the Cython code around them is built for the baseline CPU only).
 *
 * A tile's gates live apart in the scratch Z: gate g of row b, unit j at Z[g·seg + b·UW + j]
 * (seg >= B·UW).  Rows of the model's own buffers are H (or G·H) values apart.  An input row
 * is X + r·ldx with r = idx[b·istride] (layer 0: a character's row of Wxhᵀ + bh) or r = b
 * (idx NULL: the input projection of a deeper layer).  Units j >= nu of a tile are padding
 * and are left alone.  Equations are PyTorch's (rnncore/reference.py is the twin).
 */
#ifndef RNNCORE_CELLMATH_H
#define RNNCORE_CELLMATH_H

#include <stddef.h>
#include "vecmath.h"

#define RNNCORE_ROW(X, ldx, idx, istride, b) \
    ((X) + ((idx) ? (idx)[(b) * (istride)] : (b)) * (ldx))

#define RNNCORE_CELLMATH(REAL, S)                                                          \
                                                                                           \
/* Z_g += x_g for the first G gates (x_g: the input row's gate g block, H apart) */        \
RNNCORE_CLONES static void rnncore_add_input_##S(                                           \
        ptrdiff_t G, ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, REAL *Z,       \
        const REAL *X, ptrdiff_t ldx, ptrdiff_t H, const ptrdiff_t *idx,                    \
        ptrdiff_t istride) {                                                                \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        const REAL *x = RNNCORE_ROW(X, ldx, idx, istride, b);                               \
        for (ptrdiff_t g = 0; g < G; g++) {                                                 \
            REAL *restrict z = Z + g * seg + b * UW;                                        \
            const REAL *restrict xg = x + g * H;                                            \
            RNNCORE_SIMD                                                                    \
            for (ptrdiff_t j = 0; j < nu; j++) z[j] += xg[j];                               \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                           \
/* out rows (H apart) = Z's gate block g rows, for g < G (gates: G·H apart by gate) */     \
RNNCORE_CLONES static void rnncore_store_gates_##S(                                         \
        ptrdiff_t G, ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, const REAL *Z, \
        REAL *out, ptrdiff_t ld, ptrdiff_t H) {                                             \
    for (ptrdiff_t b = 0; b < B; b++)                                                       \
        for (ptrdiff_t g = 0; g < G; g++) {                                                 \
            const REAL *restrict z = Z + g * seg + b * UW;                                  \
            REAL *restrict o = out + b * ld + g * H;                                        \
            RNNCORE_SIMD                                                                    \
            for (ptrdiff_t j = 0; j < nu; j++) o[j] = z[j];                                 \
        }                                                                                   \
}                                                                                           \
                                                                                           \
/* h rows (H apart) = T rows (UW apart); with a mask, y = mask ⊙ h as well */              \
RNNCORE_CLONES static void rnncore_store_h_##S(                                             \
        ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, const REAL *T, REAL *h, ptrdiff_t H,       \
        const REAL *mask, REAL *y) {                                                        \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        const REAL *restrict t = T + b * UW;                                                \
        REAL *restrict o = h + b * H;                                                       \
        RNNCORE_SIMD                                                                        \
        for (ptrdiff_t j = 0; j < nu; j++) o[j] = t[j];                                     \
        if (mask) {                                                                         \
            const REAL *restrict m = mask + b * H;                                          \
            REAL *restrict yo = y + b * H;                                                  \
            RNNCORE_SIMD                                                                    \
            for (ptrdiff_t j = 0; j < nu; j++) yo[j] = t[j] * m[j];                         \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                           \
/* lstm, after the activations: c' = f⊙c + i⊙g into c_out and Tc (tanh(Tc) comes next) */  \
RNNCORE_CLONES static void rnncore_lstm_c_##S(                                              \
        ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, const REAL *Z,              \
        const REAL *c_prev, REAL *c_out, ptrdiff_t H, REAL *Tc) {                           \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        const REAL *restrict i = Z + b * UW, *restrict f = i + seg, *restrict g = i + 2 * seg;\
        const REAL *cp = c_prev + b * H;                                                    \
        REAL *co = c_out + b * H;                                                           \
        REAL *restrict tc = Tc + b * UW;                                                    \
        /* cp and co may be one array (generation): each element is read, then written */  \
        RNNCORE_SIMD                                                                        \
        for (ptrdiff_t j = 0; j < nu; j++) {                                                \
            REAL c = f[j] * cp[j] + i[j] * g[j];                                            \
            co[j] = c;                                                                      \
            tc[j] = c;                                                                      \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                           \
/* lstm: Tc = o ⊙ tanh(c') in place (h'), its tanh(c') kept in aux first */                 \
RNNCORE_CLONES static void rnncore_lstm_h_##S(                                              \
        ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, const REAL *Z, REAL *Tc,    \
        REAL *aux, ptrdiff_t H) {                                                           \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        const REAL *restrict o = Z + 3 * seg + b * UW;                                      \
        REAL *restrict t = Tc + b * UW;                                                     \
        if (aux) {                                                                          \
            REAL *restrict a = aux + b * H;                                                 \
            RNNCORE_SIMD                                                                    \
            for (ptrdiff_t j = 0; j < nu; j++) a[j] = t[j];                                 \
        }                                                                                   \
        RNNCORE_SIMD                                                                        \
        for (ptrdiff_t j = 0; j < nu; j++) t[j] = o[j] * t[j];                              \
    }                                                                                       \
}                                                                                           \
                                                                                           \
/* gru, before the activations: Z_r += x_r, Z_u += x_u, Tc = Z_n + bhn (Whh_n·h + bhn) */   \
RNNCORE_CLONES static void rnncore_gru_in_##S(                                              \
        ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, REAL *Z, const REAL *X,     \
        ptrdiff_t ldx, ptrdiff_t H, const ptrdiff_t *idx, ptrdiff_t istride,                \
        const REAL *bhn, REAL *Tc) {                                                        \
    rnncore_add_input_##S(2, B, nu, UW, seg, Z, X, ldx, H, idx, istride);                   \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        const REAL *restrict zn = Z + 2 * seg + b * UW;                                     \
        REAL *restrict t = Tc + b * UW;                                                     \
        RNNCORE_SIMD                                                                        \
        for (ptrdiff_t j = 0; j < nu; j++) t[j] = zn[j] + bhn[j];                           \
    }                                                                                       \
}                                                                                           \
                                                                                           \
/* gru, after sigmoid(r, u): Z_n = x_n + r ⊙ Tc (n's pre-activation; tanh comes next) */   \
RNNCORE_CLONES static void rnncore_gru_n_##S(                                               \
        ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, REAL *Z, const REAL *X,     \
        ptrdiff_t ldx, ptrdiff_t H, const ptrdiff_t *idx, ptrdiff_t istride,                \
        const REAL *Tc) {                                                                   \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        const REAL *restrict x = RNNCORE_ROW(X, ldx, idx, istride, b) + 2 * H;              \
        const REAL *restrict r = Z + b * UW;                                                \
        const REAL *restrict t = Tc + b * UW;                                               \
        REAL *restrict zn = Z + 2 * seg + b * UW;                                           \
        RNNCORE_SIMD                                                                        \
        for (ptrdiff_t j = 0; j < nu; j++) zn[j] = x[j] + r[j] * t[j];                      \
    }                                                                                       \
}                                                                                           \
                                                                                           \
/* gru: h' = (1-u)⊙n + u⊙h into Z_u's place (the gates are stored first) */                \
RNNCORE_CLONES static void rnncore_gru_h_##S(                                               \
        ptrdiff_t B, ptrdiff_t nu, ptrdiff_t UW, ptrdiff_t seg, REAL *Z, const REAL *h_prev,\
        ptrdiff_t H, REAL *out) {                                                           \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        const REAL *restrict u = Z + seg + b * UW, *restrict n = Z + 2 * seg + b * UW;      \
        const REAL *restrict hp = h_prev + b * H;                                           \
        REAL *restrict o = out + b * UW;                                                    \
        RNNCORE_SIMD                                                                        \
        for (ptrdiff_t j = 0; j < nu; j++) o[j] = (1 - u[j]) * n[j] + u[j] * hp[j];         \
    }                                                                                       \
}                                                                                           \
                                                                                           \
/* dh rows (NC apart, in place) += dH (· mask) [+ carry]: dloss/dh_t of the tile's units */ \
RNNCORE_CLONES static void rnncore_dh_##S(                                                  \
        ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, REAL *dh, const REAL *dH,                  \
        const REAL *mask, const REAL *carry, ptrdiff_t H) {                                 \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        REAL *restrict d = dh + b * NC;                                                     \
        const REAL *restrict a = dH + b * H;                                                \
        if (carry) {                                                                        \
            const REAL *restrict c = carry + b * H;                                         \
            RNNCORE_SIMD                                                                    \
            for (ptrdiff_t j = 0; j < nu; j++) d[j] = d[j] + c[j];                          \
        }                                                                                   \
        if (mask) {                                                                         \
            const REAL *restrict m = mask + b * H;                                          \
            RNNCORE_SIMD                                                                    \
            for (ptrdiff_t j = 0; j < nu; j++) d[j] = a[j] * m[j] + d[j];                   \
        } else {                                                                            \
            RNNCORE_SIMD                                                                    \
            for (ptrdiff_t j = 0; j < nu; j++) d[j] = a[j] + d[j];                          \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                           \
/* rnn backward: da = (1 - h²) ⊙ dh, into dH's place */                                    \
RNNCORE_CLONES static void rnncore_rnn_backward_##S(                                        \
        ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, const REAL *dh, const REAL *h, REAL *da,   \
        ptrdiff_t H) {                                                                      \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        const REAL *restrict d = dh + b * NC, *restrict z = h + b * H;                      \
        REAL *restrict o = da + b * H;                                                      \
        RNNCORE_SIMD                                                                        \
        for (ptrdiff_t j = 0; j < nu; j++) o[j] = (1 - z[j] * z[j]) * d[j];                 \
    }                                                                                       \
}                                                                                           \
                                                                                           \
/* lstm backward: the gradients at i f g o (rows G·H apart) and dloss/dc carried to t-1 */ \
RNNCORE_CLONES static void rnncore_lstm_backward_##S(                                       \
        ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, const REAL *dh, const REAL *gates,         \
        const REAL *tanh_c, const REAL *c_prev, REAL *dc_next, int has_next, REAL *da,      \
        ptrdiff_t H) {                                                                      \
    ptrdiff_t GH = 4 * H;                                                                   \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        const REAL *restrict d = dh + b * NC, *restrict z = gates + b * GH;                 \
        const REAL *restrict tc = tanh_c + b * H, *restrict cp = c_prev + b * H;            \
        REAL *restrict dcn = dc_next + b * H;                                               \
        REAL *restrict dz = da + b * GH;                                                    \
        RNNCORE_SIMD                                                                        \
        for (ptrdiff_t j = 0; j < nu; j++) {                                                \
            REAL gi = z[j], gf = z[H + j], gg = z[2 * H + j], go = z[3 * H + j], t = tc[j]; \
            REAL dc = d[j] * go * (1 - t * t);                                              \
            if (has_next) dc = dcn[j] + dc;                                                 \
            dz[j] = dc * gg * gi * (1 - gi);                                                \
            dz[H + j] = dc * cp[j] * gf * (1 - gf);                                         \
            dz[2 * H + j] = dc * gi * (1 - gg * gg);                                        \
            dz[3 * H + j] = d[j] * t * go * (1 - go);                                       \
            dcn[j] = dc * gf;                                                               \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                           \
/* gru backward: the gradients at the input-side (da) and hidden-side (da_h) pre-          \
 * activations, and the carry u ⊙ dh that reaches h_{t-1} past Whh */                       \
RNNCORE_CLONES static void rnncore_gru_backward_##S(                                        \
        ptrdiff_t B, ptrdiff_t nu, ptrdiff_t NC, const REAL *dh, const REAL *gates,         \
        const REAL *hn, const REAL *h_prev, REAL *carry, REAL *da, REAL *da_h,              \
        ptrdiff_t H) {                                                                      \
    ptrdiff_t GH = 3 * H;                                                                   \
    for (ptrdiff_t b = 0; b < B; b++) {                                                     \
        const REAL *restrict d = dh + b * NC, *restrict z = gates + b * GH;                 \
        const REAL *restrict a = hn + b * H, *restrict hp = h_prev + b * H;                 \
        REAL *restrict cr = carry + b * H, *restrict dz = da + b * GH;                      \
        REAL *restrict dzh = da_h + b * GH;                                                 \
        RNNCORE_SIMD                                                                        \
        for (ptrdiff_t j = 0; j < nu; j++) {                                                \
            REAL r = z[j], u = z[H + j], n = z[2 * H + j];                                  \
            REAL dan = d[j] * (1 - u) * (1 - n * n);                                        \
            REAL dz_u = d[j] * (hp[j] - n) * u * (1 - u);                                   \
            REAL dz_r = dan * a[j] * r * (1 - r);                                           \
            dz[j] = dz_r;                                                                   \
            dz[H + j] = dz_u;                                                               \
            dz[2 * H + j] = dan;                                                            \
            dzh[j] = dz_r;                                                                  \
            dzh[H + j] = dz_u;                                                              \
            dzh[2 * H + j] = dan * r;                                                       \
            cr[j] = d[j] * u;                                                               \
        }                                                                                   \
    }                                                                                       \
}

RNNCORE_CELLMATH(float, f)
RNNCORE_CELLMATH(double, d)

/* The bias gradients and the one-hot input's weight gradient: sums over a window's rows
 * (rows in order, so each output is the same sum on any thread), a block of columns a
 * call: each row's block is read whole (consecutive values), not one cache line a row. */
#define RNNCORE_ROWSUMS(REAL, S)                                                           \
                                                                                           \
/* out[c] = Σ_r a[r·ld + c] for c < n */                                                   \
RNNCORE_CLONES static void rnncore_column_sums_##S(                                         \
        REAL *restrict out, const REAL *restrict a, ptrdiff_t rows, ptrdiff_t ld,           \
        ptrdiff_t n) {                                                                      \
    for (ptrdiff_t c = 0; c < n; c++) out[c] = 0;                                           \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                  \
        const REAL *restrict row = a + r * ld;                                              \
        RNNCORE_SIMD                                                                        \
        for (ptrdiff_t c = 0; c < n; c++) out[c] += row[c];                                 \
    }                                                                                       \
}                                                                                           \
                                                                                           \
/* acc[x·n + c] = Σ over the rows r whose input x = idx(r) of a[r·ld + c], c < n: the    \
 * gradient of a one-hot input's weights, per input symbol (acc: V·n values, zeroed here;  \
 * row r's symbol is idx[(r % B)·T + r / B], the window's (B, T) inputs, rows time-major) */\
RNNCORE_CLONES static void rnncore_scatter_rows_##S(                                        \
        REAL *restrict acc, ptrdiff_t V, const REAL *restrict a, ptrdiff_t rows,            \
        ptrdiff_t ld, ptrdiff_t n, const Py_ssize_t *idx, ptrdiff_t B, ptrdiff_t T) {       \
    for (ptrdiff_t c = 0; c < V * n; c++) acc[c] = 0;                                       \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                  \
        REAL *restrict o = acc + idx[(r % B) * T + r / B] * n;                              \
        const REAL *restrict row = a + r * ld;                                              \
        RNNCORE_SIMD                                                                        \
        for (ptrdiff_t c = 0; c < n; c++) o[c] += row[c];                                   \
    }                                                                                       \
}

RNNCORE_ROWSUMS(float, f)
RNNCORE_ROWSUMS(double, d)

#endif
