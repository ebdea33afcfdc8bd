"""The record of timed `rnncore train` runs: validation against training time, the best,
and the time each first reached a few levels; and the plot of their validation curves.

    python bench/training_record.py --run new=/tmp/final/m.metrics.jsonl \
        --run old=/tmp/old/m.metrics.jsonl --command new="rnncore train ..." \
        --json docs/training-runs.json --plot docs/training-old-vs-new.png

Each --run NAME=PATH is the metrics log (JSON Lines) that `rnncore train` wrote beside its
checkpoint; it is copied to docs/ as training-NAME-metrics.jsonl (--copy-to).  The levels
are nanoGPT's 1.4697 nats/char on the same split and issue 27's target, 1.42.
"""
import argparse
import json
import shutil
from pathlib import Path

from rnncore.metrics import LN2

LEVELS = {"nanoGPT 1.4697": 1.4697, "1.45": 1.45, "target 1.42": 1.42, "1.40": 1.40}


def validations(path):
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    return [r for r in records if "val_loss" in r]


def summary(records):
    best = min(records, key=lambda r: r["val_loss"])
    first = {name: next(({"elapsed_s": r["elapsed"], "step": r["step"]} for r in records
                          if r["val_loss"] <= level), None)
             for name, level in LEVELS.items()}
    return {"best_val_nats": best["val_loss"], "best_val_bits": best["val_loss"] / LN2,
            "best_step": best["step"], "best_at_s": best["elapsed"],
            "last_step": records[-1]["step"], "last_elapsed_s": records[-1]["elapsed"],
            "first_at_or_below": first}


def settings_of(checkpoint):
    """The model's and the training's settings a run's checkpoint stores."""
    import rnncore
    ckpt = rnncore.load_checkpoint(checkpoint)
    # the budget's span (total_steps, total_seconds) is the run's, not a setting
    train = {k: v for k, v in ckpt.train_meta["config"].items()
             if k not in ("total_steps", "total_seconds")}
    return {"model": {k: ckpt.model.config[k] for k in rnncore.ModelConfig.names()},
            "train": train}


def plot(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for (name, records), color in zip(runs.items(), ("tab:gray", "tab:blue", "tab:red",
                                                     "tab:green")):
        ax.plot([r["elapsed"] / 60 for r in records], [r["val_loss"] for r in records],
                "o-", markersize=2.5, color=color, label=f"{name} settings")
    ax.axhline(1.4697, color="black", lw=0.8, ls="--", label="nanoGPT's 1.4697 (A100)")
    ax.axhline(1.42, color="tab:red", lw=0.8, ls=":", label="target 1.42")
    ax.set_xlabel("training time (minutes; the clock of --minutes)")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_ylim(1.3, 2.0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("rnncore train tinyshakespeare.txt --minutes 20 --val-fraction 0.1")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", action="append", required=True, metavar="NAME=METRICS")
    ap.add_argument("--command", action="append", default=[], metavar="NAME=COMMAND")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="NAME=NPZ",
                    help="a run's checkpoint: its settings go into the record")
    ap.add_argument("--note", action="append", default=[], metavar="KEY=TEXT",
                    help="facts to keep in the record (machine, commit, eval)")
    ap.add_argument("--json", default="docs/training-runs.json")
    ap.add_argument("--plot", default="docs/training-old-vs-new.png")
    ap.add_argument("--copy-to", default="docs")
    args = ap.parse_args()
    runs = {}
    for item in args.run:
        name, path = item.split("=", 1)
        runs[name] = validations(path)
        shutil.copy(path, Path(args.copy_to) / f"training-{name}-metrics.jsonl")
    commands = dict(item.split("=", 1) for item in args.command)
    settings = {name: settings_of(path) for name, path in
                (item.split("=", 1) for item in args.checkpoint)}
    record = {"runs": {name: {"command": commands.get(name), "metrics":
                              f"docs/training-{name}-metrics.jsonl",
                              "settings": settings.get(name), **summary(records)}
                       for name, records in runs.items()},
              **dict(item.split("=", 1) for item in args.note)}
    Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    plot(runs, args.plot)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
