"""The pointer loop: windows, coverage, wrap and reset, streams; determinism; divergence."""
import numpy as np
import pytest

import rnncore
from rnncore.corpus import compact_dtype
from rnncore.train import Trainer, TrainingDiverged, make_streams


def make(text, hidden=8, seed=0, **kw):
    model = rnncore.CharRNN(rnncore.Vocab.from_text(text), hidden, seed=seed)
    return Trainer(model, text, **kw)


def collect_pass(trainer):
    """(window lengths, targets seen as (B, chars)) for one pass over the streams."""
    lengths, targets = [], []
    epoch = trainer.epoch
    while trainer.epoch == epoch:
        x, y = trainer.next_window()
        lengths.append(x.shape[1])
        targets.append(np.array(y))
        trainer.train_step()
    return lengths, np.concatenate(targets, axis=1)


def test_single_stream_targets_every_character_once_including_the_last(hola):
    trainer = make(hola, seq_length=10)
    data = trainer.data
    for _ in range(2):  # two passes: the same windows each time
        lengths, targets = collect_pass(trainer)
        assert lengths == [10, 10, 10, 10, 1]
        np.testing.assert_array_equal(targets[0], data[1:])
        assert targets[0][-1] == trainer.model.vocab.encode("!")[0]
    assert trainer.epoch == 2 and trainer.step == 10


def test_inputs_are_targets_shifted_by_one(hola):
    trainer = make(hola, seq_length=7)
    x, y = trainer.next_window()
    np.testing.assert_array_equal(x[0, 1:], y[0, :-1])
    np.testing.assert_array_equal(x[0], trainer.data[:7])


def test_wrap_resets_hidden_state_and_carries_it_otherwise():
    text = "abcdefghij" * 3
    trainer = make(text, seq_length=8)
    model = trainer.model
    x, y = trainer.next_window()
    trainer.train_step()
    assert np.abs(trainer.hidden).max() > 0
    # the next window starts from the state the previous window ended in
    x2, y2 = trainer.next_window()
    h = trainer.hidden.copy()
    _, h_expected = model.loss(x2, y2, h)
    trainer.train_step()
    np.testing.assert_allclose(trainer.hidden, h_expected)
    while trainer.epoch == 0:
        trainer.train_step()
    assert trainer.pointer == 0 and np.all(trainer.hidden == 0)


@pytest.mark.parametrize("n_chars,B,T", [(23, 4, 2), (100, 3, 7), (50, 7, 7), (31, 2, 15)])
def test_streams_over_uneven_lengths(n_chars, B, T):
    text = "".join(chr(65 + (i * 7) % 26) for i in range(n_chars))
    trainer = make(text, seq_length=T, batch_size=B)
    L = (n_chars - 1) // B
    assert trainer.streams.shape == (B, L + 1)
    lengths, targets = collect_pass(trainer)
    assert sum(lengths) == L and max(lengths) <= T
    # stream b's targets continue exactly where stream b-1's ended: contiguous coverage
    np.testing.assert_array_equal(targets.reshape(-1), trainer.data[1:1 + B * L])
    assert n_chars - (B * L + 1) <= B - 1  # at most B-1 characters left out


def test_make_streams_is_a_view():
    data = np.arange(11, dtype=np.uint8)
    s = make_streams(data, 2)
    assert s.base is not None and not s.flags.writeable
    np.testing.assert_array_equal(s, [[0, 1, 2, 3, 4, 5], [5, 6, 7, 8, 9, 10]])


def test_corpus_is_stored_compactly(hola):
    assert make(hola).data.dtype == np.uint8
    assert compact_dtype(300) == np.uint16 and compact_dtype(70000) == np.uint32


def test_training_is_deterministic_for_a_seed(hola):
    runs = []
    for _ in range(2):
        t = make(hola, hidden=16, seed=5, seq_length=5, batch_size=2, optimizer="adam",
                 learning_rate=1e-2)
        losses = t.train(30)
        runs.append((losses, {k: v.copy() for k, v in t.model.params.items()}))
    assert runs[0][0] == runs[1][0]
    for k in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][k], runs[1][1][k])


def test_loss_falls_on_the_demo_sentence(hola):
    t = make(hola, hidden=32, seq_length=10)
    losses = t.train(2000)
    assert np.mean(losses[-50:]) < 0.2 * np.mean(losses[:5])


def test_divergence_raises_before_updating(hola):
    t = make(hola)
    t.train(3)
    t.model.params["Why"][0, 0] = np.nan
    before = {k: v.copy() for k, v in t.model.params.items()}
    with pytest.raises(TrainingDiverged, match="the loss became nan at step 4"):
        t.train_step()
    assert t.step == 3
    for k in before:
        np.testing.assert_array_equal(t.model.params[k], before[k])


def test_clip_norm_bounds_the_joint_gradient_norm(hola):
    t = make(hola, clip=0, clip_norm=0.01, learning_rate=1.0)
    before = {k: v.copy() for k, v in t.model.params.items()}
    t.train_step()
    step = np.sqrt(sum(((t.model.params[k] - before[k]) ** 2).sum() for k in before))
    assert step == pytest.approx(0.01, rel=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    ({"seq_length": 0}, "seq_length must be a positive integer"),
    ({"batch_size": -2}, "batch_size must be"),
    ({"learning_rate": 0}, "learning_rate must be"),
    ({"learning_rate": float("nan")}, "learning_rate must be"),
    ({"optimizer": "lbfgs"}, "optimizer must be one of sgd, adagrad, rmsprop, adam"),
    ({"clip": -1}, "clip must be"),
    ({"clip_norm": 0}, "clip_norm must be"),
    ({"seq_length": 50}, "shorter than one window"),
    ({"batch_size": 30, "seq_length": 2}, "shorter than one window|too short"),
])
def test_bad_trainer_arguments(hola, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(hola, **kwargs)


def test_corpus_with_unknown_characters_or_too_short():
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abc"), 4)
    with pytest.raises(ValueError, match="not in the vocabulary: 'xz'"):
        Trainer(model, "abcxz", seq_length=2)
    with pytest.raises(ValueError, match="nothing to predict"):
        Trainer(model, "a", seq_length=1)
