"""plan_run, the run's decision without training: what a resume keeps, what it may
change, which budget it trains to.  Exact values, no training."""
import pytest

import rnncore
from rnncore.config import DEFAULT_STEPS, TrainConfig
from rnncore.plan import plan_run
from rnncore.run import RunError


class FakeCheckpoint:
    """What plan_run reads of a rnncore.Checkpoint."""

    def __init__(self, model_config, train_config):
        self.model = rnncore.CharRNN(rnncore.Vocab.from_text("abcdef"), seed=0,
                                     **model_config)
        self.train_meta = {"config": train_config}


SAVED_MODEL = {"cell": "lstm", "num_layers": 1, "hidden_size": 8, "dropout": 0.2,
               "dropout_mode": "locked", "weight_drop": 0.3, "dtype": "float64"}
SAVED_TRAIN = {**TrainConfig(seq_length=7, batch_size=3, optimizer="rmsprop",
                             val_fraction=0.1, learning_rate=0.01, clip=2.0, clip_norm=4.0,
                             lr_schedule="step", lr_decay=0.9, warmup_steps=5, seed=11,
                             eval_every=30, print_every=7, checkpoint_every=60,
                             keep_best=True, patience=4, weight_decay=0.1, average=0.99,
                             average_start=50).stored(), "total_steps": 300}


def resumed(**given):
    return plan_run(given, FakeCheckpoint(SAVED_MODEL, SAVED_TRAIN))


def test_a_fresh_plan_is_the_defaults_and_what_was_given():
    plan = plan_run({"hidden_size": 32, "keep_best": True, "eval_every": None})
    assert plan.model == rnncore.ModelConfig(hidden_size=32) and not plan.resumed
    assert plan.train == TrainConfig(keep_best=True)
    assert plan.target(steps_per_epoch=17) == DEFAULT_STEPS


def test_a_resume_keeps_every_setting_it_is_not_given():
    plan = resumed()
    assert plan.model.as_dict() == SAVED_MODEL
    stored = plan.train.stored()
    assert stored == {k: v for k, v in SAVED_TRAIN.items() if k != "total_steps"}
    assert plan.target(steps_per_epoch=17) == 300 == plan.stored_total


@pytest.mark.parametrize("name, value", [
    ("learning_rate", 0.5), ("clip", 0.0), ("clip_norm", 1.5), ("lr_schedule", "cosine"),
    ("lr_schedule", "linear"), ("lr_floor", 0.1),
    ("lr_decay", 0.5), ("warmup_steps", 0), ("eval_every", 5), ("print_every", 1),
    ("checkpoint_every", 9), ("keep_best", False), ("patience", 1), ("weight_decay", 0.0),
    ("average", 0.5), ("average_start", 0)])
def test_a_resume_takes_a_free_setting_given(name, value):
    plan = resumed(**{name: value})
    assert getattr(plan.train, name) == value
    others = {k: v for k, v in plan.train.stored().items() if k != name}
    assert others == {k: v for k, v in SAVED_TRAIN.items() if k not in (name, "total_steps")}


@pytest.mark.parametrize("name, value", [
    ("cell", "gru"), ("num_layers", 2), ("hidden_size", 9), ("dropout", 0.0),
    ("dropout_mode", "step"), ("weight_drop", 0.0),
    ("dtype", "float32"), ("seq_length", 8), ("batch_size", 4), ("optimizer", "adam"),
    ("val_fraction", 0.05)])
def test_a_resume_refuses_another_value_of_a_fixed_setting(name, value):
    flag = "--" + name.replace("_", "-")
    saved = {**SAVED_MODEL, **SAVED_TRAIN}[name]
    with pytest.raises(RunError) as e:
        resumed(**{name: value})
    assert str(e.value) == (
        f"{flag} {value} conflicts with the checkpoint's {saved} (a resumed run keeps its "
        "model and streams; only --learning-rate, --clip, --clip-norm, --lr-schedule, "
        "--lr-floor, --lr-decay, --warmup-steps, --weight-decay, --average, --average-start may "
        "change)")


@pytest.mark.parametrize("name", ["cell", "hidden_size", "optimizer", "val_fraction"])
def test_the_same_value_of_a_fixed_setting_is_no_conflict(name):
    saved = {**SAVED_MODEL, **SAVED_TRAIN}[name]
    assert getattr(resumed(**{name: saved}).model if name in SAVED_MODEL
                   else resumed(**{name: saved}).train, name) == saved


def test_the_seed_is_always_the_checkpoints():
    assert resumed(seed=99).train.seed == 11


def test_budgets_of_a_resume():
    assert resumed(steps=500).target(17) == 500
    assert resumed(epochs=3).target(17) == 51
    plan = resumed(minutes=2.0)
    assert plan.target(17) is None and plan.total_steps(17) == 300   # the cosine's end
    assert resumed(steps=500).total_steps(17) == 500


def test_a_run_against_the_clock_needs_a_budget_again():
    clock = {**SAVED_TRAIN, "total_steps": None}
    with pytest.raises(RunError, match="trained against the clock: give its budget"):
        plan_run({}, FakeCheckpoint(SAVED_MODEL, clock), "m.npz")
    assert plan_run({"steps": 40}, FakeCheckpoint(SAVED_MODEL, clock)).target(5) == 40


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_a_decaying_schedule_over_minutes_follows_the_clock_to_their_end(schedule):
    plan = plan_run({"lr_schedule": schedule, "minutes": 1.5})
    assert plan.target(17) is None and plan.total_steps(17) is None
    assert plan.total_seconds(0.0) == 90.0 and plan.minutes(0.0) == 1.5
    # a resume given --minutes: this invocation's minutes, after the time already spent
    again = resumed(lr_schedule=schedule, minutes=2.0)
    assert again.total_seconds(125.0) == 245.0 and again.minutes(125.0) == 2.0
    assert again.total_steps(17) == 300            # (a schedule over steps: its old end)
    # a budget of steps has no end in time
    assert resumed(steps=500).total_seconds(125.0) is None is resumed().minutes(125.0)


def test_a_resume_without_a_budget_trains_on_to_the_time_its_run_was_started_towards():
    clock = {**SAVED_TRAIN, "total_steps": None, "total_seconds": 1200.0}
    plan = plan_run({}, FakeCheckpoint(SAVED_MODEL, clock))
    assert plan.continues_clock and plan.target(17) is None
    assert plan.total_seconds(300.0) == 1200.0 and plan.minutes(300.0) == 15.0
    assert plan.minutes(1200.0) == 0.0             # nothing left: the run says so
    # a budget given replaces it
    assert plan_run({"minutes": 1.0}, FakeCheckpoint(SAVED_MODEL, clock)).total_seconds(
        300.0) == 360.0
    assert plan_run({"steps": 9}, FakeCheckpoint(SAVED_MODEL, clock)).minutes(300.0) is None


@pytest.mark.parametrize("bad", [-1.0, 0, "20", float("nan"), True])
def test_a_stored_time_budget_that_is_not_a_positive_number_is_refused(bad):
    clock = {**SAVED_TRAIN, "total_steps": None, "total_seconds": bad}
    with pytest.raises(RunError, match=r"cannot resume: m.npz holds total_seconds = .*, not "
                                       "a positive number of seconds"):
        plan_run({}, FakeCheckpoint(SAVED_MODEL, clock), "m.npz")


def test_an_old_checkpoints_configuration_takes_the_defaults_it_lacks():
    old = {k: SAVED_TRAIN[k] for k in ("seq_length", "batch_size", "learning_rate",
                                       "optimizer", "clip", "total_steps")}
    plan = plan_run({}, FakeCheckpoint(SAVED_MODEL, old))
    assert plan.train.eval_every == TrainConfig().eval_every and plan.train.keep_best is False
    # the regularisers added since: off, as the old run trained, not today's defaults
    assert (plan.train.weight_decay, plan.train.average, plan.train.average_start) == (
        0.0, None, 0)
    assert plan.train.val_fraction == 0.05 and plan.train.patience is None
