"""The default threads on a busy machine: training windows while another process spins
on one core, against one thread, side by side.

    python bench/busy.py --json docs/busy.json --markdown docs/busy.md

A spinner process (a Python busy loop, pinned to the last CPU this process may use) runs
for the whole measurement; rnncore's windows (forward + backward + clip, as bench/run.py
times them) run with the default team (every CPU this process may use) and with one
thread, interleaved, medians of --repeats.  The same rows are then timed without the
spinner.  What a user of a shared machine wants: the default never much slower than one
thread (the spinner takes a core the team counts on; the team's other workers take its
tiles).
"""
import argparse
import json
import multiprocessing
import os
import sys
import time

import numpy as np

import rnncore
from blas_report import cpu_model, seconds_per_call, write_outputs   # bench/ is this script's folder
from rnncore import _cells

ROWS = [("lstm", 1, 512, 32, "float32"), ("gru", 1, 512, 32, "float32"),
        ("rnn", 1, 512, 32, "float32"), ("gru", 1, 256, 32, "float32"),
        ("lstm", 2, 128, 1, "float64"), ("gru", 2, 128, 1, "float64")]


def spin(cpu):
    os.sched_setaffinity(0, {cpu})
    while True:
        pass


def window(cell, layers, H, B, dtype, T=25, V=65):
    vocab = rnncore.Vocab([chr(0x100 + i) for i in range(V)])
    model = rnncore.CharRNN(vocab, H, dtype=dtype, cell=cell, num_layers=layers, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    out = model.zeros_like_params()
    return lambda: model.loss_and_grads(x, y, clip=5.0, out=out)


def time_one(fn, threads, budget):
    rnncore.set_num_threads(threads)
    return seconds_per_call(fn, budget)


def measure(rows, default, repeats, budget):
    result = []
    for cell, layers, H, B, dtype in rows:
        fn = window(cell, layers, H, B, dtype)
        times = {"default": [], "1 thread": []}
        for _ in range(repeats):
            times["default"].append(time_one(fn, default, budget))
            times["1 thread"].append(time_one(fn, 1, budget))
        med = {k: float(np.median(v)) for k, v in times.items()}
        result.append({"cell": cell, "layers": layers, "H": H, "B": B, "dtype": dtype,
                       "us": {k: v * 1e6 for k, v in med.items()},
                       "default_vs_1_thread": med["1 thread"] / med["default"]})
        print(json.dumps(result[-1]), file=sys.stderr, flush=True)
    return result


def markdown(result):
    lines = [f"CPU: {result['cpu']}; micro-kernel: {result['micro_kernel']}; default threads: "
             f"{result['default_threads']}; spinner on CPU {result['spinner_cpu']}", "",
             "| cell | L | H | B | dtype | busy: default µs | busy: 1 thread µs | busy: default "
             "× 1 thread | idle: default µs | idle: 1 thread µs | idle: default × 1 thread |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for busy, idle in zip(result["busy"], result["idle"]):
        lines.append(f"| {busy['cell']} | {busy['layers']} | {busy['H']} | {busy['B']} | "
                     f"{busy['dtype']} | {busy['us']['default']:,.0f} | "
                     f"{busy['us']['1 thread']:,.0f} | {busy['default_vs_1_thread']:.2f}× | "
                     f"{idle['us']['default']:,.0f} | {idle['us']['1 thread']:,.0f} | "
                     f"{idle['default_vs_1_thread']:.2f}× |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--budget", type=float, default=0.5, help="seconds per timed repeat")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (for the tests)")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    rows = [("gru", 1, 16, 4, "float32")] if args.quick else ROWS
    default = rnncore.threads.default_threads()
    cpus = sorted(os.sched_getaffinity(0))
    spinner = multiprocessing.get_context("fork").Process(target=spin, args=(cpus[-1],),
                                                         daemon=True)
    spinner.start()
    try:
        time.sleep(0.5)
        busy = measure(rows, default, args.repeats, args.budget)
    finally:
        spinner.terminate()
        spinner.join()
    idle = measure(rows, default, args.repeats, args.budget)
    result = {"command": "python bench/busy.py " + " ".join(argv if argv is not None
                                                           else sys.argv[1:]),
              "cpu": cpu_model(), "micro_kernel": _cells.MICROKERNEL,
              "default_threads": default, "spinner_cpu": cpus[-1], "T": 25, "V": 65,
              "statistic": f"median of {args.repeats} interleaved repeats",
              "busy": busy, "idle": idle}
    table = markdown(result)
    write_outputs(args, result, table)


if __name__ == "__main__":
    main()
