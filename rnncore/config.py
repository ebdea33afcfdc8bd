"""Every setting of a model and of a training run, once: its default, its range, whether
`--resume` may change it, and its help.  One validation (`__post_init__`) serves the
library and the command line; `rnncore train`'s flags and types, `fit()`'s keywords,
`TRAIN_DEFAULTS` and the configuration a checkpoint stores are all read from here.

    ModelConfig   what the model is (cell, layers, units, dropout, dtype)
    TrainConfig   how it is trained (window, streams, optimizer, schedule, clips, seed)
                  and the run-level settings a resume keeps (validation cadence,
                  keep-best, patience, budgets)

resume:  "fixed"  must match the checkpoint (a different value is an error)
         "free"   may change on --resume; if not given, the checkpoint's value is kept
         "kept"   the checkpoint's, never asked again (a value given is not used)

Floor 1: imports nothing from rnncore but its errors and the model layout.
"""
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .errors import ConfigError
from .layout import CELLS, DTYPES

#: the update rules (rnncore.optim implements one class per name) and LR schedules
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "cosine", "linear")
DROPOUT_MODES = ("step", "locked")
DEFAULT_STEPS = 10000          # a fresh run's budget when none is given


# ---- the checks: each returns None, or what is wrong ("must be > 0, got 0") ----------
def _is_integer(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, (int, float, np.integer, np.floating)) \
        and not isinstance(value, bool)


def _int_problem(value, low):
    if low == 1 and not (_is_integer(value) and value >= 1):
        return f"must be a positive integer, got {value!r}"
    if not _is_integer(value):
        return f"must be an integer >= {low}, got {value!r}"
    if value < low:
        return f"must be >= {low}, got {value}"
    return None


def _real_problem(value, low=None, high=None, low_open=False, high_open=False):
    if not _is_real(value):
        return f"must be a number, got {value!r}"
    if not math.isfinite(value):
        return f"must be finite, got {value}"
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if not (below or above):
        return None
    if high is None:
        return f"must be {'>' if low_open else '>='} {low:g}, got {value:g}"
    return (f"must be in {'(' if low_open else '['}{low:g}, {high:g}"
            f"{')' if high_open else ']'}, got {value:g}")


#: kind -> (parse the command line's text, what is wrong with a value or None)
KINDS = {
    "positive_int": (int, lambda v: _int_problem(v, 1)),
    "nonnegative_int": (int, lambda v: _int_problem(v, 0)),
    "int": (int, lambda v: None if _is_integer(v) else f"must be an integer, got {v!r}"),
    "positive_float": (float, lambda v: _real_problem(v, 0, low_open=True)),
    "nonnegative_float": (float, lambda v: _real_problem(v, 0)),
    "fraction": (float, lambda v: _real_problem(v, 0, 1, high_open=True)),
    "decay": (float, lambda v: _real_problem(v, 0, 1, low_open=True)),
    "choice": (str, lambda v: None),
    "flag": (bool, lambda v: None if isinstance(v, bool) else f"must be True or False, "
             f"got {v!r}"),
}
RANGES = {"positive_int": ">= 1", "nonnegative_int": ">= 0", "int": "any integer",
          "positive_float": "> 0", "nonnegative_float": ">= 0", "fraction": "[0, 1)",
          "decay": "(0, 1]"}


def problem(kind, value, choices=None, optional=False):
    """What is wrong with `value` as a setting of this kind (None: nothing)."""
    if value is None:
        return None if optional else "must be given"
    if choices is not None:
        return None if value in choices else (f"must be one of {', '.join(choices)}, "
                                              f"got {value!r}")
    return KINDS[kind][1](value)


def parse_text(kind, text, choices=None):
    """The command line's text as a value of the kind, checked (ConfigError: what is
    wrong, without the setting's name, which argparse adds)."""
    convert = KINDS[kind][0]
    try:
        value = convert(text)
    except ValueError:
        noun = "an integer" if convert is int else "a number"
        raise ConfigError(f"{text!r} is not {noun}") from None
    wrong = problem(kind, value, choices)
    if wrong:
        raise ConfigError(wrong)
    return value


def setting(default, kind, resume, help, choices=None, optional=False, stored=True):
    """A dataclass field that is a setting.  optional: None is a value (off / not
    given); stored: the checkpoint keeps it for a resume."""
    return field(default=default, metadata={
        "kind": kind, "resume": resume, "help": help, "choices": choices,
        "optional": optional, "stored": stored})


def _validate(config):
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        m = f.metadata
        wrong = problem(m["kind"], value, m["choices"], m["optional"])
        if wrong:
            raise ConfigError(f"{f.name} {wrong}")
        if m["kind"] in ("positive_float", "nonnegative_float", "fraction", "decay") \
                and value is not None:
            object.__setattr__(config, f.name, float(value))
        elif m["kind"].endswith("int") and value is not None:
            object.__setattr__(config, f.name, int(value))


class _Settings:
    """What ModelConfig and TrainConfig share."""

    def __post_init__(self):
        _validate(self)

    @classmethod
    def fields(cls: Any) -> Tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    @classmethod
    def names(cls):
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in self.fields()}


@dataclass(frozen=True)
class ModelConfig(_Settings):
    """What the model is.  Every field is fixed by the checkpoint on --resume."""
    # the recurrent cell: PyTorch's equations, gate order and bias placement
    cell: str = setting("lstm", "choice", "fixed", "recurrent cell: rnn (tanh), lstm or gru",
                        choices=CELLS)
    # recurrent layers, stacked; the decoder reads the top one
    num_layers: int = setting(2, "positive_int", "fixed", "stacked recurrent layers")
    # H: units of every layer
    hidden_size: int = setting(384, "positive_int", "fixed", "hidden units (of every layer)")
    # p of dropping each layer's output (inverted scaling), in training only
    dropout: float = setting(0.25, "fraction", "fixed", "drop each layer's output with this "
                             "probability while training (inverted dropout, never on the "
                             "recurrent connection)")
    # step: a fresh output mask at every time step; locked: one mask per window, the same
    # at every step (variational dropout, Gal & Ghahramani 2016; AWD-LSTM's LockedDropout)
    dropout_mode: str = setting("locked", "choice", "fixed", "step: a fresh dropout mask at "
                                "every time step; locked: one mask per window (variational)",
                                choices=DROPOUT_MODES)
    # p of dropping each recurrent weight (DropConnect on Whh, one mask per window, inverted
    # scaling), in training only: AWD-LSTM's weight drop
    weight_drop: float = setting(0.2, "fraction", "fixed", "drop each recurrent weight (Whh) "
                                 "with this probability while training, one mask per "
                                 "window (DropConnect, AWD-LSTM's weight drop)")
    # parameter precision
    dtype: str = setting("float32", "choice", "fixed", "parameter precision", choices=DTYPES)


@dataclass(frozen=True)
class TrainConfig(_Settings):
    """How the model is trained, and what a run does around the training."""
    # ---- the streams (fixed: a resumed run continues the same windows) ----
    # T: time steps per window (backpropagation through time this far)
    seq_length: int = setting(50, "positive_int", "fixed", "time steps per window")
    # B: parallel streams over the corpus, in all MPI ranks together
    batch_size: int = setting(32, "positive_int", "fixed",
                              "parallel streams (over MPI: in all ranks)")
    # the update rule; its state is in the checkpoint
    optimizer: str = setting("adam", "choice", "fixed", "update rule", choices=OPTIMIZERS)
    # the end of the corpus held out for validation
    val_fraction: float = setting(0.05, "fraction", "fixed", "hold out this last fraction "
                                  "of the corpus for validation (0: none)")
    # ---- the optimisation (free: may change on --resume) ----
    # the base step size
    learning_rate: float = setting(2e-3, "positive_float", "free", "step size")
    # elementwise gradient clip; 0 turns it off
    clip: float = setting(5.0, "nonnegative_float", "free",
                          "clip each gradient element to [-C, C]; 0: off")
    # clip of the joint L2 norm of all gradients; None: off
    clip_norm: Optional[float] = setting(None, "positive_float", "free", "clip the joint L2 "
                                         "norm of all gradients", optional=True)
    # the learning-rate schedule
    lr_schedule: str = setting("constant", "choice", "free", "constant, step (x lr-decay "
                               "per epoch, char-rnn's), cosine or linear (down to "
                               "lr-floor x the rate at the end of the budget: the last "
                               "step, or with --minutes the last second)",
                               choices=SCHEDULES)
    # where cosine and linear end, as a fraction of the rate
    lr_floor: float = setting(0.1, "fraction", "free", "the fraction of the rate the cosine "
                              "and linear schedules end at")
    # the step schedule's factor per epoch
    lr_decay: float = setting(0.97, "decay", "free", "factor per epoch for the step schedule")
    # steps of linear warm-up from 0
    warmup_steps: int = setting(0, "nonnegative_int", "free",
                                "linear warm-up from 0 over this many steps")
    # decoupled weight decay of the weight matrices (AdamW's), per unit of learning rate
    weight_decay: float = setting(0.1, "nonnegative_float", "free", "decoupled weight "
                                  "decay of the weight matrices (AdamW's; not the biases)")
    # the exponential moving average of the parameters that validation, --keep-best,
    # sample and export use: its decay per step (None: no averaging)
    average: Optional[float] = setting(0.999, "fraction", "free", "validate, keep and save "
                                       "an exponential moving average of the weights with "
                                       "this decay per step; 0: off (the latest weights)",
                                       optional=True)
    # the first step the average takes in
    average_start: int = setting(1000, "nonnegative_int", "free",
                                 "the step the weight average starts at")
    # seeds the initial parameters and the dropout masks (their generator's state is in
    # the checkpoint, so a resumed run draws what an unbroken one would)
    seed: int = setting(0, "int", "kept", "initialisation seed")
    # ---- the run (free: may change on --resume; kept when not given) ----
    # steps between validations of the held-out text (and at the end)
    eval_every: int = setting(1000, "positive_int", "free",
                              "validate every K steps, and at the end")
    # steps between log records (the train loss is the mean over them)
    print_every: int = setting(100, "positive_int", "free",
                               "log every K steps; the train loss is the mean over them")
    # steps between checkpoint saves (also at the end and on Ctrl-C)
    checkpoint_every: int = setting(1000, "positive_int", "free", "save every K steps")
    # store the best-validation parameters beside the latest (sample and eval use them)
    keep_best: bool = setting(False, "flag", "free", "keep the best-validation parameters "
                              "in the checkpoint; sample and eval use them")
    # stop at the N-th validation in a row without improvement; None: never
    patience: Optional[int] = setting(None, "positive_int", "free", "stop after N "
                                      "validations in a row without improvement",
                                      optional=True)
    # ---- the budget: one of these, in all (over resumes); None: the default ----
    # optimizer steps in all (a fresh run's default: DEFAULT_STEPS)
    steps: Optional[int] = setting(None, "positive_int", "free", "total optimizer steps",
                                   optional=True, stored=False)
    # passes over the training text in all
    epochs: Optional[int] = setting(None, "positive_int", "free", "passes over the "
                                    "training text in all", optional=True, stored=False)
    # training minutes of this invocation
    minutes: Optional[float] = setting(None, "positive_float", "free", "minutes of training "
                                       "in this invocation", optional=True, stored=False)

    def __post_init__(self):
        super().__post_init__()
        if self.average == 0:        # an average of decay 0 is the latest weights: off
            object.__setattr__(self, "average", None)
        budgets = [name for name in ("steps", "epochs", "minutes")
                   if getattr(self, name) is not None]
        if len(budgets) > 1:
            raise ConfigError(f"give one budget, not {' and '.join(flag(b) for b in budgets)}")

    def stored(self):
        """What the checkpoint keeps for a resume (the budget travels as total_steps)."""
        return {f.name: getattr(self, f.name) for f in self.fields() if f.metadata["stored"]}

    @classmethod
    def from_stored(cls, stored):
        """The TrainConfig a checkpoint's training configuration describes (keys it
        lacks, from older versions, take their defaults, but for the regularisers added
        since, which an older run trained without: ABSENT_FROM_OLDER; keys it has beyond
        these, such as total_steps, are left to the caller)."""
        names = {f.name for f in cls.fields() if f.metadata["stored"]}
        return cls(**{**ABSENT_FROM_OLDER,
                      **{k: v for k, v in stored.items() if k in names}})


#: the seed's settings (min-char-rnn's model, a vanilla rnn of one layer in float64, trained
#: by plain SGD over 10-step windows of one stream, clipped at 5): what CharRNN(vocab) and
#: Trainer(model, text) build when given no config.  `rnncore train` and fit() start from
#: ModelConfig() and TrainConfig() instead, the settings chosen for real corpora.
SEED_MODEL = ModelConfig(cell="rnn", num_layers=1, hidden_size=64, dropout=0.0,
                         dropout_mode="step", weight_drop=0.0, dtype="float64")
SEED_TRAINING = TrainConfig(seq_length=10, batch_size=1, learning_rate=1e-2,
                            optimizer="sgd", clip=5.0, seed=0, weight_decay=0.0,
                            average=None, average_start=0, lr_schedule="constant")
PRESETS = {"seed": (SEED_MODEL, SEED_TRAINING)}

#: what a checkpoint written before a setting existed trained with (off), where that is not
#: the setting's default now
ABSENT_FROM_OLDER = {"weight_decay": 0.0, "average": None, "average_start": 0,
                     "lr_floor": 0.0}

#: the settings fit() takes by name (and their defaults): the model's and the training's
SETTINGS = ModelConfig.names() + tuple(
    f.name for f in TrainConfig.fields()
    if f.name in ("seq_length", "batch_size", "optimizer", "val_fraction", "learning_rate",
                  "clip", "clip_norm", "lr_schedule", "lr_floor", "lr_decay", "warmup_steps",
                  "weight_decay", "average", "average_start", "seed"))
#: run-level fields: fit()'s own keywords
RUN_FIELDS = tuple(n for n in TrainConfig.names() if n not in SETTINGS)
_ALL_FIELDS = {f.name: f for f in ModelConfig.fields() + TrainConfig.fields()}
TRAIN_DEFAULTS = {name: _ALL_FIELDS[name].default for name in SETTINGS}
RUN_DEFAULTS = {name: _ALL_FIELDS[name].default for name in RUN_FIELDS}


def field_of(name):
    """The dataclass field of a setting, by name."""
    return _ALL_FIELDS[name]


def all_fields():
    return tuple(_ALL_FIELDS.values())


def flag(name):
    """The command line's flag of a setting: hidden_size -> --hidden-size."""
    return "--" + name.replace("_", "-")


def split_settings(values):
    """(ModelConfig keywords, TrainConfig keywords) of a dict of setting values."""
    model_names = set(ModelConfig.names())
    return ({k: v for k, v in values.items() if k in model_names},
            {k: v for k, v in values.items() if k not in model_names})


# ---- for the library's own argument checks (one wording everywhere) ------------------
def check_int(value, name, low=1):
    """int(value) for an integer (not a bool) >= low, else ConfigError naming `name`."""
    wrong = _int_problem(value, low)
    if wrong:
        raise ConfigError(f"{name} {wrong}")
    return int(value)


def check_number(value, name, low=None, high=None, low_open=False, high_open=False):
    """float(value) for a finite number in the range, else ConfigError naming `name`."""
    wrong = _real_problem(value, low, high, low_open, high_open)
    if wrong:
        raise ConfigError(f"{name} {wrong}")
    return float(value)


def check_choice(value, name, choices):
    wrong = problem("choice", value, choices)
    if wrong:
        raise ConfigError(f"{name} {wrong}")
    return value
