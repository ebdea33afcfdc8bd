"""A run's plan: what to train (a fresh run's settings, or a resume's merge with the
checkpoint's) and up to which step.  Pure: decided and testable without training.

A resume keeps every setting of the run it continues; rnncore.config says which may
change ("free"), which must match ("fixed") and which stay ("kept").
"""
import math
from dataclasses import dataclass
from typing import Optional

from .config import (DEFAULT_STEPS, SETTINGS, ModelConfig, TrainConfig, field_of, flag,
                     split_settings)
from .errors import RunError

#: the budget settings (the TrainConfig fields a checkpoint stores as total_steps)
BUDGETS = ("steps", "epochs", "minutes")


@dataclass(frozen=True)
class RunPlan:
    """A run decided: the model's and the training's settings, whether it resumes, and
    its budget.  stored_total: the step a resumed run was started towards (None: it was
    trained against the clock); stored_seconds: the training time (seconds, over
    resumes) a resumed run against the clock was started towards (None: unknown, a
    checkpoint from before it was kept, or a run of steps)."""
    model: ModelConfig
    train: TrainConfig
    resumed: bool
    stored_total: Optional[int] = None
    stored_seconds: Optional[float] = None

    @property
    def continues_clock(self):
        """A resume without a budget of a run trained against the clock: it trains on to
        the time its run was started towards."""
        t = self.train
        return (self.resumed and t.steps is None and t.epochs is None and t.minutes is None
                and self.stored_total is None and self.stored_seconds is not None)

    def target(self, steps_per_epoch):
        """The step to train up to (None: until the minutes run out)."""
        t = self.train
        if t.steps is not None:
            return t.steps
        if t.epochs is not None:
            return t.epochs * steps_per_epoch
        if t.minutes is not None:
            return None
        if not self.resumed:
            return DEFAULT_STEPS
        return self.stored_total

    def total_steps(self, steps_per_epoch):
        """Where a decaying schedule over steps ends: the target, or under --minutes the
        total the run was started towards."""
        target = self.target(steps_per_epoch)
        return target if target is not None else self.stored_total

    def total_seconds(self, elapsed):
        """Where a budget of time ends, in training seconds over resumes (a decaying
        schedule follows the clock to it), for a run that has trained `elapsed` seconds
        before this invocation: with --minutes, this invocation's end; for a resume
        without a budget of a run against the clock, the end it was started towards;
        otherwise None (a budget of steps)."""
        if self.train.minutes is not None:
            return elapsed + 60 * self.train.minutes
        return self.stored_seconds if self.continues_clock else None

    def minutes(self, elapsed):
        """This invocation's training minutes (None: a budget of steps)."""
        end = self.total_seconds(elapsed)
        return None if end is None else (end - elapsed) / 60


def check_options(options):
    """ConfigError for any value given (not None) outside its range."""
    model_given, train_given = split_settings({k: v for k, v in options.items()
                                               if v is not None})
    ModelConfig(**model_given)
    TrainConfig(**train_given)


def plan_run(options, checkpoint=None, out="the checkpoint"):
    """The RunPlan for `options` ({setting or run field: value, None = not given}) as a
    fresh run (checkpoint None) or as the resume of `checkpoint` (a rnncore.Checkpoint).

    A resume keeps every setting of the checkpoint's run; a "fixed" one given with
    another value is a RunError, a "free" one given replaces it, a "kept" one (the seed)
    stays.  Raises ConfigError for a value outside its range."""
    given = {k: v for k, v in options.items() if v is not None}
    model_given, train_given = split_settings(given)
    if checkpoint is None:
        plan = RunPlan(ModelConfig(**model_given), TrainConfig(**train_given), False)
    else:
        if checkpoint.train_meta is None:
            raise RunError(f"cannot resume: {out} holds a model without training state")
        stored = checkpoint.train_meta["config"]
        saved_model = ModelConfig(**{k: checkpoint.model.config[k]
                                     for k in ModelConfig.names()})
        saved_train = TrainConfig.from_stored(stored)
        merged = {}
        for name, value in given.items():
            resume = field_of(name).metadata["resume"]
            saved = getattr(saved_model if name in model_given else saved_train, name,
                            None)
            if resume == "fixed" and value != saved:
                free = ", ".join(flag(n) for n in SETTINGS
                                 if field_of(n).metadata["resume"] == "free")
                raise RunError(f"{flag(name)} {value} conflicts with the checkpoint's "
                               f"{saved} (a resumed run keeps its model and streams; only "
                               f"{free} may change)")
            if resume == "free":
                merged[name] = value
        model_changes, train_changes = split_settings(merged)
        plan = RunPlan(saved_model.replace(**model_changes),
                       TrainConfig(**{**saved_train.as_dict(), **train_changes}), True,
                       stored.get("total_steps"), _stored_seconds(stored, out))
        if plan.train.steps is plan.train.epochs is plan.train.minutes is None \
                and plan.stored_total is None and plan.stored_seconds is None:
            raise RunError(f"{out} was trained against the clock: give its budget "
                           "(--steps, --epochs or --minutes)")
    return plan


def _stored_seconds(stored, out):
    """The time budget a checkpoint's run was started towards (None if it has none)."""
    seconds = stored.get("total_seconds")
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not math.isfinite(seconds) or seconds <= 0:
        raise RunError(f"cannot resume: {out} holds total_seconds = {seconds!r}, not a "
                       "positive number of seconds")
    return float(seconds)
