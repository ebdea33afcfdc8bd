"""Corpus files: strict decoding, one compact encoded array, cached and memory-mapped.

A corpus is read in chunks, never whole: one pass hashes the bytes, checks the encoding and
collects the characters; a second pass writes the indices into a .npy file of the smallest
unsigned dtype that holds them (uint8 for up to 256 symbols).  That file is cached beside the
text, named by the text's SHA-256 and the vocabulary's, and memory-mapped: a corpus larger than
RAM trains with memory independent of its size.  Files under `cache_min_bytes` are encoded
in memory instead, leaving no file behind.
"""
import codecs
import hashlib
import mmap
import os
import tempfile
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import ConfigError, CorpusError
from .vocab import Vocab, codepoints_of as _codepoints

CHUNK_BYTES = 1 << 22          # read 4 MiB at a time: ~70 MB of transient arrays at most
CACHE_MIN_BYTES = 1 << 20      # cache the encoding of files from 1 MiB up
MAX_CODEPOINT = 0x10FFFF


@dataclass
class Corpus:
    path: str
    vocab: Vocab
    data: np.ndarray       # (N,) compact unsigned indices; a read-only memmap when cached
    sha256: str
    cache_path: Optional[str] = None

    def __len__(self):
        return len(self.data)

    def release_pages(self):
        """Let go of the memory-mapped pages read so far (they stay in the OS page cache),
        so the resident memory of a long run does not grow with the corpus it has read."""
        mapping = getattr(self.data, "_mmap", None)
        if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            mapping.madvise(mmap.MADV_DONTNEED)

    def split(self, val_fraction):
        """(train, val) views: the last `val_fraction` of the characters are held out."""
        if not 0 <= val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        n_val = int(len(self.data) * val_fraction)
        return self.data[:len(self.data) - n_val], self.data[len(self.data) - n_val:]


def compact_dtype(n_vocab):
    """The smallest unsigned integer dtype that holds indices below n_vocab."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if n_vocab <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    raise ValueError(f"a vocabulary of {n_vocab} characters is too large")


def read_corpus(path, encoding: str = "utf-8") -> str:
    """The whole text of the file at `path`, decoded strictly (for small files)."""
    _check_path(path, encoding)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise CorpusError(f"cannot read corpus {path}: {e.strerror}") from None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise _decode_error(path, encoding, e, raw[e.start], e.start) from None
    _check_length(path, len(text))
    return text


def load_corpus(path, encoding: str = "utf-8", vocab: Optional[Vocab] = None,
                cache_min_bytes: int = CACHE_MIN_BYTES,
                vocab_source: str = "the model's") -> "Corpus":
    """Encode the file at `path` with `vocab` (by default, the file's own characters).

    Characters outside a given vocabulary are an error naming them.
    """
    _check_path(path, encoding)
    sha, codepoints, n_chars = _scan(path, encoding)
    _check_length(path, n_chars)
    if vocab is None:
        vocab = Vocab.from_codepoints(codepoints)
    else:
        unknown = np.setdiff1d(codepoints, vocab.codepoints)
        if unknown.size:
            chars = "".join(chr(int(c)) for c in unknown)
            raise CorpusError(f"corpus {path} has characters not in {vocab_source} "
                              f"vocabulary: {chars!r}")
    dtype = compact_dtype(len(vocab))
    if os.path.getsize(path) < cache_min_bytes:
        return Corpus(path, vocab, vocab.encode(read_corpus(path, encoding)).astype(dtype), sha)
    vocab_sha = hashlib.sha256(vocab.codepoints.tobytes()).hexdigest()
    cache = _cache_path(path, f"{sha[:16]}-{vocab_sha[:12]}-{dtype.name}.npy")
    data = _open_cache(cache, n_chars, dtype)
    if data is None:
        _write_cache(path, encoding, vocab, cache, n_chars, dtype)
        data = _open_cache(cache, n_chars, dtype)
    return Corpus(path, vocab, data, sha, cache)


def _check_path(path, encoding):
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}") from None
    if not os.path.exists(path):
        raise CorpusError(f"corpus file not found: {path}")
    if os.path.isdir(path):
        raise CorpusError(f"corpus path is a directory: {path}")


def _check_length(path, n_chars):
    if n_chars == 0:
        raise CorpusError(f"corpus {path} is empty")
    if n_chars < 2:
        raise CorpusError(f"corpus {path} has a single character: nothing to predict")


def _decode_error(path, encoding, e, byte, offset):
    return CorpusError(f"corpus {path} is not valid {encoding}: byte 0x{byte:02x} at offset "
                       f"{offset} ({e.reason}); pass --encoding")


def _chunks(path, encoding):
    """Yield (raw bytes, decoded text) chunk by chunk, decoding strictly."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    try:
        with open(path, "rb") as f:
            while True:
                raw = f.read(CHUNK_BYTES)
                pending = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as e:
                    raise _decode_error(path, encoding, e, e.object[e.start],
                                        offset - pending + e.start) from None
                yield raw, text
                if not raw:
                    return
                offset += len(raw)
    except OSError as e:
        raise CorpusError(f"cannot read corpus {path}: {e.strerror}") from None


def _scan(path, encoding):
    """(sha256 of the bytes, sorted unique code points, number of characters)"""
    sha = hashlib.sha256()
    counts = np.zeros(MAX_CODEPOINT + 1, np.int64)
    n_chars = 0
    for raw, text in _chunks(path, encoding):
        sha.update(raw)
        if text:
            counts += np.bincount(_codepoints(text), minlength=MAX_CODEPOINT + 1)
            n_chars += len(text)
    return sha.hexdigest(), np.flatnonzero(counts).astype(np.uint32), n_chars


def _cache_path(path, name):
    """Beside the text when its folder is writable, else in the user's cache folder.

    A folder without write bits counts as read-only even for root, who could write there.
    """
    folder = os.path.dirname(os.path.abspath(path))
    base = "." + os.path.basename(path) + ".rnncore-" + name
    if os.access(folder, os.W_OK) and os.stat(folder).st_mode & 0o222:
        return os.path.join(folder, base)
    fallback = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                            "rnncore")
    os.makedirs(fallback, exist_ok=True)
    return os.path.join(fallback, base)


def _open_cache(cache, n_chars, dtype):
    """The cached array, or None when absent or not what it should be."""
    if not os.path.exists(cache):
        return None
    try:
        data = np.load(cache, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if data.shape != (n_chars,) or data.dtype != dtype:
        return None
    return data


def _write_cache(path, encoding, vocab, cache, n_chars, dtype):
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(cache) + ".", suffix=".tmp",
                               dir=os.path.dirname(cache))
    try:
        # plain writes, not a writable memmap: its dirty pages would count as resident
        with os.fdopen(fd, "wb") as out:
            np.lib.format.write_array_header_1_0(
                out, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                      "shape": (n_chars,)})
            index_of = np.zeros(MAX_CODEPOINT + 1, dtype)   # code point -> index
            index_of[vocab.codepoints] = np.arange(len(vocab), dtype=dtype)
            written = 0
            for _, text in _chunks(path, encoding):
                if text:
                    ids = index_of[_codepoints(text)]
                    out.write(ids.tobytes())
                    written += len(ids)
            if written != n_chars:
                raise CorpusError(f"corpus {path} changed while it was being read")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, cache)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
