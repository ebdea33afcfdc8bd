"""The thread team every compiled call runs on (csrc/team.c): its size and its default.

One team per process, created at the first call that needs more than one thread; the
calling thread is one of its workers.  Results are the same bits for any number of
threads, so the setting changes speed only.  The kernels call no BLAS: numpy's and scipy's
thread pools play no part in them.
"""
import contextlib
import os
from typing import Optional

from . import _cells


def available_cpus():
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(ranks_on_host=1):
    """The CPUs this process may use, shared out among the MPI ranks on this host."""
    return max(1, available_cpus() // max(1, ranks_on_host))


def resolve_threads(threads: Optional[int] = None, ranks_on_host: int = 1) -> Optional[int]:
    """The thread team's size for a command, fit() or serve: `threads` when given (a
    positive integer, else ValueError); under MPI (ranks_on_host > 1) the CPUs shared out
    among this host's ranks (two ranks on two cores: one thread each); else None, which
    leaves the team as it is (default_threads() unless set_num_threads changed it)."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"the number of threads must be a positive integer, got "
                             f"{threads!r}")
        return threads
    return default_threads(ranks_on_host) if ranks_on_host > 1 else None


def set_num_threads(n):
    """Run every compiled call on a team of n threads (the calling thread included)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be a positive integer, got {n!r}")
    _cells.set_num_threads(n)


def get_num_threads():
    """The team's size: what set_num_threads set, else the default (default_threads())."""
    return _cells.get_num_threads()


@contextlib.contextmanager
def num_threads(n):
    """Within the block, a team of n threads (None: leave it as it is)."""
    if n is None:
        yield
        return
    before = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(before)


set_num_threads(default_threads())
