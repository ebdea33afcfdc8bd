# cython: language_level=3
"""The training window on the team: the layer stack forward, the decoder with softmax
cross-entropy, backpropagation through time, the weight gradients and clipping, as one
program of phases (csrc/team.h) that every worker runs.

Storage the window needs (time-major; every buffer C-contiguous, with W values of slack at
its end, because a product reads whole vectors past a row's last column):
  hs    (L, T+1, B, H)  every layer's h; hs[k, 0] is the state carried in
  cs    (L, T+1, B, H)  lstm's c
  pre   (L, T, B, G·H)  k >= 1: the input projection Wxh·x + bh; then, every layer, the
                        activated gates in place (rnn: none; its projection is written into
                        hs[k, 1:] and the step turns it into h in place)
  aux   (L, T, B, H)    lstm: tanh(c');  gru: Whh_n·h + bhn
  ys    (L, T, B, H)    with dropout: masks ⊙ h, the input of the layer above / the decoder
  probs (T, B, V)       probabilities, then dy
  da    (T, B, G·H)     one layer's gradients at the input-side pre-activations
  da_h  (T, B, G·H)     gru only: at the hidden-side ones
  dH    (2, T, B, H)    dloss/d(layer output), for the layer being run and the one below
  loss  (T·B,)          every row's cross-entropy (nats), summed in row order by the caller

The phases, in order: pack the weights (and copy the state in); per layer, its input
projection (k >= 1) and one phase per step; the decoder and loss (and the state out); then,
for gradients, the decoder's weight gradients and dloss/dh of the top layer, per layer one
phase per step backwards and one for its weight gradients and the gradient into the layer
below; clipping.  Tiles of the window-wide products are (RT rows) × (NC columns), every
output element summed whole inside one tile, so their bits do not depend on the threads.
"""
from cython cimport floating
from libc.math cimport log
from libc.string cimport memcpy, memset

from gemm cimport gemm
from kernel_maths cimport max_of, exp_shift_sum, clip_values
from step cimport (Net, RNN, LSTM, GRU, ForwardStep, BackwardStep, Operand, ceil_div,
                   pack_tiles, pack_tile, packed, in_place, forward_tile, backward_tile,
                   logits_rows, product_tile, product_tiles, column_sums)
from team cimport rnncore_crew, rnncore_phase, rnncore_tile

cdef struct Window:
    Net *net
    Py_ssize_t B, T
    bint use_masks, grads
    double clip
    const Py_ssize_t *inputs        # (B, T)
    const Py_ssize_t *targets       # (B, T)
    void *hs
    void *cs
    void *pre
    void *aux
    void *ys
    void *masks                     # (L, T, B, H)
    void *probs
    void *da
    void *da_h
    void *dH
    void *dh_carry                  # (B, H)
    void *dc_next                   # (B, H)
    void *state_in                  # (S·L, B, H)
    void *state_out                 # (S·L, B, H)
    double *loss
    void *scratch                   # per thread: scratch_size values each
    Py_ssize_t scratch_size
    # the gradient arrays, for clipping: pointers and lengths
    void **grads_at
    Py_ssize_t *grad_sizes
    Py_ssize_t n_grads

cdef enum:
    PACK = 0
    PROJECT = 1
    FORWARD = 2
    DECODE = 3
    DECODER_GRADS = 4
    BACKWARD = 5
    LAYER_GRADS = 6
    CLIP = 7
    CLIP_CHUNK = 65536              # values of one clipping tile

cdef struct Job:
    int kind
    Window *w
    Py_ssize_t k, t


# ---------------------------------------------------------------------------------------
# Where things are.
# ---------------------------------------------------------------------------------------

cdef inline floating *hs_at(floating *_, const Window *w, Py_ssize_t k,
                            Py_ssize_t t) noexcept nogil:
    """(B, H) layer k's h after t steps (t = 0: the state carried in)."""
    cdef Py_ssize_t BH = w.B * w.net.H
    return (<floating *> w.hs) + (k * (w.T + 1) + t) * BH


cdef inline floating *layer_output(floating *_, const Window *w,
                                   Py_ssize_t k) noexcept nogil:
    """(T·B, H) the input of layer k+1 (or of the decoder when k = L-1): layer k's output,
    dropped out when masks are in use."""
    cdef Py_ssize_t TBH = w.T * w.B * w.net.H
    if w.use_masks:
        return (<floating *> w.ys) + k * TBH
    return hs_at(_, w, k, 1)


cdef inline floating *scratch_of(floating *_, const Window *w, int thread) noexcept nogil:
    return (<floating *> w.scratch) + thread * w.scratch_size


# ---------------------------------------------------------------------------------------
# The tiles of every phase.
# ---------------------------------------------------------------------------------------

cdef inline void copy_state(floating *_, const Window *w, bint into) noexcept nogil:
    """The carried state into hs[:, 0] / cs[:, 0] (into), or hs[:, T] / cs[:, T] out."""
    cdef const Net *n = w.net
    cdef Py_ssize_t k, BH = w.B * n.H, L = n.L, T = w.T
    cdef floating *s = <floating *> (w.state_in if into else w.state_out)
    cdef Py_ssize_t t = 0 if into else T
    for k in range(L):
        if into:
            memcpy(hs_at(_, w, k, 0), s + k * BH, BH * sizeof(floating))
            if n.cell == LSTM:
                memcpy((<floating *> w.cs) + k * (T + 1) * BH, s + (L + k) * BH,
                       BH * sizeof(floating))
        else:
            memcpy(s + k * BH, hs_at(_, w, k, T), BH * sizeof(floating))
            if n.cell == LSTM:
                memcpy(s + (L + k) * BH, (<floating *> w.cs) + (k * (T + 1) + T) * BH,
                       BH * sizeof(floating))


cdef inline void project_tile(floating *S, const Window *w, Py_ssize_t k,
                              Py_ssize_t tile) noexcept nogil:
    """pre_k (T·B, G·H) = layer k-1's output · Wxh_kᵀ + bh_k (rnn: into hs[k, 1:])."""
    cdef const Net *n = w.net
    cdef Py_ssize_t TB = w.T * w.B
    cdef floating *dest
    if n.cell == RNN:
        dest = hs_at(S, w, k, 1)
    else:
        dest = (<floating *> w.pre) + k * TB * n.GH
    cdef Operand wxh_t = packed(n.Px[k], n.H, n.NC, n.Wxh[k], 1, n.H)    # Wxh_kᵀ
    product_tile(S, n, TB, n.GH, n.H, layer_output(S, w, k - 1), n.H, 1, &wxh_t, tile, dest,
                 n.GH, <const floating *> n.bh[k])


cdef inline void forward_step_tile(floating *S, const Window *w, Py_ssize_t k, Py_ssize_t t,
                                   Py_ssize_t u) noexcept nogil:
    cdef const Net *n = w.net
    cdef Py_ssize_t B = w.B, T = w.T, BH = B * n.H, TBH = T * B * n.H
    cdef Py_ssize_t BGH = B * n.GH, TBGH = T * B * n.GH
    cdef ForwardStep s
    s.k, s.B = k, B
    s.xs, s.xs_stride = w.inputs + t, T
    s.h_prev = hs_at(S, w, k, t)
    s.h_out = hs_at(S, w, k, t + 1)
    if n.cell == RNN:
        s.pre = s.h_out
        s.gates = s.aux = NULL
    else:
        s.pre = s.gates = (<floating *> w.pre) + k * TBGH + t * BGH
        s.aux = (<floating *> w.aux) + k * TBH + t * BH
    if n.cell == LSTM:
        s.c_prev = (<floating *> w.cs) + (k * (T + 1) + t) * BH
        s.c_out = (<floating *> w.cs) + (k * (T + 1) + t + 1) * BH
    else:
        s.c_prev = s.c_out = NULL
    if w.use_masks:
        s.mask = (<const floating *> w.masks) + k * TBH + t * BH
        s.y_out = (<floating *> w.ys) + k * TBH + t * BH
    else:
        s.mask = s.y_out = NULL
    forward_tile(S, n, &s, u)


cdef inline Py_ssize_t decode_tiles(const Window *w) noexcept nogil:
    return ceil_div(w.T * w.B, w.net.RTD) + 1           # + the state out


cdef inline void decode_tile(floating *S, const Window *w, Py_ssize_t tile) noexcept nogil:
    """Rows r0 .. r0+RTD of the logits (T·B, V) = Y · Whyᵀ + by, their softmax into probs,
    their cross-entropy into w.loss, and with gradients dy = (p - onehot(target)) / B in
    place.  The last tile copies the state out."""
    cdef const Net *n = w.net
    cdef Py_ssize_t V = n.V, H = n.H, NC = n.NC, B = w.B, T = w.T, TB = T * B
    cdef Py_ssize_t r0, rows, p, r, j, row, target, Vp = n.n_vp * NC
    cdef const floating *Y
    cdef const floating *by = <const floating *> n.by
    cdef floating *z
    cdef floating *probs = <floating *> w.probs
    cdef double row_max, total, loss
    cdef floating inv_total, inv_B = <floating> (1.0 / B)
    if tile == ceil_div(TB, n.RTD):
        copy_state(S, w, False)
        return
    r0 = tile * n.RTD
    rows = min(n.RTD, TB - r0)
    Y = layer_output(S, w, n.L - 1) + r0 * H
    logits_rows(S, n, Y, rows, Vp)
    for r in range(rows):
        row = r0 + r
        target = w.targets[(row % B) * T + row // B]
        z = probs + row * V
        for j in range(V):
            z[j] = S[r * Vp + j] + by[j]
        # -log p[target] = log Σ exp(z - max) - (z[target] - max): finite for finite z
        row_max = max_of(z, V)
        loss = row_max - z[target]
        total = exp_shift_sum(z, V, row_max)
        w.loss[row] = loss + log(total)
        inv_total = <floating> (1.0 / total)
        for j in range(V):
            z[j] *= inv_total
        if w.grads:
            z[target] -= 1
            for j in range(V):
                z[j] *= inv_B


cdef inline Py_ssize_t decoder_grad_tiles(const Window *w) noexcept nogil:
    cdef const Net *n = w.net
    return (product_tiles(n, n.V, n.H) + 1 + product_tiles(n, w.T * w.B, n.H))


cdef inline void decoder_grad_tile(floating *S, const Window *w,
                                   Py_ssize_t tile) noexcept nogil:
    """dWhy (V, H) = dyᵀ · Y;  dby = Σ rows of dy;  dH (T·B, H) = dy · Why."""
    cdef const Net *n = w.net
    cdef Py_ssize_t V = n.V, H = n.H, TB = w.T * w.B, first = product_tiles(n, V, H)
    cdef const floating *dy = <const floating *> w.probs
    cdef Operand y = in_place(layer_output(S, w, n.L - 1), H, n.NC)
    cdef Operand why = packed(n.Py, V, n.NC, n.Why, H, 1)
    if tile < first:
        product_tile(S, n, V, H, TB, dy, 1, V, &y, tile, <floating *> n.dWhy, H, NULL)
    elif tile == first:
        column_sums(<floating *> n.dby, dy, TB, V, 0, V)
    else:
        product_tile(S, n, TB, H, V, dy, V, 1, &why, tile - first - 1, <floating *> w.dH, H,
                     NULL)


cdef inline void backward_step_tile(floating *S, const Window *w, Py_ssize_t k,
                                    Py_ssize_t t, Py_ssize_t u) noexcept nogil:
    cdef const Net *n = w.net
    cdef Py_ssize_t B = w.B, T = w.T, BH = B * n.H, TBH = T * B * n.H
    cdef Py_ssize_t BGH = B * n.GH, TBGH = T * B * n.GH
    cdef BackwardStep s
    cdef floating *dH = (<floating *> w.dH) + (0 if (n.L - 1 - k) % 2 == 0 else TBH)
    memset(&s, 0, sizeof(s))
    s.k, s.B = k, B
    s.has_next = t < T - 1
    s.dH = dH + t * BH
    s.mask = (<const floating *> w.masks) + k * TBH + t * BH if w.use_masks else NULL
    if n.cell == RNN:
        s.da_h_next = dH + (t + 1) * BH
        s.h = hs_at(S, w, k, t + 1)
    else:
        s.gates = (<const floating *> w.pre) + k * TBGH + t * BGH
        s.aux = (<const floating *> w.aux) + k * TBH + t * BH
        s.da = (<floating *> w.da) + t * BGH
        s.da_h = (<floating *> (w.da_h if n.cell == GRU else w.da)) + t * BGH
        s.da_h_next = (<const floating *> s.da_h) + BGH
    if n.cell == LSTM:
        s.c_prev = (<const floating *> w.cs) + (k * (T + 1) + t) * BH
        s.dc_next = w.dc_next
    if n.cell == GRU:
        s.h_prev = hs_at(S, w, k, t)
        s.dh_carry = w.dh_carry
    backward_tile(S, n, &s, u)


cdef inline Py_ssize_t layer_grad_tiles(const Window *w, Py_ssize_t k) noexcept nogil:
    cdef const Net *n = w.net
    cdef Py_ssize_t GH = n.GH, H = n.H, count = product_tiles(n, GH, H) + n.n_gp
    if k == 0:
        count += n.n_gp                                        # dWxh's scatter
    else:
        count += product_tiles(n, GH, H) + product_tiles(n, w.T * w.B, H)
    if n.cell == GRU:
        count += n.n_hp                                        # dbhn
    return count


cdef inline void layer_grad_tile(floating *S, const Window *w, Py_ssize_t k,
                                 Py_ssize_t tile) noexcept nogil:
    """Layer k's weight gradients after its steps backwards, in tiles: dWhh (G·H, H) =
    da_hᵀ · hs[k, :T];  dbh = Σ rows of da;  dWxh = daᵀ · X (k >= 1; for k = 0 the one-hot
    input makes it a scatter of da's rows into columns);  dbhn (gru) = Σ rows of da_h's n
    block;  dH below (T·B, H) = da · Wxh (k >= 1)."""
    cdef const Net *n = w.net
    cdef Py_ssize_t H = n.H, V = n.V, GH = n.GH, B = w.B, T = w.T, TB = T * B
    cdef Py_ssize_t TBH = TB * H, count, i, r0, r1, tb, x
    cdef const floating *da
    cdef const floating *da_h
    cdef const floating *row
    cdef floating *acc
    cdef floating *dWxh
    cdef floating *dH_below
    cdef Operand b
    if n.cell == RNN:
        da = (<const floating *> w.dH) + (0 if (n.L - 1 - k) % 2 == 0 else TBH)
        da_h = da
    else:
        da = <const floating *> w.da
        da_h = <const floating *> (w.da_h if n.cell == GRU else w.da)
    count = product_tiles(n, GH, H)
    if tile < count:
        b = in_place(hs_at(S, w, k, 0), H, n.NC)
        product_tile(S, n, GH, H, TB, da_h, 1, GH, &b, tile, <floating *> n.dWhh[k], H, NULL)
        return
    tile -= count
    if tile < n.n_gp:
        column_sums(<floating *> n.dbh[k], da, TB, GH, tile * n.NC,
                    min(GH, (tile + 1) * n.NC))
        return
    tile -= n.n_gp
    dWxh = <floating *> n.dWxh[k]
    if k == 0:
        count = n.n_gp
        if tile < count:
            # dWxh[i, x] = Σ_tb da[tb, i] over the rows tb whose input is x, tb in order:
            # summed as S[x, i] for the NC rows i of this tile (whole vectors), then moved
            r0 = tile * n.NC
            r1 = min(GH, r0 + n.NC)
            memset(S, 0, V * n.NC * sizeof(floating))
            for tb in range(TB):
                x = w.inputs[(tb % B) * T + tb // B]
                row = da + tb * GH + r0
                acc = S + x * n.NC
                for i in range(r1 - r0):
                    acc[i] += row[i]
            for i in range(r0, r1):
                for x in range(V):
                    dWxh[i * V + x] = S[x * n.NC + i - r0]
            return
    else:
        count = product_tiles(n, GH, H)
        if tile < count:
            b = in_place(layer_output(S, w, k - 1), H, n.NC)
            product_tile(S, n, GH, H, TB, da, 1, GH, &b, tile, dWxh, H, NULL)
            return
        tile -= count
        count = product_tiles(n, TB, H)
        if tile < count:
            dH_below = (<floating *> w.dH) + (0 if (n.L - 1 - (k - 1)) % 2 == 0 else TBH)
            b = packed(n.Pd[k], GH, n.NC, n.Wxh[k], H, 1)
            product_tile(S, n, TB, H, GH, da, GH, 1, &b, tile, dH_below, H, NULL)
            return
    tile -= count
    # gru: dbhn = Σ rows of da_h's n block, in column blocks of NC
    column_sums(<floating *> n.dbhn[k], da_h + 2 * H, TB, GH, tile * n.NC,
                min(H, (tile + 1) * n.NC))


cdef inline Py_ssize_t clip_tiles(const Window *w) noexcept nogil:
    cdef Py_ssize_t i, count = 0
    for i in range(w.n_grads):
        count += ceil_div(w.grad_sizes[i], CLIP_CHUNK)
    return count


cdef inline void clip_tile(floating *_, const Window *w, Py_ssize_t tile) noexcept nogil:
    cdef Py_ssize_t i, chunks
    for i in range(w.n_grads):
        chunks = ceil_div(w.grad_sizes[i], CLIP_CHUNK)
        if tile < chunks:
            clip_values((<floating *> w.grads_at[i]) + tile * CLIP_CHUNK,
                        min(CLIP_CHUNK, w.grad_sizes[i] - tile * CLIP_CHUNK),
                        <floating> w.clip)
            return
        tile -= chunks


cdef inline void window_tile(floating *_, Job *job, Py_ssize_t tile,
                             int thread) noexcept nogil:
    """Tile `tile` of the phase `job` describes, on `thread`'s scratch."""
    cdef Window *w = job.w
    cdef floating *S = scratch_of(_, w, thread)
    if job.kind == PACK:
        if tile == pack_tiles(w.net, w.grads):
            copy_state(_, w, True)
        else:
            pack_tile(_, w.net, w.grads, tile)
    elif job.kind == PROJECT:
        project_tile(S, w, job.k, tile)
    elif job.kind == FORWARD:
        forward_step_tile(S, w, job.k, job.t, tile)
    elif job.kind == DECODE:
        decode_tile(S, w, tile)
    elif job.kind == DECODER_GRADS:
        decoder_grad_tile(S, w, tile)
    elif job.kind == BACKWARD:
        backward_step_tile(S, w, job.k, job.t, tile)
    elif job.kind == LAYER_GRADS:
        layer_grad_tile(S, w, job.k, tile)
    else:
        clip_tile(_, w, tile)


cdef inline void window_program(floating *_, Window *w, rnncore_crew *crew,
                                rnncore_tile tile) noexcept nogil:
    """The whole window, run by every worker; `tile` is this dtype's window_tile."""
    cdef const Net *n = w.net
    cdef Py_ssize_t L = n.L, T = w.T, TB = T * w.B, k, t
    cdef Job job
    job.w = w
    job.kind = PACK
    rnncore_phase(crew, pack_tiles(n, w.grads) + 1, tile, &job)
    for k in range(L):
        job.k = k
        if k > 0:
            job.kind = PROJECT
            rnncore_phase(crew, product_tiles(n, TB, n.GH), tile, &job)
        job.kind = FORWARD
        for t in range(T):
            job.t = t
            rnncore_phase(crew, n.n_uf, tile, &job)
    job.kind = DECODE
    rnncore_phase(crew, decode_tiles(w), tile, &job)
    if not w.grads:
        return
    job.kind = DECODER_GRADS
    rnncore_phase(crew, decoder_grad_tiles(w), tile, &job)
    k = L - 1
    while k >= 0:
        job.k = k
        job.kind = BACKWARD
        t = T - 1
        while t >= 0:
            job.t = t
            rnncore_phase(crew, n.n_ub, tile, &job)
            t -= 1
        job.kind = LAYER_GRADS
        rnncore_phase(crew, layer_grad_tiles(w, k), tile, &job)
        k -= 1
    if w.clip > 0:
        job.kind = CLIP
        rnncore_phase(crew, clip_tiles(w), tile, &job)
