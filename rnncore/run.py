"""A training run: the Trainer plus everything that makes it trustworthy.

`fit(corpus_path, out, ...)` reads a text file, trains, validates every `eval_every` steps,
keeps the best-validation parameters, stops on patience or budget, writes the metrics log
and the checkpoint (every `checkpoint_every` steps, at the end, on Ctrl-C/SIGTERM), shows a
progress bar on a terminal, and resumes a saved run bit for bit.  `rnncore train` is this
function behind argparse; over MPI (`distributed=True`) every process runs it.

The run is made of parts, each owning one concern, each in a module of its own:
    plan_run      (plan.py) what to train (a fresh run's settings, or a resume's merge
                  with the checkpoint) and up to which step: pure, testable without training
    BestKeeper    (keeper.py) the best validation, patience, the kept best parameters
    Checkpointer  (keeper.py) the checkpoint writes, and which checkpoint was kept
    CallbackPart  (keeper.py) the user's callback, one more part that sees every record
    Reporter      (report.py) the header, the log lines, the bar, the metrics log, the
                  hopeless warning
    Clock         (clock.py) the training time, the --minutes deadline; StopFlag: Ctrl-C
and TrainingRun wires them around the Trainer's step (rnncore.train) and a distribution
strategy (rnncore.parallel: the root decides the run, every process builds it from that
decision).  The settings are rnncore.config's.
"""
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

from .checkpoint import Checkpoint, load_checkpoint
from .clock import Clock, StopFlag
from .config import DEFAULT_STEPS, ModelConfig, TrainConfig, flag
from .corpus import Corpus, load_corpus
from .errors import CheckpointWriteError, MetricsWriteError, RunError, TrainingDiverged
from .files import remove_stale_temp_files, writable_directory_problem
from .keeper import BestKeeper, CallbackPart, Checkpointer
from .layout import check_memory, training_bytes
from .lock import CheckpointLock
from .model import CharRNN
from .optim import OPTIMIZERS
from .parallel import connect
from .plan import BUDGETS, RunPlan, check_options, plan_run
from .report import Reporter
from .threads import num_threads, resolve_threads
from .train import Trainer, evaluate
from .vocab import Vocab


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
    best: Optional[Dict[str, Any]] = None          # {"val_loss": nats/char, "step"}
    history: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 130 if self.status == "interrupted" else 0


Echo = Optional[Callable[[str], Any]]
Callback = Optional[Callable[[Dict[str, Any]], Any]]


def fit(corpus: Union[str, "os.PathLike[str]"], out: Union[str, "os.PathLike[str]"], *,
        model: Optional[ModelConfig] = None, train: Optional[TrainConfig] = None,
        # ---- the model (ModelConfig) ----
        cell: Optional[str] = None, num_layers: Optional[int] = None,
        hidden_size: Optional[int] = None, dropout: Optional[float] = None,
        dropout_mode: Optional[str] = None, weight_drop: Optional[float] = None,
        dtype: Optional[str] = None,
        # ---- the training (TrainConfig) ----
        seq_length: Optional[int] = None, batch_size: Optional[int] = None,
        optimizer: Optional[str] = None, val_fraction: Optional[float] = None,
        learning_rate: Optional[float] = None, clip: Optional[float] = None,
        clip_norm: Optional[float] = None, lr_schedule: Optional[str] = None,
        lr_floor: Optional[float] = None, lr_decay: Optional[float] = None,
        warmup_steps: Optional[int] = None,
        weight_decay: Optional[float] = None, average: Optional[float] = None,
        average_start: Optional[int] = None, seed: Optional[int] = None,
        eval_every: Optional[int] = None, print_every: Optional[int] = None,
        checkpoint_every: Optional[int] = None, keep_best: Optional[bool] = None,
        patience: Optional[int] = None,
        # ---- the budget (one of) ----
        steps: Optional[int] = None, epochs: Optional[int] = None,
        minutes: Optional[float] = None,
        # ---- this invocation ----
        resume: bool = False, force: bool = False, encoding: str = "utf-8",
        threads: Optional[int] = None, progress: Union[bool, str] = "auto",
        echo: Echo = print, callback: Callback = None,
        distributed: Any = False) -> RunResult:
    """Train on the text file `corpus` and save the run to the checkpoint `out`.

    The settings are rnncore.ModelConfig's and rnncore.TrainConfig's (their docs give
    each one's meaning, default and range): pass `model=` / `train=` configs, or any
    field by name (hidden_size=..., learning_rate=...), a name replacing the config's
    value.  Every setting not given takes its default, or on resume the checkpoint's: a
    resumed run keeps the settings of the run it continues unless one that may change is
    given (a config given counts as every one of its fields given, but for those that
    are None).
    Budget (one of, total over resumes): steps (optimizer steps), epochs (passes over the
    training text), or minutes (training time of this call).  Without one a fresh run
    takes 10,000 steps and a resumed run the total it was started with (steps, or the
    training time of a run started with minutes).
    resume: continue the run saved at `out`; force: overwrite `out` without resuming.
    threads: the thread team's size for the run (rnncore.threads.resolve_threads: None
    leaves it as it is, or under MPI shares this host's CPUs out among its ranks).
    progress: True, False or 'auto' (a bar when stderr is a terminal).  echo: called with
    each line of text (None: silent).  callback(record) runs with every metrics record
    (a dict) and stops the run by returning True.  distributed: True (MPI's world) or an
    mpi4py communicator: data-parallel over its processes, see rnncore.parallel.
    Returns a RunResult.  Raises RunError, ConfigError, NotEnoughMemory (and the corpus
    and checkpoint errors) naming the problem; `out` is never left worse than it was.
    """
    named = {k: v for k, v in locals().items() if k in OPTION_NAMES}
    options: Dict[str, Any] = {}
    for name, config, kind in (("model", model, ModelConfig), ("train", train, TrainConfig)):
        if config is not None:
            if not isinstance(config, kind):
                raise TypeError(f"fit(): {name} must be an rnncore.{kind.__name__}, got "
                                f"{type(config).__name__}")
            options.update({k: v for k, v in config.as_dict().items() if v is not None})
    options.update({k: v for k, v in named.items() if v is not None})
    run = TrainingRun(corpus, out, {**dict.fromkeys(OPTION_NAMES), **options},
                      resume=resume, force=force, encoding=encoding, threads=threads,
                      progress=progress, echo=echo, callback=callback,
                      distributed=distributed)
    return run.run()


#: fit()'s keywords that are settings: every field of both configs
OPTION_NAMES = ModelConfig.names() + TrainConfig.names()


@dataclass
class RunStart:
    """The root's decision, which every process builds the same run from: the plan, the
    vocabulary, the corpus's digest (every process reads its own copy, checked against
    it) and the checkpoint a resume continues (None for a fresh run)."""
    plan: RunPlan
    vocab: Vocab
    corpus_sha256: str
    checkpoint: Optional[Checkpoint] = None


class TrainingRun:
    """fit()'s machinery: prepare() decides and builds the run, run() trains it."""

    def __init__(self, corpus, out, options, *, resume=False, force=False, encoding="utf-8",
                 threads=None, progress="auto", echo=print, callback=None,
                 distributed=False):
        try:
            resolve_threads(threads)
        except ValueError as e:
            raise RunError(str(e)) from None
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
            self.strategy.setup(self._decide, self._build_run)
        except BaseException:
            self._release()
            raise

    def _release(self):
        if self.lock is not None and self.lock.held:
            self.lock.__exit__(None, None, None)

    def _decide(self) -> RunStart:
        """On the writing process: every check, the checkpoint and the plan."""
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
        remove_stale_temp_files(self.out)  # left by a run that was killed mid-write
        self.corpus = corpus
        return RunStart(plan, corpus.vocab, corpus.sha256, ckpt)

    def _build_run(self, start: RunStart) -> None:
        """On every process, from the root's decision: the same corpus, model, Trainer and
        parts, restored from the checkpoint a resume continues; then this process's share
        of the streams."""
        corpus = self.corpus if self.is_root else self._same_corpus(start)
        ckpt = start.checkpoint
        model = ckpt.model if ckpt is not None else _build_model(start.vocab, start.plan)
        self._build(start.plan, corpus, model)
        if ckpt is not None:
            self._restore(ckpt)
        # a budget of time: this invocation's minutes, and where a decaying schedule's
        # clock ends (known only now: the training time of the run so far)
        self.minutes = start.plan.minutes(self.elapsed)
        self.trainer.total_seconds = start.plan.total_seconds(self.elapsed)
        self.strategy.bind(self.trainer)

    def _same_corpus(self, start: RunStart) -> Corpus:
        corpus = load_corpus(self.corpus_path, self.encoding, vocab=start.vocab,
                             vocab_source="rank 0's")
        if corpus.sha256 != start.corpus_sha256:
            raise RunError(f"corpus {self.corpus_path} differs from rank 0's (another file "
                           "at the same path)")
        return corpus

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
        self.trainer = Trainer(model, train_data, t, total_steps=DEFAULT_STEPS)
        # the cosine schedule's end: known only now for an --epochs budget (steps per epoch)
        self.target = plan.target(self.trainer.steps_per_epoch)
        self.trainer.total_steps = plan.total_steps(self.trainer.steps_per_epoch)
        self.elapsed = 0.0            # training seconds, summed over resumes
        self.keeper = BestKeeper(model.n_vocab, t.keep_best, t.patience)
        self.checkpointer = Checkpointer(self.out, self.strategy)
        self.reporter = Reporter(self.out, self.echo, self.progress, self.is_root,
                                 model.n_vocab, len(self.val_data))
        self.parts = [CallbackPart(self.callback, self.strategy)]

    def _restore(self, ckpt: Checkpoint) -> None:
        meta = ckpt.train_meta
        assert meta is not None            # plan_run refused a checkpoint without it
        same_corpus = meta.get("corpus_sha256") == self.corpus.sha256
        if not self.trainer.load_state(ckpt.train_arrays, meta, same_corpus):
            self.reporter.echo("note: the corpus differs from the checkpoint's; its streams "
                               "restart at the beginning")
        self.elapsed = float(meta.get("elapsed", 0.0))
        self.keeper.restore(meta, None if ckpt.best_model is None else ckpt.best_model.params)
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
            if self.minutes is not None and self.minutes <= 0:
                self.reporter.echo(f"{self.out} has already trained its "
                                   f"{self.trainer.total_seconds / 60:g} minutes: nothing "
                                   "to do (give --minutes to train on)")
                return self._result("up_to_date", [])
            with num_threads(self._threads()):
                # over MPI, an error one rank meets from here on aborts the job (see guard)
                return self.strategy.guard(self._loop_reporting_writes)
        except _WriteFailed as e:
            raise RunError(str(e)) from None
        finally:
            self._release()

    def _threads(self) -> Optional[int]:
        """The team's size for this run (rnncore.threads.resolve_threads)."""
        return resolve_threads(self.threads, self.strategy.ranks_on_host)

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
                            trainer.step, self.minutes)
        history, window, status, stop_reason = [], [], "finished", None
        clock = Clock(self.elapsed, trainer.total_seconds, trainer.step)
        stop = StopFlag(self._already_stopping if self.is_root else None)
        try:
            with stop:
                while self.target is None or trainer.step < self.target:
                    strategy.request(stop.signal is not None,
                                     self.is_root and clock.out_of_time())
                    # a schedule over time reads the training time at the step's start
                    # (over MPI, rank 0's: the strategy passes it on with the gradients)
                    trainer.seconds = self.elapsed
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
                        record = self._record(trainer.last_lr, window, clock, validate)
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
                  else f"{self.minutes:g} minutes")
        ranks = f" on {self.strategy.size} MPI processes" if self.strategy.size > 1 else ""
        return "\n".join((
            f"corpus {self.corpus_path}: {len(self.corpus):,} chars, {model.n_vocab} symbols",
            f"{len(t.data):,} for training, {len(self.val_data):,} held out for validation",
            f"model: {model.cell} {model.num_layers}x{model.hidden_size}"
            f"{f' (dropout {model.dropout:g})' if model.dropout else ''}, "
            f"{model.num_parameters():,} parameters, {model.dtype.name}",
            f"optimizer: {s.optimizer} lr {s.learning_rate:g} ({self._schedule()})",
            f"{s.batch_size} stream(s) x {s.seq_length} steps{ranks}, "
            f"{t.steps_per_epoch:,} steps per epoch; {budget}",
            f"losses in nats/char (train: mean of the last {s.print_every} steps, val: "
            "held-out text)"))

    def _schedule(self):
        """The learning-rate schedule in words, for the header."""
        s, t = self.plan.train, self.trainer
        said = s.lr_schedule
        if s.lr_schedule in ("cosine", "linear"):
            end = (f"{t.total_seconds / 60:g} minutes of training" if t.total_seconds
                   is not None else f"step {t.total_steps:,}")
            said += f" to {s.lr_floor:g}x at {end}"
        elif s.lr_schedule == "step":
            said += f" x{s.lr_decay:g} per epoch"
        if s.warmup_steps:
            said += f", warm-up {s.warmup_steps:,} steps"
        return said

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
                           "total_steps": self.trainer.total_steps,
                           "total_seconds": self.trainer.total_seconds},
                "corpus_sha256": self.corpus.sha256, "corpus_path": self.corpus_path,
                "elapsed": self.elapsed, **self.keeper.meta()}
        self.checkpointer.save(self.trainer, meta, self.keeper.arrays())


def _build_model(vocab, plan):
    """The model a fresh run starts from: the model settings, and the seed."""
    return CharRNN(vocab, seed=plan.train.seed, config=plan.model)
