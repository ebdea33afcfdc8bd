"""The evidence for `auto` (rnncore.engines): one training window on each product engine,
interleaved, over stream counts, sizes, cells and both dtypes.

    python bench/engines.py --json docs/engines.json --markdown docs/engines.md

For every row the same model runs its window (forward, backward, clipping; V=65, T=25)
with every product on rnncore's micro-kernel ("own") and with every product on scipy's
BLAS through cython_blas ("blas"), in turns, medians of --repeats, on --threads threads.
The engines differ most where a window does least per product: one stream, where a BLAS
call is a matrix-vector product and the micro-kernel's packing of the weights (once per
window) is a larger share.  rnncore.engines.AUTO is read off these rows.
"""
import argparse
import sys
import time

import numpy as np

import rnncore
from blas_report import cpu_model, write_outputs   # bench/ is this script's folder
from rnncore import _cells, engines

STREAMS = (1, 2, 4, 8, 32)


def window_for(cell, layers, H, B, dtype, engine, T=25, V=65):
    vocab = rnncore.Vocab([chr(0x100 + i) for i in range(V)])
    model = rnncore.CharRNN(vocab, H, cell=cell, num_layers=layers, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    out = model.zeros_like_params()

    def window():
        engines.set_gemm_engine(engine)
        model.loss_and_grads(x, y, clip=5.0, out=out)
    return window


def seconds(fn, budget):
    fn()                                    # its caches, after the other engine's turn
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--budget", type=float, default=0.1, help="seconds per timed turn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    rnncore.set_num_threads(args.threads)
    configs = [("lstm", 2, 128, B, "float64") for B in STREAMS] + \
              [("gru", 2, 128, B, "float64") for B in STREAMS] + \
              [("rnn", 1, 256, B, "float64") for B in STREAMS] + \
              [("lstm", 1, 512, B, "float32") for B in STREAMS] + \
              [("gru", 1, 256, B, "float32") for B in STREAMS]
    rows = []
    for cell, layers, H, B, dtype in configs:
        fns = {e: window_for(cell, layers, H, B, dtype, e) for e in engines.ENGINES}
        times = {e: [] for e in fns}
        for _ in range(args.repeats):
            for e, fn in fns.items():
                times[e].append(seconds(fn, args.budget))
        med = {e: float(np.median(t)) for e, t in times.items()}
        rows.append({"cell": cell, "layers": layers, "H": H, "B": B, "dtype": dtype,
                     "us": {e: v * 1e6 for e, v in med.items()},
                     "own_vs_blas": med["blas"] / med["own"]})
        print(rows[-1], file=sys.stderr, flush=True)
    engines.set_gemm_engine("auto")
    result = {"command": "python bench/engines.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "cpu": cpu_model(),
        "micro_kernel": _cells.MICROKERNEL, "cython_blas": _cells.BLAS_LIBRARY,
        "threads": args.threads, "statistic": f"median of {args.repeats} interleaved repeats",
        "rows": rows}
    lines = [f"CPU: {result['cpu']}; micro-kernel: {result['micro_kernel']}; BLAS engine: "
             f"{result['cython_blas']}; {args.threads} threads; {result['statistic']}", "",
             "| window | streams | dtype | own µs | blas µs | own × blas |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cell']} {r['layers']}×{r['H']} | {r['B']} | {r['dtype']} | "
                     f"{r['us']['own']:,.0f} | {r['us']['blas']:,.0f} | "
                     f"{r['own_vs_blas']:.2f}× |")
    write_outputs(args, result, "\n".join(lines))


if __name__ == "__main__":
    main()
