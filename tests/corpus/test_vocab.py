import numpy as np
import pytest

from rnncore import Vocab


def test_sorted_unique_characters(hola):
    v = Vocab.from_text(hola)
    assert v.chars == sorted(set(hola))
    assert len(v) == len(set(hola))
    ids = v.encode(hola)
    assert ids.dtype == np.int64 and ids.shape == (len(hola),)
    assert v.decode(ids) == hola


def test_multibyte_characters_are_single_symbols():
    text = "año ñandú — 日本語 🙂"
    v = Vocab.from_text(text)
    assert v.decode(v.encode(text)) == text
    assert "🙂" in v and len(v.encode("🙂")) == 1


def test_unknown_characters_are_named():
    v = Vocab.from_text("abc")
    with pytest.raises(ValueError, match="characters not in the vocabulary: 'xz'"):
        v.encode("azbx")
    assert v.decode(v.encode("azbx", skip_unknown=True)) == "ab"
    assert v.unknown("zzax") == ["x", "z"]


def test_round_trip_through_codepoints():
    v = Vocab.from_text("hello wörld")
    assert Vocab.from_codepoints(v.codepoints) == v


def test_bad_vocab_input():
    with pytest.raises(ValueError, match="empty"):
        Vocab.from_text("")
    with pytest.raises(TypeError):
        Vocab.from_text(b"bytes")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        Vocab.from_text("abc").decode([3])
    with pytest.raises(ValueError, match="sorted"):
        Vocab(["b", "a"])


def test_a_vocabulary_is_never_equal_to_what_is_not_one():
    assert Vocab.from_text("ab") != "ab"
    assert Vocab.from_text("ab") != ["a", "b"]
    assert Vocab.from_text("ba") == Vocab(["a", "b"])


def test_code_points_must_be_one_dimensional_integers():

    with pytest.raises(ValueError, match="1-D integer array"):
        Vocab.from_codepoints(np.array([[97, 98]]))
    with pytest.raises(ValueError, match="1-D integer array"):
        Vocab.from_codepoints(np.array([97.0]))
