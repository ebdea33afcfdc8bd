"""The vanilla RNN language model in plain numpy, written to be read.

This is the oracle the compiled kernels are tested against and the baseline the
benchmarks compare with.  It follows min-char-rnn step by step, with B streams side by
side, a stable softmax, and the loss reported as a mean per character.

Shapes: V vocabulary, H hidden units, B streams, T time steps.
    Wxh (H,V)  Whh (H,H)  Why (V,H)  bh (H,)  by (V,)
For every stream and step:
    h_t = tanh(Wxh·onehot(x_t) + Whh·h_{t-1} + bh)
    y_t = Why·h_t + by
    p_t = softmax(y_t)
loss  = mean over the B·T characters of -log p_t[target_t]             (nats per char)
grads = d/dθ of Σ_t mean_b -log p_t[target_t]  (so at B=1, min-char-rnn's gradient),
        then each clipped elementwise to [-clip, clip] when clip is given and > 0.
"""
import numpy as np

PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")


def loss_and_grads(params, inputs, targets, h0=None, clip=5.0):
    """Loss, gradients and last hidden state for one window.

    params: dict of the five arrays above (one float dtype).
    inputs, targets: (T,) or (B,T) integer arrays of character indices.
    h0: (H,) or (B,H) initial hidden state (zeros when None).
    Returns (loss in mean nats per char, dict of gradients like params, h_last (H,) or (B,H)).
    """
    Wxh, Whh, Why, bh, by = (params[name] for name in PARAM_NAMES)
    H, V = Wxh.shape
    single = np.ndim(inputs) == 1
    inputs, targets = np.atleast_2d(inputs), np.atleast_2d(targets)
    B, T = inputs.shape
    h_prev = np.zeros((B, H), Wxh.dtype) if h0 is None else np.array(h0).reshape(B, H)

    # forward: keep every step's state for backprop
    xs, hs, ps = {}, {-1: h_prev}, {}
    loss = 0.0
    for t in range(T):
        xs[t] = np.zeros((B, V), Wxh.dtype)
        xs[t][np.arange(B), inputs[:, t]] = 1                      # one-hot (B,V)
        hs[t] = np.tanh(xs[t] @ Wxh.T + hs[t - 1] @ Whh.T + bh)    # (B,H)
        ys = hs[t] @ Why.T + by                                    # (B,V)
        shifted = ys - ys.max(axis=1, keepdims=True)
        log_ps = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        ps[t] = np.exp(log_ps)                                     # (B,V)
        loss += -log_ps[np.arange(B), targets[:, t]].sum()

    # backward through time
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dh_next = np.zeros_like(hs[0])
    for t in reversed(range(T)):
        dy = ps[t].copy()
        dy[np.arange(B), targets[:, t]] -= 1                       # softmax + CE
        dy /= B                                                    # mean over streams
        dWhy += dy.T @ hs[t]
        dby += dy.sum(axis=0)
        dh = dy @ Why + dh_next                                    # (B,H)
        dh_raw = (1 - hs[t] * hs[t]) * dh                          # through tanh
        dbh += dh_raw.sum(axis=0)
        dWxh += dh_raw.T @ xs[t]
        dWhh += dh_raw.T @ hs[t - 1]
        dh_next = dh_raw @ Whh

    grads = {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}
    if clip:
        for g in grads.values():
            np.clip(g, -clip, clip, out=g)
    h_last = hs[T - 1][0] if single else hs[T - 1]
    return loss / (B * T), grads, h_last
