"""rnncore eval: nats/char, bits/char, perplexity on any text file; its JSON; bad input."""
import json

import pytest

from support import EXPLODING, FOX, assert_clean_error, corpus, run, train_fox, train_to

pytestmark = pytest.mark.slow   # every test here starts a process


TEXT = FOX


def test_eval_json(tmp_path):
    out, _ = train_fox(tmp_path, steps=10)
    other = corpus(tmp_path, "the lazy fox — QUICK! ", name="other.txt")
    proc = run("eval", out, other, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"nats_per_char", "bits_per_char", "perplexity", "chars", "unseen_chars"} <= set(result)
    assert result["unseen_chars"] == 7 and set(result["unseen_symbols"]) == set("—QUICK!")
    assert result["chars"] == len("the lazy fox — QUICK! ") - 7 - 1
    text = run("eval", out, other, cwd=tmp_path).stdout
    assert "bits/char" in text and "never seen were dropped" in text


def test_eval_bad_inputs(tmp_path):
    out, _ = train_fox(tmp_path, steps=5)
    assert_clean_error(run("eval", out, "missing.txt", cwd=tmp_path), "corpus file not found")
    assert_clean_error(run("eval", out, corpus(tmp_path, "QQQQ", name="q.txt"), cwd=tmp_path),
                       "fewer than 2 characters the model knows")
    assert_clean_error(run("eval", "nope.npz", out, cwd=tmp_path), "checkpoint not found")


TEXT_HOPELESS = FOX


def test_row_eval_of_a_model_whose_perplexity_overflows(tmp_path):
    out = tmp_path / "model.npz"
    train_to(tmp_path, out, "--steps", 600, *EXPLODING)
    text = tmp_path / "corpus.txt"
    proc = run("eval", out, text, "--latest", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    nats = float(proc.stdout.split("predicted: ")[1].split(" nats/char")[0])
    assert nats > 710   # e^710 is beyond a double
    assert proc.stdout.rstrip().endswith("perplexity inf")
    as_json = json.loads(run("eval", out, text, "--json", cwd=tmp_path).stdout)
    assert as_json["perplexity"] is None   # JSON has no inf
    assert abs(as_json["nats_per_char"] - nats) < 1e-3   # no best kept: the same weights
