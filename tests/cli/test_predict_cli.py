"""Predictive text from the shell: `rnncore suggest`, `rnncore next`, and sample's
--beam K --num-samples N, --top-p and several --stop."""
import json
import math

import pytest

import rnncore
from rnncore import cli
from support import assert_clean_error, run, saved_small_model


@pytest.fixture
def ckpt(tmp_path):
    """A small saved 2-layer GRU over 'the cat sat on a mat.' characters."""
    return saved_small_model(tmp_path / "m.npz", "gru")


def out_of(capsys, *args):
    assert cli.main([str(a) for a in args]) == 0
    return capsys.readouterr().out


def test_suggest_prints_a_word_and_its_probability_a_line(ckpt, capsys):
    model = rnncore.CharRNN.load(ckpt)
    expected = model.suggest("the ca", k=4)
    lines = out_of(capsys, "suggest", ckpt, "the ca", "-k", 4).splitlines()
    assert lines == [f"{s.word}\t{math.exp(s.log_prob):.4f}" for s in expected]
    assert len(lines) == 4


def test_suggest_json_is_the_python_api(ckpt, capsys):
    model = rnncore.CharRNN.load(ckpt)
    got = json.loads(out_of(capsys, "suggest", ckpt, "the cat ", "--json", "--max-chars",
                            5, "--beam", 8))
    expected = model.suggest("the cat ", max_chars=5, beam=8)
    assert got == {"suggestions": [s._asdict() for s in expected]}


def test_next_prints_the_distribution(ckpt, capsys):
    model = rnncore.CharRNN.load(ckpt)
    lines = out_of(capsys, "next", ckpt, "the", "-k", 3).splitlines()
    assert lines == [f"{c!r:>6}  {p:.4f}" for c, p in model.next_chars("the", k=3)]
    got = json.loads(out_of(capsys, "next", ckpt, "the", "--json"))
    assert got == {"next": [{"char": c, "prob": p} for c, p in model.next_chars("the",
                                                                                k=10)]}
    assert len(got["next"]) == 10


@pytest.mark.slow
def test_unknown_characters_and_bad_arguments_are_one_line_errors(ckpt, tmp_path):
    proc = run("suggest", ckpt, "the QZ", cwd=tmp_path)
    assert_clean_error(proc, "the text has characters the model has never seen: 'QZ' "
                       "(pass --skip-unknown to drop them)")
    proc = run("next", ckpt, "thQe", "--skip-unknown", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.count("\n") == 10
    assert_clean_error(run("suggest", ckpt, "the", "-k", "0", cwd=tmp_path),
                       "argument -k: must be a positive integer, got 0", status=2)
    assert_clean_error(run("next", tmp_path / "missing.npz", "the", cwd=tmp_path),
                       "checkpoint not found")


def test_beam_with_num_samples_prints_the_best_beams(ckpt, capsys):
    model = rnncore.CharRNN.load(ckpt)
    out = out_of(capsys, "sample", ckpt, "--prime", "the c", "--length", 10, "--beam", 5,
                 "--num-samples", 3)
    best = model.beam_search("the c", 10, beam=5)[:3]
    assert out == "".join(f"=== beam {i} of 3: log-prob {c.log_prob:.4f} ===\nthe c{c.text}\n"
                          for i, c in enumerate(best, start=1))


def test_top_p_and_several_stops(ckpt, capsys):
    model = rnncore.CharRNN.load(ckpt)
    out = out_of(capsys, "sample", ckpt, "--prime", "a", "--length", 400, "--seed", 4,
                 "--top-p", 0.8)
    assert out == "a" + model.sample(400, "a", seed=4, top_p=0.8) + "\n"
    out = out_of(capsys, "sample", ckpt, "--prime", "a", "--length", 400, "--seed", 4,
                 "--stop", "t.", "--stop", "on")
    assert out == "a" + model.sample(400, "a", seed=4, stop=["t.", "on"]) + "\n"
