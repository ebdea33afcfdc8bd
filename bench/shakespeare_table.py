"""The README's one table of the tinyshakespeare proofs, and their loss curves in one plot.

    python bench/shakespeare_table.py docs/shakespeare-summary.json \
        docs/shakespeare-lstm-summary.json docs/shakespeare-gru-summary.json \
        --plot docs/shakespeare-cells.png

Each argument is a summary.json written by bench/shakespeare.py.  Where a metrics file sits
beside it (X-summary.json -> X-metrics.jsonl, or summary.json -> metrics.jsonl), its
validation curves (rnncore's and PyTorch's) go into the plot.  Prints the Markdown table.
"""
import argparse
import json
from pathlib import Path

from rnncore.metrics import LN2


def metrics_beside(summary_path):
    p = Path(summary_path)
    name = p.name.replace("summary.json", "metrics.jsonl")
    candidate = p.with_name(name)
    return candidate if candidate.exists() else None


def model_name(s):
    cell = {"rnn": "vanilla", "lstm": "LSTM", "gru": "GRU"}[s.get("cell", "rnn")]
    dropout = f", dropout {s['dropout']:g}" if s.get("dropout") else ""
    return f"{cell} {s.get('num_layers', 1)}×{s['hidden_size']}{dropout}"


def settings_text(s):
    return (f"{s['batch_size']} streams × {s['seq_length']}, Adam {s['learning_rate']:g} "
            f"×{s['lr_decay']:g}/epoch, {s['dtype']}")


def torch_text(summary):
    rn, th = summary["rnncore"], summary["torch"]
    if th.get("reached_target_s") is not None:
        return (f"{th['reached_target_s']:.0f} s "
                f"(**{th['reached_target_s'] / rn['best_at_s']:.2f}×**)")
    return (f"not within {th['cap_s']:.0f} s "
            f"(> {th['cap_s'] / rn['best_at_s']:.2f}×)")


def per_step_text(summary):
    c = summary["comparison"]["seconds_per_step"]
    return f"{c['rnncore'] * 1e3:.1f} / {c['torch'] * 1e3:.1f} ms"


def near_best_text(summary):
    """rnncore's and PyTorch's time to best + 0.01 nats, a level both runs reach."""
    key = f"{summary['rnncore']['best_val_nats'] + 0.01:.4f}"   # as shakespeare.py keys it
    level = summary["comparison"]["time_to_level"][key]
    if level["torch_s"] is None:
        return f"≤ {key}: {level['rnncore_s']:.0f} s / not reached"
    return (f"≤ {key}: {level['rnncore_s']:.0f} / {level['torch_s']:.0f} s "
            f"({level['ratio']:.2f}×)")


def table(summaries):
    lines = ["| model (settings) | best validation | at | PyTorch to the same loss | "
             "rnncore / PyTorch to best + 0.01 | ms per step, rnncore / PyTorch |",
             "|---|---|---|---|---|---|"]
    for summary in summaries:
        s, rn = summary["settings"], summary["rnncore"]
        lines.append(
            f"| {model_name(s)} ({settings_text(s)}) | "
            f"{rn['best_val_nats']:.4f} nats = {rn['best_val_nats'] / LN2:.3f} bits | "
            f"{rn['best_at_s']:.0f} s, step {rn['best_step']:,} | {torch_text(summary)} | "
            f"{near_best_text(summary)} | {per_step_text(summary)} |")
    return "\n".join(lines)


def plot(summaries, metrics_paths, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for summary, metrics in zip(summaries, metrics_paths):
        if metrics is None:
            continue
        records = [json.loads(line) for line in open(metrics)]
        name = model_name(summary["settings"])
        for system, style in (("rnncore", "-"), ("torch", ":")):
            pts = [(r["elapsed"], r["val_loss"] / LN2) for r in records
                   if r["system"] == system and r.get("val_loss") is not None]
            if pts:
                label = f"{name}, {'rnncore' if system == 'rnncore' else 'PyTorch'}"
                line = ax.plot(*zip(*pts), style, label=label)
                if system == "rnncore":
                    color = line[0].get_color()
                else:
                    line[0].set_color(color)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("validation loss (bits/char)")
    low = min(min(line.get_ydata()) for line in ax.get_lines())
    ax.set_ylim(low - 0.03, low + 0.7)    # the late part, where the runs differ
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("tinyshakespeare, last 10% held out, 2 cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summaries", nargs="+", help="summary.json files of bench/shakespeare.py")
    ap.add_argument("--plot", help="write the validation curves here (PNG)")
    args = ap.parse_args()
    summaries = [json.load(open(p)) for p in args.summaries]
    print(table(summaries))
    if args.plot:
        plot(summaries, [metrics_beside(p) for p in args.summaries], args.plot)


if __name__ == "__main__":
    main()
