"""The training loop: B contiguous streams over the corpus, one window per step.

The corpus (encoded once) is cut into `batch_size` contiguous streams that overlap by one
character, so stream b's targets are exactly the characters that follow stream b-1's:

    data:     c0 c1 c2 ... c_{B·L}            (at most B-1 characters left over)
    stream b: data[b·L : b·L + L + 1]          inputs are its first L, targets its last L

Every step takes the next `seq_length` positions of every stream (a shorter last window, so
the last character of each stream is a target too), carries each stream's hidden state into
the next window, and at the end of the streams wraps to the start with a zero state.  At
B=1 every character but the first is a target once per pass, the last one included.
"""
import math
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .config import SCHEDULES, SEED_TRAINING, TrainConfig, check_int, check_number
from .corpus import compact_dtype
from .errors import ConfigError, TrainingDiverged  # noqa: F401  (TrainingDiverged: re-exported)
from .model import CharRNN
from .optim import WeightAverage, clip_gradients, make_optimizer


def learning_rate_at(step, base_lr, schedule="constant", total_steps=None, warmup_steps=0,
                     decay=0.97, epoch=0, min_fraction=0.0, seconds=None,
                     total_seconds=None):
    """The learning rate for optimizer step `step` (counting from 0).

    constant: base_lr.  step: base_lr · decay^epoch (char-rnn's decay after each pass).
    cosine, linear: from base_lr down to min_fraction · base_lr along half a cosine or a
    straight line, over a budget of steps or of time:
      steps (total_steps): over the steps after the warm-up, reaching the floor at
        total_steps;
      time (total_seconds, for a --minutes budget): by the fraction seconds/total_seconds
        of the training time spent when the step starts (summed over resumes), reaching
        the floor when the time is up.
    Any schedule first rises linearly from 0 over `warmup_steps` steps.
    """
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        return base_lr * decay ** epoch
    if schedule in DECAYING:
        if total_seconds is not None:
            if seconds is None:
                raise ConfigError(f"the {schedule} schedule over a time budget needs the "
                                  "training seconds spent")
            progress = min(1.0, max(0.0, seconds / total_seconds))
        elif not total_steps:
            raise ConfigError(f"the {schedule} schedule needs total_steps")
        else:
            span = max(1, total_steps - warmup_steps)
            progress = min(1.0, (step - warmup_steps) / span)
        return base_lr * (min_fraction + (1 - min_fraction) * DECAYING[schedule](progress))
    raise ConfigError(f"lr schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


#: the decaying schedules: the fraction of the way from the floor to the top at progress
#: p in [0, 1] of the budget
DECAYING = {"cosine": lambda p: 0.5 * (1 + math.cos(math.pi * p)),
            "linear": lambda p: 1 - p}


def evaluate(model: CharRNN, data, window: int = 1024,
             progress: Optional[Callable[[int], None]] = None) -> dict:
    """Statefully predict data[1:] from data[:-1], carrying the hidden state across windows.

    Returns {"nats_per_char", "bits_per_char", "perplexity", "chars"} (chars = predictions
    made; perplexity inf where it overflows).  The forward pass runs in compiled code, one
    window at a time; progress(n), if given, is called after each with the predictions
    made so far (a progress bar's update).
    """
    data = np.asarray(data)
    n = len(data) - 1
    if n < 1:
        raise ConfigError("evaluation needs at least 2 characters")
    total, h = 0.0, None
    for start in range(0, n, window):
        stop = min(start + window, n)
        loss, h = model.loss(data[start:stop], data[start + 1:stop + 1], h)
        total += loss * (stop - start)
        if progress is not None:
            progress(stop)
    nats = total / n
    return {"nats_per_char": nats, "bits_per_char": nats / math.log(2),
            "perplexity": perplexity(nats), "chars": n}


def perplexity(nats_per_char):
    """e^loss; inf where a finite loss is too large for a float (above ~709.8 nats/char:
    a model that has blown up must still be reported, not crash the report)."""
    try:
        return math.exp(nats_per_char)
    except OverflowError:
        return math.inf


# By this step a model that learns anything predicts better than guessing uniformly
HOPELESS_AFTER_STEPS = 300


def uniform_loss(n_vocab):
    """ln V: the loss in nats/char of giving each of V symbols probability 1/V, which an
    untrained model starts near and any model that learns anything beats."""
    return math.log(n_vocab)


def worse_than_uniform(loss, n_vocab):
    """Whether a loss (nats/char) is above ln V: such weights are never worth keeping."""
    return loss > uniform_loss(n_vocab)


#: a held-out text shorter than this measures nothing (a few words; a run on a toy corpus)
SMALL_VALIDATION_CHARS = 1000


class HopelessRunWatch:
    """Watches a run's logged losses and says, once, if past its first few hundred steps
    one of them is still worse than uniform guessing, and what that means: a training
    loss above ln V is a model learning nothing (most likely a learning rate too high); a
    validation loss above it beside a training loss below it is a held-out text too short
    to measure anything (val_chars below SMALL_VALIDATION_CHARS) or a model memorising its
    training text (overfitting)."""

    def __init__(self, n_vocab, after_steps=HOPELESS_AFTER_STEPS,
                 val_chars: Optional[int] = None):
        self.n_vocab, self.after_steps, self.val_chars = n_vocab, after_steps, val_chars
        self.warned = False

    def check(self, step, learning_rate, train_loss=None, val_loss=None):
        """The warning line (without a program prefix) the first time a loss logged at
        `step` >= after_steps is above ln V; None otherwise."""
        if self.warned or step < self.after_steps:
            return None
        V = self.n_vocab
        train_bad = train_loss is not None and worse_than_uniform(train_loss, V)
        val_bad = val_loss is not None and worse_than_uniform(val_loss, V)
        if not (train_bad or val_bad):
            return None
        self.warned = True
        which, loss = ("training", train_loss) if train_bad else ("validation", val_loss)
        said = (f"warning: the {which} loss is {loss:.4g} nats/char at step {step}, worse "
                f"than guessing uniformly among the {V} symbols (ln {V} = "
                f"{uniform_loss(V):.4f})")
        if train_bad or train_loss is None:
            return (f"{said}: the model is learning nothing, most likely because the "
                    f"learning rate ({learning_rate:g}) is too high; try a lower "
                    "--learning-rate")
        said += f", while the training loss is {train_loss:.4g}"
        if self.val_chars is not None and self.val_chars < SMALL_VALIDATION_CHARS:
            return (f"{said}: the held-out text is only {self.val_chars:,} character(s), "
                    "too few for its loss to mean anything; train on a longer corpus or "
                    "hold out more with --val-fraction")
        return (f"{said}: the model memorises its training text instead of learning what "
                "carries over to the held-out text (it overfits); keep the best "
                "(--keep-best, --patience), regularise (--dropout, --weight-drop, "
                "--weight-decay) or train on more text")


def make_streams(data, n_streams):
    """(B, L+1) read-only view of `data` as B overlapping contiguous streams (no copy)."""
    data = np.asarray(data)
    length = (len(data) - 1) // n_streams
    if length < 1:
        raise ConfigError(f"the corpus has {len(data)} characters: too short for "
                         f"{n_streams} stream(s) (each needs at least 2)")
    item = data.strides[0]
    return np.lib.stride_tricks.as_strided(data, shape=(n_streams, length + 1),
                                           strides=(length * item, item), writeable=False)


class Trainer:
    """Trains `model` on `text` with the pointer loop, as `config` (a TrainConfig) says.

    config: the training settings, validated once by rnncore.config (the window T =
    seq_length, the streams B = batch_size, the optimizer and its learning rate, the
    clips, the schedule, weight_decay, the averaged weights, the seed); without one, the
    seed's preset (rnncore.config.SEED_TRAINING: plain SGD over 10-step windows of one
    stream).  settings: any TrainConfig field by name, replacing the config's (clip=None:
    off; seed=None: 0); other keywords are the optimizer's own (eps, beta1, ...).
    total_steps: where the cosine and linear schedules end; total_seconds instead: a time
    budget they follow (`seconds`, which the caller keeps up to date before each step:
    the training time spent, in seconds).  `text` is a str, or an integer array
    already encoded with model.vocab.  The seed seeds dropout_rng, the generator of the
    dropout masks (drawn every step when model.dropout > 0, then the recurrent weights'
    when model.weight_drop > 0, for all B streams on every process; its state is part of
    state(), so a resumed run draws the same masks).  With config.average, an exponential
    moving average of the parameters (rnncore.optim.WeightAverage) is kept from step
    average_start on; evaluation_model() holds it.
    """

    def __init__(self, model: CharRNN, text, config: Optional[TrainConfig] = None, *,
                 total_steps: Optional[int] = None, total_seconds: Optional[float] = None,
                 **settings):
        if not isinstance(model, CharRNN):
            raise TypeError(f"model must be a CharRNN, got {type(model).__name__}")
        if config is not None and not isinstance(config, TrainConfig):
            raise TypeError(f"config must be an rnncore.TrainConfig, got "
                            f"{type(config).__name__}")
        names = set(TrainConfig.names())
        optimizer_options = {k: v for k, v in settings.items() if k not in names}
        given = {k: v for k, v in settings.items() if k in names}
        if "clip" in given and given["clip"] is None:
            given["clip"] = 0.0
        if "seed" in given and given["seed"] is None:
            given["seed"] = 0
        # the one validation of the training settings (rnncore.config)
        config = (config or SEED_TRAINING).replace(**given)
        if total_steps is not None:
            check_int(total_steps, "total_steps")
        if total_seconds is not None:
            check_number(total_seconds, "total_seconds", 0, low_open=True)
        elif config.lr_schedule in DECAYING and not total_steps:
            raise ConfigError(f"the {config.lr_schedule} schedule needs total_steps or "
                              "total_seconds")
        self.settings = config
        self.model = model
        self.seq_length, self.batch_size = config.seq_length, config.batch_size
        self.learning_rate, self.clip = config.learning_rate, config.clip
        self.clip_norm = config.clip_norm
        self.lr_schedule, self.total_steps = config.lr_schedule, total_steps
        self.warmup_steps, self.lr_decay = config.warmup_steps, config.lr_decay
        self.lr_floor = config.lr_floor
        # a time budget: the decay follows `seconds`, the training time spent when the
        # next step starts (the run sets it; summed over resumes), to total_seconds
        self.total_seconds = None if total_seconds is None else float(total_seconds)
        self.seconds = 0.0
        self.last_lr: Optional[float] = None   # the rate the last step used
        self.data = self._encode(text)
        self.streams = make_streams(self.data, self.batch_size)
        if self.stream_length < self.seq_length:
            raise ConfigError(
                f"the corpus has {len(self.data)} characters: shorter than one window of "
                f"{self.seq_length} steps per stream for {self.batch_size} stream(s) "
                f"(needs at least {self.batch_size * self.seq_length + 1}); "
                "lower seq_length or batch_size")
        self.weight_decay = config.weight_decay
        self.optimizer = make_optimizer(config.optimizer, model, config.weight_decay,
                                        **optimizer_options)
        self.average = None if config.average is None else WeightAverage(
            model, config.average, config.average_start)
        self.share = (0, self.batch_size)    # the streams this process trains
        self._bind_gradients(np.zeros(model.num_parameters(), model.dtype))
        self.step = 0           # optimizer steps taken
        self.epoch = 0          # completed passes over the streams
        self.pointer = 0        # position within every stream
        self.hidden = model.initial_state(self.batch_size)   # (S·L, B, H), streams axis -2
        self.dropout_rng = np.random.default_rng(config.seed)
        self._averaged: Optional[CharRNN] = None

    @property
    def stream_length(self):
        """L: targets per stream per pass."""
        return self.streams.shape[1] - 1

    @property
    def steps_per_epoch(self):
        return math.ceil(self.stream_length / self.seq_length)

    def next_window(self):
        """(inputs, targets) of the next window, both (B, T'), T' <= seq_length."""
        p = self.pointer
        n = min(self.seq_length, self.stream_length - p)
        return self.streams[:, p:p + n], self.streams[:, p + 1:p + n + 1]

    @property
    def current_lr(self):
        """The learning rate the next step will use."""
        return learning_rate_at(self.step, self.learning_rate, self.lr_schedule,
                                self.total_steps, self.warmup_steps, self.lr_decay, self.epoch,
                                self.lr_floor, self.seconds, self.total_seconds)

    def train_step(self, learning_rate: Optional[float] = None,
                   reduce: Optional[Callable] = None) -> float:
        """One window: the gradients, then their update.  Returns the mean loss (nats per
        char).  Raises TrainingDiverged, before updating, if the loss is not finite.
        learning_rate overrides the schedule for this step.  reduce(flat_grads, loss) ->
        loss, given by a distribution strategy (rnncore.parallel), combines this
        process's gradients and loss with the others' between the two halves; it is the
        only thing distribution adds to a step."""
        loss, n_steps, h_last = self.compute_gradients()
        if reduce is not None:
            loss = reduce(self.flat_grads, loss)
        self.apply_gradients(loss, n_steps, h_last, learning_rate)
        return loss

    def compute_gradients(self):
        """Forward and backward over this process's streams of the next window, unclipped,
        into self.grads (averaged over these streams, scaled by their share of all B).
        Returns (mean loss over these streams, positions consumed, their last state)."""
        inputs, targets = self.next_window()                    # (B, T') all streams
        lo, hi = self.share
        masks = weight_masks = None
        if self.model.dropout > 0:   # drawn for all B streams, so every share draws alike
            masks = self.model.dropout_masks(self.dropout_rng, *inputs.shape)
            masks = masks[..., lo:hi, :]
        if self.model.weight_drop > 0:
            weight_masks = self.model.weight_drop_masks(self.dropout_rng)
        loss, _, h_last = self.model.loss_and_grads(
            inputs[lo:hi], targets[lo:hi], self.hidden, clip=0, out=self.grads,
            dropout_masks=masks, weight_masks=weight_masks)
        if hi - lo != self.batch_size:
            self.flat_grads *= self.flat_grads.dtype.type((hi - lo) / self.batch_size)
            loss *= (hi - lo) / self.batch_size
        return loss, inputs.shape[1], h_last

    def apply_gradients(self, loss, n_steps, h_last, learning_rate=None):
        """The update from self.grads: the finite check, the clips (elementwise, then the
        joint norm: the one place either happens), the optimizer, the advance."""
        if not math.isfinite(loss):
            raise TrainingDiverged(self.step + 1, loss)
        clip_gradients(self.flat_grads, self.grads, self.clip, self.clip_norm)
        self.last_lr = self.current_lr if learning_rate is None else learning_rate
        self.optimizer.step(self.grads, self.last_lr)
        self.advance(n_steps, h_last)
        if self.average is not None:
            self.average.update(self.step)

    def evaluation_model(self) -> CharRNN:
        """The model validation, keeping the best and saving for sampling use: the
        averaged parameters once averaging has started, else the model itself."""
        if self.average is None or self.average.arrays is None:
            return self.model
        if self._averaged is None or self._averaged.params is not self.average.arrays:
            self._averaged = self.model.with_params(self.average.arrays)
        return self._averaged

    def use_share(self, lo, hi, flat_grads):
        """Train only streams lo..hi-1 of the B (this process's share of a distributed
        run), writing the gradients into flat_grads (a buffer the strategy reduces)."""
        self.share = (lo, hi)
        self._bind_gradients(flat_grads)
        self.hidden = np.ascontiguousarray(self.hidden[..., lo:hi, :])

    def _bind_gradients(self, flat):
        """self.grads as views of one flat buffer, so clipping and a reduction each make
        one pass over every gradient."""
        self.flat_grads, self.grads, offset = flat, {}, 0
        for name, shape in self.model.shapes.items():
            size = int(np.prod(shape))
            self.grads[name] = flat[offset:offset + size].reshape(shape)
            offset += size

    def advance(self, n_steps, h_last):
        """Count one step that consumed n_steps positions of every stream and ended in
        h_last; at the end of the streams, wrap to the start with a zero state."""
        self.step += 1
        self.pointer += n_steps
        self.hidden = h_last
        if self.pointer >= self.stream_length:
            self.pointer = 0
            self.epoch += 1
            self.hidden = np.zeros_like(self.hidden)

    def train(self, steps: int, callback: Optional[Callable] = None) -> List[float]:
        """Take `steps` steps; return their losses (mean nats per char, one per step).
        callback(trainer, loss) runs after every step; returning True stops early."""
        _check_positive_int(steps, "steps", allow_zero=True)
        losses = []
        for _ in range(steps):
            losses.append(self.train_step())
            if callback is not None and callback(self, losses[-1]):
                break
        return losses

    # ---- what a checkpoint needs to resume exactly ---------------------------------
    def state(self) -> Tuple[Dict[str, np.ndarray], dict]:
        """(arrays, meta): everything besides the model to continue bit for bit."""
        opt_arrays, opt_meta = self.optimizer.state_dict()
        arrays = {f"optim.{k}": v for k, v in opt_arrays.items()}
        arrays["hidden"] = self.hidden
        meta = {"step": self.step, "epoch": self.epoch, "pointer": self.pointer,
                "optimizer": opt_meta, "corpus_chars": int(len(self.data)),
                "config": self.config,
                "dropout_rng": self.dropout_rng.bit_generator.state}
        if self.average is not None and self.average.arrays is not None:
            arrays.update({f"average.{k}": v for k, v in self.average.arrays.items()})
        return arrays, meta

    def load_state(self, arrays, meta, same_corpus=True):
        """Restore what state() gave (the model's parameters are restored separately).
        The streams continue where they stopped only if the corpus is the same one
        (same_corpus, and the same length); otherwise they restart at the beginning.
        Returns whether they continue."""
        self.optimizer.load_state_dict(
            {k[len("optim."):]: v for k, v in arrays.items() if k.startswith("optim.")},
            meta["optimizer"])
        self.step, self.epoch = int(meta["step"]), int(meta["epoch"])
        if self.average is not None:
            averaged = {k[len("average."):]: v for k, v in arrays.items()
                        if k.startswith("average.")}
            self.average.load(averaged or None)
        if "dropout_rng" in meta:
            self.dropout_rng.bit_generator.state = meta["dropout_rng"]
        hidden = arrays["hidden"]
        same_streams = (same_corpus and int(meta.get("corpus_chars", -1)) == len(self.data)
                        and hidden.shape == self.hidden.shape
                        and 0 <= int(meta["pointer"]) < self.stream_length)
        if same_streams:
            self.pointer = int(meta["pointer"])
            self.hidden = np.array(hidden, dtype=self.model.dtype)
        else:
            self.pointer = 0
            self.hidden = np.zeros_like(self.hidden)
        return same_streams

    @property
    def config(self):
        return {"seq_length": self.seq_length, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "optimizer": self.optimizer.name,
                "clip": self.clip, "clip_norm": self.clip_norm,
                "lr_schedule": self.lr_schedule, "total_steps": self.total_steps,
                "total_seconds": self.total_seconds, "lr_floor": self.lr_floor,
                "warmup_steps": self.warmup_steps, "lr_decay": self.lr_decay,
                "weight_decay": self.weight_decay,
                "average": None if self.average is None else self.average.decay,
                "average_start": 0 if self.average is None else self.average.start}

    def _encode(self, text):
        vocab = self.model.vocab
        if isinstance(text, str):
            if len(text) < 2:
                raise ConfigError(f"the corpus has {len(text)} character(s): nothing to predict")
            ids = vocab.encode(text)
        else:
            ids = np.asarray(text)
            if ids.ndim != 1 or ids.dtype.kind not in "iu":
                raise TypeError("text must be a str or a 1-D integer array of indices")
            if ids.size < 2:
                raise ConfigError(f"the corpus has {ids.size} character(s): nothing to predict")
            # indices are range-checked window by window, by the kernel: no pass over a
            # corpus that may be larger than memory
            if ids.dtype.kind == "u":
                return ids
        dt = compact_dtype(len(vocab))
        return ids if ids.dtype == dt else ids.astype(dt)


def _check_positive_int(value, name, allow_zero=False):
    check_int(value, name, 0 if allow_zero else 1)
