"""Text generation: sampling (streamed, several streams at once, stopping at a text) and
beam-search completion.

The prime is fed through one stream from the zero state; its state is then copied to
every stream.  The loops (every layer's step, the logits, the draw or the beam's scoring
and pruning) run in compiled code (rnncore._cells: sample_rows, beam); Python
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


def check_length(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"the number of characters must be an integer >= 0, got {n!r}")
    return int(n)


def _check_positive(value, name):
    """int(value), or a ConfigError for anything but a positive integer."""
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


def feed_texts(model, id_lists, state=None, kernel=None):
    """The state (S·L, R, H) of R streams after each is fed its own characters
    (id_lists: R index arrays), advanced as one batch: from the zero state, or from
    `state` (S·L, R, H), which is left as it was.  A stream's state is the same bits
    whatever the other streams are, and whether its text is fed whole or in pieces.
    kernel: the bound generation kernel to run on (default: the model's own)."""
    R = len(id_lists)
    if state is None:
        rows = state_rows(model.cell, model.num_layers)
        state = np.zeros((rows, R, model.hidden_size), model.dtype)
    else:
        state = np.array(state, model.dtype, order="C")
    P = max((len(ids) for ids in id_lists), default=0)
    if P == 0:
        return state
    chars = np.zeros((R, P), np.intp)
    starts = np.empty(R, np.intp)
    for r, ids in enumerate(id_lists):
        starts[r] = P - len(ids)
        chars[r, starts[r]:] = ids
    (kernel or model.generation_kernel()).feed_rows(chars, starts, state)
    return state


def primed_states(model, id_lists, num_streams=1):
    """The state (S·L, P·num_streams, H) after each of P primes (index arrays), stream
    p·num_streams + s holding prime p: one prime is fed once and copied; several are fed
    as one batch of streams (the compiled feed_rows)."""
    if len(id_lists) == 1:
        return primed_state(model, id_lists[0], num_streams)
    return np.ascontiguousarray(np.repeat(feed_texts(model, id_lists), num_streams, axis=1))


def check_stops(stop):
    """stop as a tuple of non-empty strings: None gives (), a str one, a list or tuple
    several."""
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, str) else stop
    if not isinstance(stops, (list, tuple)) or not all(
            isinstance(t, str) and t for t in stops):
        raise ConfigError(f"stop must be a non-empty str, a list of them, or None; got "
                         f"{stop!r}")
    return tuple(stops)


class StopScanner:
    """Cuts one stream's text right after the first occurrence of any of the stop texts,
    across the pieces it arrives in."""

    def __init__(self, stops):
        self.stops = stops
        self.keep = max((len(t) for t in stops), default=1) - 1
        self.tail = ""        # the last `keep` characters seen, which hold no stop text
        self.stopped = False

    def cut(self, piece):
        """The part of `piece` up to and including the end of the first stop text (all of
        it when there is none); sets `stopped` when one was found."""
        if self.stopped:
            return ""
        if not self.stops or not piece:
            return piece
        seen = self.tail + piece
        ends = [at + len(t) for t in self.stops for at in (seen.find(t),) if at >= 0]
        if ends:
            self.stopped = True
            return piece[:min(ends) - len(self.tail)]
        # the last `keep` characters (fewer while fewer have been seen: a stop text
        # longer than a piece spans several pieces)
        self.tail = seen[max(0, len(seen) - self.keep):] if self.keep else ""
        return piece


def check_draw(model, greedy, temperature, top_k, top_p, seed):
    """(temperature, top_k, top_p) as the kernel takes them (0 temperature: greedy; 0
    top_k: all; 1.0 top_p: all), or a ConfigError naming the argument."""
    if greedy:
        given = [name for name, value in (("temperature", temperature), ("top_k", top_k),
                                          ("top_p", top_p), ("seed", seed))
                 if value is not None]
        if given:
            raise ConfigError(f"greedy generation draws nothing: {', '.join(given)} "
                             "cannot be used with it")
        return 0.0, 0, 1.0
    if temperature is None:
        temperature = 1.0
    else:
        temperature = float(temperature)
        if not (temperature > 0 and np.isfinite(temperature)):
            raise ConfigError(f"temperature must be a finite number > 0, got {temperature}")
    if top_k is None:
        top_k = 0
    else:
        top_k = min(_check_positive(top_k, "top_k"), model.n_vocab)
    if top_p is None:
        top_p = 1.0
    else:
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float, np.floating,
                                                             np.integer)):
            raise ConfigError(f"top_p must be a number in (0, 1], got {top_p!r}")
        top_p = float(top_p)
        if not 0 < top_p <= 1:
            raise ConfigError(f"top_p must be a number in (0, 1], got {top_p}")
    return temperature, top_k, top_p


def stream_samples(model, n, prime="", greedy=False, temperature=None, top_k=None,
                   seed=None, skip_unknown=False, stop=None, num_samples=1, top_p=None):
    """Generate num_samples independent samples of up to n characters after `prime`, as
    parallel streams, yielding a tuple of num_samples new pieces of text per chunk.

    greedy: argmax at every step (then temperature, top_k, top_p and seed are errors:
    greedy draws nothing).  Otherwise draw from softmax(y / temperature) (default 1),
    restricted to the top_k most likely characters when top_k is given, then to the
    nucleus when top_p is given (the smallest set of the most likely characters whose
    probabilities reach top_p); seed makes the draws reproducible.  stop: a text, or a
    list of texts; a sample ends right after the first occurrence of any of them in what
    it generated (the prime is not searched); a stream that has stopped yields "" from
    then on, and the generator ends once every stream has stopped or has n characters.
    prime: a str, or a list of P strs fed as one batch (then P·num_samples streams,
    stream p·num_samples + s drawing sample s of prime p).  With an empty prime the
    first character is predicted from the zero state.  Never drops out.
    """
    n = check_length(n)
    num_samples = _check_positive(num_samples, "num_samples")
    temperature, top_k, top_p = check_draw(model, greedy, temperature, top_k, top_p, seed)
    stops = check_stops(stop)
    primes = [prime] if isinstance(prime, str) else prime
    if not isinstance(primes, (list, tuple)) or not primes:
        raise TypeError(f"prime must be a str, got {type(prime).__name__} (or a "
                        "non-empty list of strs)")
    id_lists = [prime_ids(model, p, skip_unknown) for p in primes]
    B = len(primes) * num_samples
    check_memory(B * (_bytes_per_stream(model) + 2 * 8), f"{B:,} streams")
    return stream_from_state(model, n, primed_states(model, id_lists, num_samples), greedy,
                             temperature, top_k, top_p, seed, stops)


def stream_from_state(model, n, state, greedy, temperature, top_k, top_p, seed, stops):
    """stream_samples' generator from the streams of `state` (S·L, B, H), which it
    advances in place; settings as check_draw and check_stops return them."""
    kernel = model.generation_kernel()
    B = state.shape[1]
    rng = None if greedy else np.random.default_rng(seed)
    temperatures = np.full(B, temperature)
    top_ks = np.full(B, top_k, np.intp)
    top_ps = np.full(B, top_p)
    decode = model.vocab.decode
    scanners = [StopScanner(stops) for _ in range(B)]
    done, chunk = 0, FIRST_CHUNK
    while done < n and not all(s.stopped for s in scanners):
        size = min(chunk, n - done, max(1, CHUNK_CHARS // B))
        out = np.empty((size, B), np.intp)
        # (size, B) time-major, so one stream draws the same numbers as rng.random(n)
        uniforms = np.zeros((size, B)) if greedy else rng.random((size, B))
        kernel.sample_rows(state, out, uniforms, temperatures, top_ks, top_ps)
        pieces = tuple(scanner.cut("" if scanner.stopped else decode(out[:, b]))
                       for b, scanner in enumerate(scanners))
        done += size
        chunk = min(2 * chunk, LAST_CHUNK)
        yield pieces


def joined(chunks, count):
    """The pieces of a stream_samples generator joined: one string per stream (count
    streams, for when there are no pieces)."""
    texts = [[] for _ in range(count)]
    for pieces in chunks:
        for parts, piece in zip(texts, pieces):
            parts.append(piece)
    return ["".join(parts) for parts in texts]


def generate(model, n, prime="", greedy=False, temperature=None, top_k=None, seed=None,
             skip_unknown=False, stop=None, num_samples=1, top_p=None):
    """The samples of stream_samples, whole: a list of one string per stream (without
    the prime)."""
    chunks = stream_samples(model, n, prime, greedy, temperature, top_k, seed,
                            skip_unknown, stop, num_samples, top_p)
    return joined(chunks, (1 if isinstance(prime, str) else len(prime)) * num_samples)


def beam_search(model, prime, n, beam, skip_unknown=False):
    """The `beam` most probable n-character continuations of `prime` that a beam search
    of that width finds, best first, as Completions (text, total log-probability in nats).

    Every step extends each live beam by every character, scores the extensions by their
    total log-probability and keeps the `beam` best; at width >= V**n nothing is pruned
    and the results are every continuation, in order.  Width 1 is greedy completion.
    Fewer than `beam` results come back when there are fewer than `beam` continuations.
    """
    ids = prime_ids(model, prime, skip_unknown)
    return beams_from_state(model, primed_state(model, ids, 1), n, beam)


def beams_from_state(model, state, n, beam):
    """beam_search from the one-stream state (S·L, 1, H) (left as it was)."""
    n = check_length(n)
    beam = _check_positive(beam, "the beam width")
    if n == 0:
        return [Completion("", 0.0)]
    # more beams than continuations would never be filled
    if n * math.log(model.n_vocab) < math.log(beam):
        beam = model.n_vocab ** n
    # states and scratch, the K·V candidates (24 bytes each), the characters and parents
    check_memory(beam * (_bytes_per_stream(model) + 24 * model.n_vocab + 3 * 8 * n),
                 f"a beam of width {beam:,} over {n:,} characters")
    out = np.zeros((beam, n), np.intp)
    scores = np.zeros(beam)
    count = model.generation_kernel().beam(state, out, scores)
    return [Completion(model.vocab.decode(out[i]), float(scores[i])) for i in range(count)]
