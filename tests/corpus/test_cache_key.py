"""The cache of an encoded corpus: its exact name (the key README gives), and the
encoding a corpus is read in."""
import hashlib
import os

import numpy as np
import pytest

from rnncore.corpus import CorpusError, load_corpus


def cache_name(path, text_bytes, chars, dtype="uint8"):
    sha = hashlib.sha256(text_bytes).hexdigest()
    vocab = hashlib.sha256(np.array(sorted(map(ord, chars)), np.uint32).tobytes()).hexdigest()
    return f".{path.name}.rnncore-{sha[:16]}-{vocab[:12]}-{dtype}.npy"


def test_the_cache_is_named_by_the_texts_and_the_vocabularys_sha256_and_the_dtype(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello world\n" * 20, encoding="utf-8")
    corpus = load_corpus(path, cache_min_bytes=0)
    expected = cache_name(path, path.read_bytes(), set(path.read_text()))
    assert os.path.basename(corpus.cache_path) == expected
    assert os.path.dirname(corpus.cache_path) == str(tmp_path)
    assert corpus.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_another_text_or_another_vocabulary_is_another_key(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("abcabc" * 50, encoding="utf-8")
    first = load_corpus(path, cache_min_bytes=0).cache_path
    path.write_text("abcabd" * 50, encoding="utf-8")
    second = load_corpus(path, cache_min_bytes=0)
    assert second.cache_path != first
    assert second.vocab.decode(np.asarray(second.data[:6])) == "abcabd"
    path.write_text("abcabc" * 50, encoding="utf-8")
    wider = load_corpus(path, cache_min_bytes=0, vocab=second.vocab)   # a, b, c, d
    assert wider.cache_path not in (first, second.cache_path)
    assert load_corpus(path, cache_min_bytes=0).cache_path == first     # the same key again


def test_the_encoding_is_the_one_asked_for(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("café olé ".encode("latin-1") * 30)
    corpus = load_corpus(path, encoding="latin-1")
    assert "é" in corpus.vocab and len(corpus) == len("café olé ") * 30
    with pytest.raises(CorpusError, match=r"is not valid utf-8: byte 0xe9 at offset 3 "
                                          r".*; pass --encoding"):
        load_corpus(path)
