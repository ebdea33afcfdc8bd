"""rnncore.config: every setting's one validation, its table, what a checkpoint stores."""
import dataclasses

import pytest

import rnncore
from rnncore.config import (RUN_DEFAULTS, SETTINGS, TRAIN_DEFAULTS, ModelConfig, TrainConfig,
                            field_of, parse_text, problem)


@pytest.mark.parametrize("name, bad, says", [
    ("cell", "vanilla", "cell must be one of rnn, lstm, gru, got 'vanilla'"),
    ("num_layers", 0, "num_layers must be a positive integer, got 0"),
    ("hidden_size", 2.5, "hidden_size must be a positive integer, got 2.5"),
    ("dropout", 1.0, "dropout must be in [0, 1), got 1"),
    ("dtype", "float16", "dtype must be one of float32, float64, got 'float16'")])
def test_the_model_settings_are_checked(name, bad, says):
    with pytest.raises(rnncore.ConfigError) as e:
        ModelConfig(**{name: bad})
    assert str(e.value) == says


@pytest.mark.parametrize("name, bad, says", [
    ("seq_length", True, "seq_length must be a positive integer, got True"),
    ("optimizer", "lbfgs", "optimizer must be one of sgd, adagrad, rmsprop, adam, got 'lbfgs'"),
    ("val_fraction", 1, "val_fraction must be in [0, 1), got 1"),
    ("learning_rate", 0, "learning_rate must be > 0, got 0"),
    ("learning_rate", float("inf"), "learning_rate must be finite, got inf"),
    ("clip", -1, "clip must be >= 0, got -1"),
    ("clip_norm", 0, "clip_norm must be > 0, got 0"),
    ("lr_schedule", "exponential",
     "lr_schedule must be one of constant, step, cosine, linear, got 'exponential'"),
    ("lr_floor", 1.0, "lr_floor must be in [0, 1), got 1"),
    ("lr_floor", -0.1, "lr_floor must be in [0, 1), got -0.1"),
    ("lr_decay", 0, "lr_decay must be in (0, 1], got 0"),
    ("warmup_steps", -1, "warmup_steps must be >= 0, got -1"),
    ("seed", 1.5, "seed must be an integer, got 1.5"),
    ("eval_every", 0, "eval_every must be a positive integer, got 0"),
    ("keep_best", 1, "keep_best must be True or False, got 1"),
    ("patience", 0, "patience must be a positive integer, got 0"),
    ("minutes", -2, "minutes must be > 0, got -2")])
def test_the_training_settings_are_checked(name, bad, says):
    with pytest.raises(rnncore.ConfigError) as e:
        TrainConfig(**{name: bad})
    assert str(e.value) == says


def test_one_budget_at_most():
    with pytest.raises(rnncore.ConfigError, match="^give one budget, not --steps and "
                                                  "--minutes$"):
        TrainConfig(steps=3, minutes=1.0)


def test_none_is_a_value_only_where_a_setting_may_be_off():
    TrainConfig(clip_norm=None, patience=None, steps=None)
    with pytest.raises(rnncore.ConfigError, match="learning_rate must be given"):
        TrainConfig(learning_rate=None)


def test_numbers_are_stored_as_their_kind():
    t = TrainConfig(learning_rate=1, clip=0, lr_decay=1)
    assert (type(t.learning_rate), type(t.clip), type(t.lr_decay)) == (float, float, float)


def test_the_tables_come_from_the_fields():
    assert tuple(TRAIN_DEFAULTS) == SETTINGS
    assert TRAIN_DEFAULTS == {**ModelConfig().as_dict(), **{
        k: v for k, v in TrainConfig().as_dict().items() if k in SETTINGS}}
    assert set(RUN_DEFAULTS) == {"eval_every", "print_every", "checkpoint_every",
                                 "keep_best", "patience", "steps", "epochs", "minutes"}
    for f in dataclasses.fields(ModelConfig):
        assert f.metadata["resume"] == "fixed"
    assert field_of("seed").metadata["resume"] == "kept"
    assert rnncore.TRAIN_DEFAULTS == TRAIN_DEFAULTS


def test_what_a_checkpoint_stores_comes_back():
    t = TrainConfig(seq_length=3, keep_best=True, patience=2, steps=50, eval_every=7)
    stored = t.stored()
    assert "steps" not in stored and stored["patience"] == 2
    assert TrainConfig.from_stored({**stored, "total_steps": 50}) == t.replace(steps=None)


@pytest.mark.parametrize("kind, text, value", [
    ("positive_int", "3", 3), ("nonnegative_int", "0", 0), ("int", "-4", -4),
    ("positive_float", "2e-3", 0.002), ("nonnegative_float", "0", 0.0),
    ("fraction", "0.5", 0.5), ("decay", "1", 1.0)])
def test_the_command_lines_text_is_parsed_by_kind(kind, text, value):
    assert parse_text(kind, text) == value and problem(kind, value) is None


@pytest.mark.parametrize("kind, text, says", [
    ("positive_int", "ten", "'ten' is not an integer"),
    ("positive_float", "x", "'x' is not a number"),
    ("positive_float", "nan", "must be finite, got nan")])
def test_bad_text_says_what_it_is(kind, text, says):
    with pytest.raises(rnncore.ConfigError) as e:
        parse_text(kind, text)
    assert str(e.value) == says


def test_an_average_of_decay_zero_is_no_average():
    assert TrainConfig(average=0).average is None
    assert TrainConfig(average=0.0).replace(average=0.5).average == 0.5
    assert TrainConfig().average == 0.999        # on by default


def test_the_seed_preset_trains_without_any_regulariser():
    # the bare CharRNN(vocab) / Trainer(model, text) must not pick up train's defaults
    from rnncore.config import SEED_MODEL, SEED_TRAINING
    assert (SEED_MODEL.cell, SEED_MODEL.num_layers, SEED_MODEL.hidden_size,
            SEED_MODEL.dtype) == ("rnn", 1, 64, "float64")
    assert (SEED_MODEL.dropout, SEED_MODEL.weight_drop) == (0.0, 0.0)
    assert (SEED_TRAINING.optimizer, SEED_TRAINING.seq_length, SEED_TRAINING.batch_size,
            SEED_TRAINING.learning_rate) == ("sgd", 10, 1, 1e-2)
    assert (SEED_TRAINING.weight_decay, SEED_TRAINING.average) == (0.0, None)
