"""What the user sees of a run, and its metrics log: the header, a line per record (or a
progress bar on a terminal), the hopeless-run warning, the final lines.  Silent, and
writing nothing, on every MPI process but the root.
"""
import sys
from typing import Optional

from .metrics import MetricsLog, metrics_path
from .train import HopelessRunWatch


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
            self.echo(log_line(record, self.target))
        elif "val_loss" in record:
            self.bar.write(log_line(record, self.target))

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


def log_line(record, target):
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
