"""The generation options, each to its promised value: --stop, --num-samples, the prime
with unknown characters in beams and samples, through the library and the CLI."""
import pytest

import rnncore
from rnncore import cli

from support import gated_model, saved_small_model


@pytest.fixture(scope="module")
def model():
    vocab = rnncore.Vocab.from_text("the cat sat on a mat.")
    m = gated_model("gru", 2, len(vocab), 8, seed=1, scale=0.9)
    m.vocab = vocab
    return m


def test_skip_unknown_in_a_beam_is_the_beam_of_the_prime_without_them(model):
    clean = model.beam_search("the cat ", 6, beam=4)
    assert model.beam_search("thQe cXat ", 6, beam=4, skip_unknown=True) == clean
    assert model.complete("thQe cXat ", 6, skip_unknown=True, beam=4) == clean[0].text
    assert model.complete("thQe cXat ", 6, skip_unknown=True) == model.complete("the cat ", 6)
    with pytest.raises(ValueError, match="'QX'"):
        model.beam_search("thQe cXat ", 6, beam=4)


def test_skip_unknown_in_a_sample_feeds_the_prime_without_them(model):
    assert model.sample(40, prime="thQe", seed=3, skip_unknown=True) == \
        model.sample(40, prime="the", seed=3)


def test_stop_ends_right_after_its_first_occurrence_in_the_generated_text(model):
    whole = model.sample(300, prime="the", seed=7)
    stop = whole[40:42]
    at = whole.find(stop)
    assert model.sample(300, prime="the", seed=7, stop=stop) == whole[:at + len(stop)]
    # the prime is not searched: a stop text the prime holds does not end it at once
    assert model.sample(20, prime="the", seed=7, stop="the")[:1] == whole[:1]


def test_num_samples_are_the_columns_of_one_seed(model):
    many = model.sample(50, prime="a", seed=11, num_samples=3)
    assert len(many) == 3 and len(set(many)) == 3
    assert model.sample(50, prime="a", seed=11, num_samples=3) == many     # reproducible
    pieces = list(model.sample_stream(50, prime="a", seed=11, num_samples=3))
    assert ["".join(p[i] for p in pieces) for i in range(3)] == many


def test_the_cli_prints_each_of_n_samples_under_its_header(tmp_path, capsys, model):
    path = saved_small_model(tmp_path / "m.npz", "gru")
    saved = rnncore.CharRNN.load(path)
    expected = saved.sample(30, prime="the", seed=5, num_samples=3)
    assert cli.main(["sample", str(path), "--prime", "the", "--length", "30", "--seed", "5",
                     "--num-samples", "3"]) == 0
    assert capsys.readouterr().out == "".join(
        f"=== sample {i} of 3 ===\nthe{text}\n" for i, text in enumerate(expected, 1))


def test_the_cli_stops_at_the_stop_text(tmp_path, capsys):
    path = saved_small_model(tmp_path / "m.npz", "lstm")
    saved = rnncore.CharRNN.load(path)
    whole = saved.sample(200, prime="a", seed=2)
    stop = whole[30:32]
    assert cli.main(["sample", str(path), "--prime", "a", "--length", "200", "--seed", "2",
                     "--stop", stop]) == 0
    assert capsys.readouterr().out == "a" + whole[:whole.find(stop) + len(stop)] + "\n"


def test_the_cli_beam_with_skip_unknown_echoes_and_completes_the_clean_prime(tmp_path, capsys):
    path = saved_small_model(tmp_path / "m.npz", "rnn")
    saved = rnncore.CharRNN.load(path)
    assert cli.main(["sample", str(path), "--prime", "thQe c", "--length", "8", "--beam", "3",
                     "--skip-unknown"]) == 0
    assert capsys.readouterr().out == "the c" + saved.complete("the c", 8, beam=3) + "\n"
