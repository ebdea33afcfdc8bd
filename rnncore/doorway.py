"""The checked doorway into the compiled kernels: everything rnncore._cells is handed is
checked here, in the Python layer, once; the compiled entry points trust it.

The kernels read and write through raw pointers, so an array of the wrong shape, dtype or
layout, or a character index outside the vocabulary, would not be an error there but a
crash or a wrong answer.  A training window's arrays are checked by CharRNN (model.py:
the parameters and gradient arrays it binds, the window's inputs, targets, state and
masks; check_indices below for the indices); generation's here, by the Generation that
CharRNN.generation_kernel() hands out, whose methods check what they are handed and call
the kernel's method of the same name.  Checks are vectorised (numpy) and each names the
first bad entry exactly.

A build with RNNCORE_CYTHON_DEBUG=1 (setup.py) runs these same checks again inside the
compiled entry points, for a test run that hunts for a caller that skips them.
"""
import numpy as np

from . import _cells, engines
from .layout import param_shapes, state_rows


def check_indices(a, V, name):
    """ValueError naming the first entry of the integer array `a` (in C order) that is
    not a character index in [0, V): "inputs[0, 3] = 70 is not a character index in
    [0, 65)"."""
    a = np.asarray(a)
    if a.size == 0:
        return
    flat = a.reshape(-1)
    if a.dtype == np.intp:          # one pass: a negative index is a huge unsigned one
        if flat.view(np.uintp).max() < V:
            return
    elif flat.min() >= 0 and flat.max() < V:
        return
    first = int(np.flatnonzero((flat < 0) | (flat >= V))[0])
    where = ", ".join(str(int(i)) for i in np.unravel_index(first, a.shape))
    raise ValueError(f"{name}[{where}] = {flat[first]} is not a character index in [0, {V})")


def check_state(kernel, state, streams=None):
    """The number of streams B of a generation state (S·L, B, H) of the kernel's model and
    dtype, C-contiguous and writable (B == streams unless streams is None)."""
    rows = state_rows(kernel.cell, kernel.num_layers)
    H = kernel.hidden_size
    if not isinstance(state, np.ndarray) or state.dtype != kernel.dtype \
            or state.ndim != 3 or state.shape[0] != rows or state.shape[2] != H \
            or state.shape[1] < 1 or not state.flags.c_contiguous \
            or not state.flags.writeable:
        raise ValueError(f"state must be a writable C-contiguous {kernel.dtype.name} array "
                         f"of shape ({rows}, B, {H})")
    if streams is not None and state.shape[1] != streams:
        raise ValueError(f"state holds {state.shape[1]} stream(s), expected {streams}")
    return state.shape[1]


def _shape(a, ndim):
    """The shape of an array (or memoryview) of ndim dimensions; the error Cython gives a
    typed memoryview of another number of them."""
    shape = np.shape(a)
    if len(shape) != ndim:
        raise ValueError(f"Buffer has wrong number of dimensions (expected {ndim}, got "
                         f"{len(shape)})")
    return shape


def _printed(shape):
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _first(bad):
    """The index of the first True of a boolean vector, or None."""
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else None


# ---- one check per entry point: (kernel, the entry point's arguments) ---------------------

def check_bound(kernel, arrays, what, writable):
    """The parameter (what="parameter") or gradient ("gradient", writable) arrays a kernel
    binds, in rnncore.layout.param_shapes's order: C-contiguous, of its dtype and shapes."""
    names = param_shapes(kernel.cell, kernel.n_vocab, kernel.hidden_size, kernel.num_layers)
    if len(arrays) != len(names):
        raise ValueError(f"{what}: expected {len(names)} arrays ({', '.join(names)}), "
                         f"got {len(arrays)}")
    for a, (name, shape) in zip(arrays, names.items()):
        if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != kernel.dtype \
                or not a.flags.c_contiguous or (writable and not a.flags.writeable):
            got = f"shape {a.shape} {a.dtype}" if isinstance(a, np.ndarray) \
                else type(a).__name__
            raise ValueError(f"{what} {name} must be a{' writable' if writable else ''} "
                             f"C-contiguous {kernel.dtype.name} array of shape {shape}, "
                             f"got {got}")


def check_run(kernel, inputs, targets, clip):
    """A window's inputs and targets (B, T) of the kernel's shape, indices in [0, V), clip
    >= 0."""
    B, T = kernel.batch_size, kernel.seq_length
    if _shape(inputs, 2) != (B, T):
        raise ValueError(f"inputs has shape {_printed(np.shape(inputs))}, this kernel runs "
                         f"({B}, {T}) windows")
    if _shape(targets, 2) != (B, T):
        raise ValueError(f"targets has shape {_printed(np.shape(targets))}, expected "
                         f"({B}, {T})")
    if not clip >= 0:
        raise ValueError(f"clip must be >= 0, got {clip}")
    check_indices(inputs, kernel.n_vocab, "inputs")
    check_indices(targets, kernel.n_vocab, "targets")


def check_advance(kernel, chars, state):
    """chars (n, B): character chars[i, b] into stream b of state at step i."""
    B = check_state(kernel, state)
    n, columns = _shape(chars, 2)
    if columns != B:
        raise ValueError(f"chars has shape ({n}, {columns}), expected ({n}, {B})")
    check_indices(chars, kernel.n_vocab, "chars")


def check_feed(kernel, chars, state):
    """chars (n,): the same characters into every stream of state."""
    check_state(kernel, state)
    check_indices(chars, kernel.n_vocab, "chars")


def check_sample_rows(kernel, state, out, uniforms, temperature, top_k, top_p):
    """out (n, B), uniforms (n, B); temperature, top_k, top_p (B,) each: 0 (greedy) or a
    finite number > 0, >= 0, in (0, 1]."""
    B = check_state(kernel, state)
    n, columns = _shape(out, 2)
    if columns != B:
        raise ValueError(f"out has shape ({n}, {columns}), expected ({n}, {B})")
    if _shape(uniforms, 2) != (n, B):
        raise ValueError(f"uniforms has shape {_printed(np.shape(uniforms))}, expected "
                         f"({n}, {B})")
    temperature, top_k, top_p = np.asarray(temperature), np.asarray(top_k), np.asarray(top_p)
    if not len(temperature) == len(top_k) == len(top_p) == B:
        raise ValueError(f"temperature, top_k and top_p need one value per stream ({B})")
    bad = {"temperature": ~((temperature >= 0) & (temperature < np.inf)),
           "top_k": top_k < 0, "top_p": ~((top_p > 0) & (top_p <= 1))}
    b = _first(bad["temperature"] | bad["top_k"] | bad["top_p"])
    if b is None:
        return
    if bad["temperature"][b]:
        raise ValueError(f"temperature[{b}] = {temperature[b]}: must be 0 (greedy) or a "
                         "finite number > 0")
    if bad["top_k"][b]:
        raise ValueError(f"top_k[{b}] = {top_k[b]}: must be >= 0")
    raise ValueError(f"top_p[{b}] = {top_p[b]}: must be in (0, 1]")


def check_feed_rows(kernel, chars, starts, state):
    """chars (B, P) right-aligned texts, starts (B,) in [0, P]."""
    B = check_state(kernel, state)
    rows, P = _shape(chars, 2)
    if rows != B or len(starts) != B:
        raise ValueError(f"chars has {rows} row(s) and starts {len(starts)}: expected one "
                         f"per stream ({B})")
    starts = np.asarray(starts)
    b = _first((starts < 0) | (starts > P))
    if b is not None:
        raise ValueError(f"starts[{b}] = {starts[b]} is not in [0, {P}]")
    check_indices(chars, kernel.n_vocab, "chars")


def check_next_probs(kernel, state, out):
    """out (B, V) float64."""
    B = check_state(kernel, state)
    if _shape(out, 2) != (B, kernel.n_vocab):
        raise ValueError(f"out has shape {_printed(np.shape(out))}, expected "
                         f"({B}, {kernel.n_vocab})")


def check_beam(kernel, state, out, scores):
    """state of one stream; out (K, n) with K >= 1; scores (K,)."""
    check_state(kernel, state, 1)
    K = _shape(out, 2)[0]
    if K < 1:
        raise ValueError("the beam width must be >= 1")
    if len(scores) != K:
        raise ValueError(f"scores has shape ({len(scores)},), expected ({K},)")


def check_word_beam(kernel, state, is_sep, started, beam, out, out_len, out_scores,
                    fixed_length=False):
    """R = state's streams searches of width beam >= 1 keeping kf = out.shape[1] (1 ..
    beam) words of at most n = out.shape[2] characters: is_sep (V,), started (R,), out
    (R, kf, n), out_len and out_scores (R, kf)."""
    R = check_state(kernel, state)
    rows, kf, _ = _shape(out, 3)
    if beam < 1 or kf < 1:
        raise ValueError("the beam width and the number of words kept must be >= 1")
    if kf > beam:
        raise ValueError(f"a beam of width {beam} cannot keep {kf} words")
    if len(is_sep) != kernel.n_vocab:
        raise ValueError(f"is_sep has {len(is_sep)} entries, expected {kernel.n_vocab}")
    if len(started) != R or rows != R:
        raise ValueError(f"started and out need one row per search ({R})")
    if np.shape(out_len) != (R, kf) or np.shape(out_scores) != (R, kf):
        raise ValueError(f"out_len and out_scores must be ({R}, {kf})")


class Kernels:
    """A model's compiled kernels, each built on first use: its parameters bound once
    (_cells.Weights) and read by all of them, a window kernel per (B, T) shape and
    product-engine setting (rnncore.engines; the last four kept), a generation kernel per
    setting.  The parameter tuples handed in are the model's, in param_shapes's order,
    checked by it (CharRNN._checked_params)."""

    def __init__(self, cell, num_layers, n_vocab, hidden_size, dtype):
        self.model = (cell, num_layers, n_vocab, hidden_size, dtype)
        self.weights = None
        self.windows = {}           # (B, T, setting) -> _cells.WindowKernel
        self.generations = {}       # setting -> Generation
        self.dropped = None         # the model's: weight drop's (buffers, Weights, params)

    def new_weights(self, params):
        """A Weights of its own, bound to `params`."""
        weights = _cells.Weights(*self.model)
        weights.bind(params)
        return weights

    def bound(self, params):
        """The Weights every kernel reads, bound to `params` (again only if one of the
        arrays was replaced)."""
        if self.weights is None:
            self.weights = _cells.Weights(*self.model)
        if self.weights.arrays is not params:
            self.weights.bind(params)
        return self.weights

    def window(self, params, B, T):
        """The window kernel of (B, T) windows under the current engine setting, its
        buffers allocated once; `params` bound."""
        setting = engines.get_gemm_engine()
        weights = self.bound(params)
        kernel = self.windows.get((B, T, setting))
        if kernel is None:
            if len(self.windows) >= 4:
                self.windows.clear()
            kernel = _cells.WindowKernel(weights, B, T, setting)
            self.windows[(B, T, setting)] = kernel
        return kernel

    def generation(self, params, own=False):
        """The generation kernel under the current engine setting, behind its checks,
        `params` bound; own: a new one on a Weights of its own (for another thread)."""
        setting = engines.get_gemm_engine()
        if own:
            return Generation(_cells.GenerationKernel(self.new_weights(params), setting))
        weights = self.bound(params)
        if setting not in self.generations:
            self.generations[setting] = Generation(_cells.GenerationKernel(weights, setting))
        return self.generations[setting]


class Generation:
    """A model's generation kernel (rnncore._cells.GenerationKernel), every argument
    checked: what CharRNN.generation_kernel() hands out.  Each method checks what it is
    handed (check_<method>) and runs the compiled program of the same name, which says
    what it computes.

    `threads`: None lets each call choose (the whole team, or one thread for steps too
    small to split); a number caps it."""

    def __init__(self, kernel):
        self.kernel = kernel

    @property
    def threads(self):
        return self.kernel.threads

    @threads.setter
    def threads(self, value):
        self.kernel.threads = value

    @property
    def engines(self):
        """{kind of product: "own" | "blas"}, fixed when the kernel was built."""
        return self.kernel.engines

    def advance(self, chars, state):
        check_advance(self.kernel, chars, state)
        _cells.advance(self.kernel, chars, state)

    def feed(self, chars, state):
        check_feed(self.kernel, chars, state)
        _cells.feed(self.kernel, chars, state)

    def sample_rows(self, state, out, uniforms, temperature, top_k, top_p):
        check_sample_rows(self.kernel, state, out, uniforms, temperature, top_k, top_p)
        _cells.sample_rows(self.kernel, state, out, uniforms, temperature, top_k, top_p)

    def feed_rows(self, chars, starts, state):
        check_feed_rows(self.kernel, chars, starts, state)
        _cells.feed_rows(self.kernel, chars, starts, state)

    def next_probs(self, state, out):
        check_next_probs(self.kernel, state, out)
        _cells.next_probs(self.kernel, state, out)

    def beam(self, state, out, scores):
        check_beam(self.kernel, state, out, scores)
        return _cells.beam(self.kernel, state, out, scores)

    def word_beam(self, state, is_sep, started, beam, out, out_len, out_scores,
                  fixed_length=False):
        check_word_beam(self.kernel, state, is_sep, started, beam, out, out_len, out_scores,
                        fixed_length)
        return _cells.word_beam(self.kernel, state, is_sep, started, beam, out, out_len,
                                out_scores, fixed_length)
