"""Predictive text: the next character's distribution, and the most probable ways to
finish the word being typed, for one text or for many at once.

Every text is fed from the zero state with its state carried through all of it; many
texts are fed as one batch of streams (the compiled feed_rows, each text right-aligned),
so R texts cost about one text's steps.  The empty text is read as the model's start
text (start_text: a paragraph break), so the first predictions are those of a text's
start, not of the zero state.  The distribution (softmax of the top layer's logits) and
the word beam (the compiled word_beam: scoring, pruning and bookkeeping of R searches,
their live beams advanced as one batch) run in compiled code.  A stream's results are
the same bits whatever else shares its batch.

A word is a run of word characters; everything else separates words: whitespace and
the Unicode categories Z* (separators), P* (punctuation), S* (symbols) and C* (control,
format, unassigned, private use).  So letters (L*), marks (M*) and numbers (N*) make
words; "don't" is two words and "x_1" is two.
"""
import unicodedata
from collections import namedtuple

import numpy as np

from .config import check_int
from .errors import ConfigError
from .layout import GATES, check_memory, state_rows
from .sample import feed_texts, prime_ids

#: the first letter of the Unicode categories that separate words (with whitespace)
SEPARATOR_CATEGORIES = "ZPSC"

Suggestion = namedtuple("Suggestion", ["word", "completion", "log_prob"])
Suggestion.__doc__ = """One way to finish the word being typed: `word` the whole word
(what the text already holds of it, then the completion), `completion` what follows the
text (any separators that lead into a new word, then its characters; not the separator
that ends it), `log_prob` the log-probability in nats of the completion followed by a
separator (any separator: the probability that the word ends there), given the text."""

#: suggest()'s default beam width
SUGGEST_BEAM = 16

#: what the empty text is read as, in order of preference: a paragraph break (where a
#: document, a speech or a message starts in most corpora), else a space (a word start)
START_TEXTS = ("\n\n", " ")


def start_text(vocab):
    """The text the empty text is read as: the first of START_TEXTS whose characters the
    vocabulary holds ("" when none does: the zero state)."""
    return next((t for t in START_TEXTS if not vocab.unknown(t)), "")


def text_ids(model, text, skip_unknown=False):
    """(P,) the character indices predictive text feeds for `text`: its own (unknown ones
    dropped with skip_unknown, else a ValueError naming them), or the start text's when
    none is left."""
    ids = prime_ids(model, text, skip_unknown)
    return ids if len(ids) else model.vocab.encode(start_text(model.vocab)).astype(np.intp)


def start_state(model, kernel=None):
    """(S·L, 1, H) the state predictive text starts an empty text from: after the start
    text, fed from the zero state."""
    return feed_texts(model, [text_ids(model, "")], kernel=kernel)


def is_separator(char):
    """Whether `char` ends a word: whitespace, or Unicode category Z*, P*, S* or C*."""
    return char.isspace() or unicodedata.category(char)[0] in SEPARATOR_CATEGORIES


def separator_mask(vocab):
    """(V,) uint8: 1 for each vocabulary character that separates words."""
    return np.array([is_separator(c) for c in vocab.chars], np.uint8)


def word_prefix(text):
    """The word being typed: the run of word characters at the end of `text` ("" when it
    ends in a separator or is empty)."""
    i = len(text)
    while i > 0 and not is_separator(text[i - 1]):
        i -= 1
    return text[i:]


def next_probs_of_state(model, state, kernel=None):
    """(R, V) float64: every stream's next-character distribution (state (S·L, R, H))."""
    probs = np.empty((state.shape[1], model.n_vocab))
    (kernel or model.generation_kernel()).next_probs(state, probs)
    return probs


def next_char_probs(model, text, skip_unknown=False):
    """(V,) float64: the probability of each vocabulary character coming right after
    `text` (state carried through all of it; the empty text is read as the start text),
    in vocabulary order.  A text with characters outside the vocabulary is a ValueError
    naming them, unless skip_unknown drops them."""
    return next_char_probs_many(model, [text], skip_unknown)[0]


def next_char_probs_many(model, texts, skip_unknown=False):
    """(R, V) float64: next_char_probs of every text of `texts`, fed as one batch."""
    ids = [text_ids(model, t, skip_unknown) for t in texts]
    return next_probs_of_state(model, feed_texts(model, ids))


def ranked_chars(model, probs, k=None):
    """[(char, probability)] most likely first (ties in vocabulary order), the k most
    likely when k is given."""
    if k is not None:
        check_int(k, "k")
    order = np.argsort(-probs, kind="stable")
    if k is not None:
        order = order[:k]
    return [(model.vocab.chars[j], float(probs[j])) for j in order]


def next_chars(model, text, k=None, skip_unknown=False):
    """The distribution of the character after `text` as [(char, probability)], most
    likely first; the k most likely when k is given."""
    return ranked_chars(model, next_char_probs(model, text, skip_unknown), k)


def check_suggest_args(k, max_chars, beam):
    """(k, max_chars, beam) checked: k and beam positive integers, max_chars >= 0."""
    check_int(k, "k")
    check_int(beam, "the beam width")
    if isinstance(max_chars, bool) or not isinstance(max_chars, (int, np.integer)) \
            or max_chars < 0:
        raise ConfigError(f"max_chars must be an integer >= 0, got {max_chars!r}")
    return int(k), int(max_chars), max(int(beam), int(k))


def suggest(model, text, k=3, max_chars=32, beam=SUGGEST_BEAM, skip_unknown=False):
    """The k most probable ways to finish the word being typed at the end of `text` (the
    next word when text ends in a separator or is empty), best first, as Suggestions.

    A suggestion ends where the model emits a separator; its completion has at most
    max_chars characters.  Found by a beam search of width `beam` over word
    continuations (exact when the beam never has to drop a candidate: at width >= the
    number of continuations of max_chars characters); fewer than k come back when
    fewer words end within max_chars."""
    return suggest_many(model, [text], k, max_chars, beam, skip_unknown)[0]


def suggest_many(model, texts, k=3, max_chars=32, beam=SUGGEST_BEAM, skip_unknown=False):
    """suggest() for every text of `texts`: their R searches advanced as one batch."""
    k, max_chars, beam = check_suggest_args(k, max_chars, beam)
    seen = [model.vocab.decode(prime_ids(model, t, skip_unknown)) for t in texts]
    state = feed_texts(model, [text_ids(model, t) for t in seen])
    return suggest_from_state(model, state, seen, k, max_chars, beam)


def suggest_from_state(model, state, texts, k, max_chars, beam, kernel=None):
    """The suggestions of R texts (as the model saw them) whose states are `state`
    (S·L, R, H); arguments checked by check_suggest_args.  kernel: the bound generation
    kernel to run on (default: the model's own)."""
    R = len(texts)
    prefixes = [word_prefix(t) for t in texts]
    started = np.array([bool(p) for p in prefixes], np.uint8)
    G = GATES[model.cell]
    per_beam = (2 * state_rows(model.cell, model.num_layers) + 2 * G + 1) \
        * model.hidden_size * model.dtype.itemsize + 2 * 8 * max_chars + 8 * 4
    check_memory(R * beam * per_beam + beam * model.n_vocab * 24 + R * k * 8 * max_chars,
                 f"{R:,} word searches of width {beam:,} over {max_chars:,} characters")
    # the kernel keeps each word once, in its most probable spelling: k distinct words
    out = np.zeros((R, k, max_chars), np.intp)
    lengths = np.zeros((R, k), np.intp)
    scores = np.zeros((R, k))
    counts = (kernel or model.generation_kernel()).word_beam(
        state, separator_mask(model.vocab), started, beam, out, lengths, scores)
    decode = model.vocab.decode
    results = []
    for r in range(R):
        completions = [decode(out[r, i, :lengths[r, i]]) for i in range(counts[r])]
        results.append([Suggestion(word_of(c, prefixes[r]), c, float(scores[r, i]))
                        for i, c in enumerate(completions)])
    return results


def word_of(completion, prefix=""):
    """The word a completion spells after a text whose word so far is `prefix`: the
    prefix, then the completion without the separators that lead into it."""
    i = 0
    while i < len(completion) and is_separator(completion[i]):
        i += 1
    return prefix + completion[i:]


def beam_from_state(model, state, n, beam, keep=1, kernel=None):
    """R plain beam searches of width `beam` for n characters from the R streams of
    `state`, advanced as one batch: for each, its `keep` best continuations as
    (index array, total log-probability in nats) pairs, best first.  kernel: as for
    suggest_from_state."""
    R = state.shape[0 if state.ndim == 2 else 1]
    keep = min(keep, beam)
    G = GATES[model.cell]
    per_beam = (2 * state_rows(model.cell, model.num_layers) + 2 * G + 1) \
        * model.hidden_size * model.dtype.itemsize + 2 * 8 * n + 8 * 4
    check_memory(R * beam * per_beam + beam * model.n_vocab * 24,
                 f"{R:,} beam searches of width {beam:,} over {n:,} characters")
    out = np.zeros((R, keep, n), np.intp)
    lengths = np.zeros((R, keep), np.intp)
    scores = np.zeros((R, keep))
    no_seps = np.zeros(model.n_vocab, np.uint8)
    counts = (kernel or model.generation_kernel()).word_beam(
        state, no_seps, np.zeros(R, np.uint8), beam, out, lengths, scores, True)
    return [[(out[r, i], float(scores[r, i])) for i in range(counts[r])]
            for r in range(R)]
