# cython: language_level=3
"""One step of one layer, as tiles: the code the window (window.pxd) and generation
(generate.pxd) share, and the model as the kernels see it (Net) with its packed weights.

Sizes in comments: V vocabulary, H hidden units, B streams, G gate blocks (1 rnn, 4 lstm,
3 gru), W the micro-kernel's vector lanes (csrc/gemm.h).  Equations, gate order and bias
placement are PyTorch's (rnncore/reference.py is the numpy twin).

A step's tile is a block of hidden units with all their gates.  Forward: tile u computes
the gates of units u·UW .. u·UW+UW-1 for every stream, from the whole previous h (the only
thing the step needs from the others), then their c and h.  Backward: tile u computes
dloss/dh_{t} of its units (from da_{t+1} of every unit), then the gradients at the
pre-activations of its units.  Gate maths is thread-local, in the tile, on its scratch.

Packed weights (built once per call by pack_tile, every panel zero-padded to whole vectors):
  Pf[k]  (n_uf, H, NVF·W)  forward recurrent: panel u holds units u's rows of Whh
                           transposed, gates interleaved (i f g o: one vector each)
  Pb[k]  (n_ub, G·H, NC)   backward recurrent: Whh's columns of units u·NC .. u·NC+NC-1
  Px[k]  (n_gp, H, NC)     k >= 1: Wxhᵀ's columns, for the input projection of the window
  Pd[k]  (n_ub, G·H, NC)   k >= 1: Wxh's columns, for the gradient into the layer below
  E      (V, G·H)          layer 0: Wxhᵀ + bh, so a character's input is one row
  Pyt    (n_vp, H, NC)     Whyᵀ's columns, for the logits
  Py     (n_ub, V, NC)     Why's columns, for the gradient into the top layer
"""
from cython cimport floating
from libc.string cimport memcpy, memset

from cellmath cimport (add_input, store_gates, store_h, lstm_c, lstm_h, gru_in, gru_n, gru_h,
                       dh, rnn_backward, lstm_backward, gru_backward)
from gemm cimport gemm, pack, tile_product
from kernel_maths cimport tanh_inplace, sigmoid_inplace

cdef enum:
    RNN = 0
    LSTM = 1
    GRU = 2

cdef struct Net:
    int cell
    Py_ssize_t L, V, H, G, GH
    # tiling (fixed by the micro-kernel's lanes W; never by the number of threads)
    Py_ssize_t W                # vector lanes
    Py_ssize_t NC               # panel width of the window products: 4 vectors
    Py_ssize_t UW, NVF          # forward step tile: units, and vectors (G; rnn: 4 of units)
    Py_ssize_t n_uf             # forward step tiles: ceil(H / UW)
    Py_ssize_t n_ub             # backward step tiles, panels over H: ceil(H / NC)
    Py_ssize_t n_gp             # panels over G·H: ceil(G·H / NC)
    Py_ssize_t n_vp             # panels over V: ceil(V / NC)
    Py_ssize_t RT               # rows of a window product's tile
    Py_ssize_t NT               # columns of a window product's tile: a multiple of NC
    Py_ssize_t RTD              # rows of a decoder tile (RT, fewer for a large V)
    # per layer k: parameters and their gradients (bhn, dbhn: gru only, else NULL)
    void **Wxh
    void **Whh
    void **bh
    void **bhn
    void **dWxh
    void **dWhh
    void **dbh
    void **dbhn
    void *Why
    void *by
    void *dWhy
    void *dby
    # packed weights, see the docstring
    void **Pf
    void **Pb
    void **Px
    void **Pd
    void *E
    void *Pyt
    void *Py


cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


cdef inline Py_ssize_t padded(Py_ssize_t n) noexcept nogil:
    """n rounded up to 16 values: every vector-maths call covers whole vectors of any
    instruction set, so an element's tanh never depends on where it sits in the array."""
    return (n + 15) & ~(<Py_ssize_t> 15)


# ---------------------------------------------------------------------------------------
# Packing (one phase at the start of every call).
# ---------------------------------------------------------------------------------------

cdef inline Py_ssize_t pack_tiles(const Net *n, bint grads) noexcept nogil:
    cdef Py_ssize_t count = n.L * n.n_uf + (n.L - 1) * n.n_gp + n.n_gp + n.n_vp
    if grads:
        count += n.L * n.n_ub + (n.L - 1) * n.n_ub + n.n_ub
    return count


cdef inline void pack_tile(floating *_, const Net *n, Py_ssize_t i) noexcept nogil:
    """Tile i of the packing phase: in order Pf (L·n_uf), Px (k >= 1), E (n_gp blocks of
    its columns), Pyt, then, for gradients, Pb, Pd (k >= 1), Py."""
    cdef Py_ssize_t H = n.H, V = n.V, GH = n.GH, NC = n.NC, W = n.W, k, u, g, c0, c, x, j
    cdef Py_ssize_t width = n.NVF * W, nu
    cdef floating *P
    cdef const floating *S
    cdef const floating *bh
    if i < n.L * n.n_uf:
        k, u = i // n.n_uf, i % n.n_uf
        P = (<floating *> n.Pf[k]) + u * H * width
        S = <const floating *> n.Whh[k]
        c0 = u * n.UW
        nu = min(n.UW, H - c0)
        if n.cell == RNN:
            # P[h, j] = Whh[c0 + j, h]
            pack(P, width, S + c0 * H, 1, H, H, nu, width)
        else:
            for g in range(n.G):
                # P[h, g·W + j] = Whh[g·H + c0 + j, h]
                pack(P + g * W, width, S + (g * H + c0) * H, 1, H, H, nu, W)
        return
    i -= n.L * n.n_uf
    if i < (n.L - 1) * n.n_gp:
        k, u = 1 + i // n.n_gp, i % n.n_gp
        c0 = u * NC
        # P[h, j] = Wxh_k[c0 + j, h]
        pack((<floating *> n.Px[k]) + u * H * NC, NC, (<const floating *> n.Wxh[k]) + c0 * H,
             1, H, H, min(NC, GH - c0), NC)
        return
    i -= (n.L - 1) * n.n_gp
    if i < n.n_gp:
        # E[x, c] = Wxh_0[c, x] + bh_0[c] for the columns c of block i
        c0 = i * NC
        nu = min(NC, GH - c0)
        P = (<floating *> n.E) + c0
        bh = (<const floating *> n.bh[0]) + c0
        pack(P, GH, (<const floating *> n.Wxh[0]) + c0 * V, 1, V, V, nu, nu)
        for x in range(V):
            for c in range(nu):
                P[x * GH + c] += bh[c]
        return
    i -= n.n_gp
    if i < n.n_vp:
        c0 = i * NC
        # Pyt[h, j] = Why[c0 + j, h]
        pack((<floating *> n.Pyt) + i * H * NC, NC, (<const floating *> n.Why) + c0 * H, 1, H,
             H, min(NC, V - c0), NC)
        return
    i -= n.n_vp
    if i < n.L * n.n_ub:
        k, u = i // n.n_ub, i % n.n_ub
        c0 = u * NC
        # Pb[g·H + r, j] = Whh[g·H + r, c0 + j]
        pack((<floating *> n.Pb[k]) + u * GH * NC, NC, (<const floating *> n.Whh[k]) + c0, H, 1,
             GH, min(NC, H - c0), NC)
        return
    i -= n.L * n.n_ub
    if i < (n.L - 1) * n.n_ub:
        k, u = 1 + i // n.n_ub, i % n.n_ub
        c0 = u * NC
        pack((<floating *> n.Pd[k]) + u * GH * NC, NC, (<const floating *> n.Wxh[k]) + c0, H, 1,
             GH, min(NC, H - c0), NC)
        return
    i -= (n.L - 1) * n.n_ub
    c0 = i * NC
    # Py[v, j] = Why[v, c0 + j]
    pack((<floating *> n.Py) + i * V * NC, NC, (<const floating *> n.Why) + c0, H, 1, V,
         min(NC, H - c0), NC)


# ---------------------------------------------------------------------------------------
# Products over many rows (the window's, a batch of streams'): one (RT rows) × (NT columns)
# tile of C = A · P, the whole K inside the tile (csrc/gemm.h: rnncore_tile_product).
# ---------------------------------------------------------------------------------------

cdef inline void product_tile(floating *S, const Net *n, Py_ssize_t M, Py_ssize_t N,
                              Py_ssize_t K, const floating *A, Py_ssize_t a_rs,
                              Py_ssize_t a_ks, const floating *P, Py_ssize_t ldp,
                              Py_ssize_t panel_stride, Py_ssize_t tile, floating *C,
                              Py_ssize_t ldc, const floating *col_bias) noexcept nogil:
    """Tile `tile` of C (M, N) = A (M, K) · P (K, N) [+ col_bias], tiles numbered column
    block first: rows r0 .. r0+RT, columns c0 .. c0+NT.  P's panel p (NC columns) starts
    at P + p·panel_stride with row stride ldp (panel_stride = NC and ldp = N: P read in
    place; panel_stride = K·NC and ldp = NC: packed panels).  S: the thread's scratch, of
    at least tile_scratch(n) values."""
    cdef Py_ssize_t n_rows = ceil_div(M, n.RT), q = tile // n_rows
    cdef Py_ssize_t r0 = (tile % n_rows) * n.RT, c0 = q * n.NT
    tile_product(min(n.RT, M - r0), min(n.NT, N - c0), K, A + r0 * a_rs, a_rs, a_ks,
                 P + (c0 // n.NC) * panel_stride, ldp, panel_stride, C + r0 * ldc + c0, ldc,
                 NULL if col_bias == NULL else col_bias + c0, S)


cdef inline Py_ssize_t product_tiles(const Net *n, Py_ssize_t M, Py_ssize_t N) noexcept nogil:
    return ceil_div(M, n.RT) * ceil_div(N, n.NT)


cdef inline void column_sums(floating *out, const floating *a, Py_ssize_t rows,
                             Py_ssize_t ld, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """out[c] = Σ_r a[r·ld + c] for c in [c0, c1), rows in order."""
    cdef Py_ssize_t r, c
    memset(out + c0, 0, (c1 - c0) * sizeof(floating))
    for r in range(rows):
        for c in range(c0, c1):
            out[c] += a[r * ld + c]


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
    if n.cell == RNN:
        gemm(B, <int> n.NVF, H, <const floating *> s.h_prev, H, 1,
             (<const floating *> n.Pf[s.k]) + u * H * n.NVF * n.W, n.NVF * n.W, S, UW, n.W)
        add_input(1, B, nu, UW, seg, S, X, GH, H, idx, istride)
        tanh_inplace(S, seg)                                 # h' = tanh(Wxh·x + bh + Whh·h)
        store_h(B, nu, UW, S, (<floating *> s.h_out) + o, H, mask, mask_y)
        return
    gemm(B, <int> n.G, H, <const floating *> s.h_prev, H, 1,
         (<const floating *> n.Pf[s.k]) + u * H * n.G * n.W, n.G * n.W, S, UW, seg)
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
    gru_in(B, nu, UW, seg, S, X, GH, H, idx, istride, (<const floating *> n.bhn[s.k]) + c0, Tc)
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
    return B * n.NC


cdef inline void backward_tile(floating *S, const Net *n, const BackwardStep *s,
                               Py_ssize_t u) noexcept nogil:
    """Units u·NC .. of every stream, one step backwards: S (B, NC) is dloss/dh_t."""
    cdef Py_ssize_t H = n.H, GH = n.GH, NC = n.NC, B = s.B, c0 = u * NC
    cdef Py_ssize_t nu = min(NC, H - c0)
    cdef const floating *mask = NULL
    cdef const floating *carry = NULL
    if s.mask != NULL:
        mask = (<const floating *> s.mask) + c0
    if n.cell == GRU and s.has_next:
        carry = (<const floating *> s.dh_carry) + c0
    if s.has_next:
        # S (B, NC) = da_h[t+1] (B, G·H) · Whh[:, units]: the part of dloss/dh_t through Whh
        gemm(B, 4, GH, <const floating *> s.da_h_next, GH, 1,
             (<const floating *> n.Pb[s.k]) + u * GH * NC, NC, S, NC, n.W)
    else:
        memset(S, 0, B * NC * sizeof(floating))
    # + dloss/dh_t from above (dropped out as the forward pass was), + gru's u⊙dh of t+1
    dh(B, nu, NC, S, (<floating *> s.dH) + c0, mask, carry, H)
    if n.cell == RNN:                              # da = (1 - h²) ⊙ dh, into dH's place
        rnn_backward(B, nu, NC, S, (<const floating *> s.h) + c0, (<floating *> s.dH) + c0, H)
    elif n.cell == LSTM:
        lstm_backward(B, nu, NC, S, (<const floating *> s.gates) + c0,
                      (<const floating *> s.aux) + c0, (<const floating *> s.c_prev) + c0,
                      (<floating *> s.dc_next) + c0, s.has_next, (<floating *> s.da) + c0, H)
    else:
        gru_backward(B, nu, NC, S, (<const floating *> s.gates) + c0,
                     (<const floating *> s.aux) + c0, (<const floating *> s.h_prev) + c0,
                     (<floating *> s.dh_carry) + c0, (<floating *> s.da) + c0,
                     (<floating *> s.da_h) + c0, H)
