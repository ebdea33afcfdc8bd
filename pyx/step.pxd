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

from gemm cimport gemm, pack
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
        S = <const floating *> n.Wxh[0]
        bh = <const floating *> n.bh[0]
        P = <floating *> n.E
        for c in range(c0, min(c0 + NC, GH)):
            for x in range(V):
                P[x * GH + c] = S[c * V + x] + bh[c]
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
# Products over many rows (the window's, a batch of streams'): one (RT rows) × (NC columns)
# tile of C = A · P.
# ---------------------------------------------------------------------------------------

cdef inline void product_tile(floating *S, const Net *n, Py_ssize_t M, Py_ssize_t N,
                              Py_ssize_t K, const floating *A, Py_ssize_t a_rs,
                              Py_ssize_t a_ks, const floating *P, Py_ssize_t ldp,
                              Py_ssize_t panel_stride, Py_ssize_t tile, floating *C,
                              Py_ssize_t ldc, const floating *col_bias) noexcept nogil:
    """Tile `tile` of C (M, N) = A (M, K) · P (K, N) [+ col_bias], tiles numbered column
    panel first: rows r0.. r0+RT, columns c0 .. c0+NC.  P's panel p starts at
    P + p·panel_stride with row stride ldp (panel_stride = NC and ldp = N: P read in place;
    panel_stride = K·NC and ldp = NC: packed panels)."""
    cdef Py_ssize_t n_rows = ceil_div(M, n.RT), p = tile // n_rows, r0 = (tile % n_rows) * n.RT
    cdef Py_ssize_t c0 = p * n.NC, rows = min(n.RT, M - r0), cols = min(n.NC, N - c0), r, j
    cdef floating *c
    gemm(rows, <int> ceil_div(cols, n.W), K, A + r0 * a_rs, a_rs, a_ks, P + p * panel_stride,
         ldp, S, n.NC, n.W)
    for r in range(rows):
        c = C + (r0 + r) * ldc + c0
        if col_bias != NULL:
            for j in range(cols):
                c[j] = S[r * n.NC + j] + col_bias[c0 + j]
        else:
            memcpy(c, S + r * n.NC, cols * sizeof(floating))


cdef inline Py_ssize_t product_tiles(const Net *n, Py_ssize_t M, Py_ssize_t N) noexcept nogil:
    return ceil_div(M, n.RT) * ceil_div(N, n.NC)


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


cdef inline const floating *input_row(floating *_, const Net *n, const ForwardStep *s,
                                      Py_ssize_t b) noexcept nogil:
    """Stream b's input-side pre-activations (G·H,): Wxh·x + bh."""
    if s.k == 0:
        return (<const floating *> n.E) + s.xs[b * s.xs_stride] * n.GH
    return (<const floating *> s.pre) + b * n.GH


cdef inline void forward_tile(floating *S, const Net *n, const ForwardStep *s,
                              Py_ssize_t u) noexcept nogil:
    """Units u·UW .. of every stream, one step: S is this thread's scratch."""
    cdef Py_ssize_t H = n.H, GH = n.GH, UW = n.UW, B = s.B, c0 = u * UW
    cdef Py_ssize_t nu = min(UW, H - c0), seg = padded(B * UW), b, j, o
    cdef const floating *x
    cdef const floating *hp
    cdef const floating *cp
    cdef const floating *m
    cdef floating *ho = <floating *> s.h_out
    cdef floating *co
    cdef floating *gt
    cdef floating *ax = <floating *> s.aux
    cdef floating *y = <floating *> s.y_out
    cdef floating *Zi = S
    cdef floating *Zf = S + seg
    cdef floating *Zg = S + 2 * seg
    cdef floating *Zo = S + 3 * seg
    cdef floating *Tc = S + 4 * seg
    cdef const floating *bhn
    cdef floating c, h
    # the recurrent product of the tile's units, gates apart: Z_g (B, UW) = h_prev · Whh_gᵀ
    if n.cell == RNN:
        gemm(B, <int> n.NVF, H, <const floating *> s.h_prev, H, 1,
             (<const floating *> n.Pf[s.k]) + u * H * n.NVF * n.W, n.NVF * n.W, Zi, UW, n.W)
    else:
        gemm(B, <int> n.G, H, <const floating *> s.h_prev, H, 1,
             (<const floating *> n.Pf[s.k]) + u * H * n.G * n.W, n.G * n.W, Zi, UW, seg)
    if n.cell == RNN:
        for b in range(B):
            x = input_row(S, n, s, b) + c0
            for j in range(nu):
                Zi[b * UW + j] += x[j]
        tanh_inplace(Zi, seg)                              # h' = tanh(Wxh·x + bh + Whh·h)
        for b in range(B):
            o = b * H + c0
            memcpy(ho + o, Zi + b * UW, nu * sizeof(floating))
            if y != NULL:
                m = (<const floating *> s.mask) + o
                for j in range(nu):
                    y[o + j] = Zi[b * UW + j] * m[j]
        return
    if n.cell == LSTM:
        for b in range(B):
            x = input_row(S, n, s, b) + c0
            for j in range(nu):
                o = b * UW + j
                Zi[o] += x[j]
                Zf[o] += x[H + j]
                Zg[o] += x[2 * H + j]
                Zo[o] += x[3 * H + j]
        sigmoid_inplace(Zi, 2 * seg)                       # i, f
        tanh_inplace(Zg, seg)                              # g
        sigmoid_inplace(Zo, seg)                           # o
        co = <floating *> s.c_out
        for b in range(B):
            cp = (<const floating *> s.c_prev) + b * H + c0
            for j in range(nu):
                o = b * UW + j
                c = Zf[o] * cp[j] + Zi[o] * Zg[o]          # c' = f⊙c + i⊙g
                co[b * H + c0 + j] = c
                Tc[o] = c
        tanh_inplace(Tc, seg)
        for b in range(B):
            o = b * H + c0
            for j in range(nu):
                ho[o + j] = Zo[b * UW + j] * Tc[b * UW + j]    # h' = o⊙tanh(c')
            if ax != NULL:
                memcpy(ax + o, Tc + b * UW, nu * sizeof(floating))
            if s.gates != NULL:
                gt = (<floating *> s.gates) + b * GH + c0
                memcpy(gt, Zi + b * UW, nu * sizeof(floating))
                memcpy(gt + H, Zf + b * UW, nu * sizeof(floating))
                memcpy(gt + 2 * H, Zg + b * UW, nu * sizeof(floating))
                memcpy(gt + 3 * H, Zo + b * UW, nu * sizeof(floating))
            if y != NULL:
                m = (<const floating *> s.mask) + o
                for j in range(nu):
                    y[o + j] = ho[o + j] * m[j]
        return
    # gru (linear before reset): Zi, Zf, Zg hold Whh_r·h, Whh_u·h, Whh_n·h
    bhn = (<const floating *> n.bhn[s.k]) + c0
    for b in range(B):
        x = input_row(S, n, s, b) + c0
        for j in range(nu):
            o = b * UW + j
            Zi[o] += x[j]
            Zf[o] += x[H + j]
            Tc[o] = Zg[o] + bhn[j]                         # Whh_n·h + bhn
    sigmoid_inplace(Zi, 2 * seg)                           # r, u
    for b in range(B):
        x = input_row(S, n, s, b) + c0
        for j in range(nu):
            o = b * UW + j
            Zg[o] = x[2 * H + j] + Zi[o] * Tc[o]           # Wxh_n·x + bh_n + r⊙(Whh_n·h + bhn)
    tanh_inplace(Zg, seg)                                  # n
    for b in range(B):
        o = b * H + c0
        hp = (<const floating *> s.h_prev) + o
        for j in range(nu):
            h = (1 - Zf[b * UW + j]) * Zg[b * UW + j] + Zf[b * UW + j] * hp[j]
            ho[o + j] = h                                  # h' = (1-u)⊙n + u⊙h
        if ax != NULL:
            memcpy(ax + o, Tc + b * UW, nu * sizeof(floating))
        if s.gates != NULL:
            gt = (<floating *> s.gates) + b * GH + c0
            memcpy(gt, Zi + b * UW, nu * sizeof(floating))
            memcpy(gt + H, Zf + b * UW, nu * sizeof(floating))
            memcpy(gt + 2 * H, Zg + b * UW, nu * sizeof(floating))
        if y != NULL:
            m = (<const floating *> s.mask) + o
            for j in range(nu):
                y[o + j] = ho[o + j] * m[j]


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
    """Units u·NC .. of every stream, one step backwards."""
    cdef Py_ssize_t H = n.H, GH = n.GH, NC = n.NC, B = s.B, c0 = u * NC
    cdef Py_ssize_t nu = min(NC, H - c0), b, j, o
    cdef floating dh, dc, gi, gf, gg, go, tc, r, uu, nn, dan, dz_r, dz_u
    cdef floating *dH = <floating *> s.dH
    cdef const floating *m = <const floating *> s.mask
    cdef const floating *z
    cdef const floating *ax = <const floating *> s.aux
    cdef floating *dz
    cdef floating *dzh
    cdef floating *carry = <floating *> s.dh_carry
    cdef floating *dcn = <floating *> s.dc_next
    if s.has_next:
        # S (B, NC) = da_h[t+1] (B, G·H) · Whh[:, units]: the part of dloss/dh_t through Whh
        gemm(B, 4, GH, <const floating *> s.da_h_next, GH, 1,
             (<const floating *> n.Pb[s.k]) + u * GH * NC, NC, S, NC, n.W)
    else:
        memset(S, 0, B * NC * sizeof(floating))
    for b in range(B):
        for j in range(nu):
            o = b * H + c0 + j
            dh = dH[o]
            if m != NULL:
                dh = dh * m[o]
            if n.cell == GRU and s.has_next:
                dh = dh + (S[b * NC + j] + carry[o])
            else:
                dh = dh + S[b * NC + j]
            if n.cell == RNN:
                z = <const floating *> s.h
                dH[o] = (1 - z[o] * z[o]) * dh             # da = (1 - h²) ⊙ dh, in place
            elif n.cell == LSTM:
                z = (<const floating *> s.gates) + b * GH + c0 + j
                dz = (<floating *> s.da) + b * GH + c0 + j
                gi, gf, gg, go, tc = z[0], z[H], z[2 * H], z[3 * H], ax[o]
                dc = dh * go * (1 - tc * tc)
                if s.has_next:
                    dc = dcn[o] + dc
                dz[0] = dc * gg * gi * (1 - gi)
                dz[H] = dc * (<const floating *> s.c_prev)[o] * gf * (1 - gf)
                dz[2 * H] = dc * gi * (1 - gg * gg)
                dz[3 * H] = dh * tc * go * (1 - go)
                dcn[o] = dc * gf
            else:
                z = (<const floating *> s.gates) + b * GH + c0 + j
                dz = (<floating *> s.da) + b * GH + c0 + j
                dzh = (<floating *> s.da_h) + b * GH + c0 + j
                r, uu, nn = z[0], z[H], z[2 * H]
                dan = dh * (1 - uu) * (1 - nn * nn)
                dz_u = dh * ((<const floating *> s.h_prev)[o] - nn) * uu * (1 - uu)
                dz_r = dan * ax[o] * r * (1 - r)
                dz[0] = dz_r
                dz[H] = dz_u
                dz[2 * H] = dan
                dzh[0] = dz_r
                dzh[H] = dz_u
                dzh[2 * H] = dan * r
                carry[o] = dh * uu                         # h' = ... + u⊙h
