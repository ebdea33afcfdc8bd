"""The server's state cache: the model's state after recent texts, and at regular
positions inside long ones, keyed by the exact text, in an LRU bounded in bytes.

A request whose text extends or shares a prefix with a recent one (whichever client sent
it) is fed from the longest cached prefix: a keystroke costs the characters it adds.  For
an RNN the cached thing is small (a 2×256 GRU's state is 2 KiB in float32).  It never
changes an answer: feeding a text in pieces from a kept state gives the bits of feeding
it whole (tests/serve/test_cache.py checks every endpoint, hit or miss).

Finding the longest cached prefix of a text of n characters costs O(n + entries) in
numpy, not n dictionary lookups: every entry's (length, polynomial hash of its
characters) sits in two arrays; the text's n prefix hashes are one cumulative sum, and
the entries whose hash equals the text's prefix hash of their length are the candidates.
A candidate is confirmed by comparing the texts themselves (a hash collision costs a
miss, never a wrong state).
"""
import sys
import threading
from collections import OrderedDict

import numpy as np

#: a state is kept at every multiple of this many characters of a text fed
EVERY = 256
#: the hash's base: odd, so its powers never vanish modulo 2**64
_BASE = np.uint64(0x9E3779B97F4A7C15)
_ENTRY_OVERHEAD = 200     # bytes of bookkeeping per entry, besides its state and text


class StateCache:
    """States after exact texts, least recently used dropped first once the entries
    hold more than max_bytes.  Thread-safe."""

    def __init__(self, max_bytes, every=EVERY):
        self.max_bytes = int(max_bytes)
        self.every = every
        self._entries = OrderedDict()          # text -> (state, slot)
        self._lengths = np.zeros(64, np.int64)  # per slot; 0: free
        self._hashes = np.zeros(64, np.uint64)
        self._free = list(range(63, -1, -1))
        self._powers = np.ones(1, np.uint64)
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = 0
        self.chars_fed = self.chars_reused = 0
        self.evictions = 0

    # ---- hashing ----------------------------------------------------------------------
    def _prefix_hashes(self, ids):
        """(n,) uint64: the hash of ids[:i+1] for every i (arithmetic modulo 2**64)."""
        n = len(ids)
        if len(self._powers) < n:
            size = max(n, 2 * len(self._powers))
            powers = np.full(size, _BASE, np.uint64)
            powers[0] = 1
            self._powers = np.cumprod(powers, dtype=np.uint64)
        with np.errstate(over="ignore"):
            terms = (np.asarray(ids, np.uint64) + np.uint64(1)) * self._powers[:n]
            return np.cumsum(terms, dtype=np.uint64)

    # ---- lookups ----------------------------------------------------------------------
    def longest_prefix(self, text, ids):
        """(length, state) of the longest cached prefix of `text` (ids: its character
        indices), state (S·L, H) a copy; (0, None) when none is cached."""
        n = len(ids)
        if n == 0:
            return 0, None
        hashes = self._prefix_hashes(ids)
        with self._lock:
            lengths = self._lengths
            slots = np.flatnonzero((lengths > 0) & (lengths <= n))
            if len(slots):
                slots = slots[self._hashes[slots] == hashes[lengths[slots] - 1]]
            for slot in slots[np.argsort(-lengths[slots], kind="stable")]:
                length = int(lengths[slot])
                prefix = text[:length]
                found = self._entries.get(prefix)
                if found is not None:        # (else a hash collision)
                    self._entries.move_to_end(prefix)
                    self.hits += 1
                    self.chars_reused += length
                    return length, found[0].copy()
            self.misses += 1
            return 0, None

    def store(self, text, ids, state):
        """Keep `state` (S·L, H) as the state after `text` (ids: its indices)."""
        if len(ids) == 0:
            return
        size = state.nbytes + sys.getsizeof(text) + _ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        digest = self._prefix_hashes(ids)[-1]
        with self._lock:
            if text in self._entries:
                self._entries.move_to_end(text)
                return
            if not self._free:
                self._grow()
            slot = self._free.pop()
            self._lengths[slot], self._hashes[slot] = len(ids), digest
            self._entries[text] = (np.array(state, copy=True), slot)
            self.bytes += size
            while self.bytes > self.max_bytes:
                self._drop_oldest()

    def _grow(self):
        old = len(self._lengths)
        self._lengths = np.concatenate([self._lengths, np.zeros(old, np.int64)])
        self._hashes = np.concatenate([self._hashes, np.zeros(old, np.uint64)])
        self._free.extend(range(2 * old - 1, old - 1, -1))

    def _drop_oldest(self):
        text, (state, slot) = self._entries.popitem(last=False)
        self._lengths[slot] = 0
        self._free.append(slot)
        self.bytes -= state.nbytes + sys.getsizeof(text) + _ENTRY_OVERHEAD
        self.evictions += 1

    def count_fed(self, chars):
        """Count `chars` characters fed by the server (for the statistics)."""
        with self._lock:
            self.chars_fed += chars

    def stats(self):
        """What GET /v1/stats reports of the cache."""
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries),
                    "bytes": self.bytes, "max_bytes": self.max_bytes,
                    "evictions": self.evictions, "chars_fed": self.chars_fed,
                    "chars_reused": self.chars_reused, "every": self.every}
