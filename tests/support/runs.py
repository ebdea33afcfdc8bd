"""Small training runs, through fit() and through the CLI, and reading their logs."""

import json

import rnncore

from .processes import run
from .texts import FOX, SMALL, SMALL_SETTINGS, WORDS, WORD_OPTS, corpus


def quiet_fit(tmp_path, text=FOX, **kwargs):
    """fit() on `text` (written to tmp_path/corpus.txt) into tmp_path/model.npz, with
    small settings, echoing into a list: (RunResult, lines)."""
    lines = []
    options = {**SMALL_SETTINGS, "print_every": 10, "eval_every": 20, **kwargs}
    result = rnncore.fit(corpus(tmp_path, text), tmp_path / "model.npz", echo=lines.append,
                         **options)
    return result, lines


def read_log(tmp_path, name="model.metrics.jsonl"):
    """The records of the metrics log tmp_path/name, line by line."""
    with open(tmp_path / name) as f:
        return [json.loads(line) for line in f]


def trained(tmp_path, steps=20, extra=()):
    """A checkpoint tmp_path/model.npz trained by the CLI on corpus()'s text (SMALL)."""
    out = tmp_path / "model.npz"
    proc = run("train", corpus(tmp_path), "--out", out, "--steps", steps, *SMALL, *extra,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out


def train_words(tmp_path, *extra, steps, name="model.npz"):
    """The CLI trained on WORDS (random words: a held-out end unlike any training window)."""
    out = tmp_path / name
    proc = run("train", corpus(tmp_path, WORDS), "--out", out, "--steps", steps,
               *WORD_OPTS, *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def held_out(tmp_path, fraction, text=WORDS):
    """README: --val-fraction F holds out the end of the corpus; that end, as a file."""
    n_val = int(len(text) * fraction)
    path = tmp_path / "held_out.txt"
    path.write_text(text[len(text) - n_val:], encoding="utf-8")
    return path, n_val


def eval_json(tmp_path, out, text_path, *extra):
    """`rnncore eval --json` of out on text_path, parsed."""
    proc = run("eval", out, text_path, "--json", *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def train_fox(tmp_path, *extra, steps=60, text=FOX):
    """The CLI trained on `text` into tmp_path/model.npz (SMALL, validating every 20)."""
    out = tmp_path / "model.npz"
    proc = run("train", corpus(tmp_path, text), "--out", out, "--steps", steps, *SMALL,
               "--eval-every", "20", *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out, proc


#: a learning rate so high the loss stays above ln V
def train_to(tmp_path, out, *extra):
    """The CLI trained on FOX into `out` (SMALL, logging every 100, validating every 200)."""
    proc = run("train", corpus(tmp_path, FOX), "--out", out, *SMALL, "--print-every", 100,
               "--eval-every", 200, *extra, cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


def fit_then_spoil(tmp_path):
    """A keep-best run (vanilla, 60 steps) resumed to step 100 at a rate that spoils it:
    its best (step 60) and latest parameters differ.  Returns the checkpoint path."""
    vanilla = dict(cell="rnn", num_layers=1, dropout=0.0, lr_schedule="constant")
    quiet_fit(tmp_path, steps=60, keep_best=True, learning_rate=0.01, **vanilla)
    result, _ = quiet_fit(tmp_path, steps=100, resume=True, learning_rate=0.5)
    assert result.best["step"] == 60, "the scenario needs its best before the spoiling"
    return tmp_path / "model.npz"
