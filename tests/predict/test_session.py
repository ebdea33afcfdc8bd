"""The typing session: the state after the text typed so far, kept up to date by typing,
backspacing and editing anywhere; every answer the same bits as the Python API's for its
text, and a keystroke costs the characters it adds."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rnncore
from rnncore import layout
from rnncore.predict import start_text
from rnncore.sample import feed_texts

from support import gated_model

CHARS = " ,abcdef\n"


def model_over(chars=CHARS, cell="gru", L=2, H=8, dtype="float64", seed=1):
    base = gated_model(cell, L, len(chars), H, dtype=dtype, seed=seed, scale=1.1)
    model = rnncore.CharRNN(rnncore.Vocab(sorted(chars)), H, dtype=dtype, cell=cell,
                            num_layers=L)
    for name, p in model.params.items():
        p[...] = base.params[name]
    return model


def fed(model, text):
    """The state after `text` fed whole from the zero state (the start text's when empty)."""
    ids = model.vocab.encode(text or start_text(model.vocab)).astype(np.intp)
    return feed_texts(model, [ids])


class Counting:
    """A generation kernel that counts the characters fed through it."""

    def __init__(self, kernel):
        self.kernel, self.fed = kernel, 0

    def feed_rows(self, chars, starts, state):
        self.fed += int(sum(chars.shape[1] - s for s in starts))
        return self.kernel.feed_rows(chars, starts, state)

    def __getattr__(self, name):
        return getattr(self.kernel, name)


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_typing_in_any_pieces_is_feeding_the_whole_text(cell, dtype):
    model = model_over(cell=cell, dtype=dtype)
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list(CHARS), 300))
    session = model.session()
    at = 0
    while at < len(text):
        step = int(rng.integers(1, 90))
        session.type(text[at:at + step])
        at += step
        assert session.text == text[:at]
        assert session.state.tobytes() == fed(model, text[:at]).tobytes()
    one_by_one = model.session()
    for c in text[:150]:
        one_by_one.type(c)
    assert one_by_one.state.tobytes() == fed(model, text[:150]).tobytes()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("text", ["", "ab", "ab,", "cab ba,a\nfe", "a" * 130])
def test_every_answer_is_the_python_apis_for_its_text(dtype, text):
    model = model_over(dtype=dtype)
    session = model.session(text)
    assert session.next_char_probs().tobytes() == model.next_char_probs(text).tobytes()
    assert session.next_chars(4) == model.next_chars(text, k=4)
    assert session.suggest(k=3, max_chars=5, beam=8) == model.suggest(text, 3, 5, 8)
    if text:   # (the empty text's continuations start from the start text's state)
        assert session.complete(40) == model.complete(text, 40)
        assert session.complete(6, beam=4) == model.complete(text, 6, beam=4)
        assert session.beam_search(5, beam=3) == model.beam_search(text, 5, beam=3)
        assert session.beam_search(4) == model.beam_search(text, 4)     # width 5 both
        assert session.sample(90, seed=3, top_k=4) == model.sample(90, text, seed=3, top_k=4)
        assert session.sample(70, seed=1, num_samples=3, stop="ab") == \
            model.sample(70, text, seed=1, num_samples=3, stop="ab")
    else:
        start = start_text(model.vocab)
        assert session.complete(30) == model.complete(start, 30)
        assert session.sample(50, seed=2) == model.sample(50, start, seed=2)
    # asking changes nothing
    assert session.state.tobytes() == fed(model, text).tobytes()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["type", "backspace", "edit", "set"]),
                          st.text(CHARS, max_size=70), st.integers(0, 400),
                          st.integers(0, 400)), max_size=12))
def test_edits_anywhere_leave_the_state_of_the_text_fed_whole(ops):
    model = model_over(seed=4)
    session = rnncore.TypingSession(model, keep_every=16)
    text = ""
    for op, chars, a, b in ops:
        if op == "type":
            session.type(chars)
            text += chars
        elif op == "backspace":
            session.backspace(a % 40)
            text = text[:max(0, len(text) - a % 40)]
        elif op == "edit":
            start, end = sorted((a % (len(text) + 1), b % (len(text) + 1)))
            session.edit(start, end, chars)
            text = text[:start] + chars + text[end:]
        else:
            session.set_text(chars + text[a % (len(text) + 1):])
            text = chars + text[a % (len(text) + 1):]
        assert session.text == text and len(session) == len(text)
        assert session.state.tobytes() == fed(model, text).tobytes()
    # the kept states are those of the text's first 16, 32, ... characters
    assert len(session._kept) == len(text) // 16
    for j, kept in enumerate(session._kept):
        assert kept.tobytes() == fed(model, text[:16 * (j + 1)]).tobytes()


def test_a_keystroke_costs_the_characters_it_adds():
    model = model_over()
    counting = Counting(model.generation_kernel())
    model.generation_kernel = lambda own=False: counting
    text = "".join(np.random.default_rng(1).choice(list(CHARS), 2000))
    session = model.session()
    counting.fed = 0          # (it fed the start text)
    session.type(text)
    assert counting.fed == 2000
    counting.fed = 0
    session.type("a")
    assert counting.fed == 1
    counting.fed = 0
    session.backspace(3)                      # back to 1,998: re-fed from 1,984
    assert counting.fed == 1998 - 1984
    counting.fed = 0
    session.edit(1000, 1001, "bb")            # re-fed from 960 to the end (1,999)
    assert counting.fed == 1999 - 960 and len(session) == 1999
    counting.fed = 0
    session.set_text(session.text + "cd")     # shares everything but the new end
    assert counting.fed == 2
    counting.fed = 0
    session.next_chars(3), session.suggest()
    assert counting.fed == 0


def test_unknown_characters_and_bad_edits():
    model = model_over()
    with pytest.raises(ValueError, match="'QZ'"):
        model.session("aQbZ")
    session = model.session("aQb", skip_unknown=True)
    assert session.text == "ab"
    session.type("Zc")
    assert session.text == "abc"
    strict = model.session("ab")
    with pytest.raises(ValueError, match="'Q'"):
        strict.type("Q")
    assert strict.text == "ab"      # nothing was typed
    for start, end in ((-1, 1), (0, 3), (2, 1), (True, 1)):
        with pytest.raises(ValueError, match="edit"):
            strict.edit(start, end, "c")
    with pytest.raises(ValueError, match="backspace"):
        strict.backspace(-1)
    assert strict.backspace(10).text == "" and \
        strict.next_char_probs().tobytes() == model.next_char_probs("").tobytes()
    assert "2 characters" in repr(model.session("ab"))
