"""The `rnncore` command line: demo, train, sample.

Every failure the user can cause ends in one line on stderr, `rnncore: error: ...`, and a
non-zero exit status; never a traceback.
"""
import argparse
import contextlib
import math
import os
import signal
import sys
import tempfile
import time

import numpy as np

from . import __version__
from .checkpoint import (CheckpointError, load_checkpoint, remove_stale_temp_files,
                         save_checkpoint)
from .corpus import CorpusError, read_corpus
from .model import CharRNN
from .train import Trainer, TrainingDiverged
from .vocab import Vocab

DEMO_TEXT = "Hola mundo, aprendiendo redes recurrentes!"
DEMO_PRIME = "Hola mundo, aprendien"
DEMO_STEPS = 3000   # every seed of 0..99 completes the demo by 1,300 steps (tests check 20)

# `train` defaults; None on the parser so that a resumed run can tell what was typed
TRAIN_DEFAULTS = {"hidden_size": 128, "seq_length": 50, "batch_size": 16,
                  "learning_rate": 2e-3, "optimizer": "adam", "clip": 5.0,
                  "clip_norm": None, "dtype": "float32", "seed": 0}
# fixed by the checkpoint on --resume: they shape the model or the streams
RESUME_FIXED = ("hidden_size", "dtype", "seq_length", "batch_size", "optimizer")

LN2 = math.log(2)


class UsageError(Exception):
    """A problem with what the user asked for, reported as one line."""


# ---- argument types: argparse turns their ValueError into a one-line usage error ----
def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def positive_float(text):
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def nonnegative_float(text):
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rnncore", description="Character-level RNN language models, fast on a CPU.")
    parser.add_argument("--version", action="version", version=f"rnncore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="train on one sentence and complete it",
                          description=f"Train on {DEMO_TEXT!r} with the classic settings "
                          "(hidden 64, window 10, SGD lr 1e-2, clip 5), then complete "
                          f"{DEMO_PRIME!r} greedily.")
    demo.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")
    demo.add_argument("--steps", type=positive_int, default=DEMO_STEPS,
                      help=f"training steps (default {DEMO_STEPS})")
    demo.set_defaults(func=cmd_demo)

    d = TRAIN_DEFAULTS
    train = sub.add_parser("train", help="train a model on a text file",
                           description="Train on a UTF-8 text file and save a checkpoint "
                           "(at the end, every --checkpoint-every steps, and on Ctrl-C).")
    train.add_argument("corpus", help="text file to learn")
    train.add_argument("--out", required=True, help="checkpoint file to write (.npz)")
    train.add_argument("--steps", type=positive_int, default=10000,
                       help="total optimizer steps (with --resume: up to this many in all)")
    train.add_argument("--hidden-size", type=positive_int,
                       help=f"hidden units (default {d['hidden_size']})")
    train.add_argument("--seq-length", type=positive_int,
                       help=f"time steps per window (default {d['seq_length']})")
    train.add_argument("--batch-size", type=positive_int,
                       help=f"parallel streams (default {d['batch_size']})")
    train.add_argument("--learning-rate", type=positive_float,
                       help=f"step size (default {d['learning_rate']})")
    train.add_argument("--optimizer", choices=["sgd", "adagrad", "rmsprop", "adam"],
                       help=f"update rule (default {d['optimizer']})")
    train.add_argument("--clip", type=nonnegative_float,
                       help=f"clip each gradient element to [-C, C]; 0: off "
                       f"(default {d['clip']})")
    train.add_argument("--clip-norm", type=positive_float,
                       help="clip the joint L2 norm of all gradients (default: off)")
    train.add_argument("--dtype", choices=["float32", "float64"],
                       help=f"parameter precision (default {d['dtype']})")
    train.add_argument("--seed", type=int, help=f"initialisation seed (default {d['seed']})")
    train.add_argument("--print-every", type=positive_int, default=100,
                       help="log every K steps (default 100)")
    train.add_argument("--checkpoint-every", type=positive_int, default=1000,
                       help="save every K steps (default 1000)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run saved at --out")
    train.add_argument("--force", action="store_true",
                       help="overwrite an existing --out without resuming it")
    train.add_argument("--encoding", default="utf-8", help="corpus encoding (default utf-8)")
    train.add_argument("--threads", type=positive_int,
                       help="BLAS threads (default: the BLAS library's own, all cores; "
                       "measured no slower than one thread at every size in README)")
    train.set_defaults(func=cmd_train)

    sample = sub.add_parser("sample", help="generate text from a checkpoint",
                            description="Print the prime followed by generated text on "
                            "stdout (and nothing else).")
    sample.add_argument("checkpoint", help="checkpoint file written by `rnncore train`")
    sample.add_argument("--prime", default="", help="text to start from")
    sample.add_argument("--length", type=positive_int, default=500,
                        help="characters to generate (default 500)")
    sample.add_argument("--temperature", type=positive_float, default=1.0,
                        help="softmax temperature; lower is more conservative (default 1)")
    sample.add_argument("--top-k", type=positive_int,
                        help="draw only among the K most likely characters")
    sample.add_argument("--greedy", action="store_true",
                        help="always take the most likely character")
    sample.add_argument("--seed", type=int, help="random seed, for reproducible samples")
    sample.add_argument("--skip-unknown", action="store_true",
                        help="drop prime characters the model has never seen")
    sample.set_defaults(func=cmd_sample)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (UsageError, CorpusError, CheckpointError, TrainingDiverged, ValueError,
            TypeError) as e:
        return _fail(str(e))
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        return _fail(f"{e.strerror or e}{where}")
    except KeyboardInterrupt:
        return _fail("interrupted", status=130)
    except BrokenPipeError:  # `rnncore sample ... | head`
        return 0


def _fail(message, status=1):
    print(f"rnncore: error: {message}", file=sys.stderr)
    return status


# ---- demo ---------------------------------------------------------------------------
def cmd_demo(args):
    vocab = Vocab.from_text(DEMO_TEXT)
    model = CharRNN(vocab, hidden_size=64, seed=args.seed)
    trainer = Trainer(model, DEMO_TEXT, seq_length=10, learning_rate=1e-2, optimizer="sgd",
                      clip=5.0)
    print(f"training on {DEMO_TEXT!r}: {len(vocab)} symbols, hidden 64, window 10, "
          f"SGD lr 1e-2, clip 5, seed {args.seed}")
    recent = []
    for _ in range(args.steps):
        recent.append(trainer.train_step())
        if trainer.step % 100 == 0:
            mean = sum(recent) / len(recent)
            print(f"step {trainer.step:5d}  loss {mean:.4f} nats/char "
                  f"({mean / LN2:.4f} bits/char)")
            recent = []
    completion = model.complete(DEMO_PRIME, len(DEMO_TEXT) - len(DEMO_PRIME))
    print(f"prime:      {DEMO_PRIME}")
    print(f"completion: {completion}")


# ---- train --------------------------------------------------------------------------
def cmd_train(args):
    text = read_corpus(args.corpus, args.encoding)
    _check_writable(args.out)
    remove_stale_temp_files(args.out)  # left by a run that was killed mid-write
    if args.resume:
        trainer, settings = _resume(args, text)
    else:
        if os.path.exists(args.out) and not args.force:
            raise UsageError(f"{args.out} exists: pass --resume to continue it, or --force "
                             "to overwrite it")
        settings = {k: (getattr(args, k) if getattr(args, k) is not None else v)
                    for k, v in TRAIN_DEFAULTS.items()}
        model = CharRNN(Vocab.from_text(text), settings["hidden_size"],
                        dtype=settings["dtype"], seed=settings["seed"])
        trainer = _make_trainer(model, text, settings)
    if trainer.step >= args.steps:
        print(f"{args.out} is already at step {trainer.step} (--steps {args.steps}): "
              "nothing to do")
        return 0
    model = trainer.model
    print(f"corpus {args.corpus}: {len(trainer.data):,} chars, {model.n_vocab} symbols; "
          f"model: hidden {model.hidden_size}, {model.num_parameters():,} parameters, "
          f"{model.dtype.name}; {settings['batch_size']} stream(s) x {settings['seq_length']} "
          f"steps, {settings['optimizer']} lr {settings['learning_rate']:g}")
    with _blas_threads(args.threads):
        return _run_training(trainer, args)


def _blas_threads(n):
    """Limit the BLAS pool the kernels use (scipy's) to n threads; None: leave it."""
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=n, user_api="blas")


def _make_trainer(model, text, settings):
    clip = settings["clip"]
    return Trainer(model, text, seq_length=settings["seq_length"],
                   batch_size=settings["batch_size"], learning_rate=settings["learning_rate"],
                   optimizer=settings["optimizer"], clip=clip,
                   clip_norm=settings["clip_norm"])


def _resume(args, text):
    if not os.path.exists(args.out):
        raise UsageError(f"cannot resume: {args.out} does not exist")
    ckpt = load_checkpoint(args.out)
    if ckpt.train_meta is None:
        raise UsageError(f"cannot resume: {args.out} holds a model without training state")
    saved = dict(ckpt.train_meta["config"])
    saved["hidden_size"] = ckpt.model.hidden_size
    saved["dtype"] = ckpt.model.dtype.name
    for key in RESUME_FIXED:
        given = getattr(args, key)
        if given is not None and given != saved[key]:
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"{flag} {given} conflicts with the checkpoint's {saved[key]} "
                             "(a resumed run keeps its model and streams; only "
                             "--learning-rate, --clip and --clip-norm may change)")
    unknown = ckpt.model.vocab.unknown(text)
    if unknown:
        raise UsageError(f"corpus {args.corpus} has characters not in the checkpoint's "
                         f"vocabulary: {''.join(unknown)!r}")
    settings = dict(saved)
    for key in ("learning_rate", "clip", "clip_norm"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    trainer = _make_trainer(ckpt.model, text, settings)
    if not trainer.load_state(ckpt.train_arrays, ckpt.train_meta):
        print("note: the corpus differs from the checkpoint's; its streams restart at the "
              "beginning")
    print(f"resuming {args.out} at step {trainer.step}")
    return trainer, settings


def _check_writable(out):
    """Fail now, not after hours of training, if --out cannot be written."""
    directory = os.path.dirname(os.path.abspath(out))
    if os.path.isdir(out):
        raise UsageError(f"--out {out} is a directory")
    if not os.path.isdir(directory):
        what = "is not a directory" if os.path.exists(directory) else "does not exist"
        raise UsageError(f"--out {out}: {directory} {what}")
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".rnncore-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"--out {out}: directory {directory} is not writable "
                         f"({e.strerror})") from None


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps, so the state it
    saves is always that of a whole step."""

    def __init__(self):
        self.signal = None

    def __enter__(self):
        self._old = {s: signal.signal(s, self._set) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _set(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)


def _run_training(trainer, args):
    total = args.steps
    bar = _progress_bar(total, trainer.step)
    saved = {"step": trainer.step if args.resume else None}
    smooth, seen = 0.0, 0
    chars_per_step = trainer.batch_size * trainer.seq_length
    t0, step0 = time.perf_counter(), trainer.step
    try:
        with _StopFlag() as stop:
            while trainer.step < total and stop.signal is None:
                try:
                    loss = trainer.train_step()
                except TrainingDiverged as e:
                    raise UsageError(f"{e}; {_kept(args, saved)}") from None
                seen += 1
                smooth = 0.98 * smooth + 0.02 * loss
                shown = smooth / (1 - 0.98 ** seen)   # bias-corrected running mean
                if bar is not None:
                    bar.update(1)
                    if trainer.step % 10 == 0:
                        bar.set_postfix_str(f"loss {shown:.3f} ({shown / LN2:.3f} bpc)")
                elif trainer.step % args.print_every == 0 or trainer.step == total:
                    rate = (trainer.step - step0) * chars_per_step / (time.perf_counter() - t0)
                    print(f"step {trainer.step}/{total}  loss {shown:.4f} nats/char "
                          f"({shown / LN2:.4f} bits/char)  epoch {trainer.epoch}  "
                          f"{rate:,.0f} chars/s", flush=True)
                if trainer.step % args.checkpoint_every == 0:
                    _save(trainer, args, saved)
            interrupted = stop.signal is not None
    finally:
        if bar is not None:
            bar.close()
    if saved["step"] != trainer.step:
        _save(trainer, args, saved)
    if interrupted:
        print(f"interrupted at step {trainer.step}: saved {args.out} (continue with --resume)")
        return 130
    print(f"saved {args.out} at step {trainer.step}")
    return 0


def _save(trainer, args, saved):
    """Checkpoint, unless the weights have gone non-finite: then stop, keeping the file."""
    if not all(np.isfinite(p).all() for p in trainer.model.params.values()):
        raise UsageError(f"training diverged by step {trainer.step}: the parameters hold "
                         f"nan or inf (try a lower learning rate or a smaller clip); "
                         f"{_kept(args, saved)}")
    save_checkpoint(args.out, trainer.model, trainer.state())
    saved["step"] = trainer.step


def _kept(args, saved):
    if saved["step"] is None:
        return "no checkpoint was written"
    return f"the checkpoint at {args.out} (step {saved['step']}) was kept"


def _progress_bar(total, initial):
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


# ---- sample -------------------------------------------------------------------------
def cmd_sample(args):
    model = load_checkpoint(args.checkpoint).model
    unknown = model.vocab.unknown(args.prime)
    if unknown and not args.skip_unknown:
        raise UsageError(f"the prime has characters the model has never seen: "
                         f"{''.join(unknown)!r} (pass --skip-unknown to drop them)")
    if args.greedy:
        text = model.complete(args.prime, args.length, skip_unknown=True)
    else:
        text = model.sample(args.length, args.prime, temperature=args.temperature,
                            top_k=args.top_k, seed=args.seed, skip_unknown=True)
    sys.stdout.write(args.prime + text + "\n")
    sys.stdout.flush()
