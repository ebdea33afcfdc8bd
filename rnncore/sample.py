"""Text generation: sampling (streamed, several streams at once, stopping at a text) and
beam-search completion.

The prime is fed through one stream from the zero state; its state is then copied to
every stream.  The loops (every layer's step, the logits, the draw or the beam's scoring
and pruning) run in compiled code (rnncore._cells.StackKernel.sample / .beam); Python
only draws the uniform numbers of a chunk up front and cuts the text at the stop text
between chunks.  So a seed gives the same text whether it is read whole or in chunks.
"""
import math
from collections import namedtuple

import numpy as np

from .config import check_int
from .errors import ConfigError
from .layout import check_memory, generation_bytes_per_stream, state_rows

#: sampled streams are generated in chunks that double from FIRST_CHUNK up to LAST_CHUNK
#: characters: the first text shows at once, and longer chunks cost less per character;
#: with many streams a chunk holds at most CHUNK_CHARS characters in all
FIRST_CHUNK = 64
LAST_CHUNK = 8192
CHUNK_CHARS = 1 << 16

Completion = namedtuple("Completion", ["text", "log_prob"])
Completion.__doc__ = """One beam-search result: the text after the prime, and its total
log-probability given the prime, in nats (the sum over its characters of log p)."""


def _check_length(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"the number of characters must be an integer >= 0, got {n!r}")
    return int(n)


def _check_positive(value, name):
    """int(value), or the model's ValueError for anything but a positive integer."""
    return check_int(value, name)


def prime_ids(model, prime, skip_unknown=False):
    """(P,) character indices of `prime` (unknown characters dropped with skip_unknown,
    else a ValueError naming them)."""
    if not isinstance(prime, str):
        raise TypeError(f"prime must be a str, got {type(prime).__name__}")
    return model.vocab.encode(prime, skip_unknown=skip_unknown).astype(np.intp)


def seen_prime(model, prime):
    """The prime as the model sees it with skip_unknown: its unknown characters dropped."""
    return model.vocab.decode(prime_ids(model, prime, skip_unknown=True))


def _bytes_per_stream(model):
    """Generation memory of one stream or beam: its state and step scratch."""
    return generation_bytes_per_stream(model.cell, model.num_layers, model.hidden_size,
                                       model.dtype)


def primed_state(model, ids, num_streams=1):
    """The generation state (S·L, num_streams, H) of every stream after the characters
    `ids`, fed from the zero state."""
    kernel = model.generation_kernel()
    rows = state_rows(model.cell, model.num_layers)
    state = np.zeros((rows, 1, model.hidden_size), model.dtype)
    kernel.feed(ids, state)
    return np.ascontiguousarray(np.repeat(state, num_streams, axis=1))


def stream_samples(model, n, prime="", greedy=False, temperature=None, top_k=None,
                   seed=None, skip_unknown=False, stop=None, num_samples=1):
    """Generate num_samples independent samples of up to n characters after `prime`, as
    parallel streams, yielding a tuple of num_samples new pieces of text per chunk.

    greedy: argmax at every step (then temperature, top_k and seed are errors: greedy
    draws nothing).  Otherwise draw from softmax(y / temperature) (default 1),
    restricted to the top_k most likely characters when top_k is given; seed makes the
    draws reproducible.  stop: a sample ends right after the first occurrence of this
    text in what it generated (the prime is not searched); a stream that has stopped
    yields "" from then on, and the generator ends once every stream has stopped or has n
    characters.  With an empty prime the first character is predicted from the zero
    state.  Never drops out.
    """
    n = _check_length(n)
    num_samples = _check_positive(num_samples, "num_samples")
    if greedy:
        given = [name for name, value in (("temperature", temperature), ("top_k", top_k),
                                          ("seed", seed)) if value is not None]
        if given:
            raise ConfigError(f"greedy generation draws nothing: {', '.join(given)} "
                             "cannot be used with it")
        temperature = 1.0
    elif temperature is None:
        temperature = 1.0
    else:
        temperature = float(temperature)
        if not (temperature > 0 and np.isfinite(temperature)):
            raise ConfigError(f"temperature must be a finite number > 0, got {temperature}")
    if top_k is None:
        top_k = 0
    else:
        top_k = min(_check_positive(top_k, "top_k"), model.n_vocab)
    if stop is not None and (not isinstance(stop, str) or not stop):
        raise ConfigError(f"stop must be a non-empty str (or None), got {stop!r}")
    ids = prime_ids(model, prime, skip_unknown)
    check_memory(num_samples * (_bytes_per_stream(model) + 2 * 8), f"{num_samples:,} streams")
    return _stream(model, n, ids, greedy, temperature, top_k, seed, stop, num_samples)


def _stream(model, n, ids, greedy, temperature, top_k, seed, stop, num_samples):
    kernel = model.generation_kernel()
    state = primed_state(model, ids, num_samples)
    rng = None if greedy else np.random.default_rng(seed)
    no_uniforms = np.zeros((0, num_samples))
    decode = model.vocab.decode
    tails = [""] * num_samples        # the last len(stop)-1 characters of each stream
    stopped = [False] * num_samples
    done, chunk = 0, FIRST_CHUNK
    while done < n and not all(stopped):
        size = min(chunk, n - done, max(1, CHUNK_CHARS // num_samples))
        out = np.empty((size, num_samples), np.intp)
        # (size, B) time-major, so one stream draws the same numbers as rng.random(n)
        uniforms = no_uniforms if greedy else rng.random((size, num_samples))
        kernel.sample(state, out, uniforms, greedy, temperature, top_k)
        pieces = []
        for b in range(num_samples):
            piece = "" if stopped[b] else decode(out[:, b])
            if stop is not None and piece:
                seen = tails[b] + piece
                at = seen.find(stop)
                if at >= 0:
                    piece = piece[:at + len(stop) - len(tails[b])]
                    stopped[b] = True
                else:
                    tails[b] = seen[len(seen) - (len(stop) - 1):] if len(stop) > 1 else ""
            pieces.append(piece)
        done += size
        chunk = min(2 * chunk, LAST_CHUNK)
        yield tuple(pieces)


def generate(model, n, prime="", greedy=False, temperature=None, top_k=None, seed=None,
             skip_unknown=False, stop=None, num_samples=1):
    """The samples of stream_samples, whole: a list of num_samples strings (without the
    prime)."""
    chunks = stream_samples(model, n, prime, greedy, temperature, top_k, seed,
                            skip_unknown, stop, num_samples)
    texts = [[] for _ in range(num_samples)]
    for pieces in chunks:
        for parts, piece in zip(texts, pieces):
            parts.append(piece)
    return ["".join(parts) for parts in texts]


def beam_search(model, prime, n, beam, skip_unknown=False):
    """The `beam` most probable n-character continuations of `prime` that a beam search
    of that width finds, best first, as Completions (text, total log-probability in nats).

    Every step extends each live beam by every character, scores the extensions by their
    total log-probability and keeps the `beam` best; at width >= V**n nothing is pruned
    and the results are every continuation, in order.  Width 1 is greedy completion.
    Fewer than `beam` results come back when there are fewer than `beam` continuations.
    """
    n = _check_length(n)
    beam = _check_positive(beam, "the beam width")
    ids = prime_ids(model, prime, skip_unknown)
    if n == 0:
        return [Completion("", 0.0)]
    # more beams than continuations would never be filled
    if n * math.log(model.n_vocab) < math.log(beam):
        beam = model.n_vocab ** n
    # states and scratch, the K·V candidates (24 bytes each), the characters and parents
    check_memory(beam * (_bytes_per_stream(model) + 24 * model.n_vocab + 3 * 8 * n),
                 f"a beam of width {beam:,} over {n:,} characters")
    state = primed_state(model, ids, 1)
    out = np.zeros((beam, n), np.intp)
    scores = np.zeros(beam)
    count = model.generation_kernel().beam(state, out, scores)
    return [Completion(model.vocab.decode(out[i]), float(scores[i])) for i in range(count)]
