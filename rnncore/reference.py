"""Every rnncore model in plain numpy, written to be read.

This is the oracle the compiled kernels are tested against and the baseline the
benchmarks compare with, and nothing else: the model's layout (cells, gates, names,
shapes, state rows) is rnncore.layout's, which production code reads.  One function per cell for a step forward and one for a step
backward, then a stack loop around them (layer after layer over the whole window, as
PyTorch runs them), a stable softmax, and the loss reported as a mean per character.

Sizes: V vocabulary, H hidden units, B streams, T time steps, L layers, G gate blocks
(1 rnn, 4 lstm, 3 gru).  Parameters (PyTorch's equations, gate order and bias placement):
    layer 0:       Wxh (G·H, V)   Whh (G·H, H)   bh (G·H,)   [gru: bhn (H,)]
    layer k >= 1:  Wxh_l{k} (G·H, H)  Whh_l{k} (G·H, H)  bh_l{k} (G·H,)  [gru: bhn_l{k} (H,)]
    decoder:       Why (V, H)   by (V,)
Per layer, step and stream, with x the layer's input (one-hot character for layer 0):
    rnn:   h' = tanh(Wxh·x + Whh·h + bh)
    lstm:  z = Wxh·x + Whh·h + bh, blocks (i, f, g, o);
           c' = σ(f)⊙c + σ(i)⊙tanh(g);  h' = σ(o)⊙tanh(c')
    gru:   blocks (r, z, n), "linear before reset":
           r = σ(Wxh_r·x + Whh_r·h + bh_r);  u = σ(Wxh_z·x + Whh_z·h + bh_z)
           n = tanh(Wxh_n·x + bh_n + r⊙(Whh_n·h + bhn));  h' = (1-u)⊙n + u⊙h
Dropout (training only): layer k's output h_t is multiplied by masks[k, t] (already scaled,
0 or 1/(1-p)) before it feeds layer k+1 or the decoder; the recurrent h is never dropped.
Locked (variational) dropout is masks[k, t] equal for every t of the window.
Weight drop (training only, DropConnect on the recurrent weights): the window runs on
Whh ⊙ M (M scaled, 0 or 1/(1-p), one per layer and window), so the gradient of Whh is
that of Whh ⊙ M times M.
    y_t = Why·(masks[L-1, t] ⊙ h_t of the top layer) + by;  p_t = softmax(y_t)
loss  = mean over the B·T characters of -log p_t[target_t]             (nats per char)
grads = d/dθ of Σ_t mean_b -log p_t[target_t]  (so at B=1, min-char-rnn's gradient),
        then each clipped elementwise to [-clip, clip] when clip is given and > 0.

The recurrent state is one array: (S·L, B, H) for (B, T) inputs, (S·L, H) for (T,) inputs,
S = 2 for lstm (rows 0..L-1 every layer's h, rows L..2L-1 every layer's c: PyTorch's
(h_n, c_n) concatenated), S = 1 otherwise; when S·L == 1 the leading axis is dropped, so the
single-layer rnn and gru states are (B, H) / (H,).  The streams are always axis -2 (or the
only axis of length B).  Dropout masks: (L, T, B, H) for (B, T) inputs, (L, T, H) for (T,).
"""
import numpy as np

from .layout import infer_config, layer_suffix, param_shapes, state_rows


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ---- the cells: one step of B streams -------------------------------------------------
# Forward: xp (B, G·H) is the input projection Wxh·x + bh; h, c (B, H) the previous state
# (c only for lstm).  Returns (h', c', cache).
# Backward: dh (B, H) is dloss/dh' from above and from the next step, dc (B, H) dloss/dc'
# from the next step (lstm).  Returns (dxp, dhp, dh_prev, dc_prev): the gradients at the
# input-side pre-activation (for dWxh, dbh and the layer below), at the hidden-side
# pre-activation Whh·h (for dWhh, and bhn's block for gru), and into the previous state.

def rnn_step(xp, h, c, Whh, bhn):
    h_new = np.tanh(xp + h @ Whh.T)
    return h_new, None, (h_new,)


def rnn_step_backward(dh, dc, cache, Whh):
    (h_new,) = cache
    da = (1 - h_new * h_new) * dh                                  # through tanh
    return da, da, da @ Whh, None


def lstm_step(xp, h, c, Whh, bhn):
    z = xp + h @ Whh.T                                             # (B, 4H)
    i, f, g, o = np.split(z, 4, axis=1)
    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
    c_new = f * c + i * g
    tc = np.tanh(c_new)
    return o * tc, c_new, (c, i, f, g, o, tc)


def lstm_step_backward(dh, dc, cache, Whh):
    c, i, f, g, o, tc = cache
    dc = dc + dh * o * (1 - tc * tc)                               # dloss/dc'
    dz = np.concatenate([dc * g * i * (1 - i),                     # i
                         dc * c * f * (1 - f),                     # f
                         dc * i * (1 - g * g),                     # g
                         dh * tc * o * (1 - o)], axis=1)           # o
    return dz, dz, dz @ Whh, dc * f


def gru_step(xp, h, c, Whh, bhn):
    H = h.shape[1]
    hp = h @ Whh.T                                                 # (B, 3H)
    r = sigmoid(xp[:, :H] + hp[:, :H])
    u = sigmoid(xp[:, H:2 * H] + hp[:, H:2 * H])
    hn = hp[:, 2 * H:] + bhn                                       # Whh_n·h + bhn
    n = np.tanh(xp[:, 2 * H:] + r * hn)
    return (1 - u) * n + u * h, None, (h, r, u, n, hn)


def gru_step_backward(dh, dc, cache, Whh):
    h, r, u, n, hn = cache
    dan = dh * (1 - u) * (1 - n * n)                               # at n's pre-activation
    dau = dh * (h - n) * u * (1 - u)
    dar = dan * hn * r * (1 - r)
    dxp = np.concatenate([dar, dau, dan], axis=1)
    dhp = np.concatenate([dar, dau, dan * r], axis=1)
    return dxp, dhp, dhp @ Whh + dh * u, None


CELL_STEPS = {"rnn": (rnn_step, rnn_step_backward), "lstm": (lstm_step, lstm_step_backward),
              "gru": (gru_step, gru_step_backward)}


# ---- the stack -------------------------------------------------------------------------

def split_state(state, cell, num_layers, B, H, dtype):
    """Per-layer lists (h, c) of (B, H) arrays from the one-array state (zeros if None)."""
    rows = state_rows(cell, num_layers)
    if state is None:
        state = np.zeros((rows, B, H), dtype)
    else:
        state = np.array(state, dtype).reshape(rows, B, H)
    hs = [state[k] for k in range(num_layers)]
    cs = [state[num_layers + k] for k in range(num_layers)] if cell == "lstm" \
        else [None] * num_layers
    return hs, cs


def join_state(hs, cs, cell, single):
    """The one-array state from per-layer (B, H) lists: (S·L, B, H), squeezed as above."""
    rows = list(hs) + (list(cs) if cell == "lstm" else [])
    state = np.stack(rows)                                         # (S·L, B, H)
    if single:
        state = state[:, 0]
    return state[0] if len(rows) == 1 else state


def loss_and_grads(params, inputs, targets, state=None, clip=5.0, dropout_masks=None,
                   weight_masks=None):
    """Loss, gradients and last recurrent state for one window.

    params: dict as param_shapes gives (one float dtype); the cell and depth are read
        from it.
    inputs, targets: (T,) or (B,T) integer arrays of character indices.
    state: the recurrent state (module docstring), zeros when None.
    dropout_masks: (L, T, B, H) or, for (T,) inputs, (L, T, H) scaled masks; None: none.
    weight_masks: {"Whh"...: (G·H, H) scaled mask} for every layer, or None: none.
    Returns (loss in mean nats per char, dict of gradients like params, last state).
    """
    if weight_masks is not None:
        dropped = {**params, **{k: params[k] * m.astype(params[k].dtype)
                                for k, m in weight_masks.items()}}
        loss, grads, state = loss_and_grads(dropped, inputs, targets, state, None,
                                            dropout_masks)
        for k, m in weight_masks.items():
            grads[k] = grads[k] * m.astype(grads[k].dtype)
        if clip:
            for g in grads.values():
                np.clip(g, -clip, clip, out=g)
        return loss, grads, state
    cell, L = infer_config(params)
    step, step_backward = CELL_STEPS[cell]
    Why, by = params["Why"], params["by"]
    V, H = Why.shape
    dtype = Why.dtype
    single = np.ndim(inputs) == 1
    inputs, targets = np.atleast_2d(inputs), np.atleast_2d(targets)
    B, T = inputs.shape
    h_last, c_last = split_state(state, cell, L, B, H, dtype)
    if dropout_masks is not None:
        masks = np.asarray(dropout_masks, dtype).reshape(L, T, B, H)
    else:
        masks = np.ones((L, T, B, H), dtype)
    layer = [{n: params.get(n + layer_suffix(k)) for n in ("Wxh", "Whh", "bh", "bhn")}
             for k in range(L)]

    # forward, layer after layer over the whole window
    caches = [[None] * T for _ in range(L)]
    h_prevs = [[None] * T for _ in range(L)]
    layer_in = None                                                # (T, B, H) below layer k
    layer_ins = [None] * L
    for k in range(L):
        p = layer[k]
        layer_ins[k] = layer_in
        h, c = h_last[k], c_last[k]
        out = np.zeros((T, B, H), dtype)
        for t in range(T):
            if k == 0:
                xp = p["Wxh"][:, inputs[:, t]].T + p["bh"]        # one-hot: a column gather
            else:
                xp = layer_in[t] @ p["Wxh"].T + p["bh"]
            h_prevs[k][t] = h
            h, c, caches[k][t] = step(xp, h, c, p["Whh"], p["bhn"])
            out[t] = h
        h_last[k], c_last[k] = h, c
        layer_in = out * masks[k]                                  # dropout on the output
    logits = layer_in @ Why.T + by                                 # (T, B, V)
    shifted = logits - logits.max(axis=2, keepdims=True)
    log_ps = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
    t_idx, b_idx = np.meshgrid(np.arange(T), np.arange(B), indexing="ij")
    loss = -log_ps[t_idx, b_idx, targets.T].sum()

    # backward: the decoder, then every layer in reverse time, top layer first
    dy = np.exp(log_ps)
    dy[t_idx, b_idx, targets.T] -= 1                               # softmax + CE
    dy /= B                                                        # mean over streams
    grads = {"Why": np.einsum("tbv,tbh->vh", dy, layer_in), "by": dy.sum(axis=(0, 1))}
    d_out = dy @ Why                                               # (T, B, H)
    for k in reversed(range(L)):
        p, s = layer[k], layer_suffix(k)
        d_out = d_out * masks[k]
        x_below = layer_ins[k]                                     # (T, B, H), dropped
        dWxh, dWhh = np.zeros_like(p["Wxh"]), np.zeros_like(p["Whh"])
        dbh = np.zeros_like(p["bh"])
        dbhn = None if p["bhn"] is None else np.zeros_like(p["bhn"])
        d_in = np.zeros((T, B, H), dtype)
        dh_next, dc_next = np.zeros((B, H), dtype), np.zeros((B, H), dtype)
        for t in reversed(range(T)):
            dxp, dhp, dh_next, dc_next = step_backward(d_out[t] + dh_next, dc_next,
                                                       caches[k][t], p["Whh"])
            dWhh += dhp.T @ h_prevs[k][t]
            dbh += dxp.sum(axis=0)
            if dbhn is not None:
                dbhn += dhp[:, 2 * H:].sum(axis=0)
            if k == 0:
                np.add.at(dWxh.T, inputs[:, t], dxp)              # columns of the one-hot
            else:
                dWxh += dxp.T @ x_below[t]
                d_in[t] = dxp @ p["Wxh"]
        grads.update({"Wxh" + s: dWxh, "Whh" + s: dWhh, "bh" + s: dbh})
        if dbhn is not None:
            grads["bhn" + s] = dbhn
        d_out = d_in

    grads = {name: grads[name] for name in param_shapes(cell, V, H, L)}
    if clip:
        for g in grads.values():
            np.clip(g, -clip, clip, out=g)
    return loss / (B * T), grads, join_state(h_last, c_last, cell, single)


# ---- the optimizer's extras ------------------------------------------------------------

def adamw_step(param, grad, m, v, lr, step, weight_decay=0.0, beta1=0.9, beta2=0.999,
               eps=1e-8):
    """One AdamW update (Loshchilov & Hutter; PyTorch's torch.optim.AdamW), in place on
    param, m, v: the decay first, decoupled from the moments, then Adam's bias-corrected
    step.  step counts from 1."""
    param *= 1 - lr * weight_decay
    m[...] = beta1 * m + (1 - beta1) * grad
    v[...] = beta2 * v + (1 - beta2) * grad * grad
    param -= lr * (m / (1 - beta1 ** step)) / (np.sqrt(v / (1 - beta2 ** step)) + eps)


def ema_step(average, param, decay):
    """One step of the exponential moving average of a parameter, in place:
    average ← decay·average + (1 - decay)·param."""
    average += (1 - decay) * (param - average)
