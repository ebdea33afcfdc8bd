"""The `rnncore` command line: demo, train, sample.

Every failure the user can cause ends in one line on stderr, `rnncore: error: ...`, and a
non-zero exit status; never a traceback.
"""
import argparse
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import time

import numpy as np

from .about import ReportVersion
from .checkpoint import (CheckpointError, load_checkpoint, remove_stale_temp_files,
                         save_checkpoint)
from .corpus import CorpusError, load_corpus, read_corpus
from .metrics import LN2, MetricsLog, metrics_path, plot_metrics, read_metrics
from .model import CharRNN
from .train import SCHEDULES, Trainer, TrainingDiverged, evaluate
from .vocab import Vocab

DEMO_TEXT = "Hola mundo, aprendiendo redes recurrentes!"
DEMO_PRIME = "Hola mundo, aprendien"
DEMO_STEPS = 3000   # seeds 0..99 all complete the demo from 1,400 steps on (tests check 20)

# `train` defaults; None on the parser so that a resumed run can tell what was typed
TRAIN_DEFAULTS = {"hidden_size": 128, "seq_length": 50, "batch_size": 16,
                  "learning_rate": 2e-3, "optimizer": "adam", "clip": 5.0,
                  "clip_norm": None, "dtype": "float32", "seed": 0, "val_fraction": 0.05,
                  "lr_schedule": "constant", "warmup_steps": 0, "lr_decay": 0.97}
# fixed by the checkpoint on --resume: they shape the model or the streams
RESUME_FIXED = ("hidden_size", "dtype", "seq_length", "batch_size", "optimizer",
                "val_fraction")
# what a resumed run may change
RESUME_FREE = ("learning_rate", "clip", "clip_norm", "lr_schedule", "warmup_steps", "lr_decay")

class UsageError(Exception):
    """A problem with what the user asked for, reported as one line."""


# ---- argument types: argparse turns their ValueError into a one-line usage error ----
def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int(text):
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def nonnegative_int(text):
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def fraction(text):
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
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
    parser.add_argument("--version", action=ReportVersion)
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
    train.add_argument("--val-fraction", type=fraction,
                       help="hold out this last fraction of the corpus for validation "
                       f"(default {d['val_fraction']}; 0: none)")
    train.add_argument("--eval-every", type=positive_int, default=500,
                       help="validate every K steps, and at the end (default 500)")
    train.add_argument("--keep-best", action="store_true",
                       help="keep the best-validation parameters in the checkpoint; "
                       "sample and eval use them")
    train.add_argument("--patience", type=positive_int,
                       help="stop after N validations without improvement")
    train.add_argument("--lr-schedule", choices=SCHEDULES,
                       help=f"constant, step (x lr-decay per epoch, char-rnn's) or cosine "
                       f"(to 0 at --steps) (default {d['lr_schedule']})")
    train.add_argument("--lr-decay", type=positive_float,
                       help=f"factor per epoch for --lr-schedule step (default {d['lr_decay']})")
    train.add_argument("--warmup-steps", type=nonnegative_int,
                       help="linear warm-up from 0 over this many steps (default 0)")
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
    sample.add_argument("--latest", action="store_true",
                        help="use the latest parameters, not the best-validation ones")
    sample.set_defaults(func=cmd_sample)

    ev = sub.add_parser("eval", help="loss of a checkpoint on a text file",
                        description="Mean cross-entropy of the model on FILE, predicting "
                        "every character from the ones before (state carried throughout): "
                        "nats/char, bits/char and perplexity.  Characters the model has "
                        "never seen are dropped and counted.")
    ev.add_argument("checkpoint")
    ev.add_argument("file", help="text file to evaluate on")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--encoding", default="utf-8")
    ev.add_argument("--latest", action="store_true",
                    help="use the latest parameters, not the best-validation ones")
    ev.set_defaults(func=cmd_eval)

    plot = sub.add_parser("plot", help="plot a run's train/validation loss to a PNG",
                          description="Train and validation loss (bits/char) against steps "
                          "and time, from the metrics log beside a checkpoint.  Needs "
                          "matplotlib (pip install 'rnncore[plot]').")
    plot.add_argument("run", help="checkpoint (model.npz) or its metrics log "
                      "(model.metrics.jsonl)")
    plot.add_argument("--out", help="PNG to write (default: beside the log, .png)")
    plot.set_defaults(func=cmd_plot)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except BrokenPipeError:  # `rnncore sample ... | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the final flush at exit stays quiet
        return 0
    except (UsageError, CorpusError, CheckpointError, TrainingDiverged, ValueError,
            TypeError) as e:
        return _fail(str(e))
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        return _fail(f"{e.strerror or e}{where}")
    except KeyboardInterrupt:
        return _fail("interrupted", status=130)


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
    _check_writable(args.out)
    if args.resume:
        if not os.path.exists(args.out):
            raise UsageError(f"cannot resume: {args.out} does not exist")
        ckpt = load_checkpoint(args.out)
        if ckpt.train_meta is None:
            raise UsageError(f"cannot resume: {args.out} holds a model without training "
                             "state")
        settings = _resume_settings(args, ckpt)
        corpus = load_corpus(args.corpus, args.encoding, vocab=ckpt.model.vocab,
                             vocab_source="the checkpoint's")
        run = TrainingRun(args, settings, corpus, ckpt.model)
        run.restore(ckpt)
    else:
        if os.path.exists(args.out) and not args.force:
            raise UsageError(f"{args.out} exists: pass --resume to continue it, or --force "
                             "to overwrite it")
        settings = {k: (getattr(args, k) if getattr(args, k) is not None else v)
                    for k, v in TRAIN_DEFAULTS.items()}
        corpus = load_corpus(args.corpus, args.encoding)
        model = CharRNN(corpus.vocab, settings["hidden_size"], dtype=settings["dtype"],
                        seed=settings["seed"])
        run = TrainingRun(args, settings, corpus, model)
    remove_stale_temp_files(args.out)  # left by a run that was killed mid-write
    trainer = run.trainer
    if trainer.step >= args.steps:
        print(f"{args.out} is already at step {trainer.step} (--steps {args.steps}): "
              "nothing to do")
        return 0
    model = trainer.model
    print(f"corpus {args.corpus}: {len(corpus):,} chars ({len(trainer.data):,} train, "
          f"{len(run.val_data):,} validation), {model.n_vocab} symbols; model: hidden "
          f"{model.hidden_size}, {model.num_parameters():,} parameters, {model.dtype.name}; "
          f"{settings['batch_size']} stream(s) x {settings['seq_length']} steps, "
          f"{settings['optimizer']} lr {settings['learning_rate']:g} ({settings['lr_schedule']})")
    with _blas_threads(args.threads):
        return run.run()


def _blas_threads(n):
    """Limit the BLAS pool the kernels use (scipy's) to n threads; None: leave it."""
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=n, user_api="blas")


def _resume_settings(args, ckpt):
    saved = {**TRAIN_DEFAULTS, **ckpt.train_meta["config"]}
    saved["hidden_size"] = ckpt.model.hidden_size
    saved["dtype"] = ckpt.model.dtype.name
    for key in RESUME_FIXED:
        given = getattr(args, key)
        if given is not None and given != saved[key]:
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"{flag} {given} conflicts with the checkpoint's {saved[key]} "
                             "(a resumed run keeps its model and streams; only "
                             f"{', '.join('--' + k.replace('_', '-') for k in RESUME_FREE)} "
                             "may change)")
    for key in RESUME_FREE:
        if getattr(args, key) is not None:
            saved[key] = getattr(args, key)
    return saved


class TrainingRun:
    """One `rnncore train` invocation: the Trainer, validation, the metrics log, the
    best-model bookkeeping and the checkpoints."""

    def __init__(self, args, settings, corpus, model):
        self.args, self.settings, self.corpus = args, settings, corpus
        train_data, self.val_data = corpus.split(settings["val_fraction"])
        if len(self.val_data) < 2:
            self.val_data = train_data[:0]
        self.trainer = Trainer(
            model, train_data, seq_length=settings["seq_length"],
            batch_size=settings["batch_size"], learning_rate=settings["learning_rate"],
            optimizer=settings["optimizer"], clip=settings["clip"],
            clip_norm=settings["clip_norm"], lr_schedule=settings["lr_schedule"],
            total_steps=args.steps, warmup_steps=settings["warmup_steps"],
            lr_decay=settings["lr_decay"])
        self.log = MetricsLog(metrics_path(args.out))
        self.elapsed = 0.0            # training seconds, summed over resumes
        self.best = None              # {"val_loss", "step"}
        self.best_params = None
        self.keep_best = args.keep_best or bool(settings.get("keep_best"))
        self.evals_since_best = 0
        self.saved_step = None

    def restore(self, ckpt):
        meta = ckpt.train_meta
        same_corpus = meta.get("corpus_sha256") == self.corpus.sha256
        if not self.trainer.load_state(ckpt.train_arrays, meta, same_corpus):
            print("note: the corpus differs from the checkpoint's; its streams restart at "
                  "the beginning")
        self.elapsed = float(meta.get("elapsed", 0.0))
        self.best = meta.get("best")
        self.evals_since_best = int(meta.get("evals_since_best", 0))
        if ckpt.best_model is not None:
            self.best_params = {k: v.copy() for k, v in ckpt.best_model.params.items()}
        self.saved_step = self.trainer.step
        self.log.truncate_after(self.trainer.step)
        print(f"resuming {self.args.out} at step {self.trainer.step}")

    # ---- the loop ----------------------------------------------------------------------
    def run(self):
        args, trainer = self.args, self.trainer
        if self.saved_step is None:
            self.log.reset()
        bar = _progress_bar(args.steps, trainer.step)
        smooth, seen, window_losses = 0.0, 0, []
        chars_per_step = trainer.batch_size * trainer.seq_length
        t_start, step_start = time.perf_counter(), trainer.step
        elapsed_start = self.elapsed
        stopped_early = False
        try:
            with _StopFlag() as stop:
                while trainer.step < args.steps and stop.signal is None:
                    lr = trainer.current_lr
                    try:
                        loss = trainer.train_step()
                    except TrainingDiverged as e:
                        raise UsageError(f"{e}; {self._kept()}") from None
                    self.elapsed = elapsed_start + time.perf_counter() - t_start
                    seen += 1
                    window_losses.append(loss)
                    smooth = 0.98 * smooth + 0.02 * loss
                    shown = smooth / (1 - 0.98 ** seen)   # bias-corrected running mean
                    step = trainer.step
                    evaluate_now = len(self.val_data) and (
                        step % args.eval_every == 0 or step == args.steps)
                    if step % args.print_every == 0 or evaluate_now or step == args.steps:
                        rate = (step - step_start) * chars_per_step / (
                            time.perf_counter() - t_start)
                        record = {"step": step, "epoch": trainer.epoch,
                                  "train_loss": sum(window_losses) / len(window_losses),
                                  "lr": lr, "chars_per_s": rate,
                                  "elapsed": round(self.elapsed, 3)}
                        window_losses = []
                        if evaluate_now:
                            record.update(self._validate())
                        self.log.write(record)
                        if bar is None:
                            print(_log_line(record, shown, args.steps), flush=True)
                        elif evaluate_now:
                            bar.write(_log_line(record, shown, args.steps))
                        if evaluate_now and args.patience is not None \
                                and self.evals_since_best > args.patience:
                            stopped_early = True
                    if bar is not None:
                        bar.update(1)
                        if step % 10 == 0:
                            rate = (step - step_start) * chars_per_step / (
                                time.perf_counter() - t_start)
                            bar.set_postfix_str(f"loss {shown:.3f} ({shown / LN2:.3f} bpc), "
                                                f"{rate:,.0f} chars/s")
                    if step % args.checkpoint_every == 0:
                        self._save()
                    if step % 1000 == 0:
                        self.corpus.release_pages()
                    if stopped_early:
                        break
                interrupted = stop.signal is not None
        finally:
            if bar is not None:
                bar.close()
        if self.saved_step != trainer.step:
            self._save()
        best = ""
        if self.best is not None:
            best = (f"; best validation {self.best['val_loss']:.4f} nats/char "
                    f"({self.best['val_loss'] / LN2:.4f} bits/char) at step {self.best['step']}")
        if interrupted:
            print(f"interrupted at step {trainer.step}: saved {args.out} (continue with "
                  f"--resume){best}")
            return 130
        if stopped_early:
            print(f"stopped early at step {trainer.step}: no validation improvement in "
                  f"{args.patience} evaluations; saved {args.out}{best}")
            return 0
        print(f"saved {args.out} at step {trainer.step}{best}")
        return 0

    def _validate(self):
        result = evaluate(self.trainer.model, self.val_data)
        val = result["nats_per_char"]
        if not math.isfinite(val):
            raise UsageError(f"the validation loss became {val} at step {self.trainer.step}: "
                             f"training diverged; {self._kept()}")
        if self.best is None or val < self.best["val_loss"]:
            self.best = {"val_loss": val, "step": self.trainer.step}
            self.evals_since_best = 0
            if self.keep_best:
                self.best_params = {k: v.copy() for k, v in self.trainer.model.params.items()}
        else:
            self.evals_since_best += 1
        return {"val_loss": val, "val_bits_per_char": result["bits_per_char"]}

    def _save(self):
        """Checkpoint, unless the weights have gone non-finite: then stop, keeping the file."""
        trainer = self.trainer
        if not all(np.isfinite(p).all() for p in trainer.model.params.values()):
            raise UsageError(f"training diverged by step {trainer.step}: the parameters hold "
                             f"nan or inf (try a lower learning rate or a smaller clip); "
                             f"{self._kept()}")
        arrays, meta = trainer.state()
        meta["config"].update({k: self.settings[k] for k in ("val_fraction", "seed")})
        meta["config"]["keep_best"] = self.keep_best
        meta.update({"corpus_sha256": self.corpus.sha256, "elapsed": self.elapsed,
                     "best": self.best, "evals_since_best": self.evals_since_best})
        if self.best_params is not None:
            arrays.update({f"best.{k}": v for k, v in self.best_params.items()})
        save_checkpoint(self.args.out, trainer.model, (arrays, meta))
        self.saved_step = trainer.step

    def _kept(self):
        if self.saved_step is None:
            return "no checkpoint was written"
        return f"the checkpoint at {self.args.out} (step {self.saved_step}) was kept"


def _log_line(record, smoothed, total):
    line = (f"step {record['step']}/{total}  loss {smoothed:.4f} nats/char "
            f"({smoothed / LN2:.4f} bits/char)  lr {record['lr']:.3g}  epoch {record['epoch']}"
            f"  {record['chars_per_s']:,.0f} chars/s")
    if "val_loss" in record:
        line += (f"  val {record['val_loss']:.4f} nats/char "
                 f"({record['val_bits_per_char']:.4f} bits/char)")
    return line


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


def _progress_bar(total, initial):
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


# ---- sample -------------------------------------------------------------------------
def _checkpoint_model(args):
    ckpt = load_checkpoint(args.checkpoint)
    return ckpt.model if args.latest else ckpt.preferred_model


def cmd_sample(args):
    model = _checkpoint_model(args)
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


# ---- eval ---------------------------------------------------------------------------
def cmd_eval(args):
    model = _checkpoint_model(args)
    text = read_corpus(args.file, args.encoding)
    unseen = model.vocab.unknown(text)
    ids = model.vocab.encode(text, skip_unknown=True)
    n_unseen = len(text) - len(ids)
    if len(ids) < 2:
        raise UsageError(f"{args.file} has fewer than 2 characters the model knows")
    result = evaluate(model, ids)
    result["unseen_chars"] = n_unseen
    result["unseen_symbols"] = "".join(unseen)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.file}: {result['chars']:,} characters predicted: "
          f"{result['nats_per_char']:.4f} nats/char, {result['bits_per_char']:.4f} bits/char, "
          f"perplexity {result['perplexity']:.3f}")
    if n_unseen:
        print(f"{n_unseen:,} characters the model has never seen were dropped: "
              f"{result['unseen_symbols']!r}")
    return 0


# ---- plot ---------------------------------------------------------------------------
def cmd_plot(args):
    log = args.run if args.run.endswith(".jsonl") else metrics_path(args.run)
    if not os.path.exists(log):
        raise UsageError(f"no metrics log at {log} (written by `rnncore train` beside its "
                         "checkpoint)")
    records = read_metrics(log)
    if not records:
        raise UsageError(f"the metrics log {log} is empty")
    out = args.out or (log[:-len(".metrics.jsonl")] if log.endswith(".metrics.jsonl")
                       else log) + ".png"
    try:
        plot_metrics(records, out, title=os.path.basename(log))
    except RuntimeError as e:
        raise UsageError(str(e)) from None
    print(f"wrote {out}")
    return 0
