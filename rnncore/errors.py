"""Every error rnncore raises on purpose, under one base class.

`RnncoreError` is what the command line catches and prints as one `rnncore: error: ...`
line; anything else (a bare ValueError, TypeError or KeyError from deep inside) is a bug
and keeps its traceback.  Each class also derives from the built-in exception it always
was (ValueError, OSError, ...), so `except ValueError` in a caller's code still works.

Floor 1: this module imports nothing from rnncore.
"""


class RnncoreError(Exception):
    """Base of every error rnncore raises on purpose: one line that names the problem."""


class ConfigError(RnncoreError, ValueError):
    """A setting or argument outside the values it accepts (its name, range and the value
    given are in the message)."""


class UsageError(RnncoreError):
    """A request that makes no sense as a whole (the command line says it as one line)."""


class CorpusError(RnncoreError, ValueError):
    """The corpus file is missing, unreadable, empty or not in the stated encoding."""


class CheckpointError(RnncoreError, ValueError):
    """A checkpoint file is missing, unreadable, foreign, or inconsistent."""


class RunError(RnncoreError, ValueError):
    """A problem with what the run was asked to do, or a run that had to stop: one line
    that names it (and, once training started, which checkpoint was kept)."""


class TrainingDiverged(RnncoreError, ArithmeticError):
    """The loss became nan or inf; the parameters were not updated with it."""

    def __init__(self, step, loss):
        super().__init__(f"the loss became {loss} at step {step}: training diverged "
                         "(try a lower learning rate or a smaller clip)")
        self.step, self.loss = step, loss


class NotEnoughMemory(RnncoreError, MemoryError):
    """An allocation was refused before it was tried: it would need more than the
    machine's physical memory."""


class CheckpointInUse(RnncoreError, RuntimeError):
    """Another process holds the checkpoint's lock."""

    def __init__(self, checkpoint, pid):
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"{checkpoint} is being written by another rnncore process "
                         f"({holder}); wait for it to finish or stop it")
        self.checkpoint, self.pid = checkpoint, pid


class SafetensorsMissing(RnncoreError, ImportError):
    """The optional safetensors package is not installed."""


class WriteFailed(RnncoreError, OSError):
    """The file system refused a write (disk full, I/O error, read-only file system,
    quota): the file at `path`, if any, is untouched and no temporary file is left."""

    def __init__(self, path, error, what):
        super().__init__(error.errno, error.strerror, path)
        self.message = f"could not write {what} {path} ({error.strerror or error})"

    def __str__(self):
        return self.message


class CheckpointWriteError(WriteFailed):
    """The checkpoint (or an exported model) could not be written."""

    def __init__(self, path, error, what="the checkpoint"):
        super().__init__(path, error, what)


class MetricsWriteError(WriteFailed):
    """The metrics log could not be written; it holds whole lines only."""

    def __init__(self, path, error):
        super().__init__(path, error, "the metrics log")
