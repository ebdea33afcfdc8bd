"""Data-parallel training over MPI: a thin layer around the gradient step.

The B streams are laid out exactly as in one process; rank r of R owns a contiguous share of
them (the first B mod R ranks one stream more).  Every step each rank computes its streams'
gradients unclipped, averaged over its own streams; scaled by (its streams / B), one
all-reduce over a single fused buffer sums them into the mean over all B streams.  Then every
rank clips (elementwise, then the joint norm) and updates identically (the Trainer's own
apply_gradients), so the parameters stay
the same everywhere and equal, up to the order of floating-point sums, to what one process
computes with the same B.  The loss and the ranks' stop requests travel in the same buffer.

Only rank 0 reads the checkpoint, writes it, and prints; the others get its decision at the
start (the plan, the vocabulary, and the checkpoint a resume continues: parameters and
training state), and each stream's hidden state is gathered to rank 0 for every save, so a
checkpoint does not depend on R.

One process (`OneProcess`) has the same interface with nothing to communicate.  Neither
computes anything: the training step is rnncore.train.Trainer.train_step in both, and a
strategy only reduces between its two halves (compute_gradients, apply_gradients).
"""
import sys
import time
import zlib

import numpy as np

from .errors import RunError

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
    ranks_on_host = 1

    def __init__(self):
        self._requests = (False, False)

    def setup(self, decide, build):
        """decide() the run, then build() it."""
        build(decide())

    def bind(self, trainer):
        """Prepare `trainer` for this strategy (one process: nothing to do)."""

    def reduce(self, flat_grads, loss):
        return loss

    def request(self, interrupt, out_of_time):
        """This process's stop requests for the next step (one process: its own)."""
        self._requests = (interrupt, out_of_time)

    def requests(self):
        """(interrupt, out_of_time) as any process asked in the last step."""
        return self._requests

    def gather_state(self, trainer):
        return trainer.state()

    def broadcast(self, value):
        return value

    def guard(self, loop):
        return loop()


class MPIWorkers:
    """The run's collectives over an mpi4py communicator of two or more processes.

    The training step is the Trainer's own (rnncore.train): this rank computes its share
    of the streams' gradients (scaled by its share of the B), and `reduce` sums them, the
    loss and the ranks' stop requests in one all-reduce over a single buffer; the
    clipping and the update that follow are then identical everywhere."""

    def __init__(self, comm):
        from mpi4py import MPI
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        # the ranks that share this machine's CPUs (the default threads divide them)
        self.ranks_on_host = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        self.buffer = None
        self.trainer = None
        self._requests = (False, False)
        self._asked = (False, False)

    def setup(self, decide, build):
        """Rank 0 decides the run (decide(): every check, the checkpoint, the plan); the
        decision is broadcast and every rank builds the same run from it (build(decision):
        a resume's parameters and training state come in the checkpoint it carries).  An
        error anywhere is raised on every rank, with the same message, so all of them
        stop together and nothing is left waiting."""
        decision = error = None
        if self.rank == 0:
            try:
                decision = decide()
            except Exception as e:   # any failure: every rank must hear of it
                error = _message(e)
        decision, error = self.comm.bcast((decision, error), root=0)
        if error is None:
            try:
                build(decision)
            except Exception as e:
                error = _message(e) if self.rank == 0 else f"rank {self.rank}: {_message(e)}"
        errors = [e for e in self.comm.allgather(error) if e is not None]
        if errors:
            raise RunError(errors[0])

    def bind(self, trainer):
        """Give `trainer` this rank's share of the streams and a gradient buffer with
        four more slots (rank 0's training seconds, the loss, the two stop requests), so
        a step costs one all-reduce.  The streams are axis -2 of the state, so one
        layer's (B, H) and a stack's (..., B, H) slice alike."""
        lo, hi = stream_share(trainer.batch_size, self.size, self.rank)
        n = trainer.model.num_parameters()
        self.buffer = np.zeros(n + 4, trainer.model.dtype)
        self.trainer = trainer
        trainer.use_share(lo, hi, self.buffer[:n])

    def request(self, interrupt, out_of_time):
        self._asked = (bool(interrupt), bool(out_of_time))

    def reduce(self, flat_grads, loss):
        """Σ_r (rank r's share · its mean) of the gradients and the loss, and whether any
        rank asked to stop, in one all-reduce; with them rank 0's training seconds (the
        clock a schedule over time follows), which every rank's trainer then reads, so
        all update with one rate."""
        from mpi4py import MPI
        buf = self.buffer
        buf[-4] = self.trainer.seconds if self.rank == 0 else 0
        buf[-3] = loss
        buf[-2], buf[-1] = self._asked
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        self._requests = (bool(buf[-2] > 0), bool(buf[-1] > 0))
        self.trainer.seconds = float(buf[-4])
        return float(buf[-3])

    def requests(self):
        return self._requests

    def gather_state(self, trainer):
        """The Trainer's state() with every stream's hidden state (rank 0 only; the others
        get (None, None)).  Collective: every rank calls it at the same step.  Also checks
        that the parameters are still identical on every rank."""
        digest = 0
        for p in trainer.model.params.values():
            digest = zlib.crc32(np.ascontiguousarray(p).view(np.uint8), digest)
        if len(set(self.comm.allgather(digest))) != 1:
            raise RunError(f"the parameters differ between MPI processes at step "
                           f"{trainer.step}; the run cannot continue consistently")
        parts = self.comm.gather(trainer.hidden, root=0)
        if self.rank != 0:
            return None, None
        arrays, meta = trainer.state()
        arrays["hidden"] = np.concatenate(parts, axis=-2)
        return arrays, meta

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


def _message(e):
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e) or type(e).__name__
