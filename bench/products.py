"""Every product a training window computes, on both of rnncore's product engines, one
thread each, side by side.

    python bench/products.py --json docs/products.json --markdown docs/products.md

Each product C = A · B of a window's shapes (float32 LSTM, GRU and vanilla 1×512 and LSTM
1×256 at B = 32, T = 25, V = 65; float64 LSTM 2×128 at B = 1) runs as the kernels run it
(`rnncore._cells.product`): on rnncore's micro-kernel ("own": a step's products over panels
packed once, as a window packs its weights once; a window's products in tiles that pack as
they go) and on scipy's BLAS through cython_blas ("blas": one call a tile, as the BLAS
engine makes them), interleaved, medians of --repeats.  rnncore.engines' `auto` table is
read off these rows: the faster engine per kind of product.
"""
import argparse
import json
import sys

import numpy as np

from blas_report import cpu_model, scipy_blas, seconds_per_call, write_outputs   # bench/ is this script's folder
from rnncore import _cells, engines

# (what, kind, M, N, K, dtype): C (M, N) = A (M, K) · B (K, N); kind: a step's recurrent
# product ("forward", "backward") or one over many rows ("wide"), or the logits
SHAPES = [
    ("LSTM 1×512 step, forward: h · Whhᵀ", "forward", 32, 2048, 512, "float32"),
    ("LSTM 1×512 step, backward: da · Whh", "backward", 32, 512, 2048, "float32"),
    ("LSTM 1×512 dWhh = daᵀ · h", "wide", 2048, 512, 800, "float32"),
    ("LSTM 1×256 step, forward", "forward", 32, 1024, 256, "float32"),
    ("LSTM 1×256 dWhh", "wide", 1024, 256, 800, "float32"),
    ("GRU 1×512 step, forward", "forward", 32, 1536, 512, "float32"),
    ("GRU 1×512 step, backward", "backward", 32, 512, 1536, "float32"),
    ("vanilla 1×512 step, forward", "forward", 32, 512, 512, "float32"),
    ("decoder: Y · Whyᵀ", "logits", 800, 65, 512, "float32"),
    ("dWhy = dyᵀ · Y", "wide", 65, 512, 800, "float32"),
    ("dH = dy · Why", "wide", 800, 512, 65, "float32"),
    ("input projection, layer 2: Y · Wxhᵀ", "wide", 800, 2048, 512, "float32"),
    ("LSTM 2×128 step at B=1, forward", "forward", 1, 512, 128, "float64"),
    ("LSTM 2×128 step at B=1, backward", "backward", 1, 128, 512, "float64"),
    ("LSTM 2×128 dWhh at B=1", "wide", 512, 128, 25, "float64"),
    ("LSTM 2×128 projection at B=1", "wide", 25, 512, 128, "float64"),
    ("logits at B=1", "logits", 1, 65, 128, "float64"),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--budget", type=float, default=0.2, help="seconds per timed repeat")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for what, kind, M, N, K, dtype in SHAPES:
        a = rng.standard_normal((M, K)).astype(dtype)
        b = rng.standard_normal((K, N)).astype(dtype)
        step = kind in ("forward", "backward")
        # enough repeats inside one call that Python's overhead is noise
        reps = max(1, int(2e6 / (M * N * K)))
        calls = {engine: (lambda e=engine: _cells.product(a, b, e, step, reps))
                 for engine in engines.ENGINES}
        want = a.astype(np.float64) @ b.astype(np.float64)
        for engine, call in calls.items():
            assert np.allclose(call(), want, rtol=1e-3, atol=1e-3 * np.sqrt(K)), engine
        times = {engine: [] for engine in calls}
        for _ in range(args.repeats):
            for engine, call in calls.items():
                times[engine].append(seconds_per_call(call, args.budget) / reps)
        med = {k: float(np.median(v)) for k, v in times.items()}
        flops = 2.0 * M * N * K
        rows.append({"product": what, "kind": kind, "M": M, "N": N, "K": K, "dtype": dtype,
                     "us": {k: v * 1e6 for k, v in med.items()},
                     "gflops": {k: flops / v / 1e9 for k, v in med.items()},
                     "own_vs_blas": med["blas"] / med["own"]})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {"command": "python bench/products.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "cpu": cpu_model(),
        "micro_kernel": _cells.MICROKERNEL, "blas": scipy_blas(), "cython_blas": _cells.BLAS_LIBRARY,
        "threads": 1, "auto": engines.engines_for(_cells.MICROKERNEL, "auto"),
        "fma_peak_gflops": {dt: _cells.fma_peak(1, dt) for dt in ("float32", "float64")},
        "statistic": f"median of {args.repeats} interleaved repeats", "rows": rows}
    lines = [f"CPU: {result['cpu']}; micro-kernel: {result['micro_kernel']}; BLAS engine: "
             f"{result['cython_blas']}; one thread; FMA peak " + ", ".join(
                 f"{k} {v:.0f}" for k, v in result["fma_peak_gflops"].items()) + " GFLOP/s; "
             "auto: " + ", ".join(f"{k} on {v}" for k, v in result["auto"].items()),
             "", "| product | kind | M × N × K | dtype | own µs (GFLOP/s) | "
             "cython_blas µs (GFLOP/s) | own × blas |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['product']} | {r['kind']} | {r['M']} × {r['N']} × {r['K']} | "
                     f"{r['dtype']} | {r['us']['own']:,.1f} ({r['gflops']['own']:.0f}) | "
                     f"{r['us']['blas']:,.1f} ({r['gflops']['blas']:.0f}) | "
                     f"{r['own_vs_blas']:.2f}× |")
    table = "\n".join(lines)
    write_outputs(args, result, table)


if __name__ == "__main__":
    main()
