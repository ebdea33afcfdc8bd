"""A training run: the Trainer plus everything that makes it trustworthy.

`fit(corpus_path, out, ...)` reads a text file, trains, validates every `eval_every` steps,
keeps the best-validation parameters, stops on patience or budget, writes the metrics log
and the checkpoint (every `checkpoint_every` steps, at the end, on Ctrl-C/SIGTERM), shows a
progress bar on a terminal, and resumes a saved run bit for bit.  `rnncore train` is this
function behind argparse; over MPI (`distributed=True`) every process runs it.

The options a run takes are listed once, in rnncore.config: the CLI builds its flags from
there and the library its defaults, so adding a model or training option is one field.
"""
import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .checkpoint import load_checkpoint, save_checkpoint
from .config import (DEFAULT_STEPS, RUN_DEFAULTS, SETTINGS, TRAIN_DEFAULTS, ModelConfig,
                     TrainConfig, field_of, flag, split_settings)
from .corpus import load_corpus
from .errors import CheckpointWriteError, MetricsWriteError, RunError, TrainingDiverged
from .files import remove_stale_temp_files, writable_directory_problem
from .lock import CheckpointLock
from .metrics import LN2, MetricsLog, metrics_path
from .model import CharRNN
from .parallel import connect
from .train import HopelessRunWatch, Trainer, evaluate, worse_than_uniform


class _WriteFailed(RuntimeError):
    """The system refused a write of the writing process (disk full, I/O error, read-only,
    quota), with the kept checkpoint named.  Not a RunError: over MPI only the writing rank
    meets it, so the guard must end every process (one process: run() makes it a RunError)."""


def build_model(vocab, settings):
    """The model a fresh run starts from: every `model` option, and the seed."""
    return CharRNN(vocab, seed=settings["seed"],
                   **{name: settings[name] for name in ModelConfig.names()})


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
    best: dict = None                   # {"val_loss": nats/char, "step"}, or None
    history: list = field(default_factory=list)

    @property
    def exit_status(self):
        return 130 if self.status == "interrupted" else 0


def fit(corpus, out, *, steps=None, epochs=None, minutes=None, resume=False, force=False,
        encoding="utf-8", eval_every=RUN_DEFAULTS["eval_every"],
        print_every=RUN_DEFAULTS["print_every"],
        checkpoint_every=RUN_DEFAULTS["checkpoint_every"], keep_best=False, patience=None,
        threads=None, progress="auto", echo=print, callback=None, distributed=False,
        **settings):
    """Train on the text file `corpus` and save the run to the checkpoint `out`.

    Budget (one of, total over resumes): steps (optimizer steps), epochs (passes over the
    training text), or minutes (training time of this call).  Without one a fresh run
    takes 10,000 steps and a resumed run the total it was started with.
    resume: continue the run saved at `out`; force: overwrite `out` without resuming.
    settings: any of TRAIN_OPTIONS by name (hidden_size=..., learning_rate=...); None or
    absent means the default, or on resume the checkpoint's.
    eval_every / print_every / checkpoint_every: steps between validations, log records,
    saves.  keep_best: store the best-validation parameters beside the latest.  patience:
    stop after that many validations without improvement.  threads: BLAS threads.
    progress: True, False or 'auto' (a bar when stderr is a terminal).  echo: called with
    each line of text (None: silent).  callback(record) runs with every metrics record
    (a dict) and stops the run by returning True.  distributed: True (MPI's world) or an
    mpi4py communicator: data-parallel over its processes, see rnncore.parallel.
    Returns a RunResult.  Raises RunError (and the corpus/checkpoint errors) naming the
    problem; `out` is never left worse than it was.
    """
    run = TrainingRun(corpus, out, steps=steps, epochs=epochs, minutes=minutes,
                      resume=resume, force=force, encoding=encoding, eval_every=eval_every,
                      print_every=print_every, checkpoint_every=checkpoint_every,
                      keep_best=keep_best, patience=patience, threads=threads,
                      progress=progress, echo=echo, callback=callback,
                      distributed=distributed, **settings)
    return run.run()


class TrainingRun:
    """fit()'s machinery: prepare() loads (or starts) the run, run() trains it.

    The one place for each of: the run's start (`_open_output`, before anything else is
    checked), validation (`_validate`), and the checkpoint write (`_save`)."""

    def __init__(self, corpus, out, *, steps=None, epochs=None, minutes=None, resume=False,
                 force=False, encoding="utf-8", eval_every=RUN_DEFAULTS["eval_every"],
                 print_every=RUN_DEFAULTS["print_every"],
                 checkpoint_every=RUN_DEFAULTS["checkpoint_every"], keep_best=False,
                 patience=None, threads=None, progress="auto", echo=print, callback=None,
                 distributed=False, **settings):
        unknown = set(settings) - set(TRAIN_DEFAULTS)
        if unknown:
            raise TypeError(f"fit() got unknown setting(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(TRAIN_DEFAULTS)}")
        # the one validation of every setting given (a resume checks them against the
        # checkpoint later); the run-level numbers are checked by the same table
        model_given, train_given = split_settings({k: v for k, v in settings.items()
                                                   if v is not None})
        ModelConfig(**model_given)
        TrainConfig(**train_given, **{k: v for k, v in (
            ("eval_every", eval_every), ("print_every", print_every),
            ("checkpoint_every", checkpoint_every), ("patience", patience))
            if v is not None})
        budgets = [name for name, v in (("steps", steps), ("epochs", epochs),
                                        ("minutes", minutes)) if v is not None]
        if len(budgets) > 1:
            raise RunError(f"give one budget, not {' and '.join(flag(b) for b in budgets)}")
        for name, value in (("steps", steps), ("epochs", epochs), ("threads", threads)):
            if value is not None:
                _check_positive_int(value, name)
        if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
            raise RunError(f"minutes must be a finite number > 0, got {minutes!r}")
        self.workers = connect(distributed)    # rank, size, collectives; one process: no-ops
        self.is_root = self.workers.rank == 0
        self.corpus_path, self.out = os.fspath(corpus), os.fspath(out)
        self.steps, self.epochs, self.minutes = steps, epochs, minutes
        self.resume, self.force, self.encoding = resume, force, encoding
        self.eval_every = RUN_DEFAULTS["eval_every"] if eval_every is None else eval_every
        self.print_every = RUN_DEFAULTS["print_every"] if print_every is None else print_every
        self.checkpoint_every = RUN_DEFAULTS["checkpoint_every"] if checkpoint_every is None \
            else checkpoint_every
        self.patience = patience
        self.threads, self.progress, self.callback = threads, progress, callback
        self.echo = (echo or _silent) if self.is_root else _silent
        self.given = {k: v for k, v in settings.items() if v is not None}
        self.keep_best_given = keep_best
        self.trainer = None
        self.stored_target = None     # the budget a resumed run was started with
        self.lock = CheckpointLock(self.out) if self.is_root else None

    # ---- start: checks, checkpoint, corpus, model ------------------------------------
    def prepare(self):
        """Check the request and build the Trainer (fresh, or from the checkpoint at
        `out`).  Every check comes before anything is written.  The writing process holds
        the lock on `out` from here until run() returns (or until prepare fails)."""
        try:
            self.workers.setup(self._prepare_root, self._prepare_other)
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
            if ckpt.train_meta is None:
                raise RunError(f"cannot resume: {self.out} holds a model without training "
                               "state")
            settings = self._resume_settings(ckpt)
            corpus = load_corpus(self.corpus_path, self.encoding, vocab=ckpt.model.vocab,
                                 vocab_source="the checkpoint's")
            model = ckpt.model
        else:
            if os.path.exists(self.out) and not self.force:
                raise RunError(f"{self.out} exists: pass --resume to continue it, or --force "
                               "to overwrite it")
            settings = {**TRAIN_DEFAULTS, **self.given}
            corpus = load_corpus(self.corpus_path, self.encoding)
            model = build_model(corpus.vocab, settings)
        self._build(settings, corpus, model, ckpt)
        remove_stale_temp_files(self.out)  # left by a run that was killed mid-write
        if self.workers.size == 1:
            return None
        train_arrays, train_meta = self.trainer.state()
        return {"settings": settings, "vocab": corpus.vocab, "corpus_sha256": corpus.sha256,
                "resumed": ckpt is not None, "target": self.target,
                "params": self.trainer.model.params, "train_arrays": train_arrays,
                "train_meta": train_meta, "saved_step": self.saved_step,
                "best": self.best, "evals_since_best": self.evals_since_best}

    def _prepare_other(self, plan):
        """On every other process: the same run as the root's, from its plan (the
        parameters and training state come from the root afterwards)."""
        corpus = load_corpus(self.corpus_path, self.encoding, vocab=plan["vocab"],
                             vocab_source="rank 0's")
        if corpus.sha256 != plan["corpus_sha256"]:
            raise RunError(f"corpus {self.corpus_path} differs from rank 0's (another file "
                           "at the same path)")
        self._build(plan["settings"], corpus, build_model(plan["vocab"], plan["settings"]),
                    None, resumed=plan["resumed"], target=plan["target"])
        for name, value in plan["params"].items():
            self.trainer.model.params[name][...] = value
        self.trainer.load_state(plan["train_arrays"], plan["train_meta"])
        self.saved_step, self.best = plan["saved_step"], plan["best"]
        self.evals_since_best = plan["evals_since_best"]

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

    def _resume_settings(self, ckpt):
        saved = {**TRAIN_DEFAULTS, **ckpt.train_meta["config"]}
        saved.update({name: ckpt.model.config[name] for name in ModelConfig.names()
                      if name in ckpt.model.config})
        free = ", ".join(flag(n) for n in SETTINGS if field_of(n).metadata["resume"] == "free")
        for name in SETTINGS:
            resume = field_of(name).metadata["resume"]
            given = self.given.get(name)
            if resume == "fixed" and given is not None and given != saved[name]:
                raise RunError(f"{flag(name)} {given} conflicts with the checkpoint's "
                               f"{saved[name]} (a resumed run keeps its model and streams; "
                               f"only {free} may change)")
            if resume == "free" and given is not None:
                saved[name] = given
        self.stored_target = ckpt.train_meta["config"].get("total_steps")
        # a run kept its best parameters once keeps them for good: a resume that did
        # not repeat --keep-best must not let the best record move on without them
        kept = {"keep_best": bool(ckpt.train_meta["config"].get("keep_best", False))}
        return {**{k: saved[k] for k in TRAIN_DEFAULTS}, **kept}

    def _build(self, settings, corpus, model, ckpt, resumed=None, target=None):
        self.settings, self.corpus = settings, corpus
        if settings["batch_size"] < self.workers.size:
            raise RunError(f"--batch-size {settings['batch_size']} is smaller than the "
                           f"{self.workers.size} MPI processes: each needs at least one stream")
        train_data, self.val_data = corpus.split(settings["val_fraction"])
        if len(self.val_data) < 2:
            self.val_data = train_data[:0]
        resumed = ckpt is not None if resumed is None else resumed
        self.trainer = Trainer(
            model, train_data, seq_length=settings["seq_length"],
            batch_size=settings["batch_size"], learning_rate=settings["learning_rate"],
            optimizer=settings["optimizer"], clip=settings["clip"],
            clip_norm=settings["clip_norm"], lr_schedule=settings["lr_schedule"],
            total_steps=self.steps or DEFAULT_STEPS, warmup_steps=settings["warmup_steps"],
            lr_decay=settings["lr_decay"], seed=settings["seed"])
        # the cosine schedule's end: known only now for an --epochs budget (steps per epoch)
        self.target = self._target(resumed) if target is None else target
        self.trainer.total_steps = self.target if self.target is not None \
            else self.stored_target
        if settings["lr_schedule"] == "cosine" and self.trainer.total_steps is None:
            raise RunError("the cosine schedule falls to 0 at the last step: give --steps "
                           "or --epochs with it, not --minutes")
        self.log = MetricsLog(metrics_path(self.out))
        self.elapsed = 0.0            # training seconds, summed over resumes
        self.best = None              # {"val_loss", "step"}
        self.best_params = None
        self.keep_best = self.keep_best_given or bool(settings.get("keep_best"))
        self.evals_since_best = 0
        self.saved_step = None
        self.resumed = resumed
        self.hopeless = HopelessRunWatch(model.n_vocab)
        if ckpt is not None:
            self._restore(ckpt)

    def _target(self, resumed):
        """The step to train up to (None: until the minutes run out)."""
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            return self.epochs * self.trainer.steps_per_epoch
        if self.minutes is not None:
            return None
        if not resumed:
            return DEFAULT_STEPS
        if self.stored_target is None:
            raise RunError(f"{self.out} was trained against the clock: give its budget "
                           "(--steps, --epochs or --minutes)")
        return self.stored_target

    def _restore(self, ckpt):
        meta = ckpt.train_meta
        same_corpus = meta.get("corpus_sha256") == self.corpus.sha256
        if not self.trainer.load_state(ckpt.train_arrays, meta, same_corpus):
            self.echo("note: the corpus differs from the checkpoint's; its streams restart "
                      "at the beginning")
        self.elapsed = float(meta.get("elapsed", 0.0))
        self.best = meta.get("best")
        self.evals_since_best = int(meta.get("evals_since_best", 0))
        if ckpt.best_model is not None:
            self.best_params = {k: v.copy() for k, v in ckpt.best_model.params.items()}
        self.saved_step = self.trainer.step

    # ---- the loop ------------------------------------------------------------------
    def run(self):
        """prepare() if not done, train to the budget, save; return a RunResult."""
        if self.trainer is None:
            self.prepare()
        try:
            trainer = self.trainer
            if self.target is not None and trainer.step >= self.target:
                self.echo(f"{self.out} is already at step {trainer.step} (--steps "
                          f"{self.target}): nothing to do")
                return self._result("up_to_date", [])
            with _blas_threads(self.threads):
                # over MPI, an error one rank meets from here on aborts the job (see guard)
                return self.workers.guard(self._loop_reporting_writes)
        except _WriteFailed as e:
            raise RunError(str(e)) from None
        finally:
            self._release()

    def _loop_reporting_writes(self):
        """The loop; a file the system refuses to write stops the run with one line
        naming it and the checkpoint that was kept."""
        try:
            return self._loop()
        except (CheckpointWriteError, MetricsWriteError) as e:
            raise _WriteFailed(f"{e}; {self._kept()}") from None

    def _header(self):
        t, model, s = self.trainer, self.trainer.model, self.settings
        budget = (f"{self.target:,} steps" if self.target is not None
                  else f"{self.minutes:g} minutes")
        ranks = f" on {self.workers.size} MPI processes" if self.workers.size > 1 else ""
        return "\n".join((
            f"corpus {self.corpus_path}: {len(self.corpus):,} chars ({len(t.data):,} train, "
            f"{len(self.val_data):,} validation), {model.n_vocab} symbols",
            f"model: {model.cell} {model.num_layers}x{model.hidden_size}"
            f"{f' (dropout {model.dropout:g})' if model.dropout else ''}, "
            f"{model.num_parameters():,} parameters, {model.dtype.name}",
            f"optimizer: {s['optimizer']} lr {s['learning_rate']:g} ({s['lr_schedule']})",
            f"{s['batch_size']} stream(s) x {s['seq_length']} steps{ranks}, "
            f"{t.steps_per_epoch:,} steps per epoch; {budget}",
            f"losses in nats/char (train: mean of the last {self.print_every} steps, val: "
            "held-out text)"))

    def _loop(self):
        trainer, workers = self.trainer, self.workers
        if self.is_root:   # the log continues from the checkpoint, or starts afresh
            if self.resumed:
                self.log.truncate_after(trainer.step)
            else:
                self.log.reset()
        if self.resumed:
            self.echo(f"resuming {self.out} at step {trainer.step}")
        self.echo(self._header())
        stepper = workers.stepper(trainer)
        bar = _progress_bar(self.progress, self.target, trainer.step) if self.is_root else None
        history, window = [], []
        chars_per_step = trainer.batch_size * trainer.seq_length   # every stream, all ranks
        t_start, step_start = time.perf_counter(), trainer.step
        elapsed_start = self.elapsed
        deadline = None if self.minutes is None else t_start + 60 * self.minutes
        status = "finished"
        try:
            with _StopFlag() as stop:
                while self.target is None or trainer.step < self.target:
                    out_of_time = deadline is not None and self.is_root \
                        and time.perf_counter() >= deadline
                    lr = trainer.current_lr
                    try:
                        loss, (interrupt, out_of_time) = stepper.train_step(
                            stop.signal is not None, out_of_time)
                    except TrainingDiverged as e:
                        raise RunError(f"{e}; {self._kept()}") from None
                    self.elapsed = elapsed_start + time.perf_counter() - t_start
                    window.append(loss)
                    step = trainer.step
                    if bar is not None:
                        bar.update(1)
                        if step % 10 == 0:
                            bar.set_postfix_str(f"train {sum(window) / len(window):.3f} "
                                                "nats/char", refresh=False)
                    last = step == self.target or interrupt or out_of_time
                    validate = len(self.val_data) and (step % self.eval_every == 0 or last)
                    stop_early = None
                    if step % self.print_every == 0 or validate or last:
                        rate = (step - step_start) * chars_per_step / (
                            time.perf_counter() - t_start)
                        record = {"step": step, "epoch": trainer.epoch,
                                  "train_loss": sum(window) / len(window),
                                  "lr": lr, "chars_per_s": rate,
                                  "elapsed": round(self.elapsed, 3)}
                        window = []
                        if validate:
                            record.update(self._validate())
                            if self.patience is not None \
                                    and self.evals_since_best >= self.patience:
                                stop_early = (f"no validation improvement in {self.patience} "
                                              "evaluations")
                        history.append(record)
                        warning = self.hopeless.check(step, lr, record["train_loss"],
                                                      record.get("val_loss"))
                        if warning and self.is_root:
                            _write_line("rnncore: " + warning, bar, sys.stderr)
                        if self.is_root:
                            self.log.write(record)
                            if bar is None:
                                self.echo(_log_line(record, self.target))
                            elif validate:
                                bar.write(_log_line(record, self.target))
                        if self.callback is not None and workers.broadcast(
                                self.is_root and bool(self.callback(record))):
                            stop_early = stop_early or "stopped by the callback"
                    if step % self.checkpoint_every == 0:
                        self._save()
                    if step % 1000 == 0:
                        self.corpus.release_pages()
                    if interrupt:
                        status = "interrupted"
                        break
                    if stop_early or out_of_time:
                        status = "stopped_early" if stop_early else "finished"
                        break
        finally:
            if bar is not None:
                bar.close()
        if self.saved_step != trainer.step:
            self._save()
        best = ""
        if self.best is not None:
            best = (f"; best validation {self.best['val_loss']:.4f} nats/char "
                    f"({self.best['val_loss'] / LN2:.4f} bits/char) at step {self.best['step']}")
        if status == "interrupted":
            self.echo(f"interrupted at step {trainer.step}: saved {self.out} (continue with "
                      f"--resume){best}")
        elif status == "stopped_early":
            self.echo(f"stopped early at step {trainer.step}: {stop_early}; saved "
                      f"{self.out}{best}")
        else:
            self.echo(f"saved {self.out} at step {trainer.step}{best}")
        return self._result(status, history)

    def _result(self, status, history):
        return RunResult(self.out, status, self.trainer.step, self.trainer.epoch, self.best,
                         history)

    # ---- validation and checkpoints -----------------------------------------------------
    def _validate(self):
        """Predict the whole held-out text (state carried); update the best.  Over MPI the
        root's number is every process's, so they all decide alike."""
        if self.is_root:
            result = evaluate(self.trainer.model, self.val_data)
            val, bits = result["nats_per_char"], result["bits_per_char"]
        else:
            val = bits = None
        val, bits = self.workers.broadcast((val, bits))
        if not math.isfinite(val):
            raise RunError(f"the validation loss became {val} at step {self.trainer.step}: "
                           f"training diverged; {self._kept()}")
        # weights worse than uniform guessing never count as an improvement: the untrained
        # model was better, and keep-best must not keep them over better ones
        if not worse_than_uniform(val, self.trainer.model.n_vocab) and (
                self.best is None or val < self.best["val_loss"]):
            self.best = {"val_loss": val, "step": self.trainer.step}
            self.evals_since_best = 0
            if self.keep_best:
                self.best_params = {k: v.copy() for k, v in self.trainer.model.params.items()}
        else:
            self.evals_since_best += 1
        return {"val_loss": val, "val_bits_per_char": bits}

    def _save(self):
        """Checkpoint, unless the weights have gone non-finite: then stop, keeping the file.
        Over MPI every process takes part (the streams' states are gathered), the root
        writes."""
        trainer = self.trainer
        if not all(np.isfinite(p).all() for p in trainer.model.params.values()):
            raise RunError(f"training diverged by step {trainer.step}: the parameters hold "
                           f"nan or inf (try a lower learning rate or a smaller clip); "
                           f"{self._kept()}")
        arrays, meta = self.workers.stepper(trainer).state()
        if self.is_root:
            meta["config"].update({k: self.settings[k] for k in ("val_fraction", "seed")})
            meta["config"]["keep_best"] = self.keep_best
            meta.update({"corpus_sha256": self.corpus.sha256, "corpus_path": self.corpus_path,
                         "elapsed": self.elapsed,
                         "best": self.best, "evals_since_best": self.evals_since_best})
            if self.best_params is not None:
                arrays.update({f"best.{k}": v for k, v in self.best_params.items()})
            save_checkpoint(self.out, trainer.model, (arrays, meta))
        self.saved_step = trainer.step

    def _kept(self):
        if self.saved_step is None:
            if os.path.exists(self.out):   # --force: the file it would have replaced
                return f"the earlier file at {self.out} was kept"
            return "no checkpoint was written"
        return f"the checkpoint at {self.out} (step {self.saved_step}) was kept"


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


def _blas_threads(n):
    """Limit the BLAS pool the kernels use (scipy's) to n threads; None: leave it."""
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=n, user_api="blas")


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps, so the state it
    saves is always that of a whole step.  (Outside the main thread signals cannot be
    caught: the flag then stays down and Ctrl-C raises as usual.)"""

    def __init__(self):
        self.signal = None
        self._old = {}

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._set) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _set(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)


def _progress_bar(progress, total, initial):
    if progress == "auto":
        progress = sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    # a short fixed part, so that the bar itself keeps its width on an 80-column terminal
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]"
                           "{postfix}")
