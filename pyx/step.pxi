# One step of one layer, as tiles, and the products over many rows: the code the window
# (window.pxi) and generation (gen_stack.pxi) share.  Included by _cells.pyx.
#
# A step's tile is a block of hidden units with all their gates.  Forward: tile u computes
# the gates of units u·UW .. u·UW+UW-1 for every stream, from the whole previous h (the only
# thing the step needs from the others), then their c and h.  Backward: tile u computes
# dloss/dh_{t} of its units (from da_{t+1} of every unit), then the gradients at the
# pre-activations of its units.  Gate maths is thread-local, in the tile, on its scratch.
# Equations, gate order and bias placement are PyTorch's (rnncore/reference.py is the numpy
# twin).
from libc.string cimport memcpy, memset

from blas cimport gemm_rm
from cellmath cimport (add_input, store_gates, store_h, lstm_c, lstm_h, gru_in, gru_n, gru_h,
                       dh, rnn_backward, lstm_backward, gru_backward)
from gemm cimport gemm, gemm_gates, tile_product
from kernel_maths cimport tanh_inplace, sigmoid_inplace

cdef inline void blas_product(const Net *n, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                              const floating *A, Py_ssize_t a_rs, Py_ssize_t a_ks,
                              const floating *B, Py_ssize_t b_rs, Py_ssize_t b_cs,
                              floating beta, floating *C, Py_ssize_t ldc) noexcept nogil:
    """gemm_rm (blas.pxd), or under n.blas_row_by_row one call per row of A and C."""
    cdef Py_ssize_t r
    if not n.blas_row_by_row:
        gemm_rm(M, N, K, A, a_rs, a_ks, B, b_rs, b_cs, beta, C, ldc)
        return
    for r in range(M):
        gemm_rm(1, N, K, A + r * a_rs, a_rs, a_ks, B, b_rs, b_cs, beta, C + r * ldc, ldc)


# ---------------------------------------------------------------------------------------
# Products over many rows (the window's, a batch of streams'): one (RT rows) × (NT columns)
# tile of C = A · P, the whole K inside the tile (csrc/gemm.h: rnncore_tile_product).
# ---------------------------------------------------------------------------------------

# B (K, N) of a product, in the form each engine reads.  The micro-kernel: panels of NC
# columns, panel p at P + p·panel_stride with row stride ldp (panel_stride = K·NC and
# ldp = NC: packed; panel_stride = NC and ldp = N's row stride: in place).  BLAS:
# B[k, n] at M + k·rs + n·cs (rs or cs is 1).
cdef struct Operand:
    const void *P
    Py_ssize_t ldp, panel_stride
    const void *M
    Py_ssize_t rs, cs


cdef inline Operand packed(const void *P, Py_ssize_t K, Py_ssize_t NC, const void *M,
                           Py_ssize_t rs, Py_ssize_t cs) noexcept nogil:
    """B as packed panels P (the micro-kernel's) and, for BLAS, the matrix it was packed
    from."""
    cdef Operand b
    b.P, b.ldp, b.panel_stride, b.M, b.rs, b.cs = P, NC, K * NC, M, rs, cs
    return b


cdef inline Operand in_place(const void *X, Py_ssize_t ld, Py_ssize_t NC) noexcept nogil:
    """B read where it is: row k at X + k·ld."""
    cdef Operand b
    b.P, b.ldp, b.panel_stride, b.M, b.rs, b.cs = X, ld, NC, X, ld, 1
    return b


cdef inline void product_tile(floating *S, const Net *n, Py_ssize_t M, Py_ssize_t N,
                              Py_ssize_t K, const floating *A, Py_ssize_t a_rs,
                              Py_ssize_t a_ks, const Operand *b, Py_ssize_t tile,
                              floating *C, Py_ssize_t ldc,
                              const floating *col_bias) noexcept nogil:
    """Tile `tile` of C (M, N) = A (M, K) · B (K, N) [+ col_bias], tiles numbered column
    block first: rows r0 .. r0+RT, columns c0 .. c0+NT.  S: the thread's scratch, of at
    least rnncore_tile_work(RT, NT) values (the micro-kernel's; BLAS needs none)."""
    cdef Py_ssize_t n_rows = ceil_div(M, n.RT), q = tile // n_rows, r
    cdef Py_ssize_t r0 = (tile % n_rows) * n.RT, c0 = q * n.NT
    cdef Py_ssize_t rows = min(n.RT, M - r0), cols = min(n.NT, N - c0)
    if n.eng_wide == OWN:
        tile_product(rows, cols, K, A + r0 * a_rs, a_rs, a_ks,
                     (<const floating *> b.P) + (c0 // n.NC) * b.panel_stride, b.ldp,
                     b.panel_stride, C + r0 * ldc + c0, ldc,
                     NULL if col_bias == NULL else col_bias + c0, S)
        return
    if col_bias != NULL:                  # C = bias, then C += A·B
        for r in range(rows):
            memcpy(C + (r0 + r) * ldc + c0, col_bias + c0, cols * sizeof(floating))
    blas_product(n, rows, cols, K, A + r0 * a_rs, a_rs, a_ks,
                 (<const floating *> b.M) + c0 * b.cs, b.rs, b.cs,
                 1 if col_bias != NULL else 0, C + r0 * ldc + c0, ldc)


cdef inline void logits_rows(floating *S, const Net *n, const floating *Y, Py_ssize_t rows,
                             Py_ssize_t ldS) noexcept nogil:
    """S (rows, V; row stride ldS >= n_vp·NC) = Y (rows, H) · Whyᵀ, without by."""
    cdef Py_ssize_t V = n.V, NC = n.NC, p
    if n.eng_logits == OWN:
        for p in range(n.n_vp):
            gemm(rows, <int> ceil_div(min(NC, V - p * NC), n.W), n.H, Y, n.H, 1,
                 (<const floating *> n.Pyt) + p * n.H * NC, NC, S + p * NC, ldS)
    else:
        blas_product(n, rows, V, n.H, Y, n.H, 1, <const floating *> n.params.Why, 1, n.H, 0,
                     S, ldS)


cdef inline Py_ssize_t product_tiles(const Net *n, Py_ssize_t M, Py_ssize_t N) noexcept nogil:
    return ceil_div(M, n.RT) * ceil_div(N, n.NT)


# ---------------------------------------------------------------------------------------
# The forward step.
# ---------------------------------------------------------------------------------------

cdef struct ForwardStep:
    Py_ssize_t k, B
    const Py_ssize_t *xs        # layer 0: stream b's character is xs[b·xs_stride]
    Py_ssize_t xs_stride
    const void *pre             # k >= 1: (B, G·H) the input projection Wxh·x + bh (rnn: may
                                # be h_out itself)
    const void *h_prev          # (B, H)
    void *h_out                 # (B, H), never h_prev (the other tiles still read it)
    const void *c_prev          # lstm (B, H); may be c_out
    void *c_out
    void *gates                 # (B, G·H) the activated gates (lstm i f g o, gru r u n), or NULL
    void *aux                   # (B, H) lstm tanh(c'), gru Whh_n·h + bhn, or NULL
    const void *mask            # (B, H) dropout masks, or NULL
    void *y_out                 # (B, H) mask ⊙ h, or NULL


cdef inline Py_ssize_t forward_scratch(const Net *n, Py_ssize_t B) noexcept nogil:
    """Scratch values one forward tile needs."""
    return 5 * padded(B * n.UW)


cdef inline void recurrent_forward(floating *S, const Net *n, Py_ssize_t k,
                                   const floating *h_prev, Py_ssize_t B, Py_ssize_t u,
                                   Py_ssize_t seg) noexcept nogil:
    """Z_g (B, UW) = h_prev (B, H) · Whh_gᵀ for the units of tile u, gate g's block at
    S + g·seg (rnn: one block, the tile's UW units)."""
    cdef Py_ssize_t H = n.H, c0 = u * n.UW, nu = min(n.UW, H - c0), g
    cdef const floating *Whh = <const floating *> n.params.Whh[k]
    if n.eng_fwd == OWN:                  # gate g's NVG vectors at S + g·seg
        gemm_gates(B, <int> n.NVF, H, h_prev, H, 1,
                   (<const floating *> n.Pf[k]) + u * H * n.NVF * n.W, n.NVF * n.W, S, n.UW,
                   seg, <int> n.NVG)
        return
    if nu < n.UW:                         # the padding units' lanes: zeros, as packed ones
        memset(S, 0, n.G * seg * sizeof(floating))
    for g in range(n.G):                  # Z_g[b, j] = Σ_h h_prev[b, h] · Whh[g·H + c0 + j, h]
        blas_product(n, B, nu, H, h_prev, H, 1, Whh + (g * H + c0) * H, 1, H, 0,
                     S + g * seg, n.UW)


cdef inline void forward_tile(floating *S, const Net *n, const ForwardStep *s,
                              Py_ssize_t u) noexcept nogil:
    """Units u·UW .. of every stream, one step: S is this thread's scratch, five blocks of
    seg values (the gates apart, then tanh(c') / Whh_n·h + bhn)."""
    cdef Py_ssize_t H = n.H, GH = n.GH, UW = n.UW, B = s.B, c0 = u * UW
    cdef Py_ssize_t nu = min(UW, H - c0), seg = padded(B * UW), o = c0
    cdef const floating *X                       # the input rows: Wxh·x + bh
    cdef const Py_ssize_t *idx = NULL
    cdef Py_ssize_t istride = 0
    cdef floating *Tc = S + 4 * seg
    cdef floating *mask_y = NULL
    cdef const floating *mask = NULL
    if s.mask != NULL:                            # dropout: y = mask ⊙ h as well
        mask = (<const floating *> s.mask) + o
        mask_y = (<floating *> s.y_out) + o
    if s.k == 0:                                 # a character's row of Wxhᵀ + bh
        X, idx, istride = (<const floating *> n.E) + c0, s.xs, s.xs_stride
    else:
        X = (<const floating *> s.pre) + c0
    # the recurrent product of the tile's units: Z_g (B, UW) = h_prev · Whh_gᵀ, gates apart
    recurrent_forward(S, n, s.k, <const floating *> s.h_prev, B, u, seg)
    if n.cell == RNN:
        add_input(1, B, nu, UW, seg, S, X, GH, H, idx, istride)
        tanh_inplace(S, seg)                                 # h' = tanh(Wxh·x + bh + Whh·h)
        store_h(B, nu, UW, S, (<floating *> s.h_out) + o, H, mask, mask_y)
        return
    if n.cell == LSTM:
        add_input(4, B, nu, UW, seg, S, X, GH, H, idx, istride)
        sigmoid_inplace(S, 2 * seg)                          # i, f
        tanh_inplace(S + 2 * seg, seg)                       # g
        sigmoid_inplace(S + 3 * seg, seg)                    # o
        if s.gates != NULL:
            store_gates(4, B, nu, UW, seg, S, (<floating *> s.gates) + o, GH, H)
        # c' = f⊙c + i⊙g;  h' = o⊙tanh(c')
        lstm_c(B, nu, UW, seg, S, (<const floating *> s.c_prev) + o,
               (<floating *> s.c_out) + o, H, Tc)
        tanh_inplace(Tc, seg)
        lstm_h(B, nu, UW, seg, S, Tc, NULL if s.aux == NULL else (<floating *> s.aux) + o, H)
        store_h(B, nu, UW, Tc, (<floating *> s.h_out) + o, H, mask, mask_y)
        return
    # gru (linear before reset): Z holds Whh_r·h, Whh_u·h, Whh_n·h
    gru_in(B, nu, UW, seg, S, X, GH, H, idx, istride, (<const floating *> n.params.bhn[s.k]) + c0, Tc)
    sigmoid_inplace(S, 2 * seg)                              # r, u
    # n = tanh(Wxh_n·x + bh_n + r⊙(Whh_n·h + bhn));  h' = (1-u)⊙n + u⊙h
    gru_n(B, nu, UW, seg, S, X, GH, H, idx, istride, Tc)
    tanh_inplace(S + 2 * seg, seg)
    if s.gates != NULL:
        store_gates(3, B, nu, UW, seg, S, (<floating *> s.gates) + o, GH, H)
    if s.aux != NULL:
        store_h(B, nu, UW, Tc, (<floating *> s.aux) + o, H, <const floating *> NULL,
                <floating *> NULL)
    gru_h(B, nu, UW, seg, S, (<const floating *> s.h_prev) + o, H, S + 3 * seg)
    store_h(B, nu, UW, S + 3 * seg, (<floating *> s.h_out) + o, H, mask, mask_y)


# ---------------------------------------------------------------------------------------
# The backward step.
# ---------------------------------------------------------------------------------------

cdef struct BackwardStep:
    Py_ssize_t k, B
    bint has_next               # t < T-1: da_h_next, dh_carry and dc_next hold step t+1's
    const void *da_h_next       # (B, G·H) step t+1's gradients at the hidden-side
                                # pre-activations (rnn: at its pre-activation)
    void *dH                    # (B, H) dloss/d(this layer's output) at t; rnn: replaced by
                                # the gradient at the pre-activation
    const void *mask            # (B, H) or NULL
    const void *gates           # (B, G·H) activated gates at t
    const void *aux             # (B, H)
    const void *c_prev          # lstm (B, H): c_{t-1}
    const void *h_prev          # gru (B, H): h_{t-1}
    const void *h               # rnn (B, H): h_t
    void *da                    # (B, G·H) gradients at the input-side pre-activations
    void *da_h                  # gru (B, G·H): at the hidden-side ones (n block: da's ⊙ r)
    void *dh_carry              # gru (B, H): u⊙dh, the part of dloss/dh_{t-1} past Whh
    void *dc_next               # lstm (B, H): dloss/dc, carried to t-1


cdef inline Py_ssize_t backward_scratch(const Net *n, Py_ssize_t B) noexcept nogil:
    return B * n.UB


cdef inline void recurrent_backward(floating *S, const Net *n, Py_ssize_t k,
                                    const floating *da_h, Py_ssize_t B,
                                    Py_ssize_t u) noexcept nogil:
    """S (B, UB) = da_h (B, G·H) · Whh[:, units of tile u]."""
    cdef Py_ssize_t H = n.H, GH = n.GH, c0 = u * n.UB
    if n.eng_bwd == OWN and n.bwd_in_place:     # Whh's rows read where they are (H % W == 0)
        gemm(B, <int> ceil_div(min(n.UB, H - c0), n.W), GH, da_h, GH, 1,
             (<const floating *> n.params.Whh[k]) + c0, H, S, n.UB)
    elif n.eng_bwd == OWN:                # UB = NC: one packed panel
        gemm(B, 4, GH, da_h, GH, 1, (<const floating *> n.Pb[k]) + u * GH * n.NC, n.NC, S,
             n.NC)
    else:
        gemm_rm(B, min(n.UB, H - c0), GH, da_h, GH, 1, (<const floating *> n.params.Whh[k]) + c0, H,
                1, 0, S, n.UB)


cdef inline void backward_tile(floating *S, const Net *n, const BackwardStep *s,
                               Py_ssize_t u) noexcept nogil:
    """Units u·UB .. of every stream, one step backwards: S (B, UB) is dloss/dh_t."""
    cdef Py_ssize_t H = n.H, UB = n.UB, B = s.B, c0 = u * UB
    cdef Py_ssize_t nu = min(UB, H - c0)
    cdef const floating *mask = NULL
    cdef const floating *carry = NULL
    if s.mask != NULL:
        mask = (<const floating *> s.mask) + c0
    if n.cell == GRU and s.has_next:
        carry = (<const floating *> s.dh_carry) + c0
    if s.has_next:
        # S (B, UB) = da_h[t+1] (B, G·H) · Whh[:, units]: the part of dloss/dh_t through Whh
        recurrent_backward(S, n, s.k, <const floating *> s.da_h_next, B, u)
    else:
        memset(S, 0, B * UB * sizeof(floating))
    # + dloss/dh_t from above (dropped out as the forward pass was), + gru's u⊙dh of t+1
    dh(B, nu, UB, S, (<floating *> s.dH) + c0, mask, carry, H)
    if n.cell == RNN:                              # da = (1 - h²) ⊙ dh, into dH's place
        rnn_backward(B, nu, UB, S, (<const floating *> s.h) + c0, (<floating *> s.dH) + c0, H)
    elif n.cell == LSTM:
        lstm_backward(B, nu, UB, S, (<const floating *> s.gates) + c0,
                      (<const floating *> s.aux) + c0, (<const floating *> s.c_prev) + c0,
                      (<floating *> s.dc_next) + c0, s.has_next, (<floating *> s.da) + c0, H)
    else:
        gru_backward(B, nu, UB, S, (<const floating *> s.gates) + c0,
                     (<const floating *> s.aux) + c0, (<const floating *> s.h_prev) + c0,
                     (<floating *> s.dh_carry) + c0, (<floating *> s.da) + c0,
                     (<floating *> s.da_h) + c0, H)
