"""How many keystrokes a model saves: typing a text with the k best word suggestions shown
at every keystroke, against a word-frequency predictor built from the model's own
training text.

The simulation (simulate) types the text from its start.  At every position it looks at
the suggestions for the text before it; a suggestion is taken when its completion is what
the text holds there, up to the end of a word (a completion may begin with the
separators that lead into its word, as the model's do after a separator): taking it costs
one keystroke and types the completion and the one separator that follows the word in
the text.  Otherwise the next character costs one keystroke.  keystroke_savings is
1 − keystrokes / characters.  At every word start (a word character after a separator,
or the text's first), top1 and top3 ask whether the word is the first suggestion, or
among the first three, for the text before it.

The model's suggestions are rnncore.predict's (beam 16, up to 32 characters), for every
position of the text, fed once and searched in batches of positions.  For both, a
suggestion that adds nothing (the word as typed) is not shown.  The baseline
(WordFrequencies) suggests the words that followed the previous word in its training
text (bigram counts), then the most frequent words (unigram counts), each starting with
the word typed so far; words as predictive text splits them (rnncore.predict.is_separator).
"""
import hashlib
import os
from collections import Counter, defaultdict

import numpy as np

from .checkpoint import load_checkpoint
from .corpus import read_corpus
from .errors import UsageError
from .predict import (SUGGEST_BEAM, is_separator, start_state, suggest_from_state,
                      word_prefix)
from .sample import feed_texts

#: positions searched as one batch, and fed as one
BLOCK, STEP = 256, 8


def words_of(text):
    """The words of `text` in order: maximal runs of word characters."""
    words, word = [], []
    for c in text:
        if is_separator(c):
            if word:
                words.append("".join(word))
                word = []
        else:
            word.append(c)
    if word:
        words.append("".join(word))
    return words


def word_starts(text):
    """The positions where a word starts."""
    return [i for i, c in enumerate(text) if not is_separator(c)
            and (i == 0 or is_separator(text[i - 1]))]


def simulate(text, completions, k):
    """{"keystroke_savings", "top1", "top3"} of typing `text` with the first k of
    completions(i) shown at every position i (completions(i): the completions of the
    text before i, best first, at least three of them when there are)."""
    n, i, keys = len(text), 0, 0
    while i < n:
        keys += 1
        for c in completions(i)[:k]:
            end = i + len(c)
            if c and not is_separator(c[-1]) and text.startswith(c, i) and (
                    end == n or is_separator(text[end])):
                i = min(n, end + 1)      # the completion, then the word's separator
                break
        else:
            i += 1
    starts = word_starts(text)
    hits = [0, 0]
    for ws in starts:
        end = ws
        while end < n and not is_separator(text[end]):
            end += 1
        words = [word_prefix(c) if c else c for c in completions(ws)[:3]]
        hits[0] += bool(words) and words[0] == text[ws:end]
        hits[1] += text[ws:end] in words
    count = max(1, len(starts))
    return {"keystroke_savings": 1 - keys / n if n else 0.0, "top1": hits[0] / count,
            "top3": hits[1] / count}


def model_completions(model, text, k, max_chars=32, beam=SUGGEST_BEAM, progress=None):
    """(len(text),) lists: the first max(k, 3) non-empty completions of
    model.suggest(text[:i]) for every position i, best first.  The states after every prefix are fed in steps of STEP
    positions (one batch of STEP + 1 streams from the state before them, stream j fed j
    more characters: one compiled call per STEP positions), and searched in batches of
    BLOCK positions; progress(n), if given, is called with the positions done."""
    K = max(k, 3)
    beam = max(beam, K)
    ids = model.vocab.encode(text).astype(np.intp)
    found = []
    state = np.zeros_like(start_state(model))         # after text[:0], from zero
    for block in range(0, len(text), BLOCK):
        stop = min(block + BLOCK, len(text))
        parts = []
        for at in range(block, stop, STEP):
            rows = feed_texts(model, [ids[at:at + j] for j in range(STEP + 1)],
                              state=np.repeat(state, STEP + 1, axis=1))
            parts.append(rows[:, :min(STEP, stop - at)])
            state = np.ascontiguousarray(rows[:, STEP:])
        states = np.ascontiguousarray(np.concatenate(parts, axis=1))
        if block == 0:      # the empty text reads as the start text
            states[:, 0] = start_state(model)[:, 0]
        prefixes = [text[max(0, i - max_chars - 64):i] for i in range(block, stop)]
        # the word as typed (an empty completion) is no suggestion: it adds nothing
        found += [[s.completion for s in suggestions if s.completion][:K]
                  for suggestions in suggest_from_state(model, states, prefixes, K + 1,
                                                        max_chars, max(beam, K + 1))]
        if progress is not None:
            progress(stop)
    return found


class WordFrequencies:
    """The baseline predictor: word bigram and unigram counts of a training text."""

    def __init__(self, training_text):
        words = words_of(training_text)
        self.unigrams = Counter(words)
        following = defaultdict(Counter)
        for before, word in zip(words, words[1:]):
            following[before][word] += 1
        self.bigrams = {w: ranked(c) for w, c in following.items()}
        self.by_first = defaultdict(list)      # the words of each first letter, ranked
        for word in ranked(self.unigrams):
            self.by_first[word[0]].append(word)
        self.top = ranked(self.unigrams)[:32]

    def completions_of(self, text, k):
        """completions(i) for `text`: for each position, the completions of the k best
        words (at least 3) that start with the word typed there."""
        K = max(k, 3)
        cache = {}

        def completions(i):
            prefix = word_prefix(text[:i])
            start = i - len(prefix)
            before = words_of(text[max(0, start - 64):start])
            previous = before[-1] if before else None
            key = (start, prefix)
            if key not in cache:
                cache.clear()
                cache[key] = self._best(previous, prefix, K)
            return [w[len(prefix):] for w in cache[key]]

        return completions

    def _best(self, previous, prefix, K):
        best = []
        pools = [self.bigrams.get(previous, ()),
                 self.by_first.get(prefix[:1], ()) if prefix else self.top]
        for pool in pools:
            for word in pool:
                if word.startswith(prefix) and word != prefix and word not in best:
                    best.append(word)
                    if len(best) == K:
                        return best
        return best


def ranked(counter):
    """The keys of a Counter, most frequent first (ties in alphabetical order)."""
    return [w for w, _ in sorted(counter.items(), key=lambda item: (-item[1], item[0]))]


def keystroke_report(model, text, training_text, k=3, progress=None):
    """{"keystroke_savings", "top1", "top3", "baseline": {the same three}} of typing
    `text` (characters the model knows) with the model's k best suggestions, and with
    the word-frequency predictor of `training_text`."""
    found = model_completions(model, text, k, progress=progress)
    result = simulate(text, found.__getitem__, k)
    baseline = WordFrequencies(training_text)
    result["baseline"] = simulate(text, baseline.completions_of(text, k), k)
    return result


def training_text(checkpoint, model, path=None, encoding="utf-8"):
    """(text, where it came from) the baseline learns from: the file at `path`, else the
    model's training text (its checkpoint's corpus, read where training read it or beside
    the checkpoint, without the held-out end; checked against its SHA-256).  Characters
    the model does not know are dropped.  A UsageError says what is missing."""
    if path is not None:
        text = read_corpus(path, encoding)
        return model.vocab.decode(model.vocab.encode(text, skip_unknown=True)), path
    meta = None if checkpoint.endswith(".safetensors") else load_checkpoint(checkpoint).train_meta
    corpus = (meta or {}).get("corpus_path")
    if not corpus:
        raise UsageError(f"--keystrokes: {checkpoint} does not name its training text: "
                         "pass --baseline-text FILE")
    found = next((p for p in (corpus, os.path.join(os.path.dirname(checkpoint), corpus))
                  if os.path.isfile(p)), None)
    if found is None:
        raise UsageError(f"--keystrokes: the model's training text {corpus} is not there: "
                         "pass --baseline-text FILE")
    with open(found, "rb") as f:
        raw = f.read()
    if meta.get("corpus_sha256") not in (None, hashlib.sha256(raw).hexdigest()):
        raise UsageError(f"--keystrokes: {found} is not the text the model was trained on "
                         "(its SHA-256 differs): pass --baseline-text FILE")
    text = read_corpus(found, encoding)
    held = int(len(text) * (meta.get("config") or {}).get("val_fraction", 0.0))
    return text[:len(text) - held], found
