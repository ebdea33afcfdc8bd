"""One writer per checkpoint: an exclusive `flock` on a lock file beside it.

    with CheckpointLock("model.npz"):      # holds model.npz.lock for the run's whole life
        ...

A second holder fails at once with CheckpointInUse, which names the checkpoint and the
process that holds it (its pid is written into the lock file).  The kernel releases a
flock when its holder dies, however it dies, so a killed run never blocks the next one.
Readers (sample, eval) take no lock: the atomic rename already gives them a whole file.
"""
import errno
import fcntl
import os
import time

from .errors import CheckpointInUse


def lock_path(checkpoint_path):
    """model.npz -> model.npz.lock"""
    return os.fspath(checkpoint_path) + ".lock"


class CheckpointLock:
    """An exclusive, non-blocking lock on `checkpoint_path`, as a context manager.

    Entering raises CheckpointInUse if another process (or another CheckpointLock in this
    one) holds it, and OSError if the lock file cannot be created.  Leaving removes the
    lock file and releases the lock.
    """

    def __init__(self, checkpoint_path):
        self.checkpoint = os.fspath(checkpoint_path)
        self.path = lock_path(self.checkpoint)
        self._fd = None

    def __enter__(self):
        if self._fd is not None:
            raise RuntimeError(f"the lock on {self.checkpoint} is already held here")
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_pid(fd)
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise CheckpointInUse(self.checkpoint, holder) from None
                raise
            # The previous holder unlinks the file before releasing it: if that happened
            # between our open and our flock, we hold a lock on a file nobody else will
            # see, and must try again on the one now at the path.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass   # on a full disk: the lock holds all the same, only its pid goes unnamed
        self._fd = fd
        return self

    def __exit__(self, *exc_info):
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):
                os.unlink(self.path)   # while still held: nobody can lock it meanwhile
        except OSError:
            pass                       # a lock file left behind blocks no one
        finally:
            os.close(fd)               # releases the flock

    @property
    def held(self):
        return self._fd is not None


def _same_file(fd, path):
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (at_path.st_dev, at_path.st_ino)


def _read_pid(fd, attempts=20):
    """The holder's pid from the lock file: the holder writes it just after locking, so
    a moment's retry covers the gap between its flock and its write."""
    for _ in range(attempts):
        try:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            return None
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return None
