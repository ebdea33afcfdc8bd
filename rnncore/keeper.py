"""What a run keeps: the best validation (with patience, and the parameters that scored
it) and the checkpoint (which one a failure leaves), and the user's callback as one more
part that may stop the run.  Each part restores itself from a checkpoint's training
state, so a resumed run (and every MPI rank) continues exactly where it was.
"""
import os
from typing import Any, Dict, Optional

import numpy as np

from .checkpoint import save_checkpoint
from .errors import RunError
from .metrics import LN2
from .train import worse_than_uniform


class BestKeeper:
    """The best validation so far, the validations since, and (keep_best) the parameters
    that scored it.  A loss above ln V (worse than uniform guessing, so worse than the
    untrained model) is never an improvement."""

    def __init__(self, n_vocab: int, keep: bool = False, patience: Optional[int] = None):
        self.n_vocab, self.keep, self.patience = n_vocab, keep, patience
        self.best: Optional[Dict[str, Any]] = None       # {"val_loss", "step"}
        self.evals_since_best = 0
        self.params: Optional[Dict[str, np.ndarray]] = None
        self.last: Optional[Dict[str, Any]] = None       # the latest validation

    def restore(self, meta: Dict[str, Any],
                params: Optional[Dict[str, np.ndarray]] = None) -> None:
        """Continue from a checkpoint's training state (`meta` as meta() gave it) and
        its kept best parameters (None: none kept)."""
        self.best = meta.get("best")
        self.evals_since_best = int(meta.get("evals_since_best", 0))
        self.last = meta.get("last_validation")
        self.params = None if params is None or not self.keep else {
            k: v.copy() for k, v in params.items()}

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

    def meta(self) -> Dict[str, Any]:
        """What the checkpoint's training state keeps of it (restore() reads it)."""
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
