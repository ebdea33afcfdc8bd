"""Proof on real text: how low a vanilla RNN gets on tinyshakespeare in 10 minutes, and how
long PyTorch's nn.RNN, with the same settings, needs to get there.

    python bench/shakespeare.py                      # 10 minutes of rnncore, then PyTorch
    python bench/shakespeare.py --minutes 1 --out-dir /tmp/quick

Both systems train the same model (same initial weights, copied), on the same windows of the
same streams (the last 10% of the text held out), with the same optimizer, learning rate,
clipping and truncated backprop, so their loss curves agree step for step and only speed
separates them.  The clock counts training only: both stop at the same steps to validate
over the whole held-out text, and that time is reported apart.  PyTorch runs until it reaches
rnncore's best validation loss, or until --torch-cap times rnncore's time to it.

Writes to --out-dir: the checkpoint, the metrics of both runs (JSON Lines), the loss plot
(PNG), a sample, and summary.json / summary.md.
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

import rnncore
from rnncore.checkpoint import save_checkpoint
from rnncore.corpus import load_corpus
from rnncore.metrics import LN2, plot_metrics
from rnncore.train import Trainer, evaluate

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"


def settings_from(args):
    return {"hidden_size": args.hidden_size, "batch_size": args.batch_size,
            "seq_length": args.seq_length, "learning_rate": args.learning_rate,
            "optimizer": "adam", "clip": args.clip, "dtype": args.dtype,
            "lr_schedule": args.lr_schedule, "lr_decay": args.lr_decay,
            "val_fraction": args.val_fraction, "seed": args.seed, "threads": args.threads}


def blas_threads(n):
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=n, user_api="blas")


def train_rnncore(corpus, train_data, val_data, s, budget_s, eval_every, out_dir, log):
    model = rnncore.CharRNN(corpus.vocab, s["hidden_size"], dtype=s["dtype"], seed=s["seed"])
    initial = {k: v.copy() for k, v in model.params.items()}
    trainer = Trainer(model, train_data, seq_length=s["seq_length"], batch_size=s["batch_size"],
                      learning_rate=s["learning_rate"], optimizer="adam", clip=s["clip"],
                      lr_schedule=s["lr_schedule"], lr_decay=s["lr_decay"])
    clock, eval_clock = 0.0, 0.0
    best = {"val_loss": math.inf}
    records = []
    with blas_threads(s["threads"]):
        while clock < budget_s:
            t0 = time.perf_counter()
            losses = trainer.train(eval_every)
            clock += time.perf_counter() - t0
            t0 = time.perf_counter()
            val = evaluate(model, val_data)["nats_per_char"]
            eval_clock += time.perf_counter() - t0
            rec = {"system": "rnncore", "step": trainer.step, "epoch": trainer.epoch,
                   "train_loss": float(np.mean(losses)), "val_loss": val, "elapsed": clock,
                   "lr": trainer.current_lr}
            records.append(rec)
            log(rec)
            if val < best["val_loss"]:
                best = {"val_loss": val, "step": trainer.step, "elapsed": clock,
                        "params": {k: v.copy() for k, v in model.params.items()}}
    best_model = rnncore.CharRNN(corpus.vocab, s["hidden_size"], dtype=s["dtype"])
    best_model.params = best.pop("params")
    save_checkpoint(out_dir / "shakespeare.npz", best_model)
    return initial, best_model, best, records, {"train_s": clock, "eval_s": eval_clock,
                                                "steps": trainer.step, "epochs": trainer.epoch}


def train_torch(corpus, train_data, val_data, s, initial, target, cap_s, eval_every, log):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(s["threads"])
    dt = {"float32": torch.float32, "float64": torch.float64}[s["dtype"]]
    V, H = len(corpus.vocab), s["hidden_size"]
    rnn = torch.nn.RNN(V, H, nonlinearity="tanh", batch_first=True, dtype=dt)
    head = torch.nn.Linear(H, V, dtype=dt)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(initial["Wxh"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(initial["Whh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(initial["bh"]))
        rnn.bias_hh_l0.zero_()
        head.weight.copy_(torch.from_numpy(initial["Why"]))
        head.bias.copy_(torch.from_numpy(initial["by"]))
    rnn.bias_hh_l0.requires_grad_(False)   # one hidden bias, as in the vanilla cell
    weights = [p for p in list(rnn.parameters()) + list(head.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(weights, lr=s["learning_rate"], betas=(0.9, 0.999), eps=1e-8)
    # the same windows as rnncore's Trainer: reuse its pointer logic on a throwaway model
    shadow = Trainer(rnncore.CharRNN(corpus.vocab, 1), train_data, seq_length=s["seq_length"],
                     batch_size=s["batch_size"], learning_rate=s["learning_rate"],
                     optimizer="sgd", lr_schedule=s["lr_schedule"], lr_decay=s["lr_decay"])
    h = torch.zeros(1, s["batch_size"], H, dtype=dt)
    val_x = torch.from_numpy(np.asarray(val_data[:-1], np.int64))
    val_y = torch.from_numpy(np.asarray(val_data[1:], np.int64))

    def validate():
        with torch.no_grad():
            hv, total = torch.zeros(1, 1, H, dtype=dt), 0.0
            for start in range(0, len(val_x), 1024):
                x = val_x[start:start + 1024][None]
                out, hv = rnn(F.one_hot(x, V).to(dt), hv)
                total += F.cross_entropy(head(out[0]), val_y[start:start + 1024],
                                         reduction="sum").item()
            return total / len(val_x)

    clock, eval_clock, step, records, reached = 0.0, 0.0, 0, [], None
    while clock < cap_s and reached is None:
        t0 = time.perf_counter()
        losses = []
        for _ in range(eval_every):
            inputs, targets = shadow.next_window()
            for g in opt.param_groups:
                g["lr"] = shadow.current_lr
            x = torch.from_numpy(np.asarray(inputs, np.int64))
            y = torch.from_numpy(np.asarray(targets, np.int64)).reshape(-1)
            opt.zero_grad(set_to_none=True)
            out, h_last = rnn(F.one_hot(x, V).to(dt), h)
            loss = F.cross_entropy(head(out).reshape(-1, V), y)
            (loss * x.shape[1]).backward()        # Σ_t mean_b, as rnncore
            torch.nn.utils.clip_grad_value_(weights, s["clip"])
            opt.step()
            losses.append(loss.item())
            # the shadow keeps the pointer, epoch and wrap; torch keeps the real state
            shadow.advance(x.shape[1], shadow.hidden)
            h = h_last.detach() if shadow.pointer else torch.zeros_like(h)
        step += eval_every
        clock += time.perf_counter() - t0
        t0 = time.perf_counter()
        val = validate()
        eval_clock += time.perf_counter() - t0
        rec = {"system": "torch", "step": step, "epoch": shadow.epoch,
               "train_loss": float(np.mean(losses)), "val_loss": val, "elapsed": clock}
        records.append(rec)
        log(rec)
        if val <= target:
            reached = clock
    return records, {"train_s": clock, "eval_s": eval_clock, "steps": step,
                     "reached_target_s": reached}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--minutes", type=float, default=10.0, help="rnncore's training budget")
    ap.add_argument("--hidden-size", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-length", type=int, default=50)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--lr-schedule", default="step", choices=["constant", "step"])
    ap.add_argument("--lr-decay", type=float, default=0.95)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torch-cap", type=float, default=3.0,
                    help="stop PyTorch at this multiple of rnncore's time to its best")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out-dir", default="shakespeare-run")
    args = ap.parse_args()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    s = settings_from(args)
    metrics = open(out_dir / "metrics.jsonl", "w")

    def log(rec):
        metrics.write(json.dumps(rec) + "\n")
        metrics.flush()
        print(f"{rec['system']:8s} step {rec['step']:6d}  {rec['elapsed']:7.1f} s  train "
              f"{rec['train_loss']:.4f}  val {rec['val_loss']:.4f} nats "
              f"({rec['val_loss'] / LN2:.4f} bits)", file=sys.stderr, flush=True)

    corpus = load_corpus(args.corpus)
    train_data, val_data = corpus.split(args.val_fraction)
    initial, best_model, best, rn_records, rn_time = train_rnncore(
        corpus, train_data, val_data, s, args.minutes * 60, args.eval_every, out_dir, log)
    sample = best_model.sample(600, prime="ROMEO:\n", temperature=0.8, seed=1)
    (out_dir / "sample.txt").write_text("ROMEO:\n" + sample + "\n", encoding="utf-8")
    summary = {"settings": s, "corpus": args.corpus, "chars": len(corpus),
               "train_chars": len(train_data), "val_chars": len(val_data),
               "rnncore": {**rn_time, "best_val_nats": best["val_loss"],
                           "best_val_bits": best["val_loss"] / LN2,
                           "best_step": best["step"], "best_at_s": best["elapsed"]}}
    records = rn_records
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed: skipping its run", file=sys.stderr)
        else:
            cap = args.torch_cap * best["elapsed"]
            torch_records, torch_time = train_torch(corpus, train_data, val_data, s, initial,
                                                    best["val_loss"], cap, args.eval_every, log)
            records = rn_records + torch_records
            summary["torch"] = {**torch_time, "target_val_nats": best["val_loss"],
                                "cap_s": cap, "torch_version": torch.__version__}
            if torch_time["reached_target_s"] is not None:
                summary["torch_over_rnncore_time"] = torch_time["reached_target_s"] / best["elapsed"]
            else:
                summary["torch_over_rnncore_time"] = f"> {args.torch_cap:g}"
    metrics.close()
    if "torch" in summary:
        summary["comparison"] = compare(rn_records, torch_records, best["val_loss"])
    plot_metrics([dict(r, train_loss=r["train_loss"]) for r in rn_records],
                 out_dir / "shakespeare.png", title="rnncore, vanilla RNN, tinyshakespeare")
    if len(records) > len(rn_records):
        plot_both(records, out_dir / "rnncore-vs-torch.png")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


def first_time_at_or_below(records, level):
    return next((r["elapsed"] for r in records if r["val_loss"] <= level), None)


def compare(rn_records, torch_records, best):
    """Speed per step, and the time each system first validates at or below a few levels
    near rnncore's best: the best itself is one noisy evaluation, the levels above it are
    what both curves cross reliably."""
    rn_step = rn_records[-1]["elapsed"] / rn_records[-1]["step"]
    th_step = torch_records[-1]["elapsed"] / torch_records[-1]["step"]
    levels = {}
    for margin in (0.0, 0.01, 0.02, 0.05, 0.1):
        level = best + margin
        a, b = first_time_at_or_below(rn_records, level), first_time_at_or_below(torch_records, level)
        levels[f"{level:.4f}"] = {"rnncore_s": a, "torch_s": b,
                                  "ratio": (b / a) if a and b else None}
    return {"seconds_per_step": {"rnncore": rn_step, "torch": th_step},
            "torch_over_rnncore_per_step": th_step / rn_step, "time_to_level": levels}


def plot_both(records, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for system, color in (("rnncore", "tab:blue"), ("torch", "tab:red")):
        rs = [r for r in records if r["system"] == system]
        ax.plot([r["elapsed"] for r in rs], [r["val_loss"] / LN2 for r in rs], "o-",
                markersize=2, color=color, label=f"{system} validation")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("validation loss (bits/char)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
