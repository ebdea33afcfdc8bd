"""Data-parallel training over MPI: a thin layer around the gradient step.

The B streams are laid out exactly as in one process; rank r of R owns a contiguous share of
them (the first B mod R ranks one stream more).  Every step each rank computes its streams'
gradients unclipped, averaged over its own streams; scaled by (its streams / B), one
all-reduce over a single fused buffer sums them into the mean over all B streams.  Then every
rank clips (elementwise, then the joint norm) and updates identically, so the parameters stay
the same everywhere and equal, up to the order of floating-point sums, to what one process
computes with the same B.  The loss and the ranks' stop requests travel in the same buffer.

Only rank 0 reads the checkpoint, writes it, and prints; the others get the run's plan from
it at the start (settings, vocabulary, parameters, training state), and each stream's hidden
state is gathered to rank 0 for every save, so a checkpoint does not depend on R.

One process (`OneProcess`) has the same interface with nothing to communicate.
"""
import math
import sys
import time
import zlib

import numpy as np

from .errors import RunError, TrainingDiverged
from .optim import clip_global_norm

INSTALL_HINT = "pip install 'rnncore[mpi]'"


def connect(distributed):
    """OneProcess() for distributed=False/None; otherwise MPIWorkers over MPI's world
    (distributed=True) or the mpi4py communicator given."""
    if distributed is None or distributed is False:
        return OneProcess()
    try:
        from mpi4py import MPI
    except ImportError:
        raise RunError(f"--distributed needs mpi4py and an MPI library: {INSTALL_HINT}") \
            from None
    comm = MPI.COMM_WORLD if distributed is True else distributed
    if comm.Get_size() < 2:
        raise RunError("--distributed, but this process is alone (MPI world size 1): start "
                       "it with `mpiexec -n 2 rnncore train ...`, using the mpiexec installed "
                       f"beside this Python ({sys.prefix}/bin/mpiexec), not another MPI's")
    return MPIWorkers(comm)


def world_rank():
    """This process's rank in MPI's world if mpi4py is in use, else 0."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return 0
    return mpi.COMM_WORLD.Get_rank()


def stream_share(n_streams, n_ranks, rank):
    """(lo, hi): rank's contiguous share of the streams; the first n_streams % n_ranks
    ranks take one more."""
    base, extra = divmod(n_streams, n_ranks)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


class OneProcess:
    """The run's collectives when there is nothing to communicate."""
    rank, size = 0, 1

    def setup(self, prepare_root, prepare_other):
        prepare_root()

    def stepper(self, trainer):
        return LocalStep(trainer)

    def broadcast(self, value):
        return value

    def guard(self, loop):
        return loop()


class LocalStep:
    """The Trainer's own step (the kernel clips), with the stop requests passed through."""

    def __init__(self, trainer):
        self.trainer = trainer

    def train_step(self, interrupt, out_of_time):
        """One step; returns (mean loss in nats/char, (interrupt, out_of_time))."""
        return self.trainer.train_step(), (interrupt, out_of_time)

    def state(self):
        return self.trainer.state()


class MPIWorkers:
    """The run's collectives over an mpi4py communicator of two or more processes."""

    def __init__(self, comm):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._stepper = None

    def setup(self, prepare_root, prepare_other):
        """Rank 0 decides the run (every check, the checkpoint); the others build it from
        its plan.  An error anywhere is raised on every rank, with the same message, so
        all of them stop together and nothing is left waiting."""
        plan = error = None
        if self.rank == 0:
            try:
                plan = prepare_root()
            except Exception as e:   # any failure: every rank must hear of it
                error = _message(e)
        plan, error = self.comm.bcast((plan, error), root=0)
        if error is None and self.rank != 0:
            try:
                prepare_other(plan)
            except Exception as e:
                error = f"rank {self.rank}: {_message(e)}"
        errors = [e for e in self.comm.allgather(error) if e is not None]
        if errors:
            raise RunError(errors[0])

    def stepper(self, trainer):
        if self._stepper is None:
            self._stepper = DataParallel(trainer, self.comm)
        return self._stepper

    def broadcast(self, value):
        return self.comm.bcast(value, root=0)

    def guard(self, loop):
        """Run the training loop; an error only this rank has (a failed write, a bug)
        aborts every process at once rather than leaving them waiting in a collective.
        Errors every rank raises alike (divergence, seen in the all-reduced loss) pass."""
        try:
            return loop()
        except RunError:
            raise
        except BaseException as e:
            print(f"rnncore: error: rank {self.rank}: {_message(e)} (aborting every process)",
                  file=sys.stderr, flush=True)
            # mpiexec forwards a rank's output through a proxy that Abort tears down: give
            # it a moment to pass the message on, or the user may never see why
            time.sleep(0.5)
            self.comm.Abort(1)
            raise


class DataParallel:
    """The gradient step of one rank: its streams' gradients, one fused all-reduce, then
    the clipping and the update every rank applies identically.

    The Trainer keeps laying out and advancing all B streams; this rank reads its share of
    each window and keeps only its streams' hidden state (streams are axis -2 of the
    state, so one layer's (B, H) and a stack's (..., B, H) slice alike)."""

    def __init__(self, trainer, comm):
        self.trainer, self.comm = trainer, comm
        size, rank = comm.Get_size(), comm.Get_rank()
        B = trainer.batch_size     # >= size: checked when the run was prepared
        self.lo, self.hi = stream_share(B, size, rank)
        self.weight = (self.hi - self.lo) / B      # this rank's share of the global mean
        model = trainer.model
        # one buffer: every gradient array (a view the kernel writes into), then the loss
        # and the two stop requests, so a step costs a single all-reduce
        shapes = model.shapes
        n = sum(int(np.prod(s)) for s in shapes.values())
        self.buffer = np.zeros(n + 3, model.dtype)
        self.flat_grads = self.buffer[:n]
        self.grads, offset = {}, 0
        for name, shape in shapes.items():
            size_ = int(np.prod(shape))
            self.grads[name] = self.buffer[offset:offset + size_].reshape(shape)
            offset += size_
        trainer.hidden = np.ascontiguousarray(self.local(trainer.hidden))

    def local(self, streams_array):
        """This rank's streams of an array whose streams are axis -2 (the hidden state;
        per-stream draws made for the global batch, e.g. dropout masks)."""
        return streams_array[..., self.lo:self.hi, :]

    def train_step(self, interrupt, out_of_time):
        """One step over all B streams; returns (mean loss over them, in nats/char, and
        (interrupt, out_of_time) as requested by any rank).  Raises TrainingDiverged, on
        every rank alike, before updating if the loss is not finite."""
        t = self.trainer
        inputs, targets = t.next_window()                       # (B, T') all streams
        x, y = inputs[self.lo:self.hi], targets[self.lo:self.hi]
        masks = None
        if t.model.dropout > 0:   # drawn for all B streams, as in one process: same masks
            masks = self.local(t.model.dropout_masks(t.dropout_rng, *inputs.shape))
        lr = t.current_lr
        loss, _, h_last = t.model.loss_and_grads(x, y, t.hidden, clip=0, out=self.grads,
                                                 dropout_masks=masks)
        buf = self.buffer
        buf[-3] = loss
        buf[:-2] *= self.weight                                 # Σ_r weight_r · mean_r
        buf[-2], buf[-1] = bool(interrupt), bool(out_of_time)
        from mpi4py import MPI
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        loss = float(buf[-3])
        if not math.isfinite(loss):
            raise TrainingDiverged(t.step + 1, loss)
        if t.clip:
            np.clip(self.flat_grads, -t.clip, t.clip, out=self.flat_grads)
        if t.clip_norm is not None:
            clip_global_norm(self.grads, t.clip_norm)
        t.optimizer.step(self.grads, lr)
        t.advance(x.shape[1], h_last)
        return loss, (buf[-2] > 0, buf[-1] > 0)

    def state(self):
        """The Trainer's state() with every stream's hidden state (rank 0 only; the others
        get (None, None)).  Collective: every rank calls it at the same step.  Also checks
        that the parameters are still identical on every rank."""
        t = self.trainer
        digest = 0
        for p in t.model.params.values():
            digest = zlib.crc32(np.ascontiguousarray(p).view(np.uint8), digest)
        if len(set(self.comm.allgather(digest))) != 1:
            raise RunError(f"the parameters differ between MPI processes at step {t.step}; "
                           "the run cannot continue consistently")
        parts = self.comm.gather(t.hidden, root=0)
        if self.comm.Get_rank() != 0:
            return None, None
        arrays, meta = t.state()
        arrays["hidden"] = np.concatenate(parts, axis=-2)
        return arrays, meta


def _message(e):
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e) or type(e).__name__
