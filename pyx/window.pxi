# The training window on the team: the layer stack forward, the decoder with softmax
# cross-entropy, backpropagation through time, the weight gradients and clipping, as one
# program of phases (csrc/team.h) that every worker runs.
#
# Storage the window needs (time-major; every buffer C-contiguous, with W values of slack at
# its end, because a product reads whole vectors past a row's last column):
#   hs    (L, T+1, B, H)  every layer's h; hs[k, 0] is the state carried in
#   cs    (L, T+1, B, H)  lstm's c
#   pre   (L, T, B, G·H)  k >= 1: the input projection Wxh·x + bh; then, every layer, the
#                         activated gates in place (rnn: none; its projection is written into
#                         hs[k, 1:] and the step turns it into h in place)
#   aux   (L, T, B, H)    lstm: tanh(c');  gru: Whh_n·h + bhn
#   ys    (L, T, B, H)    with dropout: masks ⊙ h, the input of the layer above / the decoder
#   probs (T, B, V)       probabilities, then dy
#   da    (T, B, G·H)     one layer's gradients at the input-side pre-activations
#   da_h  (T, B, G·H)     gru only: at the hidden-side ones
#   dH    (2, T, B, H)    dloss/d(layer output), for the layer being run and the one below
#   rows_h, rows_x (n_hp, T·B, NC)  micro-kernel only: the right-hand operands of the weight
#                         gradients packed once as panels (the decoder's Y, then each layer's
#                         h_{t-1} rows and its input rows), so that no tile packs them again
#   loss  (T·B,)          every row's cross-entropy (nats), summed in row order by the caller
#
# The phases, in order: pack the weights (and copy the state in); per layer, its input
# projection (k >= 1) and one phase per step; the decoder and loss (and the state out); then,
# for gradients, the decoder's weight gradients and dloss/dh of the top layer, per layer one
# phase per step backwards and one for its weight gradients and the gradient into the layer
# below; clipping.  Tiles of the window-wide products are (RT rows) × (NC columns), every
# output element summed whole inside one tile, so their bits do not depend on the threads.
# Included by _cells.pyx.
from libc.math cimport log
from libc.string cimport memcpy, memset

from cellmath cimport column_sums, scatter_rows
from kernel_maths cimport max_of, exp_shift_sum, clip_values
from team cimport rnncore_crew, rnncore_phase, rnncore_tile

cdef struct Window:
    Net *net
    Py_ssize_t B, T
    bint use_masks
    bint backward                   # gradients too (else the loss only)
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
    void *rows_h                    # (n_hp, T·B, NC), see the top of this file
    void *rows_x
    void *dh_carry                  # (B, H)
    void *dc_next                   # (B, H)
    void *state_in                  # (S·L, B, H)
    void *state_out                 # (S·L, B, H)
    double *loss
    Params grads                    # where the gradients go
    # the gradient arrays again, for clipping: pointers and lengths
    void **grads_at
    Py_ssize_t *grad_sizes
    Py_ssize_t n_grads
    rnncore_tile tile               # window_tile of the model's dtype (_cells.pyx)
    void *scratch                   # per thread: scratch_size values each
    Py_ssize_t scratch_size

cdef enum:
    PACK = 0
    PROJECT = 1
    FORWARD = 2
    DECODE = 3
    DECODER_GRADS = 4
    BACKWARD = 5
    LAYER_GRADS = 6
    CLIP = 7
    PACK_ROWS = 8
    CLIP_CHUNK = 65536              # values of one clipping tile

cdef struct Job:
    int kind
    Window *w
    Py_ssize_t k, t


# ---------------------------------------------------------------------------------------
# Where things are.
# ---------------------------------------------------------------------------------------

cdef inline void *hs_at(const Window *w, Py_ssize_t k, Py_ssize_t t) noexcept nogil:
    """(B, H) layer k's h after t steps (t = 0: the state carried in)."""
    return skip(w.hs, (k * (w.T + 1) + t) * w.B * w.net.H, w.net.itemsize)


cdef inline void *cs_at(const Window *w, Py_ssize_t k, Py_ssize_t t) noexcept nogil:
    """(B, H) layer k's c after t steps (lstm)."""
    return skip(w.cs, (k * (w.T + 1) + t) * w.B * w.net.H, w.net.itemsize)


cdef inline void *layer_output(const Window *w, Py_ssize_t k) noexcept nogil:
    """(T·B, H) the input of layer k+1 (or of the decoder when k = L-1): layer k's output,
    dropped out when masks are in use."""
    if w.use_masks:
        return skip(w.ys, k * w.T * w.B * w.net.H, w.net.itemsize)
    return hs_at(w, k, 1)


cdef inline void *scratch_of(const Window *w, int thread) noexcept nogil:
    """The scratch of `thread` (scratch_size values)."""
    return skip(w.scratch, thread * w.scratch_size, w.net.itemsize)


# ---------------------------------------------------------------------------------------
# The tiles of every phase.
# ---------------------------------------------------------------------------------------

cdef inline void copy_state(const Window *w, bint into) noexcept nogil:
    """The carried state into hs[:, 0] / cs[:, 0] (into), or hs[:, T] / cs[:, T] out."""
    cdef const Net *n = w.net
    cdef Py_ssize_t k, BH = w.B * n.H, L = n.L, s = n.itemsize
    cdef void *state = w.state_in if into else w.state_out
    cdef Py_ssize_t t = 0 if into else w.T
    for k in range(L):
        if into:
            memcpy(hs_at(w, k, t), skip(state, k * BH, s), BH * s)
        else:
            memcpy(skip(state, k * BH, s), hs_at(w, k, t), BH * s)
        if n.cell != LSTM:
            continue
        if into:
            memcpy(cs_at(w, k, t), skip(state, (L + k) * BH, s), BH * s)
        else:
            memcpy(skip(state, (L + k) * BH, s), cs_at(w, k, t), BH * s)


cdef inline void project_tile(floating *S, const Window *w, Py_ssize_t k,
                              Py_ssize_t tile) noexcept nogil:
    """pre_k (T·B, G·H) = layer k-1's output · Wxh_kᵀ + bh_k (rnn: into hs[k, 1:])."""
    cdef const Net *n = w.net
    cdef Py_ssize_t TB = w.T * w.B
    cdef floating *dest
    if n.cell == RNN:
        dest = <floating *> hs_at(w, k, 1)
    else:
        dest = (<floating *> w.pre) + k * TB * n.GH
    cdef Operand wxh_t = packed(n.Px[k], n.H, n.NC, n.params.Wxh[k], 1, n.H)    # Wxh_kᵀ
    product_tile(S, n, TB, n.GH, n.H, <const floating *> layer_output(w, k - 1), n.H, 1,
                 &wxh_t, tile, dest, n.GH, <const floating *> n.params.bh[k])


cdef inline void forward_step_tile(floating *S, const Window *w, Py_ssize_t k, Py_ssize_t t,
                                   Py_ssize_t u) noexcept nogil:
    cdef const Net *n = w.net
    cdef Py_ssize_t B = w.B, T = w.T, BH = B * n.H, TBH = T * B * n.H
    cdef Py_ssize_t BGH = B * n.GH, TBGH = T * B * n.GH
    cdef ForwardStep s
    s.k, s.B = k, B
    s.xs, s.xs_stride = w.inputs + t, T
    s.h_prev = hs_at(w, k, t)
    s.h_out = hs_at(w, k, t + 1)
    if n.cell == RNN:
        s.pre = s.h_out
        s.gates = s.aux = NULL
    else:
        s.pre = s.gates = (<floating *> w.pre) + k * TBGH + t * BGH
        s.aux = (<floating *> w.aux) + k * TBH + t * BH
    if n.cell == LSTM:
        s.c_prev = cs_at(w, k, t)
        s.c_out = cs_at(w, k, t + 1)
    else:
        s.c_prev = s.c_out = NULL
    if w.use_masks:
        s.mask = (<const floating *> w.masks) + k * TBH + t * BH
        s.y_out = (<floating *> w.ys) + k * TBH + t * BH
    else:
        s.mask = s.y_out = NULL
    forward_tile(S, n, &s, u)


cdef inline Py_ssize_t pack_rows_tiles(const Window *w, Py_ssize_t k) noexcept nogil:
    """Panels to pack before the weight gradients of layer k (k = L: the decoder's): none
    where BLAS runs them (it reads the rows in place)."""
    cdef const Net *n = w.net
    if n.eng_wide != OWN:
        return 0
    return n.n_hp * (2 if 0 < k < n.L else 1)


cdef inline PackTask pack_rows_task(const Window *w, Py_ssize_t k,
                                    Py_ssize_t tile) noexcept nogil:
    """Panel `tile` of the rows the weight gradients of layer k multiply (k = L: Y into
    rows_h; else hs[k, :T] into rows_h, then, k >= 1, layer k-1's output into rows_x)."""
    cdef const Net *n = w.net
    cdef Py_ssize_t TB = w.T * w.B, H = n.H, NC = n.NC, p = tile % n.n_hp, s = n.itemsize
    cdef const void *src
    cdef void *dst
    if k == n.L:
        src, dst = layer_output(w, n.L - 1), w.rows_h
    elif tile < n.n_hp:
        src, dst = hs_at(w, k, 0), w.rows_h
    else:
        src, dst = layer_output(w, k - 1), w.rows_x
    return columns_task(skip(dst, p * TB * NC, s), skip(src, p * NC, s), H, TB,
                        min(NC, H - p * NC), NC)


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
    cdef const floating *by = <const floating *> n.params.by
    cdef floating *z
    cdef floating *probs = <floating *> w.probs
    cdef double row_max, total, loss
    cdef floating inv_total, inv_B = <floating> (1.0 / B)
    if tile == ceil_div(TB, n.RTD):
        copy_state(w, False)
        return
    r0 = tile * n.RTD
    rows = min(n.RTD, TB - r0)
    Y = (<const floating *> layer_output(w, n.L - 1)) + r0 * H
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
        if w.backward:
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
    cdef Operand y = packed(w.rows_h, TB, n.NC, layer_output(w, n.L - 1), H, 1)
    cdef Operand why = in_place(n.params.Why, H, n.NC) if n.bwd_in_place \
        else packed(n.Py, V, n.NC, n.params.Why, H, 1)
    if tile < first:
        product_tile(S, n, V, H, TB, dy, 1, V, &y, tile, <floating *> w.grads.Why, H, NULL)
    elif tile == first:
        column_sums(<floating *> w.grads.by, dy, TB, V, V)
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
        s.h = hs_at(w, k, t + 1)
    else:
        s.gates = (<const floating *> w.pre) + k * TBGH + t * BGH
        s.aux = (<const floating *> w.aux) + k * TBH + t * BH
        s.da = (<floating *> w.da) + t * BGH
        s.da_h = (<floating *> (w.da_h if n.cell == GRU else w.da)) + t * BGH
        s.da_h_next = (<const floating *> s.da_h) + BGH
    if n.cell == LSTM:
        s.c_prev = cs_at(w, k, t)
        s.dc_next = w.dc_next
    if n.cell == GRU:
        s.h_prev = hs_at(w, k, t)
        s.dh_carry = w.dh_carry
    backward_tile(S, n, &s, u)


cdef inline Py_ssize_t layer_grad_tiles(const Window *w, Py_ssize_t k) noexcept nogil:
    cdef const Net *n = w.net
    cdef Py_ssize_t GH = n.GH, H = n.H
    cdef Py_ssize_t count = product_tiles(n, GH, H) + ceil_div(GH, n.NT)      # dWhh, dbh
    if k == 0:
        count += ceil_div(GH, n.SW)                            # dWxh's scatter
    else:
        count += product_tiles(n, GH, H) + product_tiles(n, w.T * w.B, H)
    if n.cell == GRU:
        count += ceil_div(H, n.NT)                             # dbhn
    return count


cdef inline void layer_grad_tile(floating *S, const Window *w, Py_ssize_t k,
                                 Py_ssize_t tile) noexcept nogil:
    """Layer k's weight gradients after its steps backwards, in tiles: dWhh (G·H, H) =
    da_hᵀ · hs[k, :T];  dbh = Σ rows of da;  dWxh = daᵀ · X (k >= 1; for k = 0 the one-hot
    input makes it a scatter of da's rows into columns);  dbhn (gru) = Σ rows of da_h's n
    block;  dH below (T·B, H) = da · Wxh (k >= 1)."""
    cdef const Net *n = w.net
    cdef Py_ssize_t H = n.H, V = n.V, GH = n.GH, B = w.B, T = w.T, TB = T * B
    cdef Py_ssize_t TBH = TB * H, count, i, c0, cols, x
    cdef const floating *da
    cdef const floating *da_h
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
        b = packed(w.rows_h, TB, n.NC, hs_at(w, k, 0), H, 1)
        product_tile(S, n, GH, H, TB, da_h, 1, GH, &b, tile, <floating *> w.grads.Whh[k], H,
                     NULL)
        return
    tile -= count
    count = ceil_div(GH, n.NT)
    if tile < count:                    # dbh, NT columns a tile
        c0 = tile * n.NT
        column_sums(<floating *> w.grads.bh[k] + c0, da + c0, TB, GH, min(n.NT, GH - c0))
        return
    tile -= count
    dWxh = <floating *> w.grads.Wxh[k]
    if k == 0:
        count = ceil_div(GH, n.SW)
        if tile < count:
            # dWxh[i, x] = Σ_tb da[tb, i] over the rows tb whose input is x, tb in order:
            # summed as S[x, i] for the SW rows i of this tile, then moved
            c0 = tile * n.SW
            cols = min(n.SW, GH - c0)
            scatter_rows(S, V, da + c0, TB, GH, cols, w.inputs, B, T)
            for i in range(cols):
                for x in range(V):
                    dWxh[(c0 + i) * V + x] = S[x * cols + i]
            return
    else:
        count = product_tiles(n, GH, H)
        if tile < count:
            b = packed(w.rows_x, TB, n.NC, layer_output(w, k - 1), H, 1)
            product_tile(S, n, GH, H, TB, da, 1, GH, &b, tile, dWxh, H, NULL)
            return
        tile -= count
        count = product_tiles(n, TB, H)
        if tile < count:
            dH_below = (<floating *> w.dH) + (0 if (n.L - 1 - (k - 1)) % 2 == 0 else TBH)
            b = in_place(n.params.Wxh[k], H, n.NC) if n.bwd_in_place \
                else packed(n.Pd[k], GH, n.NC, n.params.Wxh[k], H, 1)
            product_tile(S, n, TB, H, GH, da, GH, 1, &b, tile, dH_below, H, NULL)
            return
    tile -= count
    # gru: dbhn = Σ rows of da_h's n block, NT columns a tile
    c0 = tile * n.NT
    column_sums(<floating *> w.grads.bhn[k] + c0, da_h + 2 * H + c0, TB, GH, min(n.NT, H - c0))


cdef inline Py_ssize_t clip_tiles(const Window *w) noexcept nogil:
    cdef Py_ssize_t i, count = 0
    for i in range(w.n_grads):
        count += ceil_div(w.grad_sizes[i], CLIP_CHUNK)
    return count


cdef inline Py_ssize_t clip_chunk(const Window *w, Py_ssize_t tile,
                                  void **at) noexcept nogil:
    """Tile `tile` of the clipping phase: its first value into *at; returns its length."""
    cdef Py_ssize_t i, chunks
    for i in range(w.n_grads):
        chunks = ceil_div(w.grad_sizes[i], CLIP_CHUNK)
        if tile < chunks:
            at[0] = skip(w.grads_at[i], tile * CLIP_CHUNK, w.net.itemsize)
            return min(CLIP_CHUNK, w.grad_sizes[i] - tile * CLIP_CHUNK)
        tile -= chunks
    return 0


cdef inline void window_tile(floating *S, const Job *job, Py_ssize_t tile) noexcept nogil:
    """Tile `tile` of the phase `job` describes; S: the thread's scratch."""
    cdef const Window *w = job.w
    cdef PackTask task
    cdef void *at = NULL
    cdef Py_ssize_t count
    if job.kind == PACK:
        if tile == pack_tiles(w.net, w.backward):
            copy_state(w, True)
        else:
            task = pack_task(w.net, w.backward, tile)
            pack_panel(<floating *> task.P, &task)
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
    elif job.kind == PACK_ROWS:
        task = pack_rows_task(w, job.k, tile)
        pack_panel(<floating *> task.P, &task)
    else:
        count = clip_chunk(w, tile, &at)
        clip_values(<floating *> at, count, <floating> w.clip)


cdef void window_program(void *arg, rnncore_crew *crew) noexcept nogil:
    """The whole window (arg: its Window), run by every worker."""
    cdef Window *w = <Window *> arg
    cdef const Net *n = w.net
    cdef rnncore_tile tile = w.tile
    cdef Py_ssize_t L = n.L, T = w.T, TB = T * w.B, k, t
    cdef Job job
    job.w = w
    job.kind = PACK
    rnncore_phase(crew, pack_tiles(n, w.backward) + 1, tile, &job)
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
    if not w.backward:
        return
    job.kind = PACK_ROWS
    job.k = L
    rnncore_phase(crew, pack_rows_tiles(w, L), tile, &job)
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
        job.kind = PACK_ROWS
        rnncore_phase(crew, pack_rows_tiles(w, k), tile, &job)
        job.kind = LAYER_GRADS
        rnncore_phase(crew, layer_grad_tiles(w, k), tile, &job)
        k -= 1
    if w.clip > 0:
        job.kind = CLIP
        rnncore_phase(crew, clip_tiles(w), tile, &job)
