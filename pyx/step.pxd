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

Every product runs on one of two engines, chosen per kind of product when the kernel is
built (Net's eng_*: rnncore/engines.py's rule): rnncore's micro-kernel (gemm.pxd) over
packed panels, or scipy's BLAS (blas.pxd) reading the parameters in place, one call per
tile.  The kinds: the forward recurrent step (eng_fwd), the backward one (eng_bwd), the
products over many rows of a window or a batch (eng_wide), and the logits (eng_logits).

Packed weights for the micro-kernel (built once per call by pack_tile, every panel
zero-padded to whole vectors; a kind that runs on BLAS packs nothing):
  Pf[k]  (n_uf, H, NVF·W)  forward recurrent: panel u holds units u's rows of Whh
                           transposed, gates interleaved (i f g o: one vector each)
  Pb[k]  (n_hp, G·H, NC)   backward recurrent: Whh's columns of units u·NC .. u·NC+NC-1
  Px[k]  (n_gp, H, NC)     k >= 1: Wxhᵀ's columns, for the input projection of the window
  Pd[k]  (n_hp, G·H, NC)   k >= 1: Wxh's columns, for the gradient into the layer below
  E      (V, G·H)          layer 0: Wxhᵀ + bh, so a character's input is one row (both
                           engines: a gather, not a product)
  Pyt    (n_vp, H, NC)     Whyᵀ's columns, for the logits
  Py     (n_hp, V, NC)     Why's columns, for the gradient into the top layer
"""
from cython cimport floating
from libc.string cimport memcpy, memset

from cellmath cimport (add_input, store_gates, store_h, lstm_c, lstm_h, gru_in, gru_n, gru_h,
                       dh, rnn_backward, lstm_backward, gru_backward)
from blas cimport gemm_rm
from gemm cimport gemm, pack, tile_product
from kernel_maths cimport tanh_inplace, sigmoid_inplace

cdef enum:
    RNN = 0
    LSTM = 1
    GRU = 2

cdef enum:                      # product engines
    OWN = 0                     # rnncore's micro-kernel
    BLAS = 1                    # scipy's BLAS

cdef struct Net:
    int cell
    Py_ssize_t L, V, H, G, GH
    # tiling (fixed by the micro-kernel's lanes W; never by the number of threads)
    Py_ssize_t W                # vector lanes
    Py_ssize_t NC               # panel width of the window products: 4 vectors
    int eng_fwd, eng_bwd        # the engine of the forward / backward recurrent products,
    int eng_wide, eng_logits    # of the products over many rows, of the logits (OWN, BLAS)
    Py_ssize_t UW, NVF          # forward step tile: units, and vectors (own: G; rnn: 4 of
                                # units)
    Py_ssize_t n_uf             # forward step tiles: ceil(H / UW)
    Py_ssize_t UB               # backward step tile: units (own: NC)
    Py_ssize_t n_ub             # backward step tiles: ceil(H / UB)
    Py_ssize_t n_hp             # panels over H: ceil(H / NC)
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

cdef struct PackCounts:         # tiles of each packing, 0 where the engine reads in place
    Py_ssize_t f, x, e, yt, b, d, y


cdef inline PackCounts pack_counts(const Net *n, bint grads) noexcept nogil:
    cdef PackCounts c
    c.f = n.L * n.n_uf if n.eng_fwd == OWN else 0
    c.x = (n.L - 1) * n.n_gp if n.eng_wide == OWN else 0
    c.e = n.n_gp
    c.yt = n.n_vp if n.eng_logits == OWN else 0
    c.b = n.L * n.n_hp if grads and n.eng_bwd == OWN else 0
    c.d = (n.L - 1) * n.n_hp if grads and n.eng_wide == OWN else 0
    c.y = n.n_hp if grads and n.eng_wide == OWN else 0
    return c


cdef inline Py_ssize_t pack_tiles(const Net *n, bint grads) noexcept nogil:
    cdef PackCounts c = pack_counts(n, grads)
    return c.f + c.x + c.e + c.yt + c.b + c.d + c.y


cdef inline void pack_tile(floating *_, const Net *n, bint grads,
                           Py_ssize_t i) noexcept nogil:
    """Tile i of the packing phase: in order Pf (L·n_uf), Px (k >= 1), E (n_gp blocks of
    its columns), Pyt, then, for gradients, Pb, Pd (k >= 1), Py; each only where its
    engine is the micro-kernel (pack_counts)."""
    cdef Py_ssize_t H = n.H, V = n.V, GH = n.GH, NC = n.NC, W = n.W, k, u, g, c0, c, x, j
    cdef Py_ssize_t width = n.NVF * W, nu
    cdef PackCounts counts = pack_counts(n, grads)
    cdef floating *P
    cdef const floating *S
    cdef const floating *bh
    if i < counts.f:
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
    i -= counts.f
    if i < counts.x:
        k, u = 1 + i // n.n_gp, i % n.n_gp
        c0 = u * NC
        # P[h, j] = Wxh_k[c0 + j, h]
        pack((<floating *> n.Px[k]) + u * H * NC, NC, (<const floating *> n.Wxh[k]) + c0 * H,
             1, H, H, min(NC, GH - c0), NC)
        return
    i -= counts.x
    if i < counts.e:
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
    i -= counts.e
    if i < counts.yt:
        c0 = i * NC
        # Pyt[h, j] = Why[c0 + j, h]
        pack((<floating *> n.Pyt) + i * H * NC, NC, (<const floating *> n.Why) + c0 * H, 1, H,
             H, min(NC, V - c0), NC)
        return
    i -= counts.yt
    if i < counts.b:
        k, u = i // n.n_hp, i % n.n_hp
        c0 = u * NC
        # Pb[g·H + r, j] = Whh[g·H + r, c0 + j]
        pack((<floating *> n.Pb[k]) + u * GH * NC, NC, (<const floating *> n.Whh[k]) + c0, H, 1,
             GH, min(NC, H - c0), NC)
        return
    i -= counts.b
    if i < counts.d:
        k, u = 1 + i // n.n_hp, i % n.n_hp
        c0 = u * NC
        pack((<floating *> n.Pd[k]) + u * GH * NC, NC, (<const floating *> n.Wxh[k]) + c0, H, 1,
             GH, min(NC, H - c0), NC)
        return
    i -= counts.d
    c0 = i * NC
    # Py[v, j] = Why[v, c0 + j]
    pack((<floating *> n.Py) + i * V * NC, NC, (<const floating *> n.Why) + c0, H, 1, V,
         min(NC, H - c0), NC)


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
    gemm_rm(rows, cols, K, A + r0 * a_rs, a_rs, a_ks,
            (<const floating *> b.M) + c0 * b.cs, b.rs, b.cs,
            1 if col_bias != NULL else 0, C + r0 * ldc + c0, ldc)


cdef inline void logits_rows(floating *S, const Net *n, const floating *Y, Py_ssize_t rows,
                             Py_ssize_t ldS) noexcept nogil:
    """S (rows, V; row stride ldS >= n_vp·NC) = Y (rows, H) · Whyᵀ, without by."""
    cdef Py_ssize_t V = n.V, NC = n.NC, p
    if n.eng_logits == OWN:
        for p in range(n.n_vp):
            gemm(rows, <int> ceil_div(min(NC, V - p * NC), n.W), n.H, Y, n.H, 1,
                 (<const floating *> n.Pyt) + p * n.H * NC, NC, S + p * NC, ldS, n.W)
    else:
        gemm_rm(rows, V, n.H, Y, n.H, 1, <const floating *> n.Why, 1, n.H, 0, S, ldS)


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


cdef inline void recurrent_forward(floating *S, const Net *n, Py_ssize_t k,
                                   const floating *h_prev, Py_ssize_t B, Py_ssize_t u,
                                   Py_ssize_t seg) noexcept nogil:
    """Z_g (B, UW) = h_prev (B, H) · Whh_gᵀ for the units of tile u, gate g's block at
    S + g·seg (rnn: one block, the tile's UW units)."""
    cdef Py_ssize_t H = n.H, c0 = u * n.UW, nu = min(n.UW, H - c0), g
    cdef const floating *Whh = <const floating *> n.Whh[k]
    if n.eng_fwd == OWN:
        if n.cell == RNN:
            gemm(B, <int> n.NVF, H, h_prev, H, 1,
                 (<const floating *> n.Pf[k]) + u * H * n.NVF * n.W, n.NVF * n.W, S, n.UW,
                 n.W)
        else:
            gemm(B, <int> n.G, H, h_prev, H, 1,
                 (<const floating *> n.Pf[k]) + u * H * n.G * n.W, n.G * n.W, S, n.UW, seg)
        return
    if nu < n.UW:                         # the padding units' lanes: zeros, as packed ones
        memset(S, 0, n.G * seg * sizeof(floating))
    for g in range(n.G):                  # Z_g[b, j] = Σ_h h_prev[b, h] · Whh[g·H + c0 + j, h]
        gemm_rm(B, nu, H, h_prev, H, 1, Whh + (g * H + c0) * H, 1, H, 0, S + g * seg, n.UW)




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
    return B * n.UB


cdef inline void recurrent_backward(floating *S, const Net *n, Py_ssize_t k,
                                    const floating *da_h, Py_ssize_t B,
                                    Py_ssize_t u) noexcept nogil:
    """S (B, UB) = da_h (B, G·H) · Whh[:, units of tile u]."""
    cdef Py_ssize_t H = n.H, GH = n.GH, c0 = u * n.UB
    if n.eng_bwd == OWN:                  # UB = NC: one packed panel
        gemm(B, 4, GH, da_h, GH, 1, (<const floating *> n.Pb[k]) + u * GH * n.NC, n.NC, S,
             n.NC, n.W)
    else:
        gemm_rm(B, min(n.UB, H - c0), GH, da_h, GH, 1, (<const floating *> n.Whh[k]) + c0, H,
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
