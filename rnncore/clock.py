"""When a run stops: its training clock (summed over resumes; --minutes counts this
invocation's time) and Ctrl-C/SIGTERM turned into a flag the loop reads between steps.
"""
import signal
import threading
import time


class Clock:
    """The run's training time (summed over resumes), its deadline, its rate.

    elapsed_before: the run's training seconds before this invocation; end: the training
    seconds (over resumes) at which its time is up, None for a budget of steps."""

    def __init__(self, elapsed_before, end, step):
        self.before, self.start, self.step0 = elapsed_before, time.perf_counter(), step
        self.end = end

    def elapsed(self):
        return self.before + self.seconds()

    def seconds(self):
        """Training seconds of this invocation."""
        return time.perf_counter() - self.start

    def out_of_time(self):
        return self.end is not None and self.elapsed() >= self.end

    def rate(self, step, chars_per_step):
        """Characters per second of this invocation (every stream, all ranks)."""
        return (step - self.step0) * chars_per_step / max(time.perf_counter() - self.start,
                                                          1e-9)


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps, so the state it
    saves is always that of a whole step.  (Outside the main thread signals cannot be
    caught: the flag then stays down and Ctrl-C raises as usual.)"""

    def __init__(self, on_repeat=None):
        self.signal = None
        self.on_repeat = on_repeat     # what a second signal says (None: nothing)
        self._old = {}

    def __enter__(self):
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
