"""The loader's edge cases, each a named error or a documented reading."""
import json

import numpy as np
import pytest

import rnncore
from rnncore.checkpoint import CheckpointError, load_checkpoint

from support import quiet_fit, rewrite_npz


@pytest.fixture
def run_checkpoint(tmp_path):
    quiet_fit(tmp_path, steps=20, keep_best=True, cell="rnn", num_layers=1, dropout=0.0)
    return tmp_path / "model.npz"


def test_a_configuration_from_before_the_gated_cells_is_a_single_layer_rnn(tmp_path):
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abc"), 4, seed=0)
    model.save(tmp_path / "m.npz")
    old = {"cell": "vanilla", "hidden_size": 4, "dtype": "float64", "n_vocab": 3}
    rewrite_npz(tmp_path / "m.npz", config=np.array(json.dumps(old)))
    back = load_checkpoint(tmp_path / "m.npz").model
    assert (back.cell, back.num_layers, back.dropout) == ("rnn", 1, 0.0)
    np.testing.assert_array_equal(back.params["Whh"], model.params["Whh"])


def test_a_missing_best_array_is_named(run_checkpoint):
    assert load_checkpoint(run_checkpoint).best_model is not None
    rewrite_npz(run_checkpoint, **{"state.best.Why": None})
    with pytest.raises(CheckpointError, match=r"state\.best\.parameter Why is missing"):
        load_checkpoint(run_checkpoint)


@pytest.mark.parametrize("key, value, named", [
    ("eval_every", 0, "eval_every = 0"), ("keep_best", "yes", "keep_best = 'yes'"),
    ("patience", -1, "patience = -1"), ("lr_decay", 1.5, "lr_decay = 1.5"),
    ("total_steps", 0, "total_steps = 0"), ("print_every", 2.5, "print_every = 2.5")])
def test_a_stored_setting_out_of_range_is_a_malformed_training_state(run_checkpoint, key,
                                                                       value, named):
    meta = load_checkpoint(run_checkpoint).train_meta
    meta["config"][key] = value
    rewrite_npz(run_checkpoint, train=np.array(json.dumps(meta)))
    with pytest.raises(CheckpointError, match=f"the training state is malformed \\({named}"):
        load_checkpoint(run_checkpoint)


@pytest.mark.parametrize("record", [{"val_loss": "x", "step": 3}, {"val_loss": 1.0},
                                    [1.0, 3]])
def test_a_broken_last_validation_is_named(run_checkpoint, record):
    meta = load_checkpoint(run_checkpoint).train_meta
    meta["last_validation"] = record
    rewrite_npz(run_checkpoint, train=np.array(json.dumps(meta)))
    with pytest.raises(CheckpointError, match="last_validation must hold a finite val_loss"):
        load_checkpoint(run_checkpoint)


def test_a_training_state_from_before_the_run_settings_resumes_with_their_defaults(
        run_checkpoint, tmp_path):
    meta = load_checkpoint(run_checkpoint).train_meta
    for key in ("eval_every", "print_every", "checkpoint_every", "keep_best", "patience"):
        del meta["config"][key]
    del meta["last_validation"]
    rewrite_npz(run_checkpoint, train=np.array(json.dumps(meta)))
    result, lines = quiet_fit(tmp_path, resume=True, steps=40, eval_every=None,
                              print_every=None)
    assert [r["step"] for r in result.history] == [40]     # print_every's default 100
    assert "val_loss" in result.history[-1]                  # the budget's end validates


@pytest.mark.parametrize("change, message", [
    ({"format": np.array("another-format")},
     "is not an rnncore checkpoint (no 'rnncore-checkpoint' marker)"),
    ({"format": None}, "is not an rnncore checkpoint (no 'rnncore-checkpoint' marker)"),
    ({"version": None}, "the format version is missing"),
    ({"version": np.array(2)}, "has checkpoint format version 2; this rnncore reads version 1")])
def test_the_format_marker_and_version_are_checked_first(tmp_path, change, message):
    path = tmp_path / "m.npz"
    rnncore.CharRNN(rnncore.Vocab.from_text("abc"), 4, seed=0).save(path)
    rewrite_npz(path, **change)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert str(e.value) in (f"{path} {message}", f"{path}: {message}")
