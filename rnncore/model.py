"""CharRNN: the model's parameters, and the checked doorway into the compiled kernels.

Everything a caller hands in is validated and converted here (dtype, layout, shape), so
the kernels in rnncore._kernels only ever see C-contiguous arrays of one float dtype.
"""
import numpy as np

try:
    from . import _kernels
except ImportError as e:  # e.g. `import rnncore` from a source checkout that was not built
    raise ImportError(
        "rnncore's compiled kernels (rnncore._kernels) are not built here: install the "
        "package (`pip install .`) and import it from outside the source folder, or build "
        f"in place with `pip install -e .` ({e})") from None
from .reference import PARAM_NAMES
from .vocab import Vocab

DTYPES = {"float32": np.float32, "float64": np.float64}
_FUSED = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def resolve_dtype(dtype):
    """np.dtype for 'float32'/'float64' (or the numpy types); anything else is an error."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in _FUSED:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return resolved


class CharRNN:
    """A single-layer vanilla RNN language model over the characters of `vocab`.

    params: {"Wxh" (H,V), "Whh" (H,H), "Why" (V,H), "bh" (H,), "by" (V,)}, C-contiguous
    arrays of `dtype` that may be edited in place.  Weights start as randn * 0.01 drawn
    from numpy.random.default_rng(seed), biases as zeros.
    """

    cell = "vanilla"

    def __init__(self, vocab, hidden_size=64, dtype="float64", seed=None):
        if not isinstance(vocab, Vocab):
            raise TypeError(f"vocab must be an rnncore.Vocab, got {type(vocab).__name__}")
        if isinstance(hidden_size, bool) or not isinstance(hidden_size, (int, np.integer)) \
                or hidden_size < 1:
            raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
        self.vocab = vocab
        self.hidden_size = int(hidden_size)
        self.dtype = resolve_dtype(dtype)
        V, H = len(vocab), self.hidden_size
        rng = np.random.default_rng(seed)
        # drawn in float64 and then cast, so one seed gives the same start in both dtypes
        self.params = {
            "Wxh": (rng.standard_normal((H, V)) * 0.01).astype(self.dtype),
            "Whh": (rng.standard_normal((H, H)) * 0.01).astype(self.dtype),
            "Why": (rng.standard_normal((V, H)) * 0.01).astype(self.dtype),
            "bh": np.zeros(H, self.dtype),
            "by": np.zeros(V, self.dtype),
        }
        self._workspaces = {}
        self._checked = self._checked_out = None   # arrays last found valid
        fused = _FUSED[self.dtype]
        self._window_kernel = _kernels.rnn_window[fused]
        self._generate_kernel = _kernels.rnn_generate[fused]

    # ---- shapes and configuration -------------------------------------------------
    @property
    def n_vocab(self):
        return len(self.vocab)

    @property
    def shapes(self):
        """The shape every parameter must have."""
        V, H = self.n_vocab, self.hidden_size
        return {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H,), "by": (V,)}

    @property
    def config(self):
        """What it takes to rebuild this model (JSON-able)."""
        return {"cell": self.cell, "hidden_size": self.hidden_size,
                "dtype": self.dtype.name, "n_vocab": self.n_vocab}

    def num_parameters(self):
        return sum(int(np.prod(s)) for s in self.shapes.values())

    def zeros_like_params(self):
        return {name: np.zeros(shape, self.dtype) for name, shape in self.shapes.items()}

    def __repr__(self):
        return (f"CharRNN(vocab={self.n_vocab} chars, hidden_size={self.hidden_size}, "
                f"dtype={self.dtype.name})")

    # ---- the window's loss and gradients -----------------------------------------
    def loss_and_grads(self, inputs, targets, h0=None, clip=5.0, out=None):
        """Loss, gradients and last hidden state of one window, in compiled code.

        inputs, targets: (T,) or (B,T) integer arrays of character indices in [0, V).
        h0: (H,) for 1-D inputs, (B,H) for 2-D; None means zeros.
        clip: clip every gradient element to [-clip, clip]; None or 0 turns it off.
        out: optional dict of gradient arrays to write into (as zeros_like_params gives).
        Returns (loss: mean nats per character, grads: dict like params,
                 h_last: (H,) or (B,H)).
        Gradients are of Σ_t mean_b cross-entropy (min-char-rnn's at B=1).
        """
        clip = _check_clip(clip)
        inputs, targets, single, ws = self._prepare(inputs, targets, h0)
        if out is None:
            out = self.zeros_like_params()
            g = tuple(out[name] for name in PARAM_NAMES)
        else:
            g = self._check_out(out)
        loss = self._window_kernel(*self._checked_params(), inputs, targets, ws["hs"],
                                   ws["probs"], ws["dh_raw"], ws["dh_next"], *g, True, clip)
        return loss, out, self._h_last(ws, single)

    def loss(self, inputs, targets, h0=None):
        """Forward only: (mean nats per character, h_last) for one window."""
        inputs, targets, single, ws = self._prepare(inputs, targets, h0)
        g = self._forward_only_grads
        loss = self._window_kernel(*self._checked_params(), inputs, targets, ws["hs"],
                                   ws["probs"], ws["dh_raw"], ws["dh_next"], *g, False, 0.0)
        return loss, self._h_last(ws, single)

    # ---- generation ----------------------------------------------------------------
    def sample(self, n, prime="", temperature=1.0, top_k=None, seed=None,
               skip_unknown=False):
        """n new characters drawn from softmax(y / temperature), after feeding `prime`.

        top_k keeps only the k most likely characters at each step; seed makes it
        reproducible.  A prime with characters outside the vocabulary is a ValueError
        naming them, unless skip_unknown drops them.
        """
        from .sample import generate
        return generate(self, n, prime, greedy=False, temperature=temperature,
                        top_k=top_k, seed=seed, skip_unknown=skip_unknown)

    def complete(self, prime, n, skip_unknown=False):
        """The n most likely next characters after `prime` (greedy), without the prime."""
        from .sample import generate
        return generate(self, n, prime, greedy=True, skip_unknown=skip_unknown)

    # ---- checkpoints -----------------------------------------------------------------
    def save(self, path):
        """Write the model to `path` (.npz, atomically).  See rnncore.checkpoint."""
        from .checkpoint import save_checkpoint
        save_checkpoint(path, self)

    @classmethod
    def load(cls, path, latest=False):
        """Read a model written by save() or by training; checked, never unpickled.

        A run trained with keep_best holds two sets of parameters: this returns the
        best-validation ones unless latest=True (the ones training stopped with, which
        resuming continues from).  rnncore.load_checkpoint gives both, and the training
        state."""
        from .checkpoint import load_checkpoint
        ckpt = load_checkpoint(path)
        return ckpt.model if latest else ckpt.preferred_model

    # ---- checks ---------------------------------------------------------------------
    def _checked_params(self):
        """The five parameter arrays as a tuple, checked for dtype, shape and layout.

        The check runs again only when an array has been replaced: editing in place keeps
        the arrays (and whatever else changes in place, the kernel re-checks shapes).
        """
        arrays = tuple(self.params.get(name) for name in PARAM_NAMES)
        if self._checked is not None and all(a is b for a, b in zip(arrays, self._checked)):
            return arrays
        for name, a in zip(PARAM_NAMES, arrays):
            shape = self.shapes[name]
            if not isinstance(a, np.ndarray):
                raise TypeError(f"params[{name!r}] must be a numpy array")
            if a.dtype != self.dtype:
                raise TypeError(f"params[{name!r}] has dtype {a.dtype}, the model is "
                                f"{self.dtype.name}")
            if a.shape != shape:
                raise ValueError(f"params[{name!r}] has shape {a.shape}, expected {shape}")
            if not a.flags.c_contiguous:
                raise ValueError(f"params[{name!r}] must be C-contiguous")
        self._checked = arrays
        return arrays

    def _prepare(self, inputs, targets, h0):
        """Checked (B,T) index arrays, whether they were 1-D, and the window's workspace
        with h0 loaded into hs[0]."""
        inputs, targets, single = self._check_window(inputs, targets)
        ws = self._workspace(*inputs.shape)
        self._load_h0(h0, ws["hs"][0], single, inputs.shape[0])
        return inputs, targets, single, ws

    def _check_window(self, inputs, targets):
        inputs = _index_array(inputs, "inputs")
        targets = _index_array(targets, "targets")
        if inputs.shape != targets.shape:
            raise ValueError(f"targets has shape {targets.shape}, inputs {inputs.shape}: "
                             "they must match")
        single = inputs.ndim == 1
        if single:
            inputs, targets = inputs[None, :], targets[None, :]
        if inputs.shape[0] < 1 or inputs.shape[1] < 1:
            raise ValueError(f"inputs has shape {inputs.shape}: the window is empty")
        return inputs, targets, single

    def _load_h0(self, h0, dest, single, n_streams):
        if h0 is None:
            dest[...] = 0
            return
        h0 = np.asarray(h0)
        if h0.dtype.kind not in "fiu":
            raise TypeError(f"h0 must be a float array, got dtype {h0.dtype}")
        want = (self.hidden_size,) if single else (n_streams, self.hidden_size)
        if h0.shape != want:
            raise ValueError(f"h0 has shape {h0.shape}, expected {want} "
                             f"(inputs are {'(T,)' if single else '(B, T)'})")
        dest[...] = h0  # copies any layout into the contiguous workspace

    def _check_out(self, out):
        arrays = tuple(out.get(name) for name in PARAM_NAMES)
        if self._checked_out is not None and all(
                a is b for a, b in zip(arrays, self._checked_out)):
            return arrays
        for name, a in zip(PARAM_NAMES, arrays):
            shape = self.shapes[name]
            if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != self.dtype \
                    or not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError(f"out[{name!r}] must be a writable C-contiguous "
                                 f"{self.dtype.name} array of shape {shape}")
        self._checked_out = arrays
        return arrays

    def _workspace(self, B, T):
        """Scratch buffers for a (B,T) window, allocated once and reused."""
        ws = self._workspaces.get((B, T))
        if ws is None:
            if len(self._workspaces) >= 4:
                self._workspaces.clear()
            H, V, dt = self.hidden_size, self.n_vocab, self.dtype
            ws = {"hs": np.zeros((T + 1, B, H), dt), "probs": np.zeros((T, B, V), dt),
                  "dh_raw": np.zeros((T, B, H), dt), "dh_next": np.zeros((B, H), dt)}
            self._workspaces[(B, T)] = ws
        return ws

    @property
    def _forward_only_grads(self):
        # the kernel's signature wants gradient views even when it will not touch them
        g = getattr(self, "_empty_grads", None)
        if g is None:
            g = tuple(np.zeros((1,) * len(self.shapes[name]), self.dtype)
                      for name in PARAM_NAMES)
            self._empty_grads = g
        return g

    @staticmethod
    def _h_last(ws, single):
        h_last = ws["hs"][-1].copy()
        return h_last[0] if single else h_last


def _index_array(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of character indices, "
                        f"got dtype {a.dtype}")
    if a.ndim not in (1, 2):
        raise ValueError(f"{name} must be (T,) or (B, T), got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.intp)


def _check_clip(clip):
    if clip is None:
        return 0.0
    clip = float(clip)
    if not clip >= 0 or clip == float("inf"):
        raise ValueError(f"clip must be a finite number >= 0 (0 or None: off), got {clip}")
    return clip
