"""The settings, their ranges and their one validation.

Floor 1: imports nothing from rnncore but its errors and the model layout.
"""
import math

import numpy as np

from .errors import ConfigError

#: the update rules (rnncore.optim implements one class per name) and LR schedules
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "cosine")


def check_int(value, name, low=1):
    """int(value) for an integer (not a bool) >= low, else ConfigError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ConfigError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_number(value, name, low=None, high=None, low_open=False, high_open=False):
    """float(value) for a finite number in the range, else ConfigError naming `name` and
    the range ("must be a finite number in (0, 1]")."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer,
                                                            np.floating))
    number = float(value) if ok else math.nan
    if ok and math.isfinite(number):
        ok = ((low is None or (number > low if low_open else number >= low))
              and (high is None or (number < high if high_open else number <= high)))
    else:
        ok = False
    if not ok:
        raise ConfigError(f"{name} must be a finite number {_range(low, high, low_open, high_open)}"
                          f", got {value!r}")
    return number


def _range(low, high, low_open, high_open):
    if high is None:
        return "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_choice(value, name, choices):
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value
