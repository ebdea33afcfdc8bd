"""The character vocabulary: sorted unique characters <-> integer indices."""
from typing import List

import numpy as np

from .errors import ConfigError


class Vocab:
    """Characters sorted by code point; index i is the i-th character.

    Sorting makes the index of a character depend on the set of characters only, so the
    same text always gives the same vocabulary (min-char-rnn's `list(set(data))` does not).
    """

    def __init__(self, chars):
        chars = list(chars)
        if not chars:
            raise ValueError("a vocabulary needs at least one character")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise TypeError("a vocabulary is made of single characters")
        if sorted(set(chars)) != chars:
            raise ValueError("vocabulary characters must be unique and sorted by code point")
        self.chars = chars
        self._codepoints = np.array([ord(c) for c in chars], dtype=np.uint32)

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        """The vocabulary of every character that occurs in `text`."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        return cls.from_codepoints(np.unique(codepoints_of(text)))

    @classmethod
    def from_codepoints(cls, codepoints):
        """Rebuild a vocabulary from its code points (as stored in a checkpoint)."""
        codepoints = np.asarray(codepoints)
        if codepoints.ndim != 1 or codepoints.dtype.kind not in "iu":
            raise ValueError("vocabulary code points must be a 1-D integer array")
        if codepoints.size and (codepoints.min() < 0 or codepoints.max() > 0x10FFFF):
            raise ValueError("vocabulary code points must lie in [0, 0x10FFFF]")
        return cls(chr(int(c)) for c in codepoints)

    @property
    def codepoints(self):
        """(V,) uint32 code points, sorted."""
        return self._codepoints.copy()

    def __len__(self):
        return len(self.chars)

    def __contains__(self, char):
        return char in self.chars

    def __eq__(self, other):
        return isinstance(other, Vocab) and self.chars == other.chars

    def __repr__(self):
        return f"Vocab({''.join(self.chars)!r})"

    def unknown(self, text: str) -> List[str]:
        """Sorted characters of `text` that are not in the vocabulary."""
        cps = np.unique(codepoints_of(text))
        return [chr(int(c)) for c in cps[~self._known(cps)]]

    def encode(self, text: str, skip_unknown: bool = False) -> np.ndarray:
        """(len(text),) int64 indices of the characters of `text`.

        An unknown character raises ValueError naming it, unless skip_unknown drops it.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        cps = codepoints_of(text)
        known = self._known(cps)
        if not known.all():
            if not skip_unknown:
                missing = "".join(self.unknown(text))
                raise ConfigError(f"characters not in the vocabulary: {missing!r}")
            cps = cps[known]
        return np.searchsorted(self._codepoints, cps).astype(np.int64)

    def decode(self, indices) -> str:
        """The string of the characters at `indices` (any iterable of ints in [0, V))."""
        indices = np.asarray(indices)
        if indices.size == 0:
            return ""
        if indices.dtype.kind not in "iu":
            raise TypeError(f"indices must be integers, got dtype {indices.dtype}")
        if indices.min() < 0 or indices.max() >= len(self):
            raise ValueError(f"indices must lie in [0, {len(self)})")
        return "".join(self.chars[i] for i in indices.ravel().tolist())

    def _known(self, cps):
        pos = np.minimum(np.searchsorted(self._codepoints, cps), len(self._codepoints) - 1)
        return self._codepoints[pos] == cps


def codepoints_of(text):
    """(len(text),) uint32 code points of a str, without a Python-level loop."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
