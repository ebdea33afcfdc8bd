"""rnncore.fit, the training run as a library function: its result and history, budgets,
its arguments, the one table of defaults."""
import math

import pytest

import rnncore
from rnncore.config import SETTINGS, field_of
from rnncore.run import RunError

from support import FOX, quiet_fit, read_log


TEXT = FOX


def test_fit_validates_keeps_best_checkpoints_and_returns_the_history(tmp_path):
    seen = []
    result, lines = quiet_fit(tmp_path, steps=60, keep_best=True, checkpoint_every=25,
                              callback=seen.append)
    assert result.status == "finished" and result.exit_status == 0
    assert result.step == 60 and result.out.endswith("model.npz")
    assert [r["step"] for r in result.history] == list(range(10, 61, 10))
    assert seen == result.history == read_log(tmp_path)
    assert [r["step"] for r in result.history if "val_loss" in r] == [20, 40, 60]
    assert result.best["val_loss"] == min(r["val_loss"] for r in result.history
                                          if "val_loss" in r)
    ckpt = rnncore.load_checkpoint(tmp_path / "model.npz")
    assert ckpt.train_meta["step"] == 60 and ckpt.best_model is not None
    assert lines[-2] == f"saved {tmp_path / 'model.npz'} at step 60"
    assert lines[-1] == (f"best validation {result.best['val_loss']:.4f} nats/char "
                         f"({result.best['val_loss'] / math.log(2):.4f} bits/char) at step "
                         f"{result.best['step']}")


def test_epoch_budget_and_header(tmp_path):
    result, lines = quiet_fit(tmp_path, epochs=2, eval_every=1000)
    trainer_steps_per_epoch = math.ceil(((len(TEXT) - int(len(TEXT) * 0.05) - 1) // 2) / 8)
    assert result.step == 2 * trainer_steps_per_epoch and result.epoch == 2
    header = lines[0].splitlines()
    assert f"{trainer_steps_per_epoch:,} steps per epoch" in header[4]
    assert all(len(line) <= 80 for line in header[1:])   # the first names the corpus path


def test_minutes_budget_stops_and_saves(tmp_path):
    result, lines = quiet_fit(tmp_path, minutes=0.003, eval_every=10**6)
    assert result.status == "finished" and result.step > 0
    assert rnncore.load_checkpoint(tmp_path / "model.npz").train_meta["step"] == result.step
    # resumed without a budget, it trains on to its own minutes: none are left
    again, said = quiet_fit(tmp_path, resume=True)
    assert again.status == "up_to_date" and again.step == result.step
    assert any("has already trained its" in line for line in said)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"steps": 5, "epochs": 1}, RunError, "give one budget, not --steps and --epochs"),
    ({"steps": 0}, rnncore.ConfigError, "steps must be a positive integer, got 0"),
    ({"minutes": -1}, rnncore.ConfigError, "minutes must be > 0, got -1"),
    ({"lr_decay": 1.5}, rnncore.ConfigError, r"lr_decay must be in \(0, 1\], got 1.5"),
    ({"hidden": 3}, TypeError, "unexpected keyword argument 'hidden'"),
])
def test_bad_fit_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        quiet_fit(tmp_path, **kwargs)
    assert not (tmp_path / "model.npz").exists()


def test_one_table_of_defaults_for_the_cli_and_the_library():
    from rnncore import cli
    parser = cli.build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.items()
                 if a[0] == "train")[1]
    helps = {a.dest: a.help for a in train._actions}
    for name in SETTINGS:
        default = field_of(name).default
        assert f"(default {'off' if default is None else default}" in helps[name]
        assert rnncore.TRAIN_DEFAULTS[name] == default


@pytest.mark.parametrize("fraction", [0.0, 0.0003])
def test_a_held_out_part_too_small_to_predict_means_no_validation(tmp_path, fraction):
    # 2,700 characters: 0.0003 holds out 0 of them (under 2: nothing to predict)
    result, lines = quiet_fit(tmp_path, steps=40, val_fraction=fraction, eval_every=10,
                              keep_best=True)
    assert not [r for r in result.history if "val_loss" in r]
    assert result.best is None and "0 held out for validation" in lines[0]
    assert rnncore.load_checkpoint(tmp_path / "model.npz").best_model is None
