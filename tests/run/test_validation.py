"""Validation: the held-out end of the corpus, predicted whole, logged in nats and bits."""
import numpy as np
import pytest

from support import (FOX, WORDS, corpus, eval_json, held_out, read_log, train_fox,
                     train_words)

pytestmark = pytest.mark.slow   # every test here starts a process


# ---- validation is the held-out text, and keep-best keeps the best -----------------------
def test_logged_validation_is_evaluate_on_the_held_out_end(tmp_path):
    out, _ = train_words(tmp_path, "--val-fraction", "0.1", "--eval-every", "20",
                   "--print-every", "10", steps=60)
    log = read_log(tmp_path)
    validated = [r for r in log if "val_loss" in r]
    assert [r["step"] for r in validated] == [20, 40, 60]
    path, n_val = held_out(tmp_path, 0.1)
    result = eval_json(tmp_path, out, path, "--latest")
    assert result["chars"] == n_val - 1 and result["unseen_chars"] == 0
    assert validated[-1]["val_loss"] == result["nats_per_char"]
    assert validated[-1]["val_bits_per_char"] == pytest.approx(result["bits_per_char"],
                                                               rel=1e-12)
    # and not the training text: the same model scores differently there
    train_part = corpus(tmp_path, WORDS[:len(WORDS) - n_val], name="train_part.txt")
    assert eval_json(tmp_path, out, train_part, "--latest")["nats_per_char"] != \
        result["nats_per_char"]


TEXT_CLI_EVAL = FOX


def test_validation_is_logged_in_nats_and_bits(tmp_path):
    out, proc = train_fox(tmp_path, "--val-fraction", "0.1")
    assert "2,430 for training, 270 held out for validation" in proc.stdout
    val_lines = [l for l in proc.stdout.splitlines() if " val " in l]
    assert len(val_lines) == 3  # steps 20, 40, 60
    assert "best validation" in proc.stdout.splitlines()[-1]
    log = read_log(tmp_path)
    assert [r["step"] for r in log if "val_loss" in r] == [20, 40, 60]
    for r in log:
        assert {"step", "epoch", "train_loss", "lr", "chars_per_s", "elapsed"} <= set(r)
    r = [r for r in log if "val_loss" in r][-1]
    assert r["val_bits_per_char"] == pytest.approx(r["val_loss"] / np.log(2))


def test_no_validation_when_fraction_is_zero(tmp_path):
    out, proc = train_fox(tmp_path, "--val-fraction", "0")
    assert " val " not in proc.stdout
    assert all("val_loss" not in r for r in read_log(tmp_path))

