"""End to end: a 2×128 LSTM and GRU trained for 1,500 Adam steps (32 streams × 50, float32)
on tinyshakespeare by rnncore and by its PyTorch twin, wall time and held-out loss.

    python bench/end_to_end.py --corpus ../shared/data/tinyshakespeare.txt \
        --json docs/end-to-end.json --markdown docs/end-to-end.md

Both systems start from the same weights and train on the same windows (bench/shakespeare.py's
twin: one single-layer module per layer, rnncore's pointer logic, Adam, clipping), so their
losses agree step for step and only speed separates them.  The clock counts the training
steps only; the held-out loss (the last 10% of the text) is measured after the last step,
each system with its own evaluation.  --threads threads each (rnncore's team, torch's
intra-op pool); the systems run one after the other, cell by cell.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

import rnncore
from blas_report import cpu_model, write_outputs   # bench/ is this script's folder
from rnncore import _cells
from rnncore.corpus import load_corpus
from rnncore.train import evaluate
from shakespeare import (DEFAULT_CORPUS, TorchStack, make_model, make_trainer,
                         torch_optimizer, twin_window)


def settings(cell, args):
    return {"cell": cell, "num_layers": 2, "hidden_size": 128, "dtype": "float32",
            "dropout": 0.0, "dropout_mode": "step", "weight_drop": 0.0, "batch_size": 32,
            "seq_length": 50, "learning_rate": 2e-3, "clip": 5.0, "lr_schedule": "constant",
            "lr_decay": 1.0, "lr_floor": 0.0, "warmup_steps": 0, "total_steps": None,
            "weight_decay": 0.0, "average": None, "average_start": 0,
            "seed": 0, "threads": args.threads}


def run_rnncore(corpus, train, val, s, steps):
    model = make_model(corpus.vocab, s, seed=s["seed"])
    initial = {k: v.copy() for k, v in model.params.items()}
    trainer = make_trainer(model, train, s)
    with rnncore.threads.num_threads(s["threads"]):
        trainer.train(1)                          # buffers and the team, off the clock
        t0 = time.perf_counter()
        trainer.train(steps - 1)
        seconds = time.perf_counter() - t0
    return initial, seconds, evaluate(model, val)["nats_per_char"]


def run_torch(corpus, train, val, s, initial, steps):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(s["threads"])
    masks_of = make_model(corpus.vocab, s)
    net = TorchStack(torch, masks_of, initial)
    weights = net.parameters()
    opt = torch_optimizer(torch, net, s)
    shadow = make_trainer(rnncore.CharRNN(corpus.vocab, 1), train, s, optimizer="sgd")
    h = net.zero_state(s["batch_size"])
    seconds = 0.0
    for step in range(steps):
        inputs, targets = shadow.next_window()
        t0 = time.perf_counter()
        _, h = twin_window(net, opt, weights, shadow, masks_of, h, inputs, targets, s)
        if step > 0:                              # as rnncore: the first step off the clock
            seconds += time.perf_counter() - t0
    x = torch.from_numpy(np.asarray(val[:-1], np.int64))
    y = torch.from_numpy(np.asarray(val[1:], np.int64))
    with torch.no_grad():
        hv, total = net.zero_state(1), 0.0
        for start in range(0, len(x), 1024):
            logits, hv = net(x[start:start + 1024][None], hv)
            total += F.cross_entropy(logits[0], y[start:start + 1024], reduction="sum").item()
    return seconds, total / len(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    corpus = load_corpus(args.corpus)
    split = int(len(corpus.data) * 0.9)
    train, val = corpus.data[:split], corpus.data[split:]
    rows = []
    for cell in args.cells:
        s = settings(cell, args)
        initial, rn_s, rn_val = run_rnncore(corpus, train, val, s, args.steps)
        th_s, th_val = run_torch(corpus, train, val, s, initial, args.steps)
        rows.append({"cell": cell, "steps": args.steps, "rnncore_s": rn_s, "torch_s": th_s,
                     "torch_over_rnncore": th_s / rn_s, "rnncore_val": rn_val,
                     "torch_val": th_val})
        print(rows[-1], file=sys.stderr, flush=True)
    import torch
    result = {"command": "python bench/end_to_end.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "cpu": cpu_model(),
        "micro_kernel": _cells.MICROKERNEL, "torch": torch.__version__,
        "corpus": Path(args.corpus).name, "threads": args.threads, "rows": rows}
    lines = [f"CPU: {result['cpu']}; micro-kernel: {result['micro_kernel']}; torch "
             f"{result['torch']}; {args.threads} threads each; {result['corpus']}, the last "
             "10% held out", "",
             "| model | steps | rnncore s | PyTorch s | PyTorch ÷ rnncore | rnncore held-out "
             "nats/char | PyTorch held-out |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cell'].upper()} 2×128 | {r['steps']:,} | {r['rnncore_s']:.1f} | "
                     f"{r['torch_s']:.1f} | {r['torch_over_rnncore']:.2f}× | "
                     f"{r['rnncore_val']:.4f} | {r['torch_val']:.4f} |")
    write_outputs(args, result, "\n".join(lines))


if __name__ == "__main__":
    main()
