"""Optimizers: in-place parameter updates, each a compiled kernel per parameter array.

Every optimizer holds its state as arrays shaped like the parameters, so a checkpoint can
store it (state_dict) and resume bit for bit (load_state_dict).  weight_decay is
decoupled (AdamW's: param ← param·(1 - lr·weight_decay) before the update) and applies to
the weight matrices only (the names starting with W), never to the biases, as nanoGPT and
AWD-LSTM decay.  WeightAverage keeps an exponential moving average of the parameters.
"""
from typing import Dict, Optional, Tuple

import numpy as np

from . import _kernels
from .config import OPTIMIZERS as OPTIMIZER_NAMES
from .errors import ConfigError
from .layout import FUSED


class Optimizer:
    name: str = ""
    slots: Tuple[str, ...] = ()           # names of the per-parameter state arrays
    defaults: Dict[str, float] = {}       # hyper-parameters besides the learning rate

    def __init__(self, model, weight_decay: float = 0.0, **hyper):
        unknown = set(hyper) - set(self.defaults)
        if unknown:
            raise ConfigError(f"{self.name} has no option(s) {sorted(unknown)}")
        self.hyper = {**self.defaults, **hyper}
        self.weight_decay = float(weight_decay)
        self.model = model
        self.step_count = 0
        self.state = {slot: model.zeros_like_params() for slot in self.slots}
        self._kernel = getattr(_kernels, f"{self.name}_update")[FUSED[model.dtype]]

    def step(self, grads, lr):
        """Apply one update with learning rate lr to every model parameter, in place."""
        self.step_count += 1
        for name, param in self.model.params.items():
            self._update(param.reshape(-1), grads[name].reshape(-1), name, lr,
                         self.weight_decay if decays(name) else 0.0)

    def state_dict(self):
        """{"<slot>.<param>": array} plus {"step_count": int}."""
        arrays = {f"{slot}.{name}": a for slot, d in self.state.items() for name, a in d.items()}
        return arrays, {"name": self.name, "step_count": self.step_count, "hyper": self.hyper}

    def load_state_dict(self, arrays, meta):
        if meta.get("name") != self.name:
            raise ValueError(f"optimizer state is for {meta.get('name')!r}, not {self.name!r}")
        for slot, d in self.state.items():
            for name, a in d.items():
                key = f"{slot}.{name}"
                if key not in arrays:
                    raise ValueError(f"optimizer state lacks {key!r}")
                src = arrays[key]
                if src.shape != a.shape or src.dtype != a.dtype:
                    raise ValueError(f"optimizer state {key!r} has shape {src.shape} and "
                                     f"dtype {src.dtype}, expected {a.shape} {a.dtype}")
                a[...] = src
        self.step_count = int(meta["step_count"])


class SGD(Optimizer):
    """param -= lr · grad  (min-char-rnn's plain step)"""
    name = "sgd"

    def _update(self, p, g, name, lr, wd):
        self._kernel(p, g, lr, wd)


class Adagrad(Optimizer):
    """mem += grad²; param -= lr · grad / sqrt(mem + eps)  (min-char-rnn's)"""
    name, slots, defaults = "adagrad", ("mem",), {"eps": 1e-8}

    def _update(self, p, g, name, lr, wd):
        self._kernel(p, g, self.state["mem"][name].reshape(-1), lr, self.hyper["eps"], wd)


class RMSprop(Optimizer):
    """mean_sq = decay·mean_sq + (1-decay)·grad²; param -= lr · grad / (sqrt(mean_sq) + eps)
    (char-rnn's, decay 0.95)"""
    name, slots, defaults = "rmsprop", ("mean_sq",), {"decay": 0.95, "eps": 1e-8}

    def _update(self, p, g, name, lr, wd):
        self._kernel(p, g, self.state["mean_sq"][name].reshape(-1), lr,
                     self.hyper["decay"], self.hyper["eps"], wd)


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba 2015)."""
    name, slots = "adam", ("m", "v")
    defaults = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

    def _update(self, p, g, name, lr, wd):
        h = self.hyper
        self._kernel(p, g, self.state["m"][name].reshape(-1), self.state["v"][name].reshape(-1),
                     lr, h["beta1"], h["beta2"], h["eps"], self.step_count, wd)


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adagrad, RMSprop, Adam)}
assert tuple(OPTIMIZERS) == OPTIMIZER_NAMES   # the config lists what is implemented here


def decays(name: str) -> bool:
    """Whether weight decay applies to the parameter `name`: the weight matrices (Wxh,
    Whh, Why and their layers'), not the biases."""
    return name.startswith("W")


def make_optimizer(name, model, weight_decay: float = 0.0, **hyper) -> Optimizer:
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](model, weight_decay, **hyper)


class WeightAverage:
    """An exponential moving average of a model's parameters (Polyak averaging as
    AWD-LSTM's ASGD and PyTorch's swa_utils EMA do it): after every optimizer step from
    `start` on, average ← average + (1 - decay)·(params - average); at the first such
    step the average is a copy of the parameters.  The averaged parameters are what a
    run validates, keeps as the best and saves for sampling; `arrays` (None before the
    start) is in the checkpoint, so a resumed run continues it bit for bit.

    decay: in (0, 1); 1 - decay is the weight of the newest parameters (0.999 averages
    over roughly the last 1,000 steps).  start: the first step averaged (counting steps
    from 1)."""

    def __init__(self, model, decay: float, start: int = 0):
        self.model, self.decay, self.start = model, float(decay), int(start)
        self.arrays: Optional[Dict[str, np.ndarray]] = None
        self._kernel = _kernels.ema_update

    def update(self, step: int) -> None:
        """Take the parameters after optimizer step `step` into the average."""
        if step < self.start:
            return
        params = self.model.params
        if self.arrays is None:
            self.arrays = {k: v.copy() for k, v in params.items()}
            return
        for name, avg in self.arrays.items():
            self._kernel(avg.reshape(-1), params[name].reshape(-1), self.decay)

    def load(self, arrays: Optional[Dict[str, np.ndarray]]) -> None:
        """Continue from a checkpoint's average (None: not started)."""
        if arrays is None:
            self.arrays = None
            return
        self.arrays = {k: np.array(arrays[k], dtype=v.dtype)
                       for k, v in self.model.params.items()}


def clip_global_norm(grads, max_norm):
    """Scale all gradients together so their joint L2 norm is at most max_norm.
    Returns the norm before scaling."""
    norm = float(np.sqrt(sum(float(np.dot(g.reshape(-1), g.reshape(-1))) for g in grads.values())))
    if norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= g.dtype.type(scale)
    return norm


def clip_gradients(flat, grads, clip, clip_norm):
    """The gradient clipping of a training step, the one place it happens: every element
    of `flat` (the buffer all of `grads` view) to [-clip, clip] (0: off), then the joint
    L2 norm of all to clip_norm (None: off)."""
    if clip:
        np.clip(flat, -clip, clip, out=flat)
    if clip_norm is not None:
        clip_global_norm(grads, clip_norm)
