"""How many keystrokes a model saves: the typing simulation against hand-counted cases,
the baseline's ranking, the model's suggestions at every position against
model.suggest, and `rnncore eval --keystrokes` (its JSON keys exactly, the baseline from
the model's own training text)."""
import json

import numpy as np
import pytest

import rnncore
from rnncore import cli
from rnncore.keystrokes import (WordFrequencies, model_completions, simulate, word_starts,
                                words_of)
from support import FOX, gated_model, quiet_fit


def oracle(text, wrong=()):
    """A predictor that always suggests the rest of the word (or the next word) first,
    except at the positions in `wrong`."""
    def completions(i):
        end = i
        while end < len(text) and text[end].isalnum():
            end += 1
        if i in wrong or end == i:
            return ["zz"]
        return [text[i:end], "qq"]
    return completions


def test_the_simulation_counts_keystrokes_as_promised():
    # every word taken at its first character: one keystroke for the word and its
    # separator; "," and " " after it are typed
    text = "ab cd, ef"
    assert simulate(text, oracle(text), 3) == {
        "keystroke_savings": 1 - 4 / 9, "top1": 1.0, "top3": 1.0}
    # a predictor that is never right saves nothing, and finds no word
    assert simulate(text, lambda i: ["zz", "yy", "xx"], 3) == {
        "keystroke_savings": 0.0, "top1": 0.0, "top3": 0.0}
    # wrong at "cd"'s start: "c" typed, then the rest taken
    got = simulate(text, oracle(text, wrong={3}), 3)
    assert got["keystroke_savings"] == 1 - 5 / 9
    assert got["top1"] == got["top3"] == 2 / 3
    # the oracle's word second: top3 but not top1; with k=1 never taken
    second = lambda i: ["zz"] + oracle(text)(i)   # noqa: E731
    assert simulate(text, second, 3) == {"keystroke_savings": 1 - 4 / 9, "top1": 0.0,
                                         "top3": 1.0}
    assert simulate(text, second, 1)["keystroke_savings"] == 0.0


def test_top3_counts_three_suggestions_whatever_k_shows():
    # the word fourth of five suggestions: shown with -k 5 (and taken), never in top3
    text = "ab cd"
    fourth = lambda i: ["zz", "yy", "xx"] + oracle(text)(i)   # noqa: E731
    got = simulate(text, fourth, 5)
    assert got["top1"] == got["top3"] == 0.0 and got["keystroke_savings"] == 1 - 2 / 5


def test_a_completion_is_taken_only_up_to_a_word_end():
    text = "abcd e"
    # "ab" is what the text holds, but not up to the word's end: not taken
    assert simulate(text, lambda i: ["ab"] if i == 0 else [], 3)["keystroke_savings"] == 0
    # separators that lead into a word are part of a completion
    text = "ab, cd"
    taken = simulate(text, lambda i: [", cd"] if i == 2 else [], 3)
    assert taken["keystroke_savings"] == 1 - 3 / 6     # a, b, then ", cd" at once
    assert word_starts(text) == [0, 4] and words_of(text) == ["ab", "cd"]


def test_the_baseline_ranks_bigrams_then_unigrams():
    words = WordFrequencies("the cat. the cat. the dog. a cow, a cow, a cow, a cat")
    # after "the": its followers by count (cat 2, dog 1), then the most frequent words
    # (a 4; cat, cow, the 3, ties alphabetical)
    assert words.completions_of("the ", 3)(4) == ["cat", "dog", "a"]
    assert words.completions_of("the c", 3)(5) == ["at", "ow"]
    assert words.completions_of("zz ", 3)(3) == ["a", "cat", "cow"]
    assert words.completions_of("th", 3)(2) == ["e"]
    assert words.completions_of("the", 3)(3) == []     # nothing adds to a whole word


def small_model(dtype="float64"):
    chars = " ,.abcdef\n"
    base = gated_model("gru", 2, len(chars), 8, dtype=dtype, seed=2, scale=1.3)
    model = rnncore.CharRNN(rnncore.Vocab(sorted(chars)), 8, dtype=dtype, cell="gru",
                            num_layers=2)
    for name, p in model.params.items():
        p[...] = base.params[name]
    return model


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_models_completions_are_suggest_at_every_position(dtype, monkeypatch):
    import rnncore.keystrokes as keystrokes
    monkeypatch.setattr(keystrokes, "BLOCK", 24)      # several blocks and steps
    model = small_model(dtype)
    text = "".join(np.random.default_rng(3).choice(list(" ,.abcdef\n"), 70))
    found = model_completions(model, text, 2)
    assert len(found) == len(text)
    for i in range(len(text)):
        expected = [s.completion for s in model.suggest(text[:i], k=4, beam=16)
                    if s.completion][:3]
        assert found[i] == expected, i


def test_eval_keystrokes_reports_the_model_and_the_baseline(tmp_path, capsys):
    quiet_fit(tmp_path, steps=30, val_fraction=0.2)
    text = tmp_path / "typed.txt"
    text.write_text(FOX[:300] + "\u00e9")
    assert cli.main(["eval", str(tmp_path / "model.npz"), str(text), "--keystrokes",
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"keystroke_savings", "top1", "top3", "baseline"}
    assert set(result["baseline"]) == {"keystroke_savings", "top1", "top3"}
    # the baseline learnt FOX's words from the training text: every next word is among
    # its three first (after "the", lazy and quick tie: lazy first)
    assert result["baseline"]["top3"] == 1.0 and 0.85 < result["baseline"]["top1"] < 0.9
    assert result["baseline"]["keystroke_savings"] > 0.5
    assert 0 <= result["keystroke_savings"] < 1
    model = rnncore.CharRNN.load(tmp_path / "model.npz")
    known = FOX[:300]
    found = model_completions(model, known, 3)
    from rnncore.keystrokes import simulate as twin
    assert {k: result[k] for k in ("keystroke_savings", "top1", "top3")} == \
        twin(known, found.__getitem__, 3)
    assert cli.main(["eval", str(tmp_path / "model.npz"), str(text), "--keystrokes",
                     "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "300 characters typed with 1 suggestion at every keystroke (1 the model has " \
        "never seen dropped)" in out and "model" in out and "baseline" in out


def test_eval_keystrokes_needs_a_training_text(tmp_path, capsys):
    quiet_fit(tmp_path, steps=5)
    (tmp_path / "typed.txt").write_text(FOX[:50])
    (tmp_path / "corpus.txt").rename(tmp_path / "moved.txt")
    args = ["eval", str(tmp_path / "model.npz"), str(tmp_path / "typed.txt"), "--keystrokes"]
    assert cli.main(args) == 1
    assert "the model's training text" in capsys.readouterr().err
    assert cli.main(args + ["--baseline-text", str(tmp_path / "moved.txt")]) == 0
    (tmp_path / "moved.txt").rename(tmp_path / "corpus.txt")
    (tmp_path / "corpus.txt").write_text(FOX + "changed")
    assert cli.main(args) == 1
    assert "not the text the model was trained on" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["eval", str(tmp_path / "model.npz"), str(tmp_path / "typed.txt"), "-k", "2"])
    assert "argument -k: only with --keystrokes" in capsys.readouterr().err


def test_the_baseline_learns_from_the_training_part_only(tmp_path, capsys):
    # the held-out end (the last 10%) is where "zebra" appears: the baseline never saw it
    text = FOX + "zebra " * 40       # 240 of 2,940 characters
    quiet_fit(tmp_path, text=text, steps=5, val_fraction=0.1)
    typed = tmp_path / "typed.txt"
    typed.write_text("zebra zebra zebra")
    assert cli.main(["eval", str(tmp_path / "model.npz"), str(typed), "--keystrokes",
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"]["top3"] == 0.0
    assert cli.main(["eval", str(tmp_path / "model.npz"), str(typed), "--keystrokes",
                     "--json", "--baseline-text", str(tmp_path / "corpus.txt")]) == 0
    # (the first "zebra" follows nothing: the most frequent words come first)
    assert json.loads(capsys.readouterr().out)["baseline"]["top3"] == 2 / 3
