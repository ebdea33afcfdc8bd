"""The metrics log beside a checkpoint (JSON Lines), and its plot.

One line per logged step: {"step", "epoch", "train_loss", "lr", "chars_per_s", "elapsed"}
(losses in mean nats per character, elapsed in training seconds summed over resumes), plus
{"val_loss", "val_bits_per_char"} on the lines where validation ran.
"""
import json
import math
import os

from .errors import MetricsWriteError

LN2 = math.log(2)


def metrics_path(checkpoint_path):
    """model.npz -> model.metrics.jsonl"""
    root, ext = os.path.splitext(os.fspath(checkpoint_path))
    return (root if ext == ".npz" else os.fspath(checkpoint_path)) + ".metrics.jsonl"


class MetricsLog:
    """Every method raises MetricsWriteError when the file system refuses a write."""

    def __init__(self, path):
        self.path = path

    def truncate_after(self, step):
        """Drop lines logged after `step` (a resumed run continues from its checkpoint, so
        lines written after that checkpoint by the interrupted run would be repeated), and
        any torn line a killed run left."""
        if not os.path.exists(self.path):
            return
        kept = [line for line in read_metrics(self.path) if line["step"] <= step]
        with open(self.path, encoding="utf-8", errors="replace") as f:
            if sum(1 for _ in f) == len(kept):
                return   # nothing to drop: no write, which a full disk would refuse
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(line) + "\n" for line in kept)
            os.replace(tmp, self.path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise MetricsWriteError(self.path, e) from None

    def reset(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise MetricsWriteError(self.path, e) from None

    def write(self, record):
        """Append one line, whole or not at all."""
        data = memoryview((json.dumps(record) + "\n").encode("utf-8"))
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o666)
        except OSError as e:
            raise MetricsWriteError(self.path, e) from None
        size_before = None
        try:
            size_before = os.fstat(fd).st_size
            while data:
                data = data[os.write(fd, data):]
        except OSError as e:
            try:
                if size_before is not None:
                    os.ftruncate(fd, size_before)   # no torn line left behind
            except OSError:
                pass
            raise MetricsWriteError(self.path, e) from None
        finally:
            os.close(fd)


def read_metrics(path):
    """The records of a metrics log; a torn last line (a killed writer) is skipped."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "step" in record:
                records.append(record)
    return records


def plot_metrics(records, out_png, title=""):
    """Train and validation loss in bits/char against steps and against training time."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install 'rnncore[plot]'") from None
    train = [r for r in records if r.get("train_loss") is not None]
    val = [r for r in records if r.get("val_loss") is not None]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, label in ((axes[0], "step", "step"), (axes[1], "elapsed", "training time (s)")):
        ax.plot([r[key] for r in train], [r["train_loss"] / LN2 for r in train],
                label="train", color="tab:blue", alpha=0.7)
        if val:
            ax.plot([r[key] for r in val], [r["val_loss"] / LN2 for r in val], "o-",
                    label="validation", color="tab:orange", markersize=3)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss (bits/char)")
    axes[0].legend()
    if val:
        best = min(val, key=lambda r: r["val_loss"])
        axes[1].set_title(f"best validation {best['val_loss'] / LN2:.3f} bits/char "
                          f"({best['val_loss']:.3f} nats) at step {best['step']}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
