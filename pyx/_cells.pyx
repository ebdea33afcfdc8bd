# cython: language_level=3
"""Compiled kernels of every cell (rnn, lstm, gru) and depth: the window's forward pass,
loss and backward pass over a stack of layers, and generation.

Layout of this file, top to bottom:
  1. One step of one layer, any cell (shared by the window and by generation).
  2. The window: the stack forward, softmax cross-entropy, the stack backward.
  3. Generation helpers (logits of one stream, the draw).
  4. StackKernel: a model's parameters and gradients bound once, and the scratch buffers
     of one (B, T) window shape, so a call hands over two index arrays and nothing else.

Sizes in comments: V vocabulary, H hidden units, B streams, T time steps, L layers,
G gate blocks (1 rnn, 4 lstm, 3 gru).  Equations, gate order and bias placement are
PyTorch's (see rnncore/reference.py, the numpy twin of everything here).

Storage the window needs (T·B rows, time-major, every buffer C-contiguous):
  hs   (L, T+1, B, H)  every layer's h; hs[k, 0] is the state carried in
  cs   (L, T+1, B, H)  lstm's c
  pre  (L, T, B, G·H)  input projections Wxh·x + bh, then the activated gates in place
                       (rnn: none; its pre-activation is written into hs[k, 1:] directly)
  aux  (L, T, B, H)    lstm: tanh(c');  gru: Whh_n·h + bhn (both needed by the backward)
  ys   (L, T, B, H)    with dropout: masks ⊙ h, the input of the layer above / the decoder
  probs (T, B, V)      logits, then probabilities, then dy
  da   (T, B, G·H)     one layer's gradient at the input-side pre-activations
  da_h (T, B, G·H)     gru only: at the hidden-side ones (its n block is da's ⊙ r)
  dH   (2, T, B, H)    dloss/d(layer output), for the layer being run and the one below
"""
import numpy as np

from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.math cimport exp, log
from libc.stdlib cimport qsort
from libc.string cimport memset, memcpy, memmove
from cython cimport floating

from kernel_maths cimport (blas_int, gemm_rm, gemv_rm, rows_times_wt, rows_times_w,
                           tanh_inplace, sigmoid_inplace, max_of, exp_shift_sum,
                           clip_values, vecmath_choice)

#: This module's maths path (vecmath.c chooses per module, at import): what
#: `rnncore --version` reports, since the cells' tanh, sigmoid and exp run here
MATHS, USES_LIBMVEC = vecmath_choice(True)

cdef enum:
    RNN = 0
    LSTM = 1
    GRU = 2

CELL_CODES = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


cdef struct Window:
    # sizes and switches
    int cell
    Py_ssize_t L, V, H, B, T, G
    bint use_masks
    const Py_ssize_t *inputs       # (B, T)
    const Py_ssize_t *targets      # (B, T)
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
    # buffers, see the module docstring (unused ones NULL)
    void *hs
    void *cs
    void *pre
    void *aux
    void *ys
    void *masks                    # (L, T, B, H)
    void *probs
    void *rec                      # (B, G·H) gru's recurrent products of one step
    void *da
    void *da_h
    void *dH
    void *dh_next                  # (B, H)
    void *dc_next                  # (B, H)
    void *state_in                 # (S·L, B, H)
    void *state_out                # (S·L, B, H)


# ---------------------------------------------------------------------------------------
# 1. One step of one layer.
# ---------------------------------------------------------------------------------------

cdef void cell_step(int cell, Py_ssize_t B, Py_ssize_t H, const floating *Whh,
                    const floating *bhn, const floating *h_prev, const floating *c_prev,
                    floating *pre, floating *rec, floating *h_out, floating *c_out,
                    floating *aux) noexcept nogil:
    """One step of B streams of one layer.

    pre (B, G·H): Wxh·x + bh on entry; on return the activated gates (lstm σ(i) σ(f)
        tanh(g) σ(o), gru r u n; rnn: h' itself).
    h_prev, c_prev (B, H) -> h_out, c_out (B, H); each pair may be the same array (an
        element is read before it is written).  rnn may have h_out == pre.
    aux (B, H) receives lstm's tanh(c') / gru's Whh_n·h + bhn.  rec (B, G·H): gru scratch.
    c_prev, c_out: lstm only; bhn, rec: gru only.
    """
    cdef Py_ssize_t b, i, j, GH
    cdef floating *z
    cdef const floating *hp
    if cell == RNN:
        # h' = tanh(pre + h·Whhᵀ)
        rows_times_wt(B, H, H, h_prev, Whh, <floating> 1.0, pre)
        tanh_inplace(pre, B * H)
        if h_out != pre:
            memcpy(h_out, pre, B * H * sizeof(floating))
    elif cell == LSTM:
        GH = 4 * H
        # z = pre + h·Whhᵀ, all four gates in one product
        rows_times_wt(B, GH, H, h_prev, Whh, <floating> 1.0, pre)
        for b in range(B):
            z = pre + b * GH
            sigmoid_inplace(z, 2 * H)                  # i, f
            tanh_inplace(z + 2 * H, H)                 # g
            sigmoid_inplace(z + 3 * H, H)              # o
            for i in range(H):
                j = b * H + i
                # c' = f⊙c + i⊙g
                c_out[j] = z[H + i] * c_prev[j] + z[i] * z[2 * H + i]
        memcpy(aux, c_out, B * H * sizeof(floating))
        tanh_inplace(aux, B * H)
        for b in range(B):
            z = pre + b * GH
            for i in range(H):
                # h' = o⊙tanh(c')
                h_out[b * H + i] = z[3 * H + i] * aux[b * H + i]
    else:
        GH = 3 * H
        # rec = h·Whhᵀ: the three recurrent products in one (linear before reset)
        rows_times_wt(B, GH, H, h_prev, Whh, <floating> 0.0, rec)
        for b in range(B):
            z = pre + b * GH
            hp = rec + b * GH
            for i in range(2 * H):
                z[i] += hp[i]
            sigmoid_inplace(z, 2 * H)                  # r, u
            for i in range(H):
                # n's pre-activation: Wxh_n·x + bh_n + r⊙(Whh_n·h + bhn)
                aux[b * H + i] = hp[2 * H + i] + bhn[i]
                z[2 * H + i] += z[i] * aux[b * H + i]
            tanh_inplace(z + 2 * H, H)                 # n
            for i in range(H):
                j = b * H + i
                # h' = (1-u)⊙n + u⊙h
                h_out[j] = (1 - z[H + i]) * z[2 * H + i] + z[H + i] * h_prev[j]


# ---------------------------------------------------------------------------------------
# 2. The window.
# ---------------------------------------------------------------------------------------

cdef inline floating *layer_input(Window *w, floating *hs, Py_ssize_t k) noexcept nogil:
    """(T·B, H) input of layer k+1 (or of the decoder when k = L-1): layer k's output,
    dropped out when masks are in use."""
    cdef Py_ssize_t BH = w.B * w.H
    if w.use_masks:
        return (<floating *> w.ys) + k * w.T * BH
    return hs + k * (w.T + 1) * BH + BH


cdef double stack_forward(Window *w, floating *hs) noexcept nogil:
    """Every layer over the whole window, then the decoder and the loss.  hs is w.hs.
    Leaves the probabilities in w.probs; returns the summed cross-entropy in nats."""
    cdef Py_ssize_t L = w.L, V = w.V, H = w.H, B = w.B, T = w.T
    cdef Py_ssize_t GH = w.G * H, BH = B * H, TB = T * B, TBH = T * B * H
    cdef Py_ssize_t k, t, b, i, x, rows = (2 if w.cell == LSTM else 1) * L
    cdef const floating *Wxh
    cdef const floating *bh
    cdef floating *hs_k
    cdef floating *cs_k
    cdef floating *pre_k
    cdef floating *aux_k
    cdef floating *P
    cdef floating *y_k
    cdef const floating *m_k
    cdef floating *state_in = <floating *> w.state_in
    cdef floating *state_out = <floating *> w.state_out
    cdef floating *probs = <floating *> w.probs
    for k in range(L):
        Wxh = <const floating *> w.Wxh[k]
        bh = <const floating *> w.bh[k]
        hs_k = hs + k * (T + 1) * BH
        cs_k = (<floating *> w.cs) + k * (T + 1) * BH if w.cell == LSTM else NULL
        aux_k = (<floating *> w.aux) + k * TBH if w.cell != RNN else NULL
        pre_k = hs_k + BH if w.cell == RNN else (<floating *> w.pre) + k * TB * GH
        memcpy(hs_k, state_in + k * BH, BH * sizeof(floating))
        if cs_k != NULL:
            memcpy(cs_k, state_in + (L + k) * BH, BH * sizeof(floating))
        # the input projection of the whole window, pre (T·B, G·H) = Wxh·x + bh
        if k == 0:
            for t in range(T):
                for b in range(B):
                    x = w.inputs[b * T + t]
                    P = pre_k + (t * B + b) * GH
                    # Wxh·onehot(x) is column x of Wxh
                    for i in range(GH):
                        P[i] = Wxh[i * V + x] + bh[i]
        else:
            for i in range(TB):
                memcpy(pre_k + i * GH, bh, GH * sizeof(floating))
            gemm_rm(False, True, <blas_int> TB, <blas_int> GH, <blas_int> H,
                    <floating> 1.0, layer_input(w, hs, k - 1), <blas_int> H, Wxh,
                    <blas_int> H, <floating> 1.0, pre_k, <blas_int> GH)
        for t in range(T):
            cell_step(w.cell, B, H, <const floating *> w.Whh[k],
                      <const floating *> w.bhn[k], hs_k + t * BH,
                      cs_k + t * BH if cs_k != NULL else NULL, pre_k + t * B * GH,
                      <floating *> w.rec, hs_k + (t + 1) * BH,
                      cs_k + (t + 1) * BH if cs_k != NULL else NULL,
                      aux_k + t * BH if aux_k != NULL else NULL)
        memcpy(state_out + k * BH, hs_k + T * BH, BH * sizeof(floating))
        if cs_k != NULL:
            memcpy(state_out + (L + k) * BH, cs_k + T * BH, BH * sizeof(floating))
        if w.use_masks:
            # inverted dropout on the layer's output (the recurrent h is kept whole)
            y_k = (<floating *> w.ys) + k * TBH
            m_k = (<const floating *> w.masks) + k * TBH
            P = hs_k + BH
            for i in range(TBH):
                y_k[i] = P[i] * m_k[i]
    # one GEMM for the whole window: logits (TB,V) = Y (TB,H) · Whyᵀ + by
    for i in range(TB):
        memcpy(probs + i * V, w.by, V * sizeof(floating))
    gemm_rm(False, True, <blas_int> TB, <blas_int> V, <blas_int> H, <floating> 1.0,
            layer_input(w, hs, L - 1), <blas_int> H, <const floating *> w.Why, <blas_int> H,
            <floating> 1.0, probs, <blas_int> V)
    return softmax_xent_rows(TB, V, probs, w.targets, B, T)


cdef double softmax_xent_rows(Py_ssize_t n_rows, Py_ssize_t V, floating *logits,
                              const Py_ssize_t *targets_bt, Py_ssize_t B,
                              Py_ssize_t T) noexcept nogil:
    """Turn each row of logits (T·B rows, row t*B+b) into probabilities in place and
    return the summed cross-entropy -log p[target] in nats.  targets_bt is (B, T).

    Subtracting the row max first keeps exp() finite for any finite logits; the target's
    log-probability is taken as (y - max) - log(sum), never as log of a rounded p.
    """
    cdef Py_ssize_t r, j, t, b, target
    cdef double row_max, total, loss = 0.0
    cdef floating inv_total
    cdef floating *y
    for r in range(n_rows):
        t = r // B
        b = r - t * B
        target = targets_bt[b * T + t]
        y = logits + r * V
        row_max = max_of(y, V)
        # -log p[target] = log Σ exp(y - max) - (y[target] - max)
        loss -= y[target] - row_max
        total = exp_shift_sum(y, V, row_max)
        loss += log(total)
        inv_total = <floating> (1.0 / total)
        for j in range(V):
            y[j] *= inv_total
    return loss


cdef void cell_step_backward(Window *w, Py_ssize_t k, Py_ssize_t t, floating *hs,
                             floating *dH, floating *da, floating *da_h) noexcept nogil:
    """Step t of layer k backwards: from dH[t] (dloss/dh_t from above) and w.dh_next,
    w.dc_next (from step t+1), the gradients at the pre-activations da[t] (input side)
    and da_h[t] (hidden side; the same array as da except for gru).  Leaves in w.dh_next
    the part of dloss/dh_{t-1} that does not go through Whh (gru's u⊙dh; 0 otherwise) and
    in w.dc_next dloss/dc_{t-1} (lstm)."""
    cdef Py_ssize_t H = w.H, B = w.B, GH = w.G * H, BH = B * H
    cdef Py_ssize_t b, i, j
    cdef floating *dh_next = <floating *> w.dh_next
    cdef floating *dc_next = <floating *> w.dc_next
    cdef floating *dh_t = dH + t * BH
    cdef const floating *h_t
    cdef const floating *z
    cdef const floating *tc
    cdef const floating *c_prev
    cdef const floating *hn
    cdef const floating *h_prev
    cdef floating *dz
    cdef floating *dzh
    cdef floating dh, dc, gi, gf, gg, go, r, u, n, dan
    if w.cell == RNN:
        # in place: da = (1 - h²) ⊙ (dH[t] + dh_next)
        h_t = hs + k * (w.T + 1) * BH + (t + 1) * BH
        for i in range(BH):
            dh_t[i] = (1 - h_t[i] * h_t[i]) * (dh_t[i] + dh_next[i])
    elif w.cell == LSTM:
        tc = (<const floating *> w.aux) + (k * w.T + t) * BH
        c_prev = (<const floating *> w.cs) + k * (w.T + 1) * BH + t * BH
        for b in range(B):
            z = (<const floating *> w.pre) + ((k * w.T + t) * B + b) * GH
            dz = da + (t * B + b) * GH
            for i in range(H):
                j = b * H + i
                gi, gf, gg, go = z[i], z[H + i], z[2 * H + i], z[3 * H + i]
                dh = dh_t[j] + dh_next[j]
                dc = dc_next[j] + dh * go * (1 - tc[j] * tc[j])
                dz[i] = dc * gg * gi * (1 - gi)
                dz[H + i] = dc * c_prev[j] * gf * (1 - gf)
                dz[2 * H + i] = dc * gi * (1 - gg * gg)
                dz[3 * H + i] = dh * tc[j] * go * (1 - go)
                dc_next[j] = dc * gf
    else:
        hn = (<const floating *> w.aux) + (k * w.T + t) * BH
        h_prev = hs + k * (w.T + 1) * BH + t * BH
        for b in range(B):
            z = (<const floating *> w.pre) + ((k * w.T + t) * B + b) * GH
            dz = da + (t * B + b) * GH
            dzh = da_h + (t * B + b) * GH
            for i in range(H):
                j = b * H + i
                r, u, n = z[i], z[H + i], z[2 * H + i]
                dh = dh_t[j] + dh_next[j]
                dan = dh * (1 - u) * (1 - n * n)
                dz[2 * H + i] = dan
                dz[H + i] = dh * (h_prev[j] - n) * u * (1 - u)
                dz[i] = dan * hn[j] * r * (1 - r)
                dzh[i] = dz[i]
                dzh[H + i] = dz[H + i]
                dzh[2 * H + i] = dan * r
                dh_next[j] = dh * u                    # h' = ... + u⊙h


cdef void stack_backward(Window *w, floating *hs) noexcept nogil:
    """Backprop through time over the window and every layer, after stack_forward.
    Gradients are of Σ_t mean_b cross-entropy; every gradient array is overwritten."""
    cdef Py_ssize_t L = w.L, V = w.V, H = w.H, B = w.B, T = w.T
    cdef Py_ssize_t GH = w.G * H, BH = B * H, TB = T * B, TBH = T * B * H
    cdef Py_ssize_t k, t, b, i, j, x
    cdef floating inv_B = <floating> (1.0 / B)
    cdef floating *probs = <floating *> w.probs
    cdef floating *dby = <floating *> w.dby
    cdef floating *dH = <floating *> w.dH            # this layer's
    cdef floating *dH_below = dH + TBH
    cdef floating *swap
    cdef floating *da
    cdef floating *da_h
    cdef floating *dy
    cdef floating *dWxh
    cdef floating *dbh
    cdef floating *dbhn
    cdef const floating *m_k
    cdef floating *dh_next = <floating *> w.dh_next
    # dy = (p - onehot(target)) / B
    for t in range(T):
        for b in range(B):
            dy = probs + (t * B + b) * V
            dy[w.targets[b * T + t]] -= 1
            for j in range(V):
                dy[j] *= inv_B
    # dWhy (V,H) = dyᵀ (V,TB) · Y (TB,H)
    gemm_rm(True, False, <blas_int> V, <blas_int> H, <blas_int> TB, <floating> 1.0,
            probs, <blas_int> V, layer_input(w, hs, L - 1), <blas_int> H, <floating> 0.0,
            <floating *> w.dWhy, <blas_int> H)
    memset(dby, 0, V * sizeof(floating))
    for i in range(TB):
        for j in range(V):
            dby[j] += probs[i * V + j]
    # dloss/dY, all steps at once: dH (TB,H) = dy (TB,V) · Why (V,H)
    gemm_rm(False, False, <blas_int> TB, <blas_int> H, <blas_int> V, <floating> 1.0,
            probs, <blas_int> V, <const floating *> w.Why, <blas_int> H, <floating> 0.0,
            dH, <blas_int> H)
    k = L - 1
    while k >= 0:
        if w.use_masks:
            m_k = (<const floating *> w.masks) + k * TBH
            for i in range(TBH):
                dH[i] *= m_k[i]
        # rnn's gradient at the pre-activation replaces dH in place
        da = dH if w.cell == RNN else <floating *> w.da
        da_h = <floating *> w.da_h if w.cell == GRU else da
        memset(dh_next, 0, BH * sizeof(floating))
        if w.cell == LSTM:
            memset(w.dc_next, 0, BH * sizeof(floating))
        t = T - 1
        while t >= 0:
            cell_step_backward(w, k, t, hs, dH, da, da_h)
            if t > 0:
                # dh_next (B,H) += da_h[t] (B,G·H) · Whh (G·H,H)
                rows_times_w(B, GH, H, da_h + t * B * GH, <const floating *> w.Whh[k],
                             <floating> 1.0 if w.cell == GRU else <floating> 0.0, dh_next)
            t -= 1
        # dWhh (G·H,H) = da_hᵀ (G·H,TB) · hs[k, :T] (TB,H)
        gemm_rm(True, False, <blas_int> GH, <blas_int> H, <blas_int> TB, <floating> 1.0,
                da_h, <blas_int> GH, hs + k * (T + 1) * BH, <blas_int> H, <floating> 0.0,
                <floating *> w.dWhh[k], <blas_int> H)
        dWxh = <floating *> w.dWxh[k]
        dbh = <floating *> w.dbh[k]
        memset(dbh, 0, GH * sizeof(floating))
        if k == 0:
            # dbh = Σ rows da; dWxh[:, x] += da[t, b] (the one-hot input)
            memset(dWxh, 0, GH * V * sizeof(floating))
            for t in range(T):
                for b in range(B):
                    x = w.inputs[b * T + t]
                    dy = da + (t * B + b) * GH
                    for i in range(GH):
                        dbh[i] += dy[i]
                        dWxh[i * V + x] += dy[i]
        else:
            for i in range(TB):
                dy = da + i * GH
                for j in range(GH):
                    dbh[j] += dy[j]
            # dWxh (G·H,H) = daᵀ (G·H,TB) · X (TB,H);  dH below (TB,H) = da · Wxh
            gemm_rm(True, False, <blas_int> GH, <blas_int> H, <blas_int> TB, <floating> 1.0,
                    da, <blas_int> GH, layer_input(w, hs, k - 1), <blas_int> H,
                    <floating> 0.0, dWxh, <blas_int> H)
            gemm_rm(False, False, <blas_int> TB, <blas_int> H, <blas_int> GH, <floating> 1.0,
                    da, <blas_int> GH, <const floating *> w.Wxh[k], <blas_int> H,
                    <floating> 0.0, dH_below, <blas_int> H)
            swap = dH
            dH = dH_below
            dH_below = swap
        if w.cell == GRU:
            # dbhn = Σ rows of da_h's n block
            dbhn = <floating *> w.dbhn[k]
            memset(dbhn, 0, H * sizeof(floating))
            for i in range(TB):
                dy = da_h + i * GH + 2 * H
                for j in range(H):
                    dbhn[j] += dy[j]
        k -= 1


cdef void clip_all(Window *w, floating limit) noexcept nogil:
    cdef Py_ssize_t k, H = w.H, GH = w.G * w.H
    for k in range(w.L):
        clip_values(<floating *> w.dWxh[k], GH * (w.V if k == 0 else H), limit)
        clip_values(<floating *> w.dWhh[k], GH * H, limit)
        clip_values(<floating *> w.dbh[k], GH, limit)
        if w.cell == GRU:
            clip_values(<floating *> w.dbhn[k], H, limit)
    clip_values(<floating *> w.dWhy, w.V * H, limit)
    clip_values(<floating *> w.dby, w.V, limit)


cdef double run_window(Window *w, floating *hs, bint compute_grads,
                       double clip) noexcept nogil:
    cdef double loss = stack_forward(w, hs)
    if compute_grads:
        stack_backward(w, hs)
        if clip > 0:
            clip_all(w, <floating> clip)
    return loss


# ---------------------------------------------------------------------------------------
# 3. Generation: B streams advanced together, one character each per step.
# ---------------------------------------------------------------------------------------
# A generation state is (S·L, B, H), the model's state layout: rows 0..L-1 every layer's h
# (so h is (L, B, H)), then for lstm rows L..2L-1 every layer's c.  Scratch for B streams:
# pre and rec (B, G·H), aux (B, H).  At B = 1 every BLAS call is a gemv, so one stream
# gives the same numbers whether it is sampled alone or searched with a beam of width 1.

cdef void stack_step_rows(Window *w, Py_ssize_t B, const Py_ssize_t *xs, floating *h,
                          floating *c, floating *pre, floating *rec,
                          floating *aux) noexcept nogil:
    """Feed character xs[b] to stream b (b < B) through every layer, in place.
    h, c (L, B, H): every layer's state (c: lstm only, else NULL)."""
    cdef Py_ssize_t k, b, i, x, V = w.V, H = w.H, GH = w.G * w.H, BH = B * w.H
    cdef const floating *Wxh
    cdef const floating *bh
    cdef floating *P
    for k in range(w.L):
        Wxh = <const floating *> w.Wxh[k]
        bh = <const floating *> w.bh[k]
        if k == 0:
            for b in range(B):
                x = xs[b]
                P = pre + b * GH
                # Wxh·onehot(x) + bh: column x of Wxh
                for i in range(GH):
                    P[i] = Wxh[i * V + x] + bh[i]
        else:
            # pre (B, G·H) = h_below (B, H) · Wxhᵀ + bh
            for b in range(B):
                memcpy(pre + b * GH, bh, GH * sizeof(floating))
            rows_times_wt(B, GH, H, h + (k - 1) * BH, Wxh, <floating> 1.0, pre)
        cell_step(w.cell, B, H, <const floating *> w.Whh[k], <const floating *> w.bhn[k],
                  h + k * BH, c + k * BH if c != NULL else NULL, pre, rec, h + k * BH,
                  c + k * BH if c != NULL else NULL, aux)


cdef void output_logits(Py_ssize_t V, Py_ssize_t H, const floating *Why,
                        const floating *by, const floating *h,
                        double *logits) noexcept nogil:
    """logits (V,) = Why·h + by for one stream, widened to double for the sampler."""
    cdef Py_ssize_t j, i
    cdef double acc
    for j in range(V):
        acc = by[j]
        for i in range(H):
            acc += Why[j * H + i] * h[i]
        logits[j] = acc


cdef int cmp_double_desc(const void *a, const void *b) noexcept nogil:
    cdef double x = (<const double *> a)[0]
    cdef double y = (<const double *> b)[0]
    return (x < y) - (x > y)


cdef Py_ssize_t choose_char(Py_ssize_t V, double *logits, double *work, bint greedy,
                            double temperature, Py_ssize_t top_k,
                            double u) noexcept nogil:
    """Pick the next character from logits (V,): argmax when greedy (the first of equal
    maxima), else a draw from softmax(logits / temperature) restricted to the top_k
    largest (0 = all), using the uniform number u in [0, 1).  logits is overwritten."""
    cdef Py_ssize_t best = argmax(V, logits)
    if greedy:
        return best
    return draw_index(V, logits, top_k_weights(V, logits, work, best, temperature, top_k),
                      u, best)


cdef inline Py_ssize_t argmax(Py_ssize_t V, const double *logits) noexcept nogil:
    """The index of the largest of logits (V,), the first of equal maxima."""
    cdef Py_ssize_t j, best = 0
    for j in range(1, V):
        if logits[j] > logits[best]:
            best = j
    return best


cdef double top_k_weights(Py_ssize_t V, double *logits, double *work, Py_ssize_t best,
                          double temperature, Py_ssize_t top_k) noexcept nogil:
    """Overwrite logits (V,) with the unnormalised weights exp((l - l_best) / T) of the
    top_k largest (0 = all; ties at the k-th all kept), zero elsewhere; returns their
    sum.  best: the argmax."""
    cdef Py_ssize_t j
    cdef double threshold = -1e308, row_max = logits[best], total = 0.0
    if 0 < top_k < V:
        memcpy(work, logits, V * sizeof(double))
        qsort(work, V, sizeof(double), cmp_double_desc)
        threshold = work[top_k - 1]
    for j in range(V):
        if logits[j] >= threshold:
            logits[j] = exp((logits[j] - row_max) / temperature)
        else:
            logits[j] = 0.0
        total += logits[j]
    return total


cdef Py_ssize_t draw_index(Py_ssize_t V, const double *weights, double total, double u,
                           Py_ssize_t best) noexcept nogil:
    """Draw index j with probability weights[j] / total, by the uniform u in [0, 1)."""
    cdef Py_ssize_t j
    cdef double acc = 0.0
    u *= total
    for j in range(V):
        acc += weights[j]
        if weights[j] > 0 and u < acc:
            return j
    return best  # only reached through rounding in the last bin


cdef void sample_steps(Window *w, Py_ssize_t B, floating *state, floating *pre,
                       floating *rec, floating *aux, Py_ssize_t *out, Py_ssize_t n,
                       const double *uniforms, double *logits, double *work, bint greedy,
                       double temperature, Py_ssize_t top_k) noexcept nogil:
    """n steps of B streams: each step picks every stream's next character from its top
    layer's h, writes it to out[i, b] (out is (n, B)), and feeds it, so the state always
    holds every character picked.  uniforms (n, B): unused when greedy."""
    cdef Py_ssize_t i, b, BH = B * w.H
    cdef floating *c = state + w.L * BH if w.cell == LSTM else NULL
    cdef floating *h_top = state + (w.L - 1) * BH
    for i in range(n):
        for b in range(B):
            output_logits(w.V, w.H, <const floating *> w.Why, <const floating *> w.by,
                          h_top + b * w.H, logits)
            out[i * B + b] = choose_char(w.V, logits, work, greedy, temperature, top_k,
                                         0.0 if greedy else uniforms[i * B + b])
        stack_step_rows(w, B, out + i * B, state, c, pre, rec, aux)


cdef struct Candidate:
    double score        # total log-probability of the beam's characters and this one
    double logit        # this character's logit: breaks ties as greedy does (see below)
    Py_ssize_t index    # beam · V + character


cdef int cmp_candidates(const void *a, const void *b) noexcept nogil:
    """Best first: higher score, then higher logit, then lower index.  At width 1 every
    candidate extends the same beam, and score = s + (logit - logsumexp) never decreases
    as the logit grows, so this order puts greedy's argmax (its first maximum) first even
    where rounding makes two scores equal."""
    cdef const Candidate *x = <const Candidate *> a
    cdef const Candidate *y = <const Candidate *> b
    if x.score != y.score:
        return -1 if x.score > y.score else 1
    if x.logit != y.logit:
        return -1 if x.logit > y.logit else 1
    return (x.index > y.index) - (x.index < y.index)


cdef Py_ssize_t beam_steps(Window *w, Py_ssize_t K, Py_ssize_t n, floating *cur,
                           floating *nxt, floating *pre, floating *rec, floating *aux,
                           double *scores, double *logits, Candidate *cands,
                           Py_ssize_t *chars, Py_ssize_t *parents,
                           Py_ssize_t *out) noexcept nogil:
    """Beam search of width K for n characters, from the one-stream state in cur.

    cur, nxt (S·L, K, H): the live beams' states, used as (S·L, m, H) for m live beams;
    scores (K,): their total log-probabilities (nats); cands (K·V,); chars, parents
    (n, K): the character each beam took at each step and the beam it extended.  Every
    step scores each live beam's V continuations by log-softmax, keeps the K best
    (sorted), gathers their parents' states and advances them as one batch of streams.
    Writes the surviving beams' characters to out (K, n), best first, and returns how
    many there are (min(K, V**n))."""
    cdef Py_ssize_t V = w.V, H = w.H, L = w.L, rows = (2 if w.cell == LSTM else 1) * w.L
    cdef Py_ssize_t m = 1, m_new, i, b, j, r, nc, p
    cdef double row_max, total, lse
    cdef floating *swap
    scores[0] = 0.0
    for i in range(n):
        nc = 0
        for b in range(m):
            output_logits(V, H, <const floating *> w.Why, <const floating *> w.by,
                          cur + ((L - 1) * m + b) * H, logits)
            row_max = logits[0]
            for j in range(1, V):
                if logits[j] > row_max:
                    row_max = logits[j]
            total = 0.0
            for j in range(V):
                total += exp(logits[j] - row_max)
            # log p[j] = logits[j] - logsumexp(logits)
            lse = row_max + log(total)
            for j in range(V):
                cands[nc].score = scores[b] + (logits[j] - lse)
                cands[nc].logit = logits[j]
                cands[nc].index = b * V + j
                nc += 1
        qsort(cands, nc, sizeof(Candidate), cmp_candidates)
        m_new = K if nc > K else nc
        for b in range(m_new):
            parents[i * K + b] = cands[b].index // V
            chars[i * K + b] = cands[b].index % V
            scores[b] = cands[b].score
        if i == n - 1:
            m = m_new
            break
        # every kept beam starts from its parent's state, then takes its character
        for r in range(rows):
            for b in range(m_new):
                memcpy(nxt + (r * m_new + b) * H, cur + (r * m + parents[i * K + b]) * H,
                       H * sizeof(floating))
        stack_step_rows(w, m_new, chars + i * K, nxt,
                        nxt + L * m_new * H if w.cell == LSTM else NULL, pre, rec, aux)
        swap = cur
        cur = nxt
        nxt = swap
        m = m_new
    # follow each surviving beam back through its parents
    for b in range(m):
        p = b
        i = n - 1
        while i >= 0:
            out[b * n + i] = chars[i * K + p]
            p = parents[i * K + p]
            i -= 1
    return m


# ---------------------------------------------------------------------------------------
# 3b. Predictive text: several primes fed as one batch, next-character probabilities,
#     sampling with per-stream settings (temperature, top-k, nucleus), the word beam.
# ---------------------------------------------------------------------------------------

cdef void feed_rows_steps(Window *w, Py_ssize_t B, Py_ssize_t P, const Py_ssize_t *chars,
                          const Py_ssize_t *starts, floating *state, floating *work,
                          floating *pre, floating *rec, floating *aux, Py_ssize_t *xs,
                          Py_ssize_t *order) noexcept nogil:
    """Feed stream b the characters chars[b, starts[b]:P] (chars (B, P): every stream's
    text right-aligned, padding before it), the streams under way advanced as one batch.

    state (S·L, B, H) in place.  No step is spent on padding: the streams are taken
    longest text first (order (B,): scratch), and at step i only the a streams whose text
    has begun run, compacted into work (S·L, a, H) (scratch of (S·L, B, H)); a stream
    joins it, with its state, at its first character.  xs (B,): scratch."""
    cdef Py_ssize_t i, b, r, j, a = 0, a_new, H = w.H
    cdef Py_ssize_t rows = (2 if w.cell == LSTM else 1) * w.L
    # order: the streams by start, ascending (insertion sort: B is a batch of requests)
    for b in range(B):
        j = b
        while j > 0 and starts[order[j - 1]] > starts[b]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = b
    if B == 0 or starts[order[0]] >= P:
        return
    for i in range(starts[order[0]], P):
        a_new = a
        while a_new < B and starts[order[a_new]] <= i:
            a_new += 1
        if a_new != a:
            # (S·L, a, H) -> (S·L, a_new, H), last row first, then the newcomers' states
            r = rows - 1
            while r > 0:
                memmove(work + r * a_new * H, work + r * a * H, a * H * sizeof(floating))
                r -= 1
            for r in range(rows):
                for b in range(a, a_new):
                    memcpy(work + (r * a_new + b) * H, state + (r * B + order[b]) * H,
                           H * sizeof(floating))
            a = a_new
        for b in range(a):
            xs[b] = chars[order[b] * P + i]
        stack_step_rows(w, a, xs, work, work + w.L * a * H if w.cell == LSTM else NULL,
                        pre, rec, aux)
    for r in range(rows):
        for b in range(a):
            memcpy(state + (r * B + order[b]) * H, work + (r * a + b) * H,
                   H * sizeof(floating))


cdef void logits_rows(Window *w, Py_ssize_t B, const floating *h, floating *scratch,
                      double *logits) noexcept nogil:
    """logits (B, V) = h (B, H) · Whyᵀ + by for B streams: one product (a gemv at B = 1),
    widened to double for the sampler.  scratch (B, V)."""
    cdef Py_ssize_t b, j, V = w.V
    cdef const floating *by = <const floating *> w.by
    rows_times_wt(B, V, w.H, h, <const floating *> w.Why, <floating> 0.0, scratch)
    for b in range(B):
        for j in range(V):
            logits[b * V + j] = scratch[b * V + j] + by[j]


cdef void next_probs_rows(Window *w, Py_ssize_t B, const floating *state,
                          floating *scratch, double *probs) noexcept nogil:
    """probs (B, V) = softmax(Why·h + by) of every stream's top-layer h, in double.
    scratch (B, V)."""
    cdef Py_ssize_t b, j, V = w.V
    cdef double row_max, total
    cdef double *p
    logits_rows(w, B, state + (w.L - 1) * B * w.H, scratch, probs)
    for b in range(B):
        p = probs + b * V
        row_max = p[argmax(V, p)]
        total = 0.0
        for j in range(V):
            p[j] = exp(p[j] - row_max)
            total += p[j]
        for j in range(V):
            p[j] /= total


cdef Py_ssize_t choose_char_nucleus(Py_ssize_t V, double *logits, double *work,
                                    double temperature, Py_ssize_t top_k, double top_p,
                                    double u) noexcept nogil:
    """choose_char with one stream's settings, and nucleus sampling: temperature 0 is
    greedy; top_p < 1 draws only from the nucleus, the smallest set of the most likely
    characters (after temperature and top_k) whose probabilities sum to at least top_p
    (characters tied with the least likely member are kept too).  top_p >= 1 is
    choose_char's draw exactly."""
    cdef Py_ssize_t j, best = argmax(V, logits)
    cdef double total, acc, cut, kept
    if temperature == 0:
        return best
    if top_p >= 1:
        return choose_char(V, logits, work, False, temperature, top_k, u)
    total = top_k_weights(V, logits, work, best, temperature, top_k)
    # the nucleus: the weights in decreasing order, until they reach top_p of the total
    memcpy(work, logits, V * sizeof(double))
    qsort(work, V, sizeof(double), cmp_double_desc)
    acc = 0.0
    cut = work[0]
    for j in range(V):
        acc += work[j]
        cut = work[j]
        if acc >= top_p * total:
            break
    kept = 0.0
    for j in range(V):
        if logits[j] < cut:
            logits[j] = 0.0
        kept += logits[j]
    return draw_index(V, logits, kept, u, best)


cdef void sample_rows_steps(Window *w, Py_ssize_t B, floating *state, floating *pre,
                            floating *rec, floating *aux, Py_ssize_t *out, Py_ssize_t n,
                            const double *uniforms, floating *scratch, double *logits,
                            double *work, const double *temperature,
                            const Py_ssize_t *top_k, const double *top_p) noexcept nogil:
    """sample_steps with settings of their own for every stream b: temperature[b]
    (0: greedy), top_k[b] (0: all), top_p[b] (>= 1: all), every step's logits one
    product for all B streams.  uniforms (n, B), out (n, B); logits, scratch (B, V)."""
    cdef Py_ssize_t i, b, BH = B * w.H, V = w.V
    cdef floating *c = state + w.L * BH if w.cell == LSTM else NULL
    cdef floating *h_top = state + (w.L - 1) * BH
    for i in range(n):
        logits_rows(w, B, h_top, scratch, logits)
        for b in range(B):
            out[i * B + b] = choose_char_nucleus(V, logits + b * V, work, temperature[b],
                                                 top_k[b], top_p[b], uniforms[i * B + b])
        stack_step_rows(w, B, out + i * B, state, c, pre, rec, aux)


cdef struct WordSearch:
    # R searches, each a beam of width K over completions of at most n characters,
    # keeping its kf best finished words; its live beams are rows off_r .. off_r+m_r-1 of
    # the batch, off_r = m_0 + ... + m_{r-1}
    Py_ssize_t R, K, kf, n
    bint fixed                     # plain beams of exactly n characters: no words
    const unsigned char *is_sep    # (V,) 1 for a separator
    double *scores                 # (R, K) live beams' log-probabilities (nats)
    double *next_scores            # (R, K)
    unsigned char *started         # (R, K) the beam's word has a character
    unsigned char *next_started    # (R, K)
    Py_ssize_t *live               # (R,) m_r, live beams of search r
    Py_ssize_t *next_live          # (R,)
    Py_ssize_t *chars              # (R, n, K) the character each beam took at each step
    Py_ssize_t *parents            # (R, n, K) and the beam it extended
    Py_ssize_t *xs                 # (R·K,) the batch's characters of one step
    Candidate *cands               # (K·V,) one search's extensions
    double *logits                 # (R·K, V) every live beam's logits of one step
    double *fin_scores             # (R, kf) finished words, best first
    Py_ssize_t *fin_step           # (R, kf) their completion's length
    Py_ssize_t *fin_beam           # (R, kf) and its beam at that step
    Py_ssize_t *n_fin              # (R,)


cdef void add_finished(WordSearch *s, Py_ssize_t r, double score, Py_ssize_t step,
                       Py_ssize_t beam) noexcept nogil:
    """Insert a finished word into search r's kf best (best first; among equal scores
    the earlier one first)."""
    cdef Py_ssize_t kf = s.kf, j = s.n_fin[r]
    cdef double *sc = s.fin_scores + r * kf
    cdef Py_ssize_t *st = s.fin_step + r * kf
    cdef Py_ssize_t *bm = s.fin_beam + r * kf
    if j == kf:
        if score <= sc[kf - 1]:
            return
        j = kf - 1
    else:
        s.n_fin[r] += 1
    while j > 0 and sc[j - 1] < score:
        sc[j], st[j], bm[j] = sc[j - 1], st[j - 1], bm[j - 1]
        j -= 1
    sc[j], st[j], bm[j] = score, step, beam


cdef void word_beam_steps(Window *w, WordSearch *s, floating *cur, floating *nxt,
                          floating *pre, floating *rec, floating *aux, floating *scratch,
                          Py_ssize_t *out, Py_ssize_t *out_len) noexcept nogil:
    """R word searches advanced together: the most probable ways to finish a word.

    cur (S·L, R, H) on entry: every search's state after its text; cur and nxt have room
    for (S·L, R·K, H).  A completion is c₁…c_m followed by one separator, m <= n; its
    log-probability is Σ log p(c_i | …) + log Σ_sep p(sep | …), the probability that the
    word ends there.  A beam that has no word character yet (s.started 0: the text ended
    in a separator or was empty) may take separators first (they lead into the word);
    once started, a separator ends it.  Every step each live beam of each search
    scores its V extensions by log-softmax, offers its finished word, and the K best
    extensions stay live; a search stops when it has none, and early once its kf-th
    finished word beats its best live beam (extending only lowers a score, so this
    loses nothing).  All live beams of all searches advance as one batch of streams.
    scratch (R·K, V).  Writes search r's finished completions to out (R, kf, n) with
    their lengths in
    out_len (R, kf); their scores are s.fin_scores, their count s.n_fin.
    With s.fixed, R plain beam searches instead (beam_steps's, batched): no character
    separates, and every beam that reaches n characters is finished with its score."""
    cdef Py_ssize_t V = w.V, H = w.H, L = w.L, rows = (2 if w.cell == LSTM else 1) * w.L
    cdef Py_ssize_t R = s.R, K = s.K, kf = s.kf, n = s.n
    cdef Py_ssize_t i, r, b, j, nc, m, keep, off, new_off, M = R, M_new, p, q, row
    cdef double row_max, total, lse, sep_total, base, bound
    cdef double *lg
    cdef bint has_sep = False
    cdef floating *swap_f
    cdef double *swap_d
    cdef unsigned char *swap_u
    cdef Py_ssize_t *swap_i
    for j in range(V):
        if s.is_sep[j]:
            has_sep = True
    for r in range(R):
        s.live[r] = 1
        s.scores[r * K] = 0.0
        s.n_fin[r] = 0
    for i in range(n + 1):
        # 1. score, finish and prune every search; write the kept beams to the history
        logits_rows(w, M, cur + (L - 1) * M * H, scratch, s.logits)
        off = 0
        M_new = 0
        for r in range(R):
            m = s.live[r]
            nc = 0
            for b in range(m):
                lg = s.logits + (off + b) * V
                row_max = lg[argmax(V, lg)]
                total = 0.0
                sep_total = 0.0
                for j in range(V):
                    total += exp(lg[j] - row_max)
                    if s.is_sep[j]:
                        sep_total += exp(lg[j] - row_max)
                # log p[j] = logits[j] - lse
                lse = row_max + log(total)
                base = s.scores[r * K + b]
                if s.fixed:
                    if i == n:
                        add_finished(s, r, base, i, b)
                        continue
                elif s.started[r * K + b] and has_sep:
                    # the word ends here: log Σ_sep p(sep)
                    add_finished(s, r, base + (row_max + log(sep_total) - lse), i, b)
                if i == n:
                    continue
                for j in range(V):
                    if s.is_sep[j] and s.started[r * K + b] and not s.fixed:
                        continue
                    s.cands[nc].score = base + (lg[j] - lse)
                    s.cands[nc].logit = lg[j]
                    s.cands[nc].index = b * V + j
                    nc += 1
            off += m
            keep = 0
            if nc > 0:
                qsort(s.cands, nc, sizeof(Candidate), cmp_candidates)
                keep = K if nc > K else nc
                if s.n_fin[r] == kf:
                    # a beam below the kf-th finished word can never beat it
                    bound = s.fin_scores[r * kf + kf - 1]
                    while keep > 0 and s.cands[keep - 1].score <= bound:
                        keep -= 1
            for b in range(keep):
                q = (r * n + i) * K + b
                p = s.cands[b].index // V
                j = s.cands[b].index % V
                s.parents[q] = p
                s.chars[q] = j
                s.next_scores[r * K + b] = s.cands[b].score
                s.next_started[r * K + b] = s.started[r * K + p] or not s.is_sep[j]
                s.xs[M_new + b] = j
            s.next_live[r] = keep
            M_new += keep
        if M_new == 0:
            break
        # 2. every kept beam starts from its parent's state; then all take their
        # characters as one batch
        off = 0
        new_off = 0
        for r in range(R):
            for b in range(s.next_live[r]):
                p = s.parents[(r * n + i) * K + b]
                for row in range(rows):
                    memcpy(nxt + (row * M_new + new_off + b) * H,
                           cur + (row * M + off + p) * H, H * sizeof(floating))
            off += s.live[r]
            new_off += s.next_live[r]
        stack_step_rows(w, M_new, s.xs, nxt, nxt + L * M_new * H if w.cell == LSTM else NULL,
                        pre, rec, aux)
        swap_f = cur
        cur = nxt
        nxt = swap_f
        swap_d = s.scores
        s.scores = s.next_scores
        s.next_scores = swap_d
        swap_u = s.started
        s.started = s.next_started
        s.next_started = swap_u
        swap_i = s.live
        s.live = s.next_live
        s.next_live = swap_i
        M = M_new
    # follow every finished word back through its parents
    for r in range(R):
        for b in range(s.n_fin[r]):
            m = s.fin_step[r * kf + b]
            out_len[r * kf + b] = m
            p = s.fin_beam[r * kf + b]
            i = m - 1
            while i >= 0:
                out[(r * kf + b) * n + i] = s.chars[(r * n + i) * K + p]
                p = s.parents[(r * n + i) * K + p]
                i -= 1


# ---------------------------------------------------------------------------------------
# 4. The bound kernel.
# ---------------------------------------------------------------------------------------

cdef inline void *data_pointer(object a):
    return <void *> <size_t> a.ctypes.data


cdef int check_indices(const Py_ssize_t[:, ::1] a, Py_ssize_t V, str name) except -1:
    cdef Py_ssize_t i, j
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if a[i, j] < 0 or a[i, j] >= V:
                raise ValueError(
                    f"{name}[{i}, {j}] = {a[i, j]} is not a character index in [0, {V})")
    return 0


def expected_shapes(cell, Py_ssize_t n_vocab, Py_ssize_t hidden_size, Py_ssize_t num_layers):
    """{name: shape} of the parameters, in rnncore.reference.param_shapes's order."""
    from rnncore.reference import param_shapes
    return param_shapes(cell, n_vocab, hidden_size, num_layers)


cdef class StackKernel:
    """The compiled window and generation of one model: cell, depth, sizes and dtype fixed,
    parameters and gradient arrays bound once (bind_params / bind_grads), and the scratch
    buffers of (batch_size, seq_length) windows owned here.

    The caller writes the carried state into `state_in` (S·L, B, H) and, for dropout,
    the scaled masks into `masks` (L, T, B, H); run() leaves the last state in
    `state_out`.  Arrays bound must stay alive and keep their shapes: the model rebinds
    whenever it replaces one.
    """
    cdef Window w
    cdef bint is_double
    cdef void **layer_pointers                  # 8 arrays of L pointers, see Window
    cdef readonly str cell
    cdef readonly Py_ssize_t num_layers, n_vocab, hidden_size, batch_size, seq_length
    cdef readonly object dtype
    cdef readonly object state_in, state_out, masks
    cdef readonly object bound_params, bound_grads
    cdef object buffers

    def __cinit__(self, str cell, Py_ssize_t num_layers, Py_ssize_t n_vocab,
                  Py_ssize_t hidden_size, Py_ssize_t batch_size, Py_ssize_t seq_length,
                  dtype):
        cdef Py_ssize_t L = num_layers, V = n_vocab, H = hidden_size
        cdef Py_ssize_t B = batch_size, T = seq_length, G
        self.layer_pointers = NULL
        if cell not in CELL_CODES:
            raise ValueError(f"cell must be one of rnn, lstm, gru, got {cell!r}")
        for name, value in (("num_layers", num_layers), ("n_vocab", n_vocab),
                            ("hidden_size", hidden_size), ("batch_size", batch_size),
                            ("seq_length", seq_length)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        dt = np.dtype(dtype)
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dt}")
        self.cell, self.dtype, self.is_double = cell, dt, dt == np.float64
        self.num_layers, self.n_vocab, self.hidden_size = num_layers, n_vocab, hidden_size
        self.batch_size, self.seq_length = batch_size, seq_length
        G = GATES[cell]
        self.layer_pointers = <void **> PyMem_Malloc(8 * L * sizeof(void *))
        if self.layer_pointers == NULL:
            raise MemoryError()
        memset(self.layer_pointers, 0, 8 * L * sizeof(void *))
        cdef Window *w = &self.w
        w.cell, w.L, w.V, w.H, w.B, w.T, w.G = CELL_CODES[cell], L, V, H, B, T, G
        w.use_masks = False
        cdef void **lp = self.layer_pointers
        w.Wxh = lp
        w.Whh = lp + L
        w.bh = lp + 2 * L
        w.bhn = lp + 3 * L
        w.dWxh = lp + 4 * L
        w.dWhh = lp + 5 * L
        w.dbh = lp + 6 * L
        w.dbhn = lp + 7 * L
        rows = (2 if cell == "lstm" else 1) * L
        shapes = {"hs": (L, T + 1, B, H), "ys": (L, T, B, H), "masks": (L, T, B, H),
                  "probs": (T, B, V), "dH": (2, T, B, H), "dh_next": (B, H),
                  "state_in": (rows, B, H), "state_out": (rows, B, H)}
        if cell == "lstm":
            shapes.update(cs=(L, T + 1, B, H), dc_next=(B, H))
        if cell != "rnn":
            shapes.update(pre=(L, T, B, G * H), aux=(L, T, B, H), da=(T, B, G * H))
        if cell == "gru":
            shapes.update(rec=(B, G * H), da_h=(T, B, G * H))
        self.buffers = {name: np.zeros(shape, dt) for name, shape in shapes.items()}
        w.hs = self.buffer_pointer("hs")
        w.cs = self.buffer_pointer("cs")
        w.pre = self.buffer_pointer("pre")
        w.aux = self.buffer_pointer("aux")
        w.ys = self.buffer_pointer("ys")
        w.masks = self.buffer_pointer("masks")
        w.probs = self.buffer_pointer("probs")
        w.rec = self.buffer_pointer("rec")
        w.da = self.buffer_pointer("da")
        w.da_h = self.buffer_pointer("da_h")
        w.dH = self.buffer_pointer("dH")
        w.dh_next = self.buffer_pointer("dh_next")
        w.dc_next = self.buffer_pointer("dc_next")
        w.state_in = self.buffer_pointer("state_in")
        w.state_out = self.buffer_pointer("state_out")
        self.state_in = self.buffers["state_in"]
        self.state_out = self.buffers["state_out"]
        self.masks = self.buffers["masks"]
        self.bound_params = self.bound_grads = None

    def __dealloc__(self):
        PyMem_Free(self.layer_pointers)

    cdef void *buffer_pointer(self, str name):
        """The data of scratch buffer `name`; NULL for one this cell does not use."""
        a = self.buffers.get(name)
        return NULL if a is None else data_pointer(a)

    def _checked_arrays(self, arrays, str what, bint writable):
        names = expected_shapes(self.cell, self.n_vocab, self.hidden_size, self.num_layers)
        if len(arrays) != len(names):
            raise ValueError(f"{what}: expected {len(names)} arrays ({', '.join(names)}), "
                             f"got {len(arrays)}")
        for a, (name, shape) in zip(arrays, names.items()):
            if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != self.dtype \
                    or not a.flags.c_contiguous or (writable and not a.flags.writeable):
                got = f"shape {a.shape} {a.dtype}" if isinstance(a, np.ndarray) \
                    else type(a).__name__
                raise ValueError(f"{what} {name} must be a{' writable' if writable else ''} "
                                 f"C-contiguous {self.dtype.name} array of shape {shape}, "
                                 f"got {got}")
        return dict(zip(names, arrays))

    cdef void point_at(self, dict named, void **Wxh, void **Whh, void **bh, void **bhn,
                       void **Why, void **by):
        """Fill the per-layer pointer arrays (and the decoder's two) from checked arrays."""
        cdef Py_ssize_t k
        for k in range(self.num_layers):
            s = "" if k == 0 else f"_l{k}"
            Wxh[k] = data_pointer(named["Wxh" + s])
            Whh[k] = data_pointer(named["Whh" + s])
            bh[k] = data_pointer(named["bh" + s])
            bhn[k] = data_pointer(named["bhn" + s]) if self.cell == "gru" else NULL
        Why[0] = data_pointer(named["Why"])
        by[0] = data_pointer(named["by"])

    def bind_params(self, tuple arrays):
        """Bind the parameter arrays, in param_shapes's order (checked once, here)."""
        named = self._checked_arrays(arrays, "parameter", False)
        self.point_at(named, self.w.Wxh, self.w.Whh, self.w.bh, self.w.bhn, &self.w.Why,
                      &self.w.by)
        self.bound_params = arrays

    def bind_grads(self, tuple arrays):
        """Bind the gradient output arrays, in param_shapes's order (checked once, here)."""
        named = self._checked_arrays(arrays, "gradient", True)
        self.point_at(named, self.w.dWxh, self.w.dWhh, self.w.dbh, self.w.dbhn,
                      &self.w.dWhy, &self.w.dby)
        self.bound_grads = arrays

    def run(self, const Py_ssize_t[:, ::1] inputs, const Py_ssize_t[:, ::1] targets,
            bint compute_grads=True, double clip=0.0, bint use_masks=False):
        """Forward (and, if compute_grads, backward) over one window.

        inputs, targets: (B, T) character indices in [0, V).  The state carried in is
        read from state_in; the last state is left in state_out.  With use_masks, every
        layer's output is multiplied by `masks` (already scaled).  Gradients (of
        Σ_t mean_b cross-entropy) overwrite the bound gradient arrays; clip > 0 clips them
        elementwise to [-clip, clip].  Returns the mean cross-entropy, nats per character.
        """
        cdef Py_ssize_t B = self.batch_size, T = self.seq_length
        if self.bound_params is None or (compute_grads and self.bound_grads is None):
            raise ValueError("bind_params (and bind_grads for gradients) before run")
        if inputs.shape[0] != B or inputs.shape[1] != T:
            raise ValueError(f"inputs has shape ({inputs.shape[0]}, {inputs.shape[1]}), "
                             f"this kernel runs ({B}, {T}) windows")
        if targets.shape[0] != B or targets.shape[1] != T:
            raise ValueError(f"targets has shape ({targets.shape[0]}, {targets.shape[1]}), "
                             f"expected ({B}, {T})")
        if not clip >= 0:
            raise ValueError(f"clip must be >= 0, got {clip}")
        check_indices(inputs, self.n_vocab, "inputs")
        check_indices(targets, self.n_vocab, "targets")
        self.w.inputs = &inputs[0, 0]
        self.w.targets = &targets[0, 0]
        self.w.use_masks = use_masks
        cdef double loss
        with nogil:
            if self.is_double:
                loss = run_window(&self.w, <double *> self.w.hs, compute_grads, clip)
            else:
                loss = run_window(&self.w, <float *> self.w.hs, compute_grads, clip)
        self.w.inputs = self.w.targets = NULL
        return loss / (B * T)

    def check_state(self, state, Py_ssize_t batch_size=-1):
        """A generation state (S·L, B, H) of this kernel's dtype, C-contiguous and writable
        (B == batch_size unless batch_size is -1); returns B."""
        rows = (2 if self.cell == "lstm" else 1) * self.num_layers
        if not isinstance(state, np.ndarray) or state.dtype != self.dtype \
                or state.ndim != 3 or state.shape[0] != rows \
                or state.shape[2] != self.hidden_size or state.shape[1] < 1 \
                or not state.flags.c_contiguous or not state.flags.writeable:
            raise ValueError(f"state must be a writable C-contiguous {self.dtype.name} array "
                             f"of shape ({rows}, B, {self.hidden_size})")
        if batch_size != -1 and state.shape[1] != batch_size:
            raise ValueError(f"state holds {state.shape[1]} stream(s), expected {batch_size}")
        return state.shape[1]

    def _scratch(self, Py_ssize_t B):
        """pre, rec (B, G·H) and aux (B, H) for B streams, in one array."""
        return np.zeros((2 * GATES[self.cell] + 1) * B * self.hidden_size, self.dtype)

    def feed(self, const Py_ssize_t[::1] chars, state):
        """Feed the characters `chars` in order to every stream of `state` (S·L, B, H),
        in place.  Never drops out."""
        cdef Py_ssize_t B = self.check_state(state), n = chars.shape[0], i, b
        cdef Py_ssize_t V = self.n_vocab, GH = GATES[self.cell] * self.hidden_size
        if self.bound_params is None:
            raise ValueError("bind_params before feed")
        for i in range(n):
            if chars[i] < 0 or chars[i] >= V:
                raise ValueError(f"chars[{i}] = {chars[i]} is not a character index in "
                                 f"[0, {V})")
        if n == 0:
            return
        scratch = self._scratch(B)
        xs = np.empty(B, np.intp)
        cdef Py_ssize_t[::1] x = xs
        cdef char *base = <char *> data_pointer(scratch)
        cdef char *s = <char *> data_pointer(state)
        cdef Py_ssize_t item = self.dtype.itemsize, L = self.num_layers
        cdef Py_ssize_t BH = B * self.hidden_size
        cdef bint lstm = self.cell == "lstm"
        with nogil:
            for i in range(n):
                for b in range(B):
                    x[b] = chars[i]
                if self.is_double:
                    stack_step_rows(&self.w, B, &x[0], <double *> s,
                                    <double *> (s + L * BH * item) if lstm else NULL,
                                    <double *> base, <double *> (base + B * GH * item),
                                    <double *> (base + 2 * B * GH * item))
                else:
                    stack_step_rows(&self.w, B, &x[0], <float *> s,
                                    <float *> (s + L * BH * item) if lstm else NULL,
                                    <float *> base, <float *> (base + B * GH * item),
                                    <float *> (base + 2 * B * GH * item))

    def sample(self, state, Py_ssize_t[:, ::1] out, const double[:, ::1] uniforms,
               bint greedy=True, double temperature=1.0, Py_ssize_t top_k=0):
        """Generate out.shape[0] characters for each of the B streams of `state`
        (S·L, B, H), into out (n, B), advancing the state in place past every character
        generated (so a further call continues the streams).  The first character is
        predicted from the state as given.  uniforms (n, B): one number in [0, 1) per
        character, unused if greedy.  Never drops out."""
        cdef Py_ssize_t B = self.check_state(state), n = out.shape[0]
        cdef Py_ssize_t V = self.n_vocab, GH = GATES[self.cell] * self.hidden_size
        if self.bound_params is None:
            raise ValueError("bind_params before sample")
        if out.shape[1] != B:
            raise ValueError(f"out has shape ({n}, {out.shape[1]}), expected ({n}, {B})")
        if not greedy:
            if uniforms.shape[0] != n or uniforms.shape[1] != B:
                raise ValueError(f"uniforms has shape ({uniforms.shape[0]}, "
                                 f"{uniforms.shape[1]}), expected ({n}, {B})")
            if not temperature > 0:
                raise ValueError(f"temperature must be > 0, got {temperature}")
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        if n == 0:
            return
        scratch = self._scratch(B)
        cdef double[::1] logits = np.zeros(V)
        cdef double[::1] work = np.zeros(V)
        cdef const double *u = NULL if greedy else &uniforms[0, 0]
        cdef char *base = <char *> data_pointer(scratch)
        cdef void *s = data_pointer(state)
        cdef Py_ssize_t item = self.dtype.itemsize
        with nogil:
            if self.is_double:
                sample_steps(&self.w, B, <double *> s, <double *> base,
                             <double *> (base + B * GH * item),
                             <double *> (base + 2 * B * GH * item), &out[0, 0], n, u,
                             &logits[0], &work[0], greedy, temperature, top_k)
            else:
                sample_steps(&self.w, B, <float *> s, <float *> base,
                             <float *> (base + B * GH * item),
                             <float *> (base + 2 * B * GH * item), &out[0, 0], n, u,
                             &logits[0], &work[0], greedy, temperature, top_k)

    def beam(self, state, Py_ssize_t[:, ::1] out, double[::1] scores):
        """Beam search of width K = out.shape[0] for n = out.shape[1] characters, from the
        one-stream state (S·L, 1, H) (left as it was).  Writes the best beams' characters
        to out (K, n) and their total log-probabilities (nats) to scores (K,), best first;
        returns how many beams there are (min(K, V**n); rows after them are untouched).
        The next character of a beam is predicted from its state, exactly as sample()
        predicts it; never drops out."""
        self.check_state(state, 1)
        cdef Py_ssize_t K = out.shape[0], n = out.shape[1], V = self.n_vocab
        cdef Py_ssize_t H = self.hidden_size, GH = GATES[self.cell] * H
        cdef Py_ssize_t rows = state.shape[0], m = 0
        if self.bound_params is None:
            raise ValueError("bind_params before beam")
        if K < 1:
            raise ValueError("the beam width must be >= 1")
        if scores.shape[0] != K:
            raise ValueError(f"scores has shape ({scores.shape[0]},), expected ({K},)")
        if n == 0:
            return 0
        # two (S·L, K, H) buffers, each holding its m live beams as (S·L, m, H)
        states = np.zeros((2, rows * K * H), self.dtype)
        states[0, :rows * H] = state.ravel()
        scratch = self._scratch(K)
        history = np.zeros((2, n, K), np.intp)        # chars, parents
        cdef double[::1] logits = np.zeros(V)
        cdef Candidate *cands = <Candidate *> PyMem_Malloc(K * V * sizeof(Candidate))
        if cands == NULL:
            raise MemoryError()
        cdef char *st = <char *> data_pointer(states)
        cdef char *base = <char *> data_pointer(scratch)
        cdef Py_ssize_t *hist = <Py_ssize_t *> data_pointer(history)
        cdef Py_ssize_t item = self.dtype.itemsize
        try:
            with nogil:
                if self.is_double:
                    m = beam_steps(&self.w, K, n, <double *> st,
                                   <double *> (st + rows * K * H * item), <double *> base,
                                   <double *> (base + K * GH * item),
                                   <double *> (base + 2 * K * GH * item), &scores[0],
                                   &logits[0], cands, hist, hist + n * K, &out[0, 0])
                else:
                    m = beam_steps(&self.w, K, n, <float *> st,
                                   <float *> (st + rows * K * H * item), <float *> base,
                                   <float *> (base + K * GH * item),
                                   <float *> (base + 2 * K * GH * item), &scores[0],
                                   &logits[0], cands, hist, hist + n * K, &out[0, 0])
        finally:
            PyMem_Free(cands)
        return m

    # ---- predictive text (section 3b) ------------------------------------------------
    def feed_rows(self, const Py_ssize_t[:, ::1] chars, const Py_ssize_t[::1] starts,
                  state):
        """Feed stream b of `state` (S·L, B, H) the characters chars[b, starts[b]:] in
        place, all B streams advanced as one batch: chars (B, P) holds every stream's
        text right-aligned (what stands before starts[b] is padding, never fed: it must
        still be a valid index).  Different texts, one batch.  Never drops out."""
        cdef Py_ssize_t B = self.check_state(state), P = chars.shape[1], b
        cdef Py_ssize_t H = self.hidden_size, GH = GATES[self.cell] * H
        cdef Py_ssize_t rows = state.shape[0]
        if self.bound_params is None:
            raise ValueError("bind_params before feed_rows")
        if chars.shape[0] != B or starts.shape[0] != B:
            raise ValueError(f"chars has {chars.shape[0]} row(s) and starts "
                             f"{starts.shape[0]}: expected one per stream ({B})")
        for b in range(B):
            if starts[b] < 0 or starts[b] > P:
                raise ValueError(f"starts[{b}] = {starts[b]} is not in [0, {P}]")
        check_indices(chars, self.n_vocab, "chars")
        if P == 0:
            return
        scratch = self._scratch(B)
        init = np.empty(rows * B * H, self.dtype)       # the compacted streams
        xs = np.empty(2 * B, np.intp)                   # characters, order
        cdef Py_ssize_t[::1] x = xs
        cdef char *base = <char *> data_pointer(scratch)
        cdef void *s = data_pointer(state)
        cdef void *ini = data_pointer(init)
        cdef Py_ssize_t item = self.dtype.itemsize
        with nogil:
            if self.is_double:
                feed_rows_steps(&self.w, B, P, &chars[0, 0], &starts[0], <double *> s,
                                <double *> ini, <double *> base,
                                <double *> (base + B * GH * item),
                                <double *> (base + 2 * B * GH * item), &x[0], &x[B])
            else:
                feed_rows_steps(&self.w, B, P, &chars[0, 0], &starts[0], <float *> s,
                                <float *> ini, <float *> base,
                                <float *> (base + B * GH * item),
                                <float *> (base + 2 * B * GH * item), &x[0], &x[B])

    def next_probs(self, state, double[:, ::1] out):
        """out (B, V) = the next-character distribution of every stream of `state`
        (S·L, B, H): softmax(Why·h + by) of its top layer's h, in float64."""
        cdef Py_ssize_t B = self.check_state(state)
        if self.bound_params is None:
            raise ValueError("bind_params before next_probs")
        if out.shape[0] != B or out.shape[1] != self.n_vocab:
            raise ValueError(f"out has shape ({out.shape[0]}, {out.shape[1]}), expected "
                             f"({B}, {self.n_vocab})")
        cdef void *s = data_pointer(state)
        scratch = np.empty(B * self.n_vocab, self.dtype)
        cdef void *sc = data_pointer(scratch)
        with nogil:
            if self.is_double:
                next_probs_rows(&self.w, B, <const double *> s, <double *> sc, &out[0, 0])
            else:
                next_probs_rows(&self.w, B, <const float *> s, <float *> sc, &out[0, 0])

    def sample_rows(self, state, Py_ssize_t[:, ::1] out, const double[:, ::1] uniforms,
                    const double[::1] temperature, const Py_ssize_t[::1] top_k,
                    const double[::1] top_p):
        """sample() with settings of their own for each of the B streams of `state`:
        temperature (B,) (0: greedy, else > 0), top_k (B,) (0: all), top_p (B,) in (0, 1]
        (1: all; below 1, nucleus sampling).  out (n, B), uniforms (n, B).  With every
        stream's top_p at 1 it draws exactly what sample() draws."""
        cdef Py_ssize_t B = self.check_state(state), n = out.shape[0], b
        cdef Py_ssize_t V = self.n_vocab, GH = GATES[self.cell] * self.hidden_size
        if self.bound_params is None:
            raise ValueError("bind_params before sample_rows")
        if out.shape[1] != B:
            raise ValueError(f"out has shape ({n}, {out.shape[1]}), expected ({n}, {B})")
        if uniforms.shape[0] != n or uniforms.shape[1] != B:
            raise ValueError(f"uniforms has shape ({uniforms.shape[0]}, "
                             f"{uniforms.shape[1]}), expected ({n}, {B})")
        if temperature.shape[0] != B or top_k.shape[0] != B or top_p.shape[0] != B:
            raise ValueError(f"temperature, top_k and top_p need one value per stream ({B})")
        for b in range(B):
            if not (temperature[b] >= 0 and temperature[b] < float("inf")):
                raise ValueError(f"temperature[{b}] = {temperature[b]}: must be 0 "
                                 "(greedy) or a finite number > 0")
            if top_k[b] < 0:
                raise ValueError(f"top_k[{b}] = {top_k[b]}: must be >= 0")
            if not (top_p[b] > 0 and top_p[b] <= 1):
                raise ValueError(f"top_p[{b}] = {top_p[b]}: must be in (0, 1]")
        if n == 0:
            return
        scratch = self._scratch(B)
        cdef double[::1] logits = np.zeros(B * V)
        cdef double[::1] work = np.zeros(V)
        out_scratch = np.empty(B * V, self.dtype)
        cdef char *base = <char *> data_pointer(scratch)
        cdef void *s = data_pointer(state)
        cdef void *osc = data_pointer(out_scratch)
        cdef Py_ssize_t item = self.dtype.itemsize
        with nogil:
            if self.is_double:
                sample_rows_steps(&self.w, B, <double *> s, <double *> base,
                                  <double *> (base + B * GH * item),
                                  <double *> (base + 2 * B * GH * item), &out[0, 0], n,
                                  &uniforms[0, 0], <double *> osc, &logits[0], &work[0],
                                  &temperature[0], &top_k[0], &top_p[0])
            else:
                sample_rows_steps(&self.w, B, <float *> s, <float *> base,
                                  <float *> (base + B * GH * item),
                                  <float *> (base + 2 * B * GH * item), &out[0, 0], n,
                                  &uniforms[0, 0], <float *> osc, &logits[0], &work[0],
                                  &temperature[0], &top_k[0], &top_p[0])

    def word_beam(self, state, const unsigned char[::1] is_sep,
                  const unsigned char[::1] started, Py_ssize_t beam,
                  Py_ssize_t[:, :, ::1] out, Py_ssize_t[:, ::1] out_len,
                  double[:, ::1] out_scores, bint fixed_length=False):
        """R word searches of width `beam`, one per stream of `state` (S·L, R, H) (left as
        it was), advanced as one batch: the most probable completions of the word being
        typed, each ending in a separator (is_sep (V,): 1 for a separator character).
        started (R,): 1 where the text ends inside a word (a separator then ends it at
        once), 0 where it ends in a separator or is empty (separators may then lead into
        the word).  out (R, kf, n): search r's kf best completions of at most n characters
        (the ending separator not included), best first, their lengths in out_len (R, kf)
        and log-probabilities in nats, the ending separator's included, in out_scores
        (R, kf).  Returns an (R,) array: how many each search found (rows after them are
        untouched).  fixed_length: R plain beam searches for exactly n characters
        instead (is_sep and started unused; kf <= beam best beams each).  See
        word_beam_steps."""
        cdef Py_ssize_t R = self.check_state(state), K = beam, kf = out.shape[1]
        cdef Py_ssize_t n = out.shape[2], V = self.n_vocab, H = self.hidden_size, r
        cdef Py_ssize_t GH = GATES[self.cell] * H, rows = state.shape[0]
        if self.bound_params is None:
            raise ValueError("bind_params before word_beam")
        if K < 1 or kf < 1:
            raise ValueError("the beam width and the number of words kept must be >= 1")
        if kf > K:
            raise ValueError(f"a beam of width {K} cannot keep {kf} words")
        if is_sep.shape[0] != V:
            raise ValueError(f"is_sep has {is_sep.shape[0]} entries, expected {V}")
        if started.shape[0] != R or out.shape[0] != R:
            raise ValueError(f"started and out need one row per search ({R})")
        if out_len.shape[0] != R or out_len.shape[1] != kf or out_scores.shape[0] != R \
                or out_scores.shape[1] != kf:
            raise ValueError(f"out_len and out_scores must be ({R}, {kf})")
        # two (S·L, R·K, H) state buffers, the first holding the R texts' states
        states = np.zeros((2, rows * R * K * H), self.dtype)
        states[0, :rows * R * H] = state.ravel()
        scratch = self._scratch(R * K)
        cdef Py_ssize_t n_hist = max(n, 1)
        ints = np.zeros(2 * R * n_hist * K + 3 * R + R * K + 2 * R * kf, np.intp)
        floats = np.zeros(2 * R * K + R * K * V)
        logit_scratch = np.empty(R * K * V, self.dtype)
        flags = np.zeros(2 * R * K, np.uint8)
        for r in range(R):
            flags[r * K] = started[r]
        counts = np.zeros(R, np.intp)
        cdef Candidate *cands = <Candidate *> PyMem_Malloc(K * V * sizeof(Candidate))
        if cands == NULL:
            raise MemoryError()
        cdef Py_ssize_t *ip = <Py_ssize_t *> data_pointer(ints)
        cdef double *fp = <double *> data_pointer(floats)
        cdef unsigned char *up = <unsigned char *> data_pointer(flags)
        cdef WordSearch s
        s.R, s.K, s.kf, s.n = R, K, kf, n
        s.fixed = fixed_length
        s.is_sep = &is_sep[0]
        s.scores, s.next_scores = fp, fp + R * K
        s.logits = fp + 2 * R * K
        s.fin_scores = &out_scores[0, 0]
        cdef void *lsc = data_pointer(logit_scratch)
        s.started, s.next_started = up, up + R * K
        s.chars, s.parents = ip, ip + R * n_hist * K
        s.live = ip + 2 * R * n_hist * K
        s.next_live = s.live + R
        s.n_fin = <Py_ssize_t *> data_pointer(counts)
        s.xs = s.next_live + R
        s.fin_step = s.xs + R * K
        s.fin_beam = s.fin_step + R * kf
        s.cands = cands
        cdef char *st = <char *> data_pointer(states)
        cdef char *base = <char *> data_pointer(scratch)
        cdef Py_ssize_t item = self.dtype.itemsize, RK = R * K
        try:
            with nogil:
                if self.is_double:
                    word_beam_steps(&self.w, &s, <double *> st,
                                    <double *> (st + rows * RK * H * item), <double *> base,
                                    <double *> (base + RK * GH * item),
                                    <double *> (base + 2 * RK * GH * item), <double *> lsc,
                                    &out[0, 0, 0]
                                    if n > 0 else NULL, &out_len[0, 0])
                else:
                    word_beam_steps(&self.w, &s, <float *> st,
                                    <float *> (st + rows * RK * H * item), <float *> base,
                                    <float *> (base + RK * GH * item),
                                    <float *> (base + 2 * RK * GH * item), <float *> lsc,
                                    &out[0, 0, 0]
                                    if n > 0 else NULL, &out_len[0, 0])
        finally:
            PyMem_Free(cands)
        return counts
