"""A typing session: the model's state after the text typed so far, advanced by what is
typed next, so that a keystroke costs the characters it adds, not the whole document.

    session = model.session()              # or TypingSession(model, text)
    session.type("Good morrow, sw")
    session.suggest()                      # [Suggestion(word='sweet', ...), ...]
    session.backspace(2).type("fr")        # "Good morrow, fr"
    session.edit(0, 4, "Fair")             # "Fair morrow, fr": re-fed from position 0
    session.next_chars(3), session.complete(10), session.sample(40, seed=1)

The session keeps the state at every multiple of `keep_every` characters (64 by
default: 2 KiB each for a 2×256 GRU in float32), so an edit anywhere re-feeds only from
the nearest kept state before it.  Every answer is the same bits as the Python API's for
session.text (model.next_char_probs, suggest, and from the session's state complete,
beam_search, sample): feeding a text in pieces gives the bits of feeding it whole.  The
empty text is read as the model's start text (rnncore.predict.start_text), so a new
session predicts what starts a text.  A session is not thread-safe: one per thread.
"""
from typing import List, Optional, Tuple, Union

import numpy as np

from .config import check_int
from .errors import ConfigError
from .predict import (SUGGEST_BEAM, Suggestion, check_suggest_args, next_probs_of_state,
                      ranked_chars, start_state, suggest_from_state, word_prefix)
from .layout import check_memory, generation_bytes_per_stream
from .sample import (Completion, beams_from_state, check_draw, check_length, check_stops,
                     joined, prime_ids, stream_from_state)

#: a kept state every this many characters
KEEP_EVERY = 64


class TypingSession:
    """The state after `text` (what the model sees of it: unknown characters are a
    ValueError naming them, or dropped with skip_unknown), kept up to date as the text
    is typed and edited.  Positions (edit, backspace) count characters of `self.text`."""

    def __init__(self, model, text: str = "", skip_unknown: bool = False,
                 keep_every: int = KEEP_EVERY):
        self.model = model
        self.skip_unknown = bool(skip_unknown)
        self.keep_every = check_int(keep_every, "keep_every")
        self._ids = np.zeros(0, np.intp)     # the text's indices (a buffer; len: _length)
        self._length = 0
        self._text = ""                      # the text, as the model sees it
        self._kept: List[np.ndarray] = []    # _kept[j]: the state after (j+1)·keep_every
        self._start = start_state(model)     # the empty text's state
        self._zero = np.zeros_like(self._start)
        self._state = self._start
        self.type(text)

    # ---- the text -------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The text as the model sees it."""
        return self._text

    def __len__(self):
        return self._length

    def __repr__(self):
        shown = self.text if self._length <= 40 else "…" + self.text[-39:]
        return f"TypingSession({self._length:,} characters: {shown!r})"

    @property
    def state(self) -> np.ndarray:
        """A copy of the state after the text, (S·L, 1, H) (the generation layout)."""
        return self._state.copy()

    def type(self, chars: str) -> "TypingSession":
        """Append `chars` (typed or pasted) at the end; costs their characters."""
        ids = prime_ids(self.model, chars, self.skip_unknown)
        self._append(ids)
        return self

    def backspace(self, n: int = 1) -> "TypingSession":
        """Delete the last n characters (all of them when n is more)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"backspace takes a number of characters >= 0, got {n!r}")
        self._cut(max(0, self._length - int(n)))
        return self

    def edit(self, start: int, end: int, replacement: str = "") -> "TypingSession":
        """Replace text[start:end] by `replacement` (insert: start == end; delete: no
        replacement); re-feeds from the last kept state at or before `start`."""
        for name, value in (("start", start), ("end", end)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or not 0 <= value <= self._length:
                raise ConfigError(f"edit: {name} must be a position in [0, "
                                  f"{self._length}], got {value!r}")
        if end < start:
            raise ConfigError(f"edit: end ({end}) is before start ({start})")
        new = prime_ids(self.model, replacement, self.skip_unknown)
        tail = self._ids[end:self._length].copy()
        self._cut(start)
        self._append(np.concatenate([new, tail]))
        return self

    def set_text(self, text: str) -> "TypingSession":
        """Make the text `text`, re-feeding only after the part it shares with the
        current text (from the last kept state at or before the first difference)."""
        ids = prime_ids(self.model, text, self.skip_unknown)
        current = self._ids[:self._length]
        n = min(len(ids), len(current))
        differ = np.flatnonzero(ids[:n] != current[:n])
        same = int(differ[0]) if len(differ) else n
        self._cut(same)
        self._append(ids[same:])
        return self

    # ---- feeding --------------------------------------------------------------------
    def _append(self, ids):
        """Feed `ids` after the text, keeping the state at every multiple of keep_every."""
        if len(ids) == 0:
            return
        end = self._length + len(ids)
        if end > len(self._ids):
            grown = np.zeros(max(end, 2 * len(self._ids), 64), np.intp)
            grown[:self._length] = self._ids[:self._length]
            self._ids = grown
        self._ids[self._length:end] = ids
        state = self._zero if self._length == 0 else self._state
        state = state.copy()
        kernel = self.model.generation_kernel()
        at, every = self._length, self.keep_every
        while at < end:
            stop = min(end, (at // every + 1) * every)
            kernel.feed_rows(self._ids[None, at:stop].copy(), np.zeros(1, np.intp), state)
            if stop % every == 0:
                self._kept.append(state.copy())
            at = stop
        self._text += self.model.vocab.decode(ids)
        self._length = end
        self._state = state

    def _cut(self, length):
        """Shorten the text to `length` characters, the state restored from the last
        kept one at or before it and the rest re-fed."""
        if length >= self._length:
            return
        whole = length // self.keep_every
        del self._kept[whole:]
        rest = self._ids[whole * self.keep_every:length].copy()
        self._length = whole * self.keep_every
        self._text = self._text[:self._length]
        self._state = self._kept[-1] if self._kept else self._start
        self._append(rest)

    # ---- what the model says after the text -------------------------------------------
    def next_char_probs(self) -> np.ndarray:
        """(V,) float64: the next character's distribution, in vocabulary order."""
        return next_probs_of_state(self.model, self._state)[0]

    def next_chars(self, k: Optional[int] = None) -> List[Tuple[str, float]]:
        """[(char, probability)] most likely first (ties in vocabulary order); the k most
        likely when k is given."""
        return ranked_chars(self.model, self.next_char_probs(), k)

    def suggest(self, k: int = 3, max_chars: int = 32,
                beam: int = SUGGEST_BEAM) -> List[Suggestion]:
        """model.suggest(self.text, ...): the k most probable ways to finish the word
        being typed."""
        k, max_chars, beam = check_suggest_args(k, max_chars, beam)
        return suggest_from_state(self.model, self._state, [word_prefix(self._text)], k,
                                  max_chars, beam)[0]

    def beam_search(self, n: int, beam: int = 5) -> List[Completion]:
        """The `beam` best n-character continuations of the text (model.beam_search)."""
        return beams_from_state(self.model, self._state, n, beam)

    def complete(self, n: int, beam: int = 1) -> str:
        """The most probable n characters after the text that a beam of width `beam`
        finds (1: greedy), as model.complete."""
        check_int(beam, "the beam width")
        if beam > 1:
            return self.beam_search(n, beam)[0].text
        return self._generate(n, True, None, None, None, None, None, 1)[0]

    def sample(self, n: int, temperature: float = 1.0, top_k: Optional[int] = None,
               top_p: Optional[float] = None, seed: Optional[int] = None,
               stop: Union[None, str, List[str]] = None,
               num_samples: Optional[int] = None) -> Union[str, List[str]]:
        """n characters drawn after the text, as model.sample(n, prime=self.text, ...)
        (a list of num_samples samples when it is given)."""
        count = 1 if num_samples is None else check_int(num_samples, "num_samples")
        texts = self._generate(n, False, temperature, top_k, top_p, seed, stop, count)
        return texts[0] if num_samples is None else texts

    def _generate(self, n, greedy, temperature, top_k, top_p, seed, stop, count):
        n = check_length(n)
        check_memory(count * generation_bytes_per_stream(
            self.model.cell, self.model.num_layers, self.model.hidden_size,
            self.model.dtype), f"{count:,} streams")
        temperature, top_k, top_p = check_draw(self.model, greedy, temperature, top_k,
                                               top_p, seed)
        state = np.ascontiguousarray(np.repeat(self._state, count, axis=1))
        chunks = stream_from_state(self.model, n, state, greedy, temperature, top_k,
                                   top_p, seed, check_stops(stop))
        return joined(chunks, count)
