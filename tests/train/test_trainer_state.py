"""Trainer.state() / load_state(): a trainer restored from another's state continues bit for
bit; on a different corpus its streams restart at the beginning.  And what the Trainer
accepts as text."""
import numpy as np
import pytest

import rnncore
from rnncore.train import Trainer

TEXT = "abracadabra, said the rabbit; " * 6


def trainer(text=TEXT, seed=3, **kw):
    model = rnncore.CharRNN(rnncore.Vocab.from_text(TEXT), 6, seed=seed)
    options = dict(seq_length=7, batch_size=3, optimizer="adam", learning_rate=0.01)
    return Trainer(model, text, **{**options, **kw})


def restored(source, text=TEXT, same_corpus=True):
    """A fresh trainer with other weights, given source's weights and state."""
    target = trainer(text, seed=11)
    for k, p in source.model.params.items():
        target.model.params[k][...] = p
    arrays, meta = source.state()
    arrays = {k: np.array(v) for k, v in arrays.items()}
    return target, target.load_state(arrays, meta, same_corpus)


def test_a_restored_trainer_continues_bit_for_bit():
    straight = trainer()
    straight.train(5)                  # mid-pass: pointer and hidden state are not trivial
    assert straight.pointer > 0 and np.abs(straight.hidden).max() > 0
    copy, continues = restored(straight)
    assert continues is True
    assert (copy.step, copy.epoch, copy.pointer) == (straight.step, straight.epoch,
                                                     straight.pointer)
    np.testing.assert_array_equal(copy.hidden, straight.hidden)
    assert copy.train(12) == straight.train(12)   # across an epoch boundary
    for k in straight.model.params:
        np.testing.assert_array_equal(copy.model.params[k], straight.model.params[k])


@pytest.mark.parametrize("change", ["other corpus", "other length"])
def test_on_a_different_corpus_the_streams_restart(change):
    source = trainer()
    source.train(5)
    text = TEXT if change == "other corpus" else TEXT[:-7]
    copy, continues = restored(source, text, same_corpus=change != "other corpus")
    assert continues is False
    assert copy.pointer == 0 and not copy.hidden.any()
    assert (copy.step, copy.epoch) == (5, source.epoch)           # the counts are kept
    assert copy.optimizer.step_count == 5


def test_a_pointer_outside_the_streams_restarts_them():
    source = trainer()
    source.train(3)
    arrays, meta = source.state()
    copy = trainer(seed=11)
    assert copy.load_state(arrays, meta) is True
    assert copy.pointer == source.pointer > 0 and copy.hidden.any()
    assert copy.load_state(arrays, {**meta, "pointer": copy.stream_length}) is False
    assert copy.pointer == 0 and not copy.hidden.any()


def test_the_shortest_texts_and_arrays_a_trainer_takes():
    model = rnncore.CharRNN(rnncore.Vocab.from_text("ab"), 4, seed=0)
    assert len(Trainer(model, "ab", seq_length=1).train(2)) == 2
    assert len(Trainer(model, np.array([0, 1]), seq_length=1).train(2)) == 2
    with pytest.raises(ValueError, match="the corpus has 1 character.*nothing to predict"):
        Trainer(model, np.array([1]), seq_length=1)
    for bad in (np.zeros((2, 2), int), np.array([0.0, 1.0])):
        with pytest.raises(TypeError, match="text must be a str or a 1-D integer array"):
            Trainer(model, bad, seq_length=1)


def test_signed_indices_are_stored_compactly():
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abc"), 4, seed=0)
    t = Trainer(model, np.array([0, 1, 2, 1, 0], np.int64), seq_length=2)
    assert t.data.dtype == np.uint8
    np.testing.assert_array_equal(t.data, [0, 1, 2, 1, 0])


def test_an_array_of_indices_is_used_in_place_not_copied():
    # a memory-mapped corpus is read window by window, never converted as a whole
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abc"), 4, seed=0)
    for dtype in (np.uint8, np.uint16):
        ids = np.array([0, 1, 2, 1, 0, 2], dtype)
        t = Trainer(model, ids, seq_length=2)
        assert np.shares_memory(t.data, ids) and np.shares_memory(t.streams, ids)


def test_a_trainers_state_stores_every_setting_of_the_trainer(tmp_path):
    text = "the quick brown fox jumps over the lazy dog; " * 20
    model = rnncore.CharRNN(rnncore.Vocab.from_text(text), 6, seed=1)
    trainer = rnncore.Trainer(model, text, seq_length=7, batch_size=3, learning_rate=0.02,
                              optimizer="adagrad", clip=1.5, clip_norm=3.0, lr_schedule="step",
                              total_steps=50, warmup_steps=4, lr_decay=0.8, seed=9)
    trainer.train(5)
    rnncore.save_checkpoint(tmp_path / "m.npz", model, trainer.state())
    config = rnncore.load_checkpoint(tmp_path / "m.npz").train_meta["config"]
    assert config == {"seq_length": 7, "batch_size": 3, "learning_rate": 0.02,
                      "optimizer": "adagrad", "clip": 1.5, "clip_norm": 3.0,
                      "lr_schedule": "step", "total_steps": 50, "warmup_steps": 4,
                      "total_seconds": None, "lr_floor": 0.1,
                      "lr_decay": 0.8, "weight_decay": 0.0, "average": None,
                      "average_start": 0}
