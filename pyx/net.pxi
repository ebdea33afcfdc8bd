# The model as the kernels see it (Net), its tiling, and its weights packed once per call.
# Included by _cells.pyx (an implementation file, not a contract: pyx/README.md).
#
# Sizes in comments: V vocabulary, H hidden units, B streams, G gate blocks (1 rnn, 4 lstm,
# 3 gru), W the micro-kernel's vector lanes (csrc/gemm.h).
#
# Every product runs on one of two engines, chosen per kind of product when the kernel is
# built (Net's eng_*: rnncore/engines.py's rule): rnncore's micro-kernel (gemm.pxd) over
# packed panels, or scipy's BLAS (blas.pxd) reading the parameters in place, one call per
# tile.  The kinds: the forward recurrent step (eng_fwd), the backward one (eng_bwd), the
# products over many rows of a window or a batch (eng_wide), and the logits (eng_logits).
#
# Packed weights for the micro-kernel (built once per call by the packing phase, every
# panel zero-padded to whole vectors; a kind that runs on BLAS packs nothing):
#   Pf[k]  (n_uf, H, NVF·W)  forward recurrent: panel u holds units u's rows of Whh
#                            transposed, gates side by side (each gate's NVG vectors)
#   Pb[k]  (n_hp, G·H, NC)   backward recurrent: Whh's columns of units u·NC .. u·NC+NC-1
#   Px[k]  (n_gp, H, NC)     k >= 1: Wxhᵀ's columns, for a deeper layer's input projection
#   Pd[k]  (n_hp, G·H, NC)   k >= 1: Wxh's columns, for the gradient into the layer below
#   E      (V, G·H)          layer 0: Wxhᵀ + bh, so a character's input is one row (both
#                            engines: a gather, not a product)
#   Pyt    (n_vp, H, NC)     Whyᵀ's columns, for the logits
#   Py     (n_hp, V, NC)     Why's columns, for the gradient into the top layer
from gemm cimport pack

cdef enum:
    RNN = 0
    LSTM = 1
    GRU = 2

cdef enum:                      # product engines
    OWN = 0                     # rnncore's micro-kernel
    BLAS = 1                    # scipy's BLAS

cdef struct Params:
    # a model's arrays as the kernels reach them: its parameters (a Weights object's) or
    # their gradients (a window's); per layer k, arrays of L pointers
    void **Wxh                  # (G·H, V) layer 0, (G·H, H) deeper
    void **Whh                  # (G·H, H)
    void **bh                   # (G·H,)
    void **bhn                  # gru: (H,); other cells: NULL
    void *Why                   # (V, H)
    void *by                    # (V,)

cdef struct Net:
    int cell
    Py_ssize_t L, V, H, G, GH
    Py_ssize_t itemsize         # bytes of a value: 4 (float32) or 8 (float64)
    # tiling (fixed by the micro-kernel's lanes W; never by the number of threads)
    Py_ssize_t W                # vector lanes
    Py_ssize_t NC               # panel width of the window products: 4 vectors
    int eng_fwd, eng_bwd        # the engine of the forward / backward recurrent products,
    int eng_wide, eng_logits    # of the products over many rows, of the logits (OWN, BLAS)
    bint blas_row_by_row        # BLAS: one call per row (generation: a stream's bits never
                                # depend on the batch it runs in, as the micro-kernel's
                                # don't; OpenBLAS picks kernels, and so roundings, by M)
    Py_ssize_t UW, NVF          # forward step tile: units, and vectors (own: NVG a gate)
    Py_ssize_t NVG              # own: vectors of a gate's units in a forward tile (UW/W)
    Py_ssize_t n_uf             # forward step tiles: ceil(H / UW)
    Py_ssize_t UB               # backward step tile: units (own: NC)
    Py_ssize_t n_ub             # backward step tiles: ceil(H / UB)
    Py_ssize_t n_hp             # panels over H: ceil(H / NC)
    bint bwd_in_place           # the micro-kernel reads the backward products' weights
                                # (Whh, Wxh, Why) where they are: no Pb, Pd, Py (few rows:
                                # a window of one stream packs more than it multiplies)
    Py_ssize_t n_gp             # panels over G·H: ceil(G·H / NC)
    Py_ssize_t n_vp             # panels over V: ceil(V / NC)
    Py_ssize_t RT               # rows of a window product's tile
    Py_ssize_t NT               # columns of a window product's tile: a multiple of NC
    Py_ssize_t SW               # columns of a one-hot input's gradient tile (V·SW sums)
    Py_ssize_t RTD              # rows of a decoder tile (RT, fewer for a large V)
    const Params *params         # the parameters (a Weights object's, shared by kernels)
    # packed weights, see the top of this file
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


cdef inline void *skip(const void *base, Py_ssize_t values,
                       Py_ssize_t itemsize) noexcept nogil:
    """The address `values` values of `itemsize` bytes past base: where things are, for the
    code that moves bytes and never needs the dtype."""
    return <void *> ((<const char *> base) + values * itemsize)


# ---------------------------------------------------------------------------------------
# Packing (one phase at the start of every call).
# ---------------------------------------------------------------------------------------

cdef struct PackCounts:         # tiles of each packing, 0 where the engine reads in place
    Py_ssize_t f, x, e, yt, b, d, y


cdef struct PackTask:
    # one tile of a packing phase: `blocks` calls of pack() (csrc/gemm.h), block j
    # P[k, c] = S[k·s_k + c·s_n] for c < n (0 up to width), k < K, row stride ldp, from
    # S + j·S_step into P + j·P_step (a forward panel: one block per gate); then, where
    # bias is not NULL, bias[c] added to every row (E = Wxhᵀ + bh)
    void *P
    const void *S
    Py_ssize_t ldp, s_k, s_n, K, n, width
    Py_ssize_t blocks, P_step, S_step
    const void *bias


cdef inline PackCounts pack_counts(const Net *n, bint grads) noexcept nogil:
    cdef PackCounts c
    c.f = n.L * n.n_uf if n.eng_fwd == OWN else 0
    c.x = (n.L - 1) * n.n_gp if n.eng_wide == OWN else 0
    c.e = n.n_gp
    c.yt = n.n_vp if n.eng_logits == OWN else 0
    cdef bint pack_bwd = grads and not n.bwd_in_place
    c.b = n.L * n.n_hp if pack_bwd and n.eng_bwd == OWN else 0
    c.d = (n.L - 1) * n.n_hp if pack_bwd and n.eng_wide == OWN else 0
    c.y = n.n_hp if pack_bwd and n.eng_wide == OWN else 0
    return c


cdef inline Py_ssize_t pack_tiles(const Net *n, bint grads) noexcept nogil:
    cdef PackCounts c = pack_counts(n, grads)
    return c.f + c.x + c.e + c.yt + c.b + c.d + c.y


cdef inline PackTask columns_task(void *P, const void *S, Py_ssize_t ld, Py_ssize_t K,
                                  Py_ssize_t n, Py_ssize_t NC) noexcept nogil:
    """The task P[k, j] = S[k·ld + j] (j < n) of one panel of NC columns: a matrix's
    columns as they are."""
    cdef PackTask t
    t.P, t.S, t.ldp, t.s_k, t.s_n, t.K, t.n, t.width = P, S, NC, ld, 1, K, n, NC
    t.blocks, t.P_step, t.S_step, t.bias = 1, 0, 0, NULL
    return t


cdef inline PackTask rows_task(void *P, const void *S, Py_ssize_t ld, Py_ssize_t K,
                               Py_ssize_t n, Py_ssize_t NC) noexcept nogil:
    """The task P[k, j] = S[j·ld + k] (j < n) of one panel of NC columns: a matrix's rows
    transposed."""
    cdef PackTask t = columns_task(P, S, ld, K, n, NC)
    t.s_k, t.s_n = 1, ld
    return t


cdef inline PackTask pack_task(const Net *n, bint grads, Py_ssize_t i) noexcept nogil:
    """Tile i of the packing phase: in order Pf (L·n_uf), Px (k >= 1), E (n_gp blocks of
    its columns), Pyt, then, for gradients, Pb, Pd (k >= 1), Py; each only where its
    engine is the micro-kernel (pack_counts)."""
    cdef Py_ssize_t H = n.H, V = n.V, GH = n.GH, NC = n.NC, s = n.itemsize, k, u, c0
    cdef Py_ssize_t width = n.NVF * n.W
    cdef PackCounts counts = pack_counts(n, grads)
    cdef PackTask t
    if i < counts.f:
        # Pf[k][u][h, g·UW + j] = Whh[g·H + c0 + j, h]: gate g's units side by side
        k, u = i // n.n_uf, i % n.n_uf
        c0 = u * n.UW
        t = rows_task(skip(n.Pf[k], u * H * width, s), skip(n.params.Whh[k], c0 * H, s), H, H,
                      min(n.UW, H - c0), n.UW)
        t.ldp, t.blocks, t.P_step, t.S_step = width, n.G, n.UW, H * H
        return t
    i -= counts.f
    if i < counts.x:
        # Px[k][u][h, j] = Wxh_k[c0 + j, h]
        k, u = 1 + i // n.n_gp, i % n.n_gp
        c0 = u * NC
        return rows_task(skip(n.Px[k], u * H * NC, s), skip(n.params.Wxh[k], c0 * H, s), H, H,
                         min(NC, GH - c0), NC)
    i -= counts.x
    if i < counts.e:
        # E[x, c] = Wxh_0[c, x] + bh_0[c] for the columns c of block i
        c0 = i * NC
        t = rows_task(skip(n.E, c0, s), skip(n.params.Wxh[0], c0 * V, s), V, V, min(NC, GH - c0),
                      NC)
        t.ldp, t.width, t.bias = GH, t.n, skip(n.params.bh[0], c0, s)
        return t
    i -= counts.e
    if i < counts.yt:
        # Pyt[i][h, j] = Why[c0 + j, h]
        c0 = i * NC
        return rows_task(skip(n.Pyt, i * H * NC, s), skip(n.params.Why, c0 * H, s), H, H,
                         min(NC, V - c0), NC)
    i -= counts.yt
    if i < counts.b:
        # Pb[k][u][g·H + r, j] = Whh[g·H + r, c0 + j]
        k, u = i // n.n_hp, i % n.n_hp
        c0 = u * NC
        return columns_task(skip(n.Pb[k], u * GH * NC, s), skip(n.params.Whh[k], c0, s), H, GH,
                            min(NC, H - c0), NC)
    i -= counts.b
    if i < counts.d:
        k, u = 1 + i // n.n_hp, i % n.n_hp
        c0 = u * NC
        return columns_task(skip(n.Pd[k], u * GH * NC, s), skip(n.params.Wxh[k], c0, s), H, GH,
                            min(NC, H - c0), NC)
    i -= counts.d
    # Py[i][v, j] = Why[v, c0 + j]
    c0 = i * NC
    return columns_task(skip(n.Py, i * V * NC, s), skip(n.params.Why, c0, s), H, V,
                        min(NC, H - c0), NC)


cdef inline void pack_panel(floating *P, const PackTask *t) noexcept nogil:
    """Run task t, whose destination t.P is P."""
    cdef const floating *S = <const floating *> t.S
    cdef const floating *bias = <const floating *> t.bias
    cdef Py_ssize_t j, x, c
    for j in range(t.blocks):
        pack(P + j * t.P_step, t.ldp, S + j * t.S_step, t.s_k, t.s_n, t.K, t.n, t.width)
    if bias != NULL:
        for x in range(t.K):
            for c in range(t.n):
                P[x * t.ldp + c] += bias[c]
