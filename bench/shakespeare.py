"""Proof on real text: how low a model gets on tinyshakespeare in 10 minutes, and how long
PyTorch (nn.RNN / nn.LSTM / nn.GRU), with the same settings, needs to get there.

    python bench/shakespeare.py                      # 10 minutes of rnncore, then PyTorch
    python bench/shakespeare.py --cell lstm --num-layers 2 --dropout 0.2 --hidden-size 256
    python bench/shakespeare.py --minutes 1 --out-dir /tmp/quick
    python bench/shakespeare.py --cell lstm ... --dropout-mode locked --weight-drop 0.25 \
        --weight-decay 0.1 --average 0.999 --average-start 1000
    python bench/shakespeare.py --steps 2000 --lr-schedule cosine --lr-floor 0.1 \
        --warmup-steps 100        # a schedule over 2,000 steps, the same rate in both

Both systems train the same model (same initial weights, copied), on the same windows of the
same streams (the last 10% of the text held out), with the same optimizer, learning rate,
clipping, truncated backprop, dropout masks (step or locked) and recurrent weights' masks
(PyTorch runs one single-layer module per layer so that rnncore's masks, drawn from the same
generator, drop the same units; its recurrent weights are the raw ones times rnncore's
weight-drop mask, through autograd; its redundant bias_hh entries are frozen at zero), the
same decoupled weight decay (torch.optim.AdamW, the weight matrices only) and the same
averaged weights (validated in place of the latest), so their loss curves agree step for
step and only speed separates them.  The clock counts training only: both stop at the same steps to validate
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
    return {"cell": args.cell, "num_layers": args.num_layers, "dropout": args.dropout,
            "dropout_mode": args.dropout_mode, "weight_drop": args.weight_drop,
            "weight_decay": args.weight_decay, "average": args.average,
            "average_start": args.average_start,
            "hidden_size": args.hidden_size, "batch_size": args.batch_size,
            "seq_length": args.seq_length, "learning_rate": args.learning_rate,
            "optimizer": "adam", "clip": args.clip, "dtype": args.dtype,
            "lr_schedule": args.lr_schedule, "lr_decay": args.lr_decay,
            "lr_floor": args.lr_floor, "warmup_steps": args.warmup_steps,
            "total_steps": args.steps,
            "val_fraction": args.val_fraction, "seed": args.seed, "threads": args.threads}


def team_threads(n):
    """rnncore's thread team of n threads for the block (its kernels call no BLAS)."""
    return rnncore.threads.num_threads(n)


def make_model(vocab, s, seed=None):
    return rnncore.CharRNN(vocab, s["hidden_size"], dtype=s["dtype"], seed=seed,
                           cell=s["cell"], num_layers=s["num_layers"], dropout=s["dropout"],
                           dropout_mode=s["dropout_mode"], weight_drop=s["weight_drop"])


def make_trainer(model, train_data, s, optimizer="adam"):
    return Trainer(model, train_data, seq_length=s["seq_length"], batch_size=s["batch_size"],
                   learning_rate=s["learning_rate"], optimizer=optimizer, clip=s["clip"],
                   lr_schedule=s["lr_schedule"], lr_decay=s["lr_decay"], seed=s["seed"],
                   lr_floor=s["lr_floor"], warmup_steps=s["warmup_steps"],
                   total_steps=s["total_steps"], weight_decay=s["weight_decay"],
                   average=s["average"], average_start=s["average_start"])


def train_rnncore(corpus, train_data, val_data, s, budget_s, eval_every, out_dir, log):
    """rnncore for budget_s seconds of training, or (s["total_steps"]) that many steps."""
    model = make_model(corpus.vocab, s, seed=s["seed"])
    initial = {k: v.copy() for k, v in model.params.items()}
    trainer = make_trainer(model, train_data, s)
    clock, eval_clock = 0.0, 0.0
    best = {"val_loss": math.inf}
    records = []
    with team_threads(s["threads"]):
        while (trainer.step < s["total_steps"] if s["total_steps"] else clock < budget_s):
            t0 = time.perf_counter()
            losses = trainer.train(min(eval_every, (s["total_steps"] or 10**12)
                                       - trainer.step))
            clock += time.perf_counter() - t0
            t0 = time.perf_counter()
            scored = trainer.evaluation_model()      # the averaged weights, once started
            val = evaluate(scored, val_data)["nats_per_char"]
            eval_clock += time.perf_counter() - t0
            rec = {"system": "rnncore", "step": trainer.step, "epoch": trainer.epoch,
                   "train_loss": float(np.mean(losses)), "val_loss": val, "elapsed": clock,
                   "lr": trainer.current_lr}
            records.append(rec)
            log(rec)
            if val < best["val_loss"]:
                best = {"val_loss": val, "step": trainer.step, "elapsed": clock,
                        "params": {k: v.copy() for k, v in scored.params.items()}}
    best_model = make_model(corpus.vocab, s)
    best_model.params = best.pop("params")
    save_checkpoint(out_dir / "shakespeare.npz", best_model)
    return initial, best_model, best, records, {"train_s": clock, "eval_s": eval_clock,
                                                "steps": trainer.step, "epochs": trainer.epoch}


class TorchStack:
    """rnncore's model in PyTorch: one single-layer nn.RNN/LSTM/GRU per layer (so that a
    dropout mask can be applied to every layer's output, the last one included, as
    rnncore does) and an nn.Linear decoder, starting from rnncore's parameters."""

    def __init__(self, torch, model, initial):
        from rnncore.export import torch_tensors
        self.torch, self.cell, self.L, self.H = torch, model.cell, model.num_layers, model.hidden_size
        dt = {"float32": torch.float32, "float64": torch.float64}[model.dtype.name]
        start = rnncore.CharRNN(model.vocab, model.hidden_size, dtype=model.dtype,
                                cell=model.cell, num_layers=model.num_layers)
        start.params = {k: v.copy() for k, v in initial.items()}
        tensors = {k: torch.from_numpy(v.copy()) for k, v in torch_tensors(start).items()}
        module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[self.cell]
        V, H = model.n_vocab, model.hidden_size
        self.layers = []
        for k in range(self.L):
            layer = module(V if k == 0 else H, H, batch_first=True, dtype=dt)
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(layer, name + "_l0").copy_(tensors[f"rnn.{name}_l{k}"])
            if self.cell == "gru":   # only the n block of bias_hh exists in rnncore
                layer.bias_hh_l0.register_hook(lambda g: torch.cat([g[:2 * H] * 0, g[2 * H:]]))
            else:                    # redundant beside bias_ih: frozen at zero
                layer.bias_hh_l0.requires_grad_(False)
            self.layers.append(layer)
        self.head = torch.nn.Linear(H, V, dtype=dt)
        with torch.no_grad():
            self.head.weight.copy_(tensors["decoder.weight"])
            self.head.bias.copy_(tensors["decoder.bias"])
        self.dtype, self.V = dt, V

    def parameters(self):
        params = [p for layer in self.layers for p in layer.parameters()]
        return [p for p in params + list(self.head.parameters()) if p.requires_grad]

    def zero_state(self, B):
        zeros = lambda: self.torch.zeros(1, B, self.H, dtype=self.dtype)
        return [(zeros(), zeros()) if self.cell == "lstm" else zeros() for _ in range(self.L)]

    def __call__(self, x, state, masks=None, weight_masks=None):
        """Logits (B, T, V) for index windows x (B, T), and the new state; masks: rnncore's
        (L, T, B, H) dropout masks, or None; weight_masks: rnncore's {"Whh"...: (G·H, H)}
        masks of the recurrent weights, or None (the layer then runs on weight_hh ⊙ M,
        autograd taking the gradient back to the raw weight)."""
        out = self.torch.nn.functional.one_hot(x, self.V).to(self.dtype)
        new_state = []
        for k, layer in enumerate(self.layers):
            if weight_masks is None:
                out, s = layer(out, state[k])
            else:
                mask = self.torch.from_numpy(weight_masks["Whh" + ("" if k == 0 else f"_l{k}")])
                weights = dict(layer.named_parameters())
                weights["weight_hh_l0"] = weights["weight_hh_l0"] * mask
                out, s = self.torch.func.functional_call(layer, weights, (out, state[k]))
            if masks is not None:
                out = out * self.torch.from_numpy(masks[k]).transpose(0, 1)
            new_state.append(s)
        return self.head(out), new_state


def detached(state):
    return [tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach()
            for s in state]


def twin_window(net, opt, weights, shadow, masks_of, h, inputs, targets, s):
    """One training window of the PyTorch twin (`weights`: net.parameters(), which `opt`
    updates) on the shadow Trainer's window (inputs, targets: (B, T) ids), with rnncore's
    dropout masks (drawn by `masks_of` from the
    shadow's generator), loss and clipping; -> (loss in nats/char, the state to carry)."""
    import torch
    import torch.nn.functional as F
    masks = weight_masks = None
    if s["dropout"] > 0:             # drawn as rnncore's Trainer draws them, in its order
        masks = np.ascontiguousarray(masks_of.dropout_masks(shadow.dropout_rng, *inputs.shape))
    if s.get("weight_drop", 0) > 0:
        weight_masks = masks_of.weight_drop_masks(shadow.dropout_rng)
    x = torch.from_numpy(np.asarray(inputs, np.int64))
    y = torch.from_numpy(np.asarray(targets, np.int64)).reshape(-1)
    opt.zero_grad(set_to_none=True)
    logits, h_last = net(x, h, masks, weight_masks)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y)
    (loss * x.shape[1]).backward()        # Σ_t mean_b, as rnncore
    torch.nn.utils.clip_grad_value_(weights, s["clip"])
    opt.step()
    # the shadow keeps the pointer, epoch and wrap; torch keeps the real state
    shadow.advance(x.shape[1], shadow.hidden)
    return loss.item(), detached(h_last) if shadow.pointer else net.zero_state(s["batch_size"])


def torch_optimizer(torch, net, s):
    """Adam, or with weight decay AdamW decaying the weight matrices only, as rnncore's
    optimizers do (rnncore.optim.decays): not the biases."""
    matrices = [p for layer in net.layers for name, p in layer.named_parameters()
                if name.startswith("weight") and p.requires_grad] + [net.head.weight]
    others = [p for p in net.parameters() if all(p is not m for m in matrices)]
    return torch.optim.AdamW([{"params": matrices, "weight_decay": s["weight_decay"]},
                              {"params": others, "weight_decay": 0.0}],
                             lr=s["learning_rate"], betas=(0.9, 0.999), eps=1e-8)


class TorchAverage:
    """rnncore's averaged weights (rnncore.optim.WeightAverage) for the twin: from step
    average_start on, avg ← avg + (1 - decay)·(param - avg) (torch.lerp, as swa_utils'
    EMA does); validation runs on them."""

    def __init__(self, torch, weights, s):
        self.torch, self.weights = torch, weights
        self.decay, self.start = s.get("average"), s.get("average_start", 0)
        self.arrays = None

    def update(self, step):
        if self.decay is None or step < self.start:
            return
        with self.torch.no_grad():
            if self.arrays is None:
                self.arrays = [w.detach().clone() for w in self.weights]
                return
            for a, w in zip(self.arrays, self.weights):
                a.lerp_(w, 1 - self.decay)

    def swapped_in(self):
        """A block in which the weights hold the average (the latest ones come back)."""
        import contextlib

        @contextlib.contextmanager
        def swap():
            if self.arrays is None:
                yield
                return
            latest = [w.detach().clone() for w in self.weights]
            with self.torch.no_grad():
                for w, a in zip(self.weights, self.arrays):
                    w.copy_(a)
            try:
                yield
            finally:
                with self.torch.no_grad():
                    for w, v in zip(self.weights, latest):
                        w.copy_(v)
        return swap()


def train_torch(corpus, train_data, val_data, s, initial, target, cap_s, eval_every, log):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(s["threads"])
    masks_of = make_model(corpus.vocab, s)   # draws rnncore's masks for the same windows
    net = TorchStack(torch, masks_of, initial)
    weights = net.parameters()
    opt = torch_optimizer(torch, net, s)
    averaged = TorchAverage(torch, weights, s)
    # the same windows and masks as rnncore's Trainer: its pointer logic and its dropout
    # generator, on a throwaway model
    shadow = make_trainer(rnncore.CharRNN(corpus.vocab, 1), train_data,
                          dict(s, weight_decay=0.0, average=None), optimizer="sgd")
    h = net.zero_state(s["batch_size"])
    val_x = torch.from_numpy(np.asarray(val_data[:-1], np.int64))
    val_y = torch.from_numpy(np.asarray(val_data[1:], np.int64))

    def validate():
        with torch.no_grad(), averaged.swapped_in():
            hv, total = net.zero_state(1), 0.0
            for start in range(0, len(val_x), 1024):
                x = val_x[start:start + 1024][None]
                logits, hv = net(x, hv)
                total += F.cross_entropy(logits[0], val_y[start:start + 1024],
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
            loss, h = twin_window(net, opt, weights, shadow, masks_of, h, inputs, targets, s)
            averaged.update(shadow.step)
            losses.append(loss)
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
    # the defaults are `rnncore train`'s (rnncore.config)
    m, t = rnncore.ModelConfig(), rnncore.TrainConfig()
    ap.add_argument("--cell", default=m.cell, choices=["rnn", "lstm", "gru"])
    ap.add_argument("--num-layers", type=int, default=m.num_layers)
    ap.add_argument("--dropout", type=float, default=m.dropout)
    ap.add_argument("--dropout-mode", default=m.dropout_mode, choices=["step", "locked"])
    ap.add_argument("--weight-drop", type=float, default=m.weight_drop)
    ap.add_argument("--hidden-size", type=int, default=m.hidden_size)
    ap.add_argument("--batch-size", type=int, default=t.batch_size)
    ap.add_argument("--seq-length", type=int, default=t.seq_length)
    ap.add_argument("--learning-rate", type=float, default=t.learning_rate)
    ap.add_argument("--lr-schedule", default=t.lr_schedule, choices=rnncore.config.SCHEDULES,
                    help="cosine and linear span --steps (both systems take the same "
                    "rate at every step)")
    ap.add_argument("--lr-decay", type=float, default=t.lr_decay)
    ap.add_argument("--lr-floor", type=float, default=t.lr_floor)
    ap.add_argument("--warmup-steps", type=int, default=t.warmup_steps)
    ap.add_argument("--steps", type=int, help="rnncore's budget in steps (instead of "
                    "--minutes), and the span of a cosine or linear schedule")
    ap.add_argument("--weight-decay", type=float, default=t.weight_decay)
    ap.add_argument("--average", type=float, default=t.average)
    ap.add_argument("--average-start", type=int, default=t.average_start)
    ap.add_argument("--clip", type=float, default=t.clip)
    ap.add_argument("--dtype", default=m.dtype, choices=["float32", "float64"])
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
    if args.lr_schedule in ("cosine", "linear") and not args.steps:
        raise SystemExit(f"--lr-schedule {args.lr_schedule} here spans --steps: give it")
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
    # records in docs/ name files relative to the repository, never by absolute path
    corpus_name = os.path.relpath(args.corpus, Path(__file__).resolve().parent.parent)
    summary = {"settings": s, "corpus": corpus_name, "chars": len(corpus),
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
                 out_dir / "shakespeare.png",
                 title=f"rnncore, {s['cell']} {s['num_layers']}x{s['hidden_size']}, "
                       "tinyshakespeare")
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
