"""Text generation: feed a prime through the model, then pick characters one at a time.

The whole loop (every layer's step, softmax, draw) runs in compiled code with one
stream's state and no window buffers, for every cell and depth; Python only draws the uniform numbers up front, so a seed
gives the same text every time.
"""
import numpy as np


def generate(model, n, prime="", greedy=True, temperature=1.0, top_k=None, seed=None,
             skip_unknown=False):
    """n new characters after `prime`, from a fresh (zero) state; never drops out.

    greedy: argmax at every step; otherwise draw from softmax(y / temperature),
    restricted to the top_k most likely characters when top_k is given.
    With an empty prime the first character is predicted from the zero state.
    Returns the generated string only (not the prime).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"the number of characters must be an integer >= 0, got {n!r}")
    if not isinstance(prime, str):
        raise TypeError(f"prime must be a str, got {type(prime).__name__}")
    if not greedy:
        temperature = float(temperature)
        if not (temperature > 0 and np.isfinite(temperature)):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    if top_k is None:
        top_k = 0
    elif isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer (or None), got {top_k!r}")
    prime_ids = model.vocab.encode(prime, skip_unknown=skip_unknown).astype(np.intp)
    uniforms = np.zeros(n) if greedy else np.random.default_rng(seed).random(n)
    out = np.zeros(n, np.intp)
    model._generate(prime_ids, out, uniforms, greedy, temperature,
                    min(int(top_k), model.n_vocab))
    return model.vocab.decode(out)
