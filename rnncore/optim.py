"""Optimizers: in-place parameter updates, each a compiled kernel per parameter array.

Every optimizer holds its state as arrays shaped like the parameters, so a checkpoint can
store it (state_dict) and resume bit for bit (load_state_dict).
"""
import numpy as np

from . import _kernels
from .config import OPTIMIZERS as OPTIMIZER_NAMES
from .errors import ConfigError
from .layout import FUSED


class Optimizer:
    name = None
    slots = ()           # names of the per-parameter state arrays
    defaults = {}        # hyper-parameters besides the learning rate

    def __init__(self, model, **hyper):
        unknown = set(hyper) - set(self.defaults)
        if unknown:
            raise ConfigError(f"{self.name} has no option(s) {sorted(unknown)}")
        self.hyper = {**self.defaults, **hyper}
        self.model = model
        self.step_count = 0
        self.state = {slot: model.zeros_like_params() for slot in self.slots}
        self._kernel = getattr(_kernels, f"{self.name}_update")[FUSED[model.dtype]]

    def step(self, grads, lr):
        """Apply one update with learning rate lr to every model parameter, in place."""
        self.step_count += 1
        for name, param in self.model.params.items():
            self._update(param.reshape(-1), grads[name].reshape(-1), name, lr)

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

    def _update(self, p, g, name, lr):
        self._kernel(p, g, lr)


class Adagrad(Optimizer):
    """mem += grad²; param -= lr · grad / sqrt(mem + eps)  (min-char-rnn's)"""
    name, slots, defaults = "adagrad", ("mem",), {"eps": 1e-8}

    def _update(self, p, g, name, lr):
        self._kernel(p, g, self.state["mem"][name].reshape(-1), lr, self.hyper["eps"])


class RMSprop(Optimizer):
    """mean_sq = decay·mean_sq + (1-decay)·grad²; param -= lr · grad / (sqrt(mean_sq) + eps)
    (char-rnn's, decay 0.95)"""
    name, slots, defaults = "rmsprop", ("mean_sq",), {"decay": 0.95, "eps": 1e-8}

    def _update(self, p, g, name, lr):
        self._kernel(p, g, self.state["mean_sq"][name].reshape(-1), lr,
                     self.hyper["decay"], self.hyper["eps"])


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba 2015)."""
    name, slots = "adam", ("m", "v")
    defaults = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

    def _update(self, p, g, name, lr):
        h = self.hyper
        self._kernel(p, g, self.state["m"][name].reshape(-1), self.state["v"][name].reshape(-1),
                     lr, h["beta1"], h["beta2"], h["eps"], self.step_count)


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adagrad, RMSprop, Adam)}
assert tuple(OPTIMIZERS) == OPTIMIZER_NAMES   # the config lists what is implemented here


def make_optimizer(name, model, **hyper):
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](model, **hyper)


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
