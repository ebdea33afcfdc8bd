"""Checks of what generation draws: exact log-probabilities, fixed distributions, binomial tests."""

import numpy as np
import rnncore


def continuation_log_prob(model, prime, cont):
    """log p(cont | prime) in nats, from the window kernel's loss (an independent path:
    GEMMs over a window, not the generation step)."""
    ids = model.vocab.encode(prime)
    cont = np.asarray(cont, np.int64)
    if len(ids) == 0:
        # the first character is predicted from the zero state, where the logits are by
        by = model.params["by"].astype(np.float64)
        first = by[cont[0]] - (by.max() + np.log(np.exp(by - by.max()).sum()))
        if len(cont) == 1:
            return first
        loss, _ = model.loss(cont[:-1], cont[1:])
        return first - loss * (len(cont) - 1)
    state = None
    if len(ids) > 1:
        _, state = model.loss(ids[:-1], ids[1:])
    inputs = np.concatenate([ids[-1:], cont[:-1]])
    loss, _ = model.loss(inputs, cont, state)
    return -loss * len(cont)


def fixed_distribution_model(probs):
    """A model whose next-character distribution is `probs` whatever came before:
    Why = 0, so the logits are by = log(probs)."""
    vocab = rnncore.Vocab([chr(97 + i) for i in range(len(probs))])
    model = rnncore.CharRNN(vocab, 4, seed=0)
    model.params["Why"][...] = 0
    model.params["by"][...] = np.log(probs)
    return model


def frequencies(model, text):
    counts = np.bincount(model.vocab.encode(text), minlength=model.n_vocab)
    return counts / counts.sum()


P = np.array([0.5, 0.25, 0.15, 0.07, 0.03])
N_DRAWS = 40000


def assert_binomial(f, p, n=N_DRAWS, z=4.5):
    """Each frequency f[i] of n draws within z standard deviations sqrt(p(1-p)/n) of its
    probability p[i]: a bound that scales with p (at p = 0.03 it is ±0.0038, not ±0.01),
    exceeded by chance with probability ~1e-5 per class (and the seeds are fixed)."""
    p = np.asarray(p, dtype=float)
    bound = z * np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(f - p) <= bound), (f, p, bound)
