"""A training run: the Trainer plus everything that makes it trustworthy.

`fit(corpus_path, out, ...)` reads a text file, trains, validates every `eval_every` steps,
keeps the best-validation parameters, stops on patience or budget, writes the metrics log
and the checkpoint (every `checkpoint_every` steps, at the end, on Ctrl-C/SIGTERM), shows a
progress bar on a terminal, and resumes a saved run bit for bit.  `rnncore train` is this
function behind argparse; over MPI (`distributed=True`) every process runs it.

The run is made of parts, each owning one concern:
    plan_run      what to train (a fresh run's settings, or a resume's merge with the
                  checkpoint) and up to which step: pure, testable without training
    BestKeeper    the best validation, patience, and the kept best parameters
    Checkpointer  the checkpoint writes, and which checkpoint was kept
    Reporter      the header, the log lines, the bar, the metrics log, the hopeless warning
    the user's callback, as one more part that sees every record
and TrainingRun wires them around the Trainer's step (rnncore.train) and a distribution
strategy (rnncore.parallel).  The settings are rnncore.config's.
"""
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .checkpoint import load_checkpoint, save_checkpoint
from .config import (DEFAULT_STEPS, RUN_DEFAULTS, SETTINGS, TRAIN_DEFAULTS,  # noqa: F401
                     ModelConfig, TrainConfig, field_of, flag, split_settings)
from .corpus import load_corpus
from .errors import CheckpointWriteError, MetricsWriteError, RunError, TrainingDiverged
from .files import remove_stale_temp_files, writable_directory_problem
from .layout import check_memory, training_bytes
from .lock import CheckpointLock
from .metrics import LN2, MetricsLog, metrics_path
from .model import CharRNN
from .optim import OPTIMIZERS
from .parallel import connect
from .threads import default_threads, num_threads
from .train import HopelessRunWatch, Trainer, evaluate, worse_than_uniform

#: fit()'s budget keywords (the TrainConfig fields a checkpoint stores as total_steps)
BUDGETS = ("steps", "epochs", "minutes")


class _WriteFailed(RuntimeError):
    """The system refused a write of the writing process (disk full, I/O error, read-only,
    quota), with the kept checkpoint named.  Not a RunError: over MPI only the writing rank
    meets it, so the guard must end every process (one process: run() makes it a RunError)."""


@dataclass
class RunResult:
    """What a run did.  status: 'finished' (budget reached), 'stopped_early' (patience
    or the callback), 'interrupted' (SIGINT/SIGTERM: saved, resumable) or 'up_to_date'
    (the checkpoint was already at the budget: nothing done).  history: the records of
    this invocation's metrics log lines (losses in mean nats per character)."""
    out: str
    status: str
    step: int
    epoch: int
    best: Optional[dict] = None          # {"val_loss": nats/char, "step"}, or None
    history: list = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 130 if self.status == "interrupted" else 0


def fit(corpus, out, *, steps=None, epochs=None, minutes=None, resume=False, force=False,
        encoding="utf-8", eval_every=None, print_every=None, checkpoint_every=None,
        keep_best=None, patience=None, threads=None, progress="auto", echo=print,
        callback=None, distributed=False, **settings) -> RunResult:
    """Train on the text file `corpus` and save the run to the checkpoint `out`.

    Budget (one of, total over resumes): steps (optimizer steps), epochs (passes over the
    training text), or minutes (training time of this call).  Without one a fresh run
    takes 10,000 steps and a resumed run the total it was started with.
    resume: continue the run saved at `out`; force: overwrite `out` without resuming.
    settings: any of rnncore.TRAIN_DEFAULTS by name (hidden_size=..., learning_rate=...).
    eval_every / print_every / checkpoint_every: steps between validations, log records,
    saves.  keep_best: store the best-validation parameters beside the latest.  patience:
    stop after that many validations without improvement.  Every setting and every one
    of these left at None takes its default (rnncore.config), or on resume the
    checkpoint's: a resumed run keeps the settings of the run it continues unless one
    that may change is given.  threads: the thread team's size for the run
    (rnncore.set_num_threads; None: as it is, or under MPI the CPUs shared out among the
    ranks on this host).
    progress: True, False or 'auto' (a bar when stderr is a terminal).  echo: called with
    each line of text (None: silent).  callback(record) runs with every metrics record
    (a dict) and stops the run by returning True.  distributed: True (MPI's world) or an
    mpi4py communicator: data-parallel over its processes, see rnncore.parallel.
    Returns a RunResult.  Raises RunError, ConfigError, NotEnoughMemory (and the corpus
    and checkpoint errors) naming the problem; `out` is never left worse than it was.
    """
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise TypeError(f"fit() got unknown setting(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(SETTINGS)}")
    options = {**settings, "steps": steps, "epochs": epochs, "minutes": minutes,
               "eval_every": eval_every, "print_every": print_every,
               "checkpoint_every": checkpoint_every, "keep_best": keep_best,
               "patience": patience}
    run = TrainingRun(corpus, out, options, resume=resume, force=force, encoding=encoding,
                      threads=threads, progress=progress, echo=echo, callback=callback,
                      distributed=distributed)
    return run.run()


# ---- the plan: what to train, and up to which step ---------------------------------------
@dataclass(frozen=True)
class RunPlan:
    """A run decided: the model's and the training's settings, whether it resumes, and
    its budget.  stored_total: the step a resumed run was started towards (None: it was
    trained against the clock)."""
    model: ModelConfig
    train: TrainConfig
    resumed: bool
    stored_total: Optional[int] = None

    def target(self, steps_per_epoch):
        """The step to train up to (None: until the minutes run out)."""
        t = self.train
        if t.steps is not None:
            return t.steps
        if t.epochs is not None:
            return t.epochs * steps_per_epoch
        if t.minutes is not None:
            return None
        if not self.resumed:
            return DEFAULT_STEPS
        return self.stored_total

    def total_steps(self, steps_per_epoch):
        """Where the cosine schedule ends: the target, or under --minutes the total the
        run was started towards."""
        target = self.target(steps_per_epoch)
        return target if target is not None else self.stored_total


def check_options(options):
    """ConfigError for any value given (not None) outside its range."""
    model_given, train_given = split_settings({k: v for k, v in options.items()
                                               if v is not None})
    ModelConfig(**model_given)
    TrainConfig(**train_given)


def plan_run(options, checkpoint=None, out="the checkpoint"):
    """The RunPlan for `options` ({setting or run field: value, None = not given}) as a
    fresh run (checkpoint None) or as the resume of `checkpoint` (a rnncore.Checkpoint).

    A resume keeps every setting of the checkpoint's run; a "fixed" one given with
    another value is a RunError, a "free" one given replaces it, a "kept" one (the seed)
    stays.  Raises ConfigError for a value outside its range."""
    given = {k: v for k, v in options.items() if v is not None}
    model_given, train_given = split_settings(given)
    if checkpoint is None:
        plan = RunPlan(ModelConfig(**model_given), TrainConfig(**train_given), False)
    else:
        if checkpoint.train_meta is None:
            raise RunError(f"cannot resume: {out} holds a model without training state")
        stored = checkpoint.train_meta["config"]
        saved_model = ModelConfig(**{k: checkpoint.model.config[k]
                                     for k in ModelConfig.names()})
        saved_train = TrainConfig.from_stored(stored)
        merged = {}
        for name, value in given.items():
            resume = field_of(name).metadata["resume"]
            saved = getattr(saved_model if name in model_given else saved_train, name,
                            None)
            if resume == "fixed" and value != saved:
                free = ", ".join(flag(n) for n in SETTINGS
                                 if field_of(n).metadata["resume"] == "free")
                raise RunError(f"{flag(name)} {value} conflicts with the checkpoint's "
                               f"{saved} (a resumed run keeps its model and streams; only "
                               f"{free} may change)")
            if resume == "free":
                merged[name] = value
        model_changes, train_changes = split_settings(merged)
        plan = RunPlan(saved_model.replace(**model_changes),
                       TrainConfig(**{**saved_train.as_dict(), **train_changes}), True,
                       stored.get("total_steps"))
        if plan.train.steps is plan.train.epochs is plan.train.minutes is None \
                and plan.stored_total is None:
            raise RunError(f"{out} was trained against the clock: give its budget "
                           "(--steps, --epochs or --minutes)")
    if plan.train.lr_schedule == "cosine" and plan.train.minutes is not None \
            and plan.stored_total is None:
        raise RunError("the cosine schedule falls to 0 at the last step: give --steps "
                       "or --epochs with it, not --minutes")
    return plan


# ---- the parts -------------------------------------------------------------------------
class BestKeeper:
    """The best validation so far, the validations since, and (keep_best) the parameters
    that scored it.  A loss above ln V (worse than uniform guessing, so worse than the
    untrained model) is never an improvement."""

    def __init__(self, n_vocab, keep=False, patience=None, best=None, evals_since_best=0,
                 params=None):
        self.n_vocab, self.keep, self.patience = n_vocab, keep, patience
        self.best, self.evals_since_best = best, evals_since_best
        self.params = params if keep else None
        self.last = None              # {"val_loss", "step"} of the latest validation

    def observe(self, val_loss, step, params):
        """Take one validation; returns whether it is the new best."""
        self.last = {"val_loss": val_loss, "step": step}
        if not worse_than_uniform(val_loss, self.n_vocab) and (
                self.best is None or val_loss < self.best["val_loss"]):
            self.best = {"val_loss": val_loss, "step": step}
            self.evals_since_best = 0
            if self.keep:
                self.params = {k: v.copy() for k, v in params.items()}
            return True
        self.evals_since_best += 1
        return False

    @property
    def stop_reason(self):
        """Why patience stops the run now, or None."""
        if self.patience is not None and self.evals_since_best >= self.patience:
            return f"no validation improvement in {self.patience} evaluations"
        return None

    def meta(self):
        return {"best": self.best, "evals_since_best": self.evals_since_best,
                "last_validation": self.last}

    def arrays(self):
        return {} if self.params is None else {f"best.{k}": v for k, v in self.params.items()}

    def summary(self):
        """'best validation X nats/char (Y bits/char) at step N', or None."""
        if self.best is None:
            return None
        return (f"best validation {self.best['val_loss']:.4f} nats/char "
                f"({self.best['val_loss'] / LN2:.4f} bits/char) at step {self.best['step']}")


class Checkpointer:
    """Writes the run's checkpoint (on the root; every process takes part in gathering
    the streams' states) and knows which checkpoint a failure keeps."""

    def __init__(self, out, strategy, saved_step=None):
        self.out, self.strategy, self.saved_step = out, strategy, saved_step

    def save(self, trainer, meta, arrays):
        """Checkpoint, unless the weights have gone non-finite: then stop, keeping the
        file.  meta/arrays: what the other parts add to the Trainer's state."""
        if not all(np.isfinite(p).all() for p in trainer.model.params.values()):
            raise RunError(f"training diverged by step {trainer.step}: the parameters hold "
                           f"nan or inf (try a lower learning rate or a smaller clip); "
                           f"{self.kept()}")
        state_arrays, state_meta = self.strategy.gather_state(trainer)
        if self.strategy.rank == 0:
            state_meta["config"].update(meta.pop("config"))
            state_meta.update(meta)
            state_arrays.update(arrays)
            save_checkpoint(self.out, trainer.model, (state_arrays, state_meta))
        self.saved_step = trainer.step

    def kept(self):
        if self.saved_step is None:
            if os.path.exists(self.out):   # --force: the file it would have replaced
                return f"the earlier file at {self.out} was kept"
            return "no checkpoint was written"
        return f"the checkpoint at {self.out} (step {self.saved_step}) was kept"


class Reporter:
    """What the user sees and the metrics log: the header, a line per record (or the
    progress bar on a terminal), the hopeless-run warning, the final line.  Silent, and
    writing nothing, on every process but the root."""

    def __init__(self, out, echo, progress, is_root, n_vocab, val_chars=None):
        self.echo = (echo or _silent) if is_root else _silent
        self.is_root, self.progress = is_root, progress
        self.log = MetricsLog(metrics_path(out))
        self.hopeless = HopelessRunWatch(n_vocab, val_chars=val_chars)
        self.bar = None
        self.timed = False            # a bar of seconds (--minutes), not of steps
        self.target = None

    def start(self, header, resumed_at, target, step, minutes=None):
        """The metrics log continues from the checkpoint's step (or starts afresh), the
        header, and the bar (of steps; of seconds under a --minutes budget)."""
        if self.is_root:
            if resumed_at is not None:
                self.log.truncate_after(resumed_at)
            else:
                self.log.reset()
        if resumed_at is not None:
            self.echo(f"resuming {header['out']} at step {resumed_at}")
        self.echo(header["text"])
        self.target = target
        if self.is_root:
            self.bar = _progress_bar(self.progress, target, step, minutes)
            self.timed = self.bar is not None and target is None

    def step(self, window, step, seconds):
        """After every step: the bar's count (steps, or the seconds of a --minutes run)
        and its train loss: the mean of the steps since the last record, so at a logged
        step the very number the log line shows."""
        if self.bar is None:
            return
        if self.timed:
            self.bar.update(min(seconds, self.bar.total) - self.bar.n)
        else:
            self.bar.update(1)
        if step % 10 == 0 or self.timed:
            self.bar.set_postfix_str(self._postfix(step, sum(window) / len(window)),
                                     refresh=False)

    def _postfix(self, step, train_loss):
        where = f"step {step:,}, " if self.timed else ""
        return f"{where}train {train_loss:.4f} nats/char"

    def record(self, record):
        """A record: the metrics log, the hopeless warning, and a log line (on a
        terminal the bar replaces the periodic lines: only validations print)."""
        warning = self.hopeless.check(record["step"], record["lr"], record["train_loss"],
                                      record.get("val_loss"))
        if not self.is_root:
            return
        if warning:
            _write_line("rnncore: " + warning, self.bar, sys.stderr)
        self.log.write(record)
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(record["step"], record["train_loss"]),
                                     refresh=False)
        if self.bar is None:
            self.echo(_log_line(record, self.target))
        elif "val_loss" in record:
            self.bar.write(_log_line(record, self.target))

    def finish(self, lines):
        """The last lines: what happened, and the best validation on a line of its own
        (each fits 80 columns but for the checkpoint's path)."""
        self.close()
        for line in lines:
            if line:
                self.echo(line)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class CallbackPart:
    """The user's callback(record), as one more part: returning True stops the run.  Over
    MPI the root's answer is every process's."""

    def __init__(self, callback, strategy):
        self.callback, self.strategy = callback, strategy

    def stop_reason(self, record):
        if self.callback is None:
            return None
        stop = self.strategy.broadcast(self.strategy.rank == 0 and bool(self.callback(record)))
        return "stopped by the callback" if stop else None


# ---- the run ---------------------------------------------------------------------------
class TrainingRun:
    """fit()'s machinery: prepare() decides and builds the run, run() trains it."""

    def __init__(self, corpus, out, options, *, resume=False, force=False, encoding="utf-8",
                 threads=None, progress="auto", echo=print, callback=None,
                 distributed=False):
        if threads is not None:
            _check_positive_int(threads, "threads")
        given_budgets = [b for b in BUDGETS if options.get(b) is not None]
        if len(given_budgets) > 1:
            raise RunError(f"give one budget, not "
                           f"{' and '.join(flag(b) for b in given_budgets)}")
        check_options(options)       # every value given is checked now, before anything
        self.strategy = connect(distributed)   # rank, size, collectives; one process: none
        self.is_root = self.strategy.rank == 0
        self.corpus_path, self.out = os.fspath(corpus), os.fspath(out)
        self.options, self.resume, self.force = options, resume, force
        self.encoding, self.threads = encoding, threads
        self.progress, self.echo, self.callback = progress, echo, callback
        self.lock = CheckpointLock(self.out) if self.is_root else None
        self.trainer = None

    # ---- start: checks, checkpoint, corpus, model ------------------------------------
    def prepare(self):
        """Check the request and build the run (fresh, or from the checkpoint at `out`).
        Every check comes before anything is written.  The writing process holds the lock
        on `out` from here until run() returns (or until prepare fails)."""
        try:
            self.strategy.setup(self._prepare_root, self._prepare_other)
        except BaseException:
            self._release()
            raise

    def _release(self):
        if self.lock is not None and self.lock.held:
            self.lock.__exit__(None, None, None)

    def _prepare_root(self):
        """On the writing process: decide the run; return what the other processes need
        to build the same one (see rnncore.parallel.MPIWorkers.setup)."""
        self._open_output()
        ckpt = None
        if self.resume:
            if not os.path.exists(self.out):
                raise RunError(f"cannot resume: {self.out} does not exist")
            ckpt = load_checkpoint(self.out)
            plan = plan_run(self.options, ckpt, self.out)
            corpus = load_corpus(self.corpus_path, self.encoding, vocab=ckpt.model.vocab,
                                 vocab_source="the checkpoint's")
        else:
            if os.path.exists(self.out) and not self.force:
                raise RunError(f"{self.out} exists: pass --resume to continue it, or --force "
                               "to overwrite it")
            plan = plan_run(self.options)
            corpus = load_corpus(self.corpus_path, self.encoding)
        self._check_memory(plan, len(corpus.vocab))
        model = ckpt.model if ckpt is not None else _build_model(corpus.vocab, plan)
        self._build(plan, corpus, model)
        if ckpt is not None:
            self._restore(ckpt)
        remove_stale_temp_files(self.out)  # left by a run that was killed mid-write
        shared = None
        if self.strategy.size > 1:    # every stream's state, before this rank keeps its own
            train_arrays, train_meta = self.trainer.state()
            shared = {"plan": plan, "vocab": corpus.vocab, "corpus_sha256": corpus.sha256,
                      "params": self.trainer.model.params, "train_arrays": train_arrays,
                      "train_meta": train_meta, "saved_step": self.checkpointer.saved_step,
                      "best": self.keeper.meta(), "elapsed": self.elapsed}
        self.strategy.bind(self.trainer)
        return shared

    def _prepare_other(self, shared):
        """On every other process: the same run as the root's, from its plan (the
        parameters and training state come from the root afterwards)."""
        corpus = load_corpus(self.corpus_path, self.encoding, vocab=shared["vocab"],
                             vocab_source="rank 0's")
        if corpus.sha256 != shared["corpus_sha256"]:
            raise RunError(f"corpus {self.corpus_path} differs from rank 0's (another file "
                           "at the same path)")
        plan = shared["plan"]
        self._build(plan, corpus, _build_model(shared["vocab"], plan))
        for name, value in shared["params"].items():
            self.trainer.model.params[name][...] = value
        self.trainer.load_state(shared["train_arrays"], shared["train_meta"])
        self.strategy.bind(self.trainer)
        self.checkpointer.saved_step = shared["saved_step"]
        self.keeper.best = shared["best"]["best"]
        self.keeper.evals_since_best = shared["best"]["evals_since_best"]
        self.keeper.last = shared["best"]["last_validation"]
        self.elapsed = shared["elapsed"]

    def _open_output(self):
        """The run's start on the writing process: one writer per checkpoint (the lock,
        taken before any other check, so two runs on one `out` cannot both pass them);
        then fail now, not after hours of training, if `out` cannot be written."""
        try:
            self.lock.__enter__()
        except OSError as e:
            self._check_writable()   # says why nothing can be created beside `out`
            raise RunError(f"--out {self.out}: cannot lock it ({e.strerror})") from None
        self._check_writable()

    def _check_writable(self):
        problem = writable_directory_problem(self.out)
        if problem:
            raise RunError(problem)

    def _check_memory(self, plan, n_vocab):
        """One line, before a single array is allocated, for a model that cannot fit."""
        m, t = plan.model, plan.train
        slots = len(OPTIMIZERS[t.optimizer].slots)
        streams = -(-t.batch_size // self.strategy.size)
        need = training_bytes(m.cell, n_vocab, m.hidden_size, m.num_layers, streams,
                              t.seq_length, m.dtype, slots) \
            * (1 + t.keep_best + (t.average is not None))
        layers = "layer" if m.num_layers == 1 else "layers"
        check_memory(need, f"training a {m.cell} of {m.num_layers} {layers} x "
                     f"{m.hidden_size:,} units ({t.batch_size} streams x {t.seq_length})",
                     "lower --hidden-size, --num-layers, --batch-size or --seq-length")

    def _build(self, plan, corpus, model):
        t = plan.train
        if t.batch_size < self.strategy.size:
            raise RunError(f"--batch-size {t.batch_size} is smaller than the "
                           f"{self.strategy.size} MPI processes: each needs at least one "
                           "stream")
        self.plan, self.corpus = plan, corpus
        train_data, self.val_data = corpus.split(t.val_fraction)
        if len(self.val_data) < 2:
            self.val_data = train_data[:0]
        self.trainer = Trainer(
            model, train_data, seq_length=t.seq_length, batch_size=t.batch_size,
            learning_rate=t.learning_rate, optimizer=t.optimizer, clip=t.clip,
            clip_norm=t.clip_norm, lr_schedule=t.lr_schedule, total_steps=DEFAULT_STEPS,
            warmup_steps=t.warmup_steps, lr_decay=t.lr_decay, seed=t.seed,
            weight_decay=t.weight_decay, average=t.average, average_start=t.average_start)
        # the cosine schedule's end: known only now for an --epochs budget (steps per epoch)
        self.target = plan.target(self.trainer.steps_per_epoch)
        self.trainer.total_steps = plan.total_steps(self.trainer.steps_per_epoch)
        self.elapsed = 0.0            # training seconds, summed over resumes
        self.keeper = BestKeeper(model.n_vocab, t.keep_best, t.patience)
        self.checkpointer = Checkpointer(self.out, self.strategy)
        self.reporter = Reporter(self.out, self.echo, self.progress, self.is_root,
                                 model.n_vocab, len(self.val_data))
        self.parts = [CallbackPart(self.callback, self.strategy)]

    def _restore(self, ckpt):
        meta = ckpt.train_meta
        same_corpus = meta.get("corpus_sha256") == self.corpus.sha256
        if not self.trainer.load_state(ckpt.train_arrays, meta, same_corpus):
            self.reporter.echo("note: the corpus differs from the checkpoint's; its streams "
                               "restart at the beginning")
        self.elapsed = float(meta.get("elapsed", 0.0))
        params = None
        if ckpt.best_model is not None:
            params = {k: v.copy() for k, v in ckpt.best_model.params.items()}
        self.keeper = BestKeeper(self.trainer.model.n_vocab, self.plan.train.keep_best,
                                 self.plan.train.patience, meta.get("best"),
                                 int(meta.get("evals_since_best", 0)), params)
        self.keeper.last = meta.get("last_validation")
        self.checkpointer.saved_step = self.trainer.step

    # ---- the loop ------------------------------------------------------------------
    def run(self):
        """prepare() if not done, train to the budget, save; return a RunResult."""
        if self.trainer is None:
            self.prepare()
        try:
            trainer = self.trainer
            if self.target is not None and trainer.step >= self.target:
                self.reporter.echo(f"{self.out} is already at step {trainer.step} (--steps "
                          f"{self.target}): nothing to do")
                return self._result("up_to_date", [])
            with num_threads(self._threads()):
                # over MPI, an error one rank meets from here on aborts the job (see guard)
                return self.strategy.guard(self._loop_reporting_writes)
        except _WriteFailed as e:
            raise RunError(str(e)) from None
        finally:
            self._release()

    def _threads(self):
        """The team's size for this run: `threads` if given; under MPI by default the CPUs
        shared out among the ranks on this host (two ranks on two cores: one thread
        each); else the team as it is."""
        if self.threads is not None:
            return self.threads
        ranks = self.strategy.ranks_on_host
        return default_threads(ranks) if ranks > 1 else None

    def _loop_reporting_writes(self):
        """The loop; a file the system refuses to write stops the run with one line
        naming it and the checkpoint that was kept."""
        try:
            return self._loop()
        except (CheckpointWriteError, MetricsWriteError) as e:
            raise _WriteFailed(f"{e}; {self.checkpointer.kept()}") from None

    def _loop(self):
        trainer, strategy, t = self.trainer, self.strategy, self.plan.train
        self.reporter.start({"out": self.out, "text": self._header()},
                            trainer.step if self.plan.resumed else None, self.target,
                            trainer.step, t.minutes)
        history, window, status, stop_reason = [], [], "finished", None
        clock = _Clock(self.elapsed, t.minutes, trainer.step)
        stop = _StopFlag(self._already_stopping if self.is_root else None)
        try:
            with stop:
                while self.target is None or trainer.step < self.target:
                    strategy.request(stop.signal is not None,
                                     self.is_root and clock.out_of_time())
                    lr = trainer.current_lr
                    try:
                        window.append(trainer.train_step(reduce=strategy.reduce))
                    except TrainingDiverged as e:
                        raise RunError(f"{e}; {self.checkpointer.kept()}") from None
                    interrupt, out_of_time = strategy.requests()
                    self.elapsed = clock.elapsed()
                    step = trainer.step
                    self.reporter.step(window, step, clock.seconds())
                    last = step == self.target or interrupt or out_of_time
                    # Ctrl-C saves at once: no validation pass first (the checkpoint
                    # records the last one it had)
                    validate = len(self.val_data) and not interrupt and (
                        step % t.eval_every == 0 or last)
                    if step % t.print_every == 0 or validate or last:
                        record = self._record(lr, window, clock, validate)
                        window = []
                        history.append(record)
                        self.reporter.record(record)
                        # every part sees every record (the callback the last one too)
                        reasons = [self.keeper.stop_reason if validate else None] + [
                            part.stop_reason(record) for part in self.parts]
                        stop_reason = next(filter(None, reasons), None)
                    if step % t.checkpoint_every == 0:
                        self._save()
                    if step % 1000 == 0:
                        self.corpus.release_pages()
                    if interrupt:
                        status = "interrupted"
                        break
                    if stop_reason or out_of_time:
                        status = "stopped_early" if stop_reason else "finished"
                        break
                self.reporter.close()
                self.stopping = "saving"
                if self.checkpointer.saved_step != trainer.step:
                    self._save()
        finally:
            self.reporter.close()
        step = trainer.step
        if status == "interrupted":
            said = f"interrupted at step {step}: saved {self.out} (continue with --resume)"
        elif status == "stopped_early":
            said = f"stopped early at step {step}: {stop_reason}; saved {self.out}"
        else:
            said = f"saved {self.out} at step {step}"
        self.reporter.finish([said, self.keeper.summary()])
        return self._result(status, history)

    def _already_stopping(self):
        """What a second Ctrl-C says (the first one's step and save are under way)."""
        doing = ("writing the checkpoint" if getattr(self, "stopping", None) == "saving"
                 else f"finishing step {self.trainer.step + 1}, then saving")
        print(f"rnncore: already stopping: {doing} {self.out}; a moment", file=sys.stderr,
              flush=True)

    def _record(self, lr, window, clock, validate):
        trainer = self.trainer
        record = {"step": trainer.step, "epoch": trainer.epoch,
                  "train_loss": sum(window) / len(window), "lr": lr,
                  "chars_per_s": clock.rate(trainer.step, trainer.batch_size
                                            * trainer.seq_length),
                  "elapsed": round(self.elapsed, 3)}
        if validate:
            record.update(self._validate())
        return record

    def _header(self):
        t, model, s = self.trainer, self.trainer.model, self.plan.train
        budget = (f"{self.target:,} steps" if self.target is not None
                  else f"{s.minutes:g} minutes")
        ranks = f" on {self.strategy.size} MPI processes" if self.strategy.size > 1 else ""
        return "\n".join((
            f"corpus {self.corpus_path}: {len(self.corpus):,} chars, {model.n_vocab} symbols",
            f"{len(t.data):,} for training, {len(self.val_data):,} held out for validation",
            f"model: {model.cell} {model.num_layers}x{model.hidden_size}"
            f"{f' (dropout {model.dropout:g})' if model.dropout else ''}, "
            f"{model.num_parameters():,} parameters, {model.dtype.name}",
            f"optimizer: {s.optimizer} lr {s.learning_rate:g} ({s.lr_schedule})",
            f"{s.batch_size} stream(s) x {s.seq_length} steps{ranks}, "
            f"{t.steps_per_epoch:,} steps per epoch; {budget}",
            f"losses in nats/char (train: mean of the last {s.print_every} steps, val: "
            "held-out text)"))

    def _result(self, status, history):
        return RunResult(self.out, status, self.trainer.step, self.trainer.epoch,
                         self.keeper.best, history)

    # ---- validation and checkpoints -----------------------------------------------------
    def _validate(self):
        """Predict the whole held-out text (state carried); the keeper takes it.  Over
        MPI the root's number is every process's, so they all decide alike."""
        model = self.trainer.evaluation_model()
        if self.is_root:
            result = evaluate(model, self.val_data)
            val, bits = result["nats_per_char"], result["bits_per_char"]
        else:
            val = bits = None
        val, bits = self.strategy.broadcast((val, bits))
        if not math.isfinite(val):
            raise RunError(f"the validation loss became {val} at step {self.trainer.step}: "
                           f"training diverged; {self.checkpointer.kept()}")
        self.keeper.observe(val, self.trainer.step, model.params)
        return {"val_loss": val, "val_bits_per_char": bits}

    def _save(self):
        meta = {"config": {**self.plan.train.stored(),
                           "total_steps": self.trainer.total_steps},
                "corpus_sha256": self.corpus.sha256, "corpus_path": self.corpus_path,
                "elapsed": self.elapsed, **self.keeper.meta()}
        self.checkpointer.save(self.trainer, meta, self.keeper.arrays())


def _build_model(vocab, plan):
    """The model a fresh run starts from: the model settings, and the seed."""
    return CharRNN(vocab, seed=plan.train.seed, **plan.model.as_dict())


class _Clock:
    """The run's training time (summed over resumes), its --minutes deadline, its rate."""

    def __init__(self, elapsed_before, minutes, step):
        self.before, self.start, self.step0 = elapsed_before, time.perf_counter(), step
        self.deadline = None if minutes is None else self.start + 60 * minutes

    def elapsed(self):
        return self.before + self.seconds()

    def seconds(self):
        """Training seconds of this invocation."""
        return time.perf_counter() - self.start

    def out_of_time(self):
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def rate(self, step, chars_per_step):
        """Characters per second of this invocation (every stream, all ranks)."""
        return (step - self.step0) * chars_per_step / max(time.perf_counter() - self.start,
                                                          1e-9)


def _log_line(record, target):
    """One line of at most 80 characters (up to six-digit step counts and three-digit
    epochs); the header gives the unit of the losses, nats/char."""
    total = f"/{target}" if target is not None else ""
    line = f"step {record['step']}{total}  ep {record['epoch']}  train {record['train_loss']:.4f}"
    if "val_loss" in record:
        line += f"  val {record['val_loss']:.4f}"
    return line + f"  lr {record['lr']:.3g}  {_rate(record['chars_per_s'])} chars/s"


def _rate(chars_per_s):
    if chars_per_s >= 1e6:
        return f"{chars_per_s / 1e6:.1f}M"
    if chars_per_s >= 1e4:
        return f"{chars_per_s / 1e3:.0f}k"
    return f"{chars_per_s:.0f}"


def _silent(*args, **kwargs):
    pass


def _write_line(line, bar, file):
    """Print a line, above the progress bar if there is one."""
    if bar is None:
        print(line, file=file, flush=True)
    else:
        bar.write(line, file=file)


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise RunError(f"{name} must be a positive integer, got {value!r}")


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps, so the state it
    saves is always that of a whole step.  (Outside the main thread signals cannot be
    caught: the flag then stays down and Ctrl-C raises as usual.)"""

    def __init__(self, on_repeat=None):
        self.signal = None
        self.on_repeat = on_repeat     # what a second signal says (None: nothing)
        self._old = {}

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._set) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _set(self, signum, frame):
        if self.signal is not None and self.on_repeat is not None:
            self.on_repeat()
        self.signal = signum

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)


def _progress_bar(progress, total, initial, minutes=None):
    """A bar of steps to `total`; with no step total, of the seconds of `minutes`."""
    if progress == "auto":
        progress = sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    if total is None and minutes is not None:
        return tqdm(total=60 * minutes, unit="s", dynamic_ncols=True,
                    bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]"
                               "{postfix}")
    # a short fixed part, so that the bar itself keeps its width on an 80-column terminal
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]"
                           "{postfix}")
