"""CharRNN: the model's parameters, and the checked doorway into the compiled kernels.

Everything a caller hands a window is validated and converted here (dtype, layout, shape,
index ranges), once: the compiled kernels (rnncore._cells, rnncore._kernels) trust what
they are handed and only ever see C-contiguous arrays of one float dtype.  The model's
kernels are kept, and generation's arguments checked, by rnncore.doorway (Kernels,
Generation: what generation_kernel() hands out).

Imports go down the floors (layout, config, vocab, errors) with one sanctioned exception:
the generation and predictive-text conveniences (sample/sample_stream/complete/beam_search,
next_chars/suggest) import rnncore.sample and rnncore.predict inside the method.  The file
conveniences (save/load, to_/from_safetensors) import nothing: rnncore.checkpoint and
rnncore.export, which import this module, register their functions in FILE_FORMATS when
they are imported (rnncore's __init__ imports both), so no import circle is left.
"""
import copy
from typing import Any, Callable, Dict, NamedTuple, Iterator, List, Optional, Tuple, Union

import numpy as np

try:
    from . import _cells, _kernels  # noqa: F401  (_kernels: imported here to fail early)
except ImportError as e:  # e.g. `import rnncore` from a source checkout that was not built
    raise ImportError(
        "rnncore's compiled kernels (rnncore._cells, rnncore._kernels) are not built "
        "here: install the package (`pip install .`) and import it from outside the source folder, or build "
        f"in place with `pip install -e .` ({e})") from None
from . import doorway
from .config import SEED_MODEL, ModelConfig, check_int, check_number
from .layout import (check_memory, num_parameters, param_shapes, resolve_dtype,
                     state_shape)
from .vocab import Vocab


class FileFormat(NamedTuple):
    """How a model file is written (save(path, model)) and read (load(path))."""
    save: Callable[[Any, "CharRNN"], None]
    load: Callable[[Any], Any]


#: the file formats CharRNN's save/load and to_/from_safetensors use, by name: registered
#: by the modules that implement them (rnncore.checkpoint: "checkpoint", rnncore.export:
#: "safetensors") when they are imported, so this module imports neither
FILE_FORMATS: Dict[str, FileFormat] = {}


def file_format(name: str) -> FileFormat:
    if name not in FILE_FORMATS:     # only if rnncore's __init__ was bypassed
        raise RuntimeError(f"the {name} format is not registered: import rnncore")
    return FILE_FORMATS[name]


class CharRNN:
    """A character-level language model: a stack of `num_layers` recurrent layers of one
    cell ("rnn": tanh, "lstm", "gru"; PyTorch's equations) under a linear decoder and a
    softmax, over the characters of `vocab`.

    params: C-contiguous arrays of `dtype`, editable in place, named and shaped as
    rnncore.layout.param_shapes gives (G = 1 / 4 / 3 gate blocks for rnn / lstm / gru):
        layer 0: Wxh (G·H, V), Whh (G·H, H), bh (G·H,)   [gru: bhn (H,)]
        layer k: Wxh_l{k} (G·H, H), Whh_l{k} (G·H, H), bh_l{k} (G·H,)   [gru: bhn_l{k}]
        decoder: Why (V, H), by (V,)
    The single-layer rnn is the seed's model: Wxh (H,V), Whh (H,H), Why (V,H), bh, by.
    Start (from numpy.random.default_rng(seed), drawn in float64 then cast, so one seed
    gives the same start in both dtypes): rnn models draw every weight as randn · 0.01;
    gated models draw every weight uniform(±1/√H) as PyTorch does.  Every bias is zero
    (the LSTM's forget gate too): over 5 seeds on held-out Python source that learnt
    best, ahead of PyTorch's uniform biases and of a forget-gate bias of 1
    (docs/init-trials.json).
    dropout: the probability p of dropping a layer's output (the input of the next layer
    and of the decoder) while training, with inverted scaling 1/(1-p); never the
    recurrent connection, and never in loss(), evaluation or generation.  dropout_mode:
    "step" draws a fresh mask at every time step, "locked" one mask per window that every
    step of it uses (variational dropout).  weight_drop: the probability of dropping each
    recurrent weight (every layer's Whh) while training, one mask per window (DropConnect,
    AWD-LSTM's weight drop; see loss_and_grads' weight_masks).

    The settings are a ModelConfig (rnncore.config), validated there once: `config`, or
    without one the seed's preset (rnncore.config.SEED_MODEL: a vanilla rnn of one layer,
    64 units, float64), each keyword given replacing the config's value.  `settings`
    gives them back.
    """

    def __init__(self, vocab: Vocab, hidden_size: Optional[int] = None,
                 dtype: Union[None, str, type, np.dtype] = None, seed: Optional[int] = None,
                 cell: Optional[str] = None, num_layers: Optional[int] = None,
                 dropout: Optional[float] = None, dropout_mode: Optional[str] = None,
                 weight_drop: Optional[float] = None, *,
                 config: Optional[ModelConfig] = None):
        if not isinstance(vocab, Vocab):
            raise TypeError(f"vocab must be an rnncore.Vocab, got {type(vocab).__name__}")
        if config is not None and not isinstance(config, ModelConfig):
            raise TypeError(f"config must be an rnncore.ModelConfig, got "
                            f"{type(config).__name__}")
        given = {"hidden_size": hidden_size, "cell": cell, "num_layers": num_layers,
                 "dropout": dropout, "dropout_mode": dropout_mode, "weight_drop": weight_drop,
                 "dtype": None if dtype is None else resolve_dtype(dtype).name}
        # the one validation of the model's settings (rnncore.config)
        settings = (config or SEED_MODEL).replace(
            **{k: v for k, v in given.items() if v is not None})
        self.vocab = vocab
        self.cell, self.num_layers = settings.cell, settings.num_layers
        self.hidden_size, self.dtype = settings.hidden_size, resolve_dtype(settings.dtype)
        self.dropout, self.dropout_mode = settings.dropout, settings.dropout_mode
        self.weight_drop = settings.weight_drop
        # the parameters are drawn in float64, then cast: refuse at once what cannot fit
        check_memory(num_parameters(self.cell, len(vocab), self.hidden_size, self.num_layers)
                     * (8 + self.dtype.itemsize),
                     f"the parameters of a {self.cell} of {self.num_layers} layer(s) x "
                     f"{self.hidden_size:,} units")
        # fixed for the model's life; looked up on every call, so computed once
        self._shapes = param_shapes(self.cell, len(vocab), self.hidden_size, self.num_layers)
        self.params = self._initial_params(np.random.default_rng(seed))
        self._compiled: Optional[doorway.Kernels] = None     # see _kernels
        self._checked = self._checked_out = None   # arrays last found valid

    def _initial_params(self, rng):
        H = self.hidden_size
        params = {}
        for name, shape in self.shapes.items():
            if name.startswith("W"):
                # drawn in the canonical order, so the single-layer rnn draws Wxh, Whh,
                # Why exactly as the seed's model did
                if self.cell == "rnn":
                    p = rng.standard_normal(shape) * 0.01
                else:
                    p = rng.uniform(-1 / np.sqrt(H), 1 / np.sqrt(H), shape)
            else:
                # zero, the LSTM's forget gate too: what learnt best in
                # bench/init_trials.py (docs/init-trials.json)
                p = np.zeros(shape)
            params[name] = p.astype(self.dtype)
        return params

    # ---- shapes and configuration -------------------------------------------------
    @property
    def n_vocab(self):
        return len(self.vocab)

    @property
    def shapes(self):
        """The shape every parameter must have, in the canonical order."""
        return dict(self._shapes)

    @property
    def param_names(self):
        return tuple(self.shapes)

    @property
    def settings(self) -> ModelConfig:
        """The model's settings (its shape and its training-time regularisers)."""
        return ModelConfig(cell=self.cell, num_layers=self.num_layers,
                           hidden_size=self.hidden_size, dropout=self.dropout,
                           dropout_mode=self.dropout_mode, weight_drop=self.weight_drop,
                           dtype=self.dtype.name)

    @property
    def config(self):
        """What it takes to rebuild this model (JSON-able)."""
        return {"cell": self.cell, "hidden_size": self.hidden_size,
                "dtype": self.dtype.name, "n_vocab": self.n_vocab,
                "num_layers": self.num_layers, "dropout": self.dropout,
                "dropout_mode": self.dropout_mode, "weight_drop": self.weight_drop}

    def __getstate__(self):
        """Pickled (sent to other MPI ranks) without its compiled kernels: they are
        rebuilt, and bound to the parameters, on first use."""
        state = dict(self.__dict__)
        state.update(_compiled=None, _checked=None, _checked_out=None)
        return state

    def with_params(self, params: Dict[str, np.ndarray]) -> "CharRNN":
        """A model of this one's configuration and vocabulary holding `params` (the
        arrays themselves, not copies; checked when first used), with kernels of its own:
        e.g. the averaged weights, evaluated beside the trained ones."""
        other = copy.copy(self)
        other.params = params
        other._compiled = other._checked = other._checked_out = None
        return other

    def num_parameters(self) -> int:
        return sum(int(np.prod(s)) for s in self.shapes.values())

    def zeros_like_params(self):
        return {name: np.zeros(shape, self.dtype) for name, shape in self.shapes.items()}

    def state_shape(self, batch_size: Optional[int] = None) -> Tuple[int, ...]:
        """Shape of the recurrent state: (S·L, B, H), or (S·L, H) for batch_size None
        (1-D inputs); S = 2 for lstm (every layer's h, then every layer's c), else 1; the
        leading axis is dropped when S·L == 1.  The streams are axis -2."""
        return state_shape(self.cell, self.num_layers, self.hidden_size, batch_size)

    def initial_state(self, batch_size: Optional[int] = None) -> np.ndarray:
        """The zero state for `batch_size` streams (None: for 1-D inputs)."""
        if batch_size is not None:
            check_int(batch_size, "batch_size")
        return np.zeros(self.state_shape(batch_size), self.dtype)

    def dropout_masks(self, rng, batch_size, seq_length):
        """Scaled dropout masks for one (batch_size, seq_length) window, drawn from the
        numpy Generator rng: (L, T, B, H) of the model's dtype, each element 0 with
        probability `dropout`, else 1/(1-dropout).  The streams are axis -2, so the masks
        of a global batch sliced [..., b0:b1, :] are those of streams b0..b1-1.  In the
        locked mode one (L, 1, B, H) mask is drawn and every step repeats it (a read-only
        broadcast view)."""
        check_int(batch_size, "batch_size")
        check_int(seq_length, "seq_length")
        steps = 1 if self.dropout_mode == "locked" else seq_length
        shape = (self.num_layers, steps, batch_size, self.hidden_size)
        keep = rng.random(shape) >= self.dropout
        masks = (keep / (1 - self.dropout)).astype(self.dtype)
        return np.broadcast_to(masks, (self.num_layers, seq_length, batch_size,
                                       self.hidden_size))

    def weight_drop_masks(self, rng) -> Dict[str, np.ndarray]:
        """Scaled DropConnect masks for every layer's recurrent weights, drawn from the
        numpy Generator rng in layer order: {"Whh"/"Whh_l{k}": (G·H, H) of the model's
        dtype}, each element 0 with probability `weight_drop`, else 1/(1-weight_drop).
        The uniforms are float32 (rng.random(dtype=float32), compared with weight_drop
        rounded to float32), whatever the model's dtype: cheaper than float64's (a 2x384
        LSTM's two masks: 2.5 against 3.7 ms a window), and drawn alike in every process."""
        p = np.float32(self.weight_drop)
        scale = self.dtype.type(1 / (1 - self.weight_drop))
        masks = {}
        for name, shape in self._shapes.items():
            if name.startswith("Whh"):
                uniform = rng.random(shape, dtype=np.float32)
                masks[name] = np.multiply(uniform >= p, scale, dtype=self.dtype)
        return masks

    def __repr__(self):
        return (f"CharRNN(vocab={self.n_vocab} chars, hidden_size={self.hidden_size}, "
                f"dtype={self.dtype.name}, cell={self.cell!r}, "
                f"num_layers={self.num_layers}, dropout={self.dropout}, "
                f"dropout_mode={self.dropout_mode!r}, weight_drop={self.weight_drop})")

    # ---- the window's loss and gradients -----------------------------------------
    def loss_and_grads(self, inputs, targets, state=None, clip: Optional[float] = 5.0,
                       out: Optional[Dict[str, np.ndarray]] = None, dropout_masks=None,
                       weight_masks: Optional[Dict[str, np.ndarray]] = None
                       ) -> Tuple[float, Dict[str, np.ndarray], np.ndarray]:
        """Loss, gradients and last recurrent state of one window, in compiled code.

        inputs, targets: (T,) or (B,T) integer arrays of character indices in [0, V).
        state: as state_shape gives for these inputs (what the previous call returned);
            None means zeros.
        clip: clip every gradient element to [-clip, clip]; None or 0 turns it off.
        out: optional dict of gradient arrays to write into (as zeros_like_params gives).
        dropout_masks: None (no dropout), or (L, T, B, H) scaled masks ((L, T, H) for 1-D
            inputs), e.g. from dropout_masks().
        weight_masks: None, or {"Whh"...: (G·H, H) scaled mask} for every layer's
            recurrent weights, e.g. from weight_drop_masks(): the window runs on Whh ⊙ M
            (the kernel packs that copy, so dropping costs one pass per window, nothing
            per step) and the gradient of Whh is that of Whh ⊙ M times M.
        Returns (loss: mean nats per character, grads: dict like params, last state).
        Gradients are of Σ_t mean_b cross-entropy (min-char-rnn's at B=1).
        """
        clip = _check_clip(clip)
        inputs, targets, single, kernel = self._prepare(inputs, targets, state)
        use_masks = self._load_masks(dropout_masks, kernel, single)
        masks, weights = self._dropped_weights(weight_masks)
        if out is None:
            out = self.zeros_like_params()
            g = tuple(out[name] for name in self._shapes)
        else:
            g = self._check_out(out)
        if kernel.bound_grads is not g:
            kernel.bind_grads(g)
        loss = self._run(kernel, weights, inputs, targets, True, 0.0 if masks else clip,
                         use_masks)
        for name, mask in masks.items():          # d(Whh ⊙ M)/dWhh = M
            np.multiply(out[name], mask, out=out[name])
        if masks and clip:
            for a in g:
                np.clip(a, -clip, clip, out=a)
        return loss, out, self._last_state(kernel, single)

    def _dropped_weights(self, weight_masks):
        """(the checked masks, the weights a window runs on): with weight_masks, Whh ⊙ M
        in place of every Whh (buffers bound once, kept between windows), else ({}, the
        model's own)."""
        params = self._checked_params()
        if weight_masks is None:
            return {}, self._kernels.bound(params)
        kernels = self._kernels
        if kernels.dropped is None or kernels.dropped[2] is not params:
            buffers = {name: np.empty(shape, self.dtype) for name, shape in
                       self._shapes.items() if name.startswith("Whh")}
            dropped = tuple(buffers.get(name, a) for name, a in zip(self._shapes, params))
            kernels.dropped = (buffers, kernels.new_weights(dropped), params)
        buffers, weights, _ = kernels.dropped
        if not isinstance(weight_masks, dict) or set(weight_masks) != set(buffers):
            raise ValueError(f"weight_masks must be a dict of the masks of "
                             f"{', '.join(buffers)}")
        masks = {}
        for name, buffer in buffers.items():
            mask = np.asarray(weight_masks[name])
            if mask.shape != buffer.shape or mask.dtype.kind != "f":
                raise ValueError(f"weight_masks[{name!r}] must be a float array of shape "
                                 f"{buffer.shape}, got {mask.dtype} {mask.shape}")
            masks[name] = mask.astype(self.dtype, copy=False)
            np.multiply(self.params[name], masks[name], out=buffer)
        return masks, weights

    def loss(self, inputs, targets, state=None) -> Tuple[float, np.ndarray]:
        """Forward only, never dropping: (mean nats per character, last state)."""
        inputs, targets, single, kernel = self._prepare(inputs, targets, state)
        loss = self._run(kernel, self._kernels.bound(self._checked_params()), inputs,
                         targets, False, 0.0, False)
        return loss, self._last_state(kernel, single)

    # ---- generation ----------------------------------------------------------------
    def sample(self, n: int, prime: Union[str, List[str]] = "", temperature: float = 1.0,
               top_k: Optional[int] = None, seed: Optional[int] = None,
               skip_unknown: bool = False, stop: Union[None, str, List[str]] = None,
               num_samples: Optional[int] = None, top_p: Optional[float] = None
               ) -> Union[str, List[str], List[List[str]]]:
        """n new characters drawn from softmax(y / temperature), after feeding `prime`.

        top_k keeps only the k most likely characters at each step, top_p only the
        nucleus (the smallest set of the most likely characters whose probabilities sum
        to at least top_p, after top_k); seed makes it reproducible.  stop: a text or a
        list of texts; the sample ends right after the first occurrence of any of them
        in what it generates (it may then be shorter than n).  num_samples: draw that
        many independent samples as parallel streams and return a list of them (None:
        return the one sample as a str).  prime may be a list of texts: they are
        advanced as one batch of streams, and a list with one result per prime comes
        back (each a str, or a list of num_samples).  A prime with characters outside
        the vocabulary is a ValueError naming them, unless skip_unknown drops them.
        Returns the generated text only (not the prime).
        """
        from .sample import generate
        N = 1 if num_samples is None else num_samples
        texts = generate(self, n, prime, greedy=False, temperature=temperature,
                         top_k=top_k, seed=seed, skip_unknown=skip_unknown, stop=stop,
                         num_samples=N, top_p=top_p)
        if isinstance(prime, str):
            return texts[0] if num_samples is None else texts
        per_prime = [texts[i:i + N] for i in range(0, len(texts), N)]
        return [t[0] for t in per_prime] if num_samples is None else per_prime

    def sample_stream(self, n: int, prime: Union[str, List[str]] = "",
                      temperature: Optional[float] = None, top_k: Optional[int] = None,
                      seed: Optional[int] = None, skip_unknown: bool = False,
                      stop: Union[None, str, List[str]] = None,
                      num_samples: Optional[int] = None, greedy: bool = False,
                      top_p: Optional[float] = None) -> Iterator:
        """sample() as it is generated: an iterator over pieces of text (str), in chunks
        of growing size; with num_samples or a list of primes, over tuples of one piece
        per stream (stream p·num_samples + s: sample s of prime p; "" for a stream that
        has stopped).  greedy=True takes the most likely character every time (then
        temperature, top_k, top_p and seed are errors)."""
        from .sample import stream_samples
        chunks = stream_samples(self, n, prime, greedy=greedy, temperature=temperature,
                                top_k=top_k, seed=seed, skip_unknown=skip_unknown,
                                stop=stop, num_samples=1 if num_samples is None
                                else num_samples, top_p=top_p)
        if num_samples is None and isinstance(prime, str):
            return (pieces[0] for pieces in chunks)
        return chunks

    def complete(self, prime: Union[str, List[str]], n: int, skip_unknown: bool = False,
                 beam: int = 1) -> Union[str, List[str]]:
        """The n characters after `prime` with the highest total log-probability that a
        beam search of width `beam` finds (beam=1: the most likely character at every
        step, greedy), without the prime.  See beam_search.  prime may be a list of
        texts: a list of completions comes back; greedily (beam=1) they advance as one
        batch of streams, with a wider beam one search after the other."""
        from .sample import beam_search, generate
        check_int(beam, "the beam width")
        if beam == 1:
            texts = generate(self, n, prime, greedy=True, skip_unknown=skip_unknown)
            return texts[0] if isinstance(prime, str) else texts
        if isinstance(prime, str):
            return beam_search(self, prime, n, beam, skip_unknown=skip_unknown)[0].text
        if not isinstance(prime, (list, tuple)) or not prime:
            raise TypeError(f"prime must be a str or a non-empty list of them, got {prime!r}")
        return [beam_search(self, p, n, beam, skip_unknown=skip_unknown)[0].text
                for p in prime]

    def beam_search(self, prime: str, n: int, beam: int = 5, skip_unknown: bool = False
                    ) -> list:
        """The `beam` best n-character continuations of `prime` that a beam search of
        that width finds, best first: a list of rnncore.sample.Completion(text,
        log_prob), log_prob being the continuation's total log-probability given the
        prime in nats.  At width >= V**n the search is exhaustive.  Runs compiled: the
        beams advance as one batch of streams, scored and pruned without Python."""
        from .sample import beam_search
        return beam_search(self, prime, n, beam, skip_unknown=skip_unknown)

    # ---- predictive text -------------------------------------------------------------
    def next_char_probs(self, text: str, skip_unknown: bool = False) -> np.ndarray:
        """(V,) float64: the probability of each vocabulary character coming right after
        `text` (the state carried through all of it), in vocabulary order; computed in
        compiled code.  Unknown characters are a ValueError naming them, unless
        skip_unknown drops them (as for complete)."""
        from .predict import next_char_probs
        return next_char_probs(self, text, skip_unknown)

    def next_chars(self, text: str, k: Optional[int] = None, skip_unknown: bool = False
                   ) -> List[Tuple[str, float]]:
        """The distribution of the character after `text`: a list of (char,
        probability) pairs, most likely first; the k most likely when k is given."""
        from .predict import next_chars
        return next_chars(self, text, k, skip_unknown)

    def suggest(self, text: str, k: int = 3, max_chars: int = 32, beam: int = 16,
                skip_unknown: bool = False) -> list:
        """The k most probable ways to finish the word being typed at the end of `text`
        (the next word when it ends in a separator), best first: a list of
        rnncore.predict.Suggestion(word, completion, log_prob).  A suggestion ends where
        the model emits a separator (whitespace, Unicode Z*, P*, S*, C*); log_prob (nats)
        includes that separator.  A compiled beam search of width `beam` over word
        continuations of at most max_chars characters; see rnncore.predict.suggest."""
        from .predict import suggest
        return suggest(self, text, k, max_chars, beam, skip_unknown)

    def session(self, text: str = "", skip_unknown: bool = False):
        """A typing session: the state after `text`, advanced by what is typed next
        (type, backspace, edit anywhere) so that a keystroke costs the characters it adds;
        its next_chars, suggest, complete and sample answer as the methods above do for
        its text.  See rnncore.session.TypingSession."""
        from .session import TypingSession
        return TypingSession(self, text, skip_unknown)

    # ---- checkpoints -----------------------------------------------------------------
    def save(self, path) -> None:
        """Write the model to `path` (.npz, atomically).  See rnncore.checkpoint."""
        file_format("checkpoint").save(path, self)

    @classmethod
    def load(cls, path, latest: bool = False) -> "CharRNN":
        """Read a model written by save() or by training; checked, never unpickled.

        A run trained with keep_best holds two sets of parameters: this returns the
        best-validation ones unless latest=True (the ones training stopped with, which
        resuming continues from).  rnncore.load_checkpoint gives both, and the training
        state."""
        ckpt = file_format("checkpoint").load(path)
        return ckpt.model if latest else ckpt.preferred_model

    def to_safetensors(self, path) -> None:
        """Write the model to `path` with PyTorch's names (torch.nn.RNN/LSTM/GRU and
        Linear), for use in PyTorch; see rnncore.export.  Needs `pip install
        'rnncore[export]'`."""
        file_format("safetensors").save(path, self)

    @classmethod
    def from_safetensors(cls, path) -> "CharRNN":
        """Read a model written by to_safetensors / `rnncore export` (or saved back from
        PyTorch with the same names and metadata); see rnncore.export."""
        return file_format("safetensors").load(path)

    # ---- checks ---------------------------------------------------------------------
    def _checked_params(self):
        """The parameter arrays as a tuple in the canonical order, checked for dtype,
        shape and layout.

        The check runs again only when an array has been replaced: editing in place keeps
        the arrays (and the kernels stay bound to them).
        """
        shapes = self._shapes
        arrays = tuple(self.params.get(name) for name in shapes)
        if self._checked is not None and len(arrays) == len(self._checked) and all(
                a is b for a, b in zip(arrays, self._checked)):
            return self._checked
        for (name, shape), a in zip(shapes.items(), arrays):
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

    # ---- the kernels (rnncore._cells), behind rnncore.doorway ---------------------
    @property
    def _kernels(self) -> doorway.Kernels:
        """The model's compiled kernels, built on first use (none after a pickle or
        with_params)."""
        if self._compiled is None:
            self._compiled = doorway.Kernels(self.cell, self.num_layers, self.n_vocab,
                                             self.hidden_size, self.dtype)
        return self._compiled

    def _kernel(self, B, T):
        """The compiled window for (B,T) windows, the parameters checked and bound."""
        return self._kernels.window(self._checked_params(), B, T)

    def generation_kernel(self, own: bool = False) -> doorway.Generation:
        """The kernel generation runs on, behind its checks (rnncore.doorway: its
        feed/sample_rows/beam/... take states of any number of streams), bound to the
        parameters.  own=True: a new one, bound to these parameters as they are now, for a
        thread of its own (a kernel holds the scratch of one call at a time)."""
        return self._kernels.generation(self._checked_params(), own)

    def _run(self, kernel, weights, inputs, targets, grads, clip, use_masks):
        """kernel.run on checked arrays: the indices are the last thing it trusts."""
        doorway.check_indices(inputs, self.n_vocab, "inputs")
        doorway.check_indices(targets, self.n_vocab, "targets")
        return kernel.run(weights, inputs, targets, grads, clip, use_masks)

    def _prepare(self, inputs, targets, state):
        """Checked (B,T) index arrays, whether they were 1-D, and the window's bound
        kernel with the state loaded."""
        inputs, targets, single = self._check_window(inputs, targets)
        kernel = self._kernel(*inputs.shape)
        self._load_state(state, kernel.state_in, single, inputs.shape[0])
        return inputs, targets, single, kernel

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

    def _load_state(self, state, dest, single, n_streams):
        """Copy `state` (any layout) into the kernel's (S·L, B, H) state_in."""
        if state is None:
            dest[...] = 0
            return
        state = np.asarray(state)
        if state.dtype.kind not in "fiu":
            raise TypeError(f"state must be a float array, got dtype {state.dtype}")
        want = self.state_shape(None if single else n_streams)
        if state.shape != want:
            raise ValueError(f"state has shape {state.shape}, expected {want} "
                             f"(inputs are {'(T,)' if single else '(B, T)'}; "
                             f"{self.cell} with {self.num_layers} layer(s))")
        dest[...] = state.reshape(dest.shape)

    def _load_masks(self, masks, kernel, single):
        """Copy the dropout masks into the kernel; whether there are any."""
        if masks is None:
            return False
        masks = np.asarray(masks)
        if masks.dtype.kind != "f":
            raise TypeError(f"dropout_masks must be a float array, got dtype {masks.dtype}")
        L, T, B, H = kernel.masks.shape
        want = (L, T, H) if single else (L, T, B, H)
        if masks.shape != want:
            raise ValueError(f"dropout_masks has shape {masks.shape}, expected {want} "
                             "(layers, steps, streams, hidden)")
        kernel.masks[...] = masks.reshape(L, T, B, H)
        return True

    def _check_out(self, out):
        shapes = self._shapes
        arrays = tuple(out.get(name) for name in shapes)
        if self._checked_out is not None and len(arrays) == len(self._checked_out) and all(
                a is b for a, b in zip(arrays, self._checked_out)):
            return self._checked_out
        for (name, shape), a in zip(shapes.items(), arrays):
            if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != self.dtype \
                    or not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError(f"out[{name!r}] must be a writable C-contiguous "
                                 f"{self.dtype.name} array of shape {shape}")
        self._checked_out = arrays
        return arrays

    def _last_state(self, kernel, single):
        state = kernel.state_out[:, 0] if single else kernel.state_out
        if state.shape[0] == 1:
            state = state[0]
        return state.copy()


def _index_array(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of character indices, "
                        f"got dtype {a.dtype}")
    if a.ndim not in (1, 2):
        raise ValueError(f"{name} must be (T,) or (B, T), got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.intp)


def _check_clip(clip):
    """0.0 for None (off), else the clip as a finite number >= 0."""
    return 0.0 if clip is None else check_number(clip, "clip", 0)
