"""Small corpora and the command-line settings of small runs, defined once."""

import numpy as np



def corpus(tmp_path, text="the cat sat on the mat. " * 40, name="corpus.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


FOX = "the quick brown fox jumps over the lazy dog; " * 60   # 28 symbols, 2,700 chars
SMALL_SETTINGS = {"hidden_size": 16, "seq_length": 8, "batch_size": 2}


def text_of_random_words(n_words, seed=0):
    """Text of random words, not periodic: its held-out end repeats no training window."""
    rng = np.random.default_rng(seed)
    lexicon = ["".join(rng.choice(list("abcdefghijklmnop"), rng.integers(1, 7)))
               for _ in range(60)]
    return " ".join(rng.choice(lexicon, n_words)) + ".\n"


#: the scenarios of the CLI tests were set up with the model train had before issue 27's
#: defaults (a GRU, step dropout 0.1, no weight drop, decay or average, a constant rate):
#: kept by name
PREVIOUS_MODEL = ["--cell", "gru", "--dropout", "0.1", "--dropout-mode", "step",
                  "--weight-drop", "0", "--weight-decay", "0", "--average", "0",
                  "--lr-schedule", "constant"]
SMALL = ["--hidden-size", "16", "--seq-length", "8", "--batch-size", "2", "--print-every", "10",
         *PREVIOUS_MODEL]


def ragged_texts(rng, B, V, longest):
    """(B, P) right-aligned texts for feed_rows and their starts: lengths 0 .. longest,
    some of them at and just past the feed chunks' edges (FEED_ROWS = 256 rows of streams
    × steps, pyx/generate.pxi)."""
    chunk = max(1, 256 // B)
    lengths = rng.integers(0, longest + 1, B)
    lengths[:4] = [0, longest, longest - chunk, longest - chunk - 1]
    P = int(lengths.max())
    chars = rng.integers(0, V, (B, P)).astype(np.intp)
    return chars, (P - lengths).astype(np.intp)


WORDS = text_of_random_words(500)
WORD_OPTS = ["--hidden-size", "16", "--seq-length", "8", "--batch-size", "2", *PREVIOUS_MODEL]


EXPLODING = ["--optimizer", "sgd", "--learning-rate", "50", "--clip", "0"]


HOLA = "Hola mundo, aprendiendo redes recurrentes!"
