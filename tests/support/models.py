"""Small models and checkpoints with known properties, and comparing their arrays."""

import hashlib

import numpy as np
import rnncore


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def random_model(n_vocab, hidden_size, dtype="float64", seed=0, scale=0.5):
    """A model over the first n_vocab printable characters with O(scale) weights, so that
    tanh and softmax are far from their linear regimes.  Whh is scaled by 1/sqrt(H) so the
    recurrence stays contracting: in the chaotic regime any two correct implementations
    drift apart exponentially in T, and no tolerance would be meaningful."""
    vocab = rnncore.Vocab([chr(33 + i) for i in range(n_vocab)])
    model = rnncore.CharRNN(vocab, hidden_size, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name, p in model.params.items():
        p[...] = rng.standard_normal(p.shape) * scale
    model.params["Whh"] /= max(1.0, np.sqrt(hidden_size) * scale / 0.9)
    return model


def gated_model(cell, L, V, H, dtype="float64", seed=0, scale=0.5, dropout=0.0):
    """A model with O(scale) weights and nonzero biases; recurrent weights scaled by
    1/sqrt(H) so the recurrence contracts (see random_model)."""
    vocab = rnncore.Vocab([chr(33 + i) for i in range(V)])
    model = rnncore.CharRNN(vocab, H, dtype=dtype, seed=seed, cell=cell, num_layers=L,
                            dropout=dropout)
    rng = np.random.default_rng(seed + 1)
    for name, p in model.params.items():
        p[...] = rng.standard_normal(p.shape) * scale
        if name.startswith("Whh"):
            p /= max(1.0, np.sqrt(H) * scale / 0.9)
    return model


def saved_small_model(path, cell):
    """A 2-layer model of `cell` (8 units, weights as gated_model's) over the characters of
    'the cat sat on a mat.', saved at path; returns path."""
    vocab = rnncore.Vocab.from_text("the cat sat on a mat.")
    model = gated_model(cell, 2, len(vocab), 8, seed=1, scale=0.9)
    model.vocab = vocab
    model.save(path)
    return path


def gradient_floor(ref_grads, dtype):
    """In float32, a gradient far smaller than the largest one (cancelling terms: a bias
    of two characters, a recurrent weight of one unit) is judged on 1% of the largest one's
    scale: its terms are that large, and float32 sums them with errors of their size."""
    if dtype == "float64":
        return 0.0
    return 1e-2 * max(np.abs(g).max() for g in ref_grads.values())


def assert_close(a, b, rtol, name, floor=0.0):
    """max |a - b| within rtol of max |b| (or of `floor`, if larger)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"{name}: shape {a.shape} != {b.shape}"
    scale = max(np.abs(b).max(), floor, 1e-30)
    err = np.abs(a - b).max() / scale
    assert err <= rtol, f"{name}: relative error {err:.3g} > {rtol}"


def rewrite_npz(path, **changes):
    """Rewrite the .npz at path with entries changed (None: removed)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del arrays[k]
    np.savez(path, **arrays)
