"""Optimizers: in-place parameter updates, each a compiled kernel per parameter array.

Every optimizer holds its state as arrays shaped like the parameters, so a checkpoint can
store it (state_dict) and resume bit for bit (load_state_dict).  weight_decay is
decoupled (AdamW's: param ← param·(1 - lr·weight_decay) before the update) and applies to
the weight matrices only (the names starting with W), never to the biases, as nanoGPT and
AWD-LSTM decay.  WeightAverage keeps an exponential moving average of the parameters.

Every update is elementwise (each element's new value depends on that element's
parameter, gradient and state alone), so the elements are shared out among the thread
team's threads (rnncore.threads: --threads) in contiguous ranges, each range updated by
the compiled kernel with the GIL released: the same bits on any number of threads.
"""
import bisect
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _kernels
from .config import OPTIMIZERS as OPTIMIZER_NAMES
from .errors import ConfigError
from .layout import FUSED
from .threads import get_num_threads

#: below this many elements in all, an update runs on the calling thread alone (handing a
#: range to another thread costs some tens of microseconds)
MIN_SPLIT_ELEMENTS = 1 << 16
#: ranges start at multiples of this many elements (a 64-byte cache line of float32), so
#: no two threads write one cache line
ALIGN = 16

#: one kernel call: (kernel, its array arguments (1-D, equally long), its other arguments)
Call = Tuple[Callable, Sequence[np.ndarray], Tuple]


def element_ranges(sizes: Sequence[int], parts: int) -> List[List[Tuple[int, int, int]]]:
    """Share the elements of arrays of `sizes`, taken in order as one sequence, out into
    `parts` contiguous runs of (nearly) equal length, each cut at a multiple of ALIGN
    within its array: for each part, [(array index, lo, hi)] with lo < hi.  Every element
    is in exactly one part."""
    starts = [0]
    for size in sizes:
        starts.append(starts[-1] + size)
    bounds = [0]
    for k in range(1, parts):
        cut = starts[-1] * k // parts
        home = starts[bisect.bisect_right(starts, cut) - 1]    # the start of cut's array
        bounds.append(home + (cut - home) // ALIGN * ALIGN)
    bounds.append(starts[-1])
    ranges: List[List[Tuple[int, int, int]]] = [[] for _ in range(parts)]
    for index, (start, size) in enumerate(zip(starts, sizes)):
        for k in range(parts):
            lo, hi = max(bounds[k], start) - start, min(bounds[k + 1], start + size) - start
            if lo < hi:
                ranges[k].append((index, lo, hi))
    return ranges


class _Helpers:
    """The threads beside the caller that run a share of an update (created on first
    use, again after a fork: a child process has none of its parent's threads)."""

    def __init__(self):
        self.pool: Optional[ThreadPoolExecutor] = None
        self.size, self.pid = 0, 0

    def get(self, count: int) -> ThreadPoolExecutor:
        if self.pool is None or self.size < count or self.pid != os.getpid():
            self.pool = ThreadPoolExecutor(count, thread_name_prefix="rnncore-update")
            self.size, self.pid = count, os.getpid()
        return self.pool


_HELPERS = _Helpers()


def run_calls(calls: Sequence[Call], threads: Optional[int] = None) -> None:
    """Run every call kernel(*arrays, *rest) with its elements shared out among `threads`
    threads (None: the thread team's size): the caller takes the first range, helper
    threads the others.  Each call must update elements independently of one another."""
    threads = get_num_threads() if threads is None else threads
    sizes = [len(arrays[0]) for _, arrays, _ in calls]
    if threads < 2 or sum(sizes) < MIN_SPLIT_ELEMENTS:
        for kernel, arrays, rest in calls:
            kernel(*arrays, *rest)
        return
    parts = element_ranges(sizes, threads)

    def run(part):
        for index, lo, hi in part:
            kernel, arrays, rest = calls[index]
            kernel(*[a[lo:hi] for a in arrays], *rest)

    pool = _HELPERS.get(threads - 1)
    helpers = [pool.submit(run, part) for part in parts[1:]]
    try:
        run(parts[0])
    finally:
        for done in helpers:
            done.result()


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

    def step(self, grads, lr, threads: Optional[int] = None):
        """Apply one update with learning rate lr to every model parameter, in place, on
        `threads` threads (None: the thread team's size; the same bits on any)."""
        self.step_count += 1
        run_calls([(self._kernel, (param.reshape(-1), grads[name].reshape(-1),
                                   *[self.state[slot][name].reshape(-1)
                                     for slot in self.slots]),
                    self._scalars(lr, self.weight_decay if decays(name) else 0.0))
                   for name, param in self.model.params.items()], threads)

    def _scalars(self, lr, weight_decay) -> Tuple:
        """The kernel's arguments after the arrays (parameter, gradient, state slots)."""
        raise NotImplementedError

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

    def _scalars(self, lr, weight_decay):
        return (lr, weight_decay)


class Adagrad(Optimizer):
    """mem += grad²; param -= lr · grad / sqrt(mem + eps)  (min-char-rnn's)"""
    name, slots, defaults = "adagrad", ("mem",), {"eps": 1e-8}

    def _scalars(self, lr, weight_decay):
        return (lr, self.hyper["eps"], weight_decay)


class RMSprop(Optimizer):
    """mean_sq = decay·mean_sq + (1-decay)·grad²; param -= lr · grad / (sqrt(mean_sq) + eps)
    (char-rnn's, decay 0.95)"""
    name, slots, defaults = "rmsprop", ("mean_sq",), {"decay": 0.95, "eps": 1e-8}

    def _scalars(self, lr, weight_decay):
        return (lr, self.hyper["decay"], self.hyper["eps"], weight_decay)


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba 2015)."""
    name, slots = "adam", ("m", "v")
    defaults = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

    def _scalars(self, lr, weight_decay):
        h = self.hyper
        return (lr, h["beta1"], h["beta2"], h["eps"], self.step_count, weight_decay)


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

    def update(self, step: int, threads: Optional[int] = None) -> None:
        """Take the parameters after optimizer step `step` into the average (on `threads`
        threads, None: the team's size; the same bits on any)."""
        if step < self.start:
            return
        params = self.model.params
        if self.arrays is None:
            self.arrays = {k: v.copy() for k, v in params.items()}
            return
        run_calls([(self._kernel, (avg.reshape(-1), params[name].reshape(-1)), (self.decay,))
                   for name, avg in self.arrays.items()], threads)

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
