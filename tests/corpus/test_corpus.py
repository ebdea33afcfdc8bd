"""Corpus files: streamed decoding, the compact cached encoding, splits."""
import os

import numpy as np
import pytest

from rnncore import corpus as corpus_mod
from rnncore.corpus import CorpusError, compact_dtype, load_corpus, read_corpus


@pytest.fixture
def small_chunks(monkeypatch):
    # chunks of 7 bytes: multi-byte characters straddle chunk boundaries
    monkeypatch.setattr(corpus_mod, "CHUNK_BYTES", 7)


def write(tmp_path, text, name="c.txt", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


TEXT = "El niño comió 🍎 y ñandú — ¡qué día! " * 30


@pytest.mark.parametrize("cache_min_bytes", [0, 1 << 30])
def test_encoding_matches_the_vocabulary(tmp_path, small_chunks, cache_min_bytes):
    c = load_corpus(write(tmp_path, TEXT), cache_min_bytes=cache_min_bytes)
    assert c.vocab.chars == sorted(set(TEXT))
    assert c.data.dtype == np.uint8 and len(c) == len(TEXT)
    assert c.vocab.decode(c.data) == TEXT
    assert (c.cache_path is not None) == (cache_min_bytes == 0)


def test_cache_is_memory_mapped_reused_and_keyed_by_content(tmp_path, small_chunks):
    path = write(tmp_path, TEXT)
    first = load_corpus(path, cache_min_bytes=0)
    assert isinstance(first.data, np.memmap) and not first.data.flags.writeable
    assert os.path.dirname(first.cache_path) == str(tmp_path)
    mtime = os.path.getmtime(first.cache_path)
    second = load_corpus(path, cache_min_bytes=0)
    assert second.cache_path == first.cache_path and os.path.getmtime(second.cache_path) == mtime
    write(tmp_path, TEXT + "x")
    third = load_corpus(path, cache_min_bytes=0)
    assert third.cache_path != first.cache_path and third.sha256 != first.sha256


def test_cache_falls_back_when_the_folder_is_read_only(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = write(folder, TEXT)
    folder.chmod(0o555)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    try:
        c = load_corpus(path, cache_min_bytes=0)
    finally:
        folder.chmod(0o755)
    assert c.cache_path.startswith(str(tmp_path / "cache"))
    assert os.listdir(folder) == ["c.txt"]


def test_wide_vocabularies_use_wider_dtypes(tmp_path):
    text = "".join(chr(0x4E00 + i) for i in range(300)) * 2
    c = load_corpus(write(tmp_path, text), cache_min_bytes=0)
    assert c.data.dtype == np.uint16 and c.vocab.decode(c.data) == text
    assert compact_dtype(256) == np.uint8 and compact_dtype(257) == np.uint16


def test_given_vocabulary_and_unknown_characters(tmp_path):
    base = load_corpus(write(tmp_path, "abcabc"))
    c = load_corpus(write(tmp_path, "cab", name="d.txt"), vocab=base.vocab)
    assert c.vocab is base.vocab and base.vocab.decode(c.data) == "cab"
    with pytest.raises(CorpusError, match="not in the model's vocabulary: 'xz'"):
        load_corpus(write(tmp_path, "abxz", name="e.txt"), vocab=base.vocab)


def test_invalid_utf8_is_located_across_chunks(tmp_path, small_chunks):
    raw = ("añb" * 5).encode() + b"\xff" + b"tail"
    path = tmp_path / "bad.txt"
    path.write_bytes(raw)
    offset = raw.index(b"\xff")
    with pytest.raises(CorpusError, match=f"byte 0xff at offset {offset}"):
        load_corpus(str(path))
    with pytest.raises(CorpusError, match="byte 0xff"):
        read_corpus(str(path))


def test_truncated_multibyte_character_at_the_end(tmp_path, small_chunks):
    path = tmp_path / "cut.txt"
    path.write_bytes("abcñ".encode()[:-1])
    with pytest.raises(CorpusError, match="not valid utf-8"):
        load_corpus(str(path))


def test_split_holds_out_the_end(tmp_path):
    c = load_corpus(write(tmp_path, "abcdefghij" * 10))
    train, val = c.split(0.1)
    assert len(train) == 90 and len(val) == 10
    np.testing.assert_array_equal(np.concatenate([train, val]), c.data)
    assert len(c.split(0)[1]) == 0
    with pytest.raises(ValueError, match="val_fraction"):
        c.split(1.0)


def test_unknown_encoding(tmp_path):
    with pytest.raises(CorpusError, match="unknown encoding 'nope'"):
        load_corpus(write(tmp_path, "ab"), encoding="nope")
