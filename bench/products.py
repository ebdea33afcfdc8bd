"""rnncore's micro-kernel against BLAS on the products a training window computes, one
thread each, side by side.

    python bench/products.py --json docs/products.json --markdown docs/products.md

Each product C = A · B of a window's shapes (float32 LSTM 1×512 and GRU, B = 32, T = 25,
V = 65; float64 LSTM 2×128 at B = 1) runs through rnncore's micro-kernel (B packed into
panels, as the kernels pack their weights; `rnncore._cells.matmul`) and through scipy's
BLAS gemm (its own packing), interleaved, medians of --repeats.  The kernels call no BLAS:
this says what that costs or saves on each product.
"""
import argparse
import json
import sys

import numpy as np
from threadpoolctl import threadpool_limits

from blas_report import cpu_model, scipy_blas, seconds_per_call, write_outputs   # bench/ is this script's folder
from rnncore import _cells

# (what, M, N, K, dtype): C (M, N) = A (M, K) · B (K, N)
SHAPES = [
    ("LSTM step, forward: h · Whhᵀ", 32, 2048, 512, "float32"),
    ("LSTM step, backward: da · Whh", 32, 512, 2048, "float32"),
    ("LSTM dWhh = daᵀ · h (the window)", 2048, 512, 800, "float32"),
    ("GRU step, forward", 32, 1536, 512, "float32"),
    ("decoder: Y · Whyᵀ (the window)", 800, 65, 512, "float32"),
    ("dWhy = dyᵀ · Y", 65, 512, 800, "float32"),
    ("dH = dy · Why", 800, 512, 65, "float32"),
    ("input projection, layer 2: Y · Wxhᵀ", 800, 2048, 512, "float32"),
    ("LSTM 2×128 step at B=1, float64", 1, 512, 128, "float64"),
    ("LSTM 2×128 dWhh at B=1, float64", 512, 128, 25, "float64"),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--budget", type=float, default=0.2, help="seconds per timed repeat")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    from scipy.linalg import blas
    rng = np.random.default_rng(0)
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        for what, M, N, K, dtype in SHAPES:
            a = rng.standard_normal((M, K)).astype(dtype)
            b = rng.standard_normal((K, N)).astype(dtype)
            gemm = blas.sgemm if dtype == "float32" else blas.dgemm
            a_f, b_f = np.asfortranarray(a), np.asfortranarray(b)
            ours = lambda: _cells.matmul(a, b)
            theirs = lambda: gemm(1.0, a_f, b_f)
            assert np.allclose(ours(), theirs(), rtol=1e-3, atol=1e-3 * np.sqrt(K))
            times = {"rnncore": [], "BLAS": []}
            for _ in range(args.repeats):
                times["rnncore"].append(seconds_per_call(ours, args.budget))
                times["BLAS"].append(seconds_per_call(theirs, args.budget))
            med = {k: float(np.median(v)) for k, v in times.items()}
            flops = 2.0 * M * N * K
            rows.append({"product": what, "M": M, "N": N, "K": K, "dtype": dtype,
                         "us": {k: v * 1e6 for k, v in med.items()},
                         "gflops": {k: flops / v / 1e9 for k, v in med.items()},
                         "rnncore_vs_blas": med["BLAS"] / med["rnncore"]})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {"command": "python bench/products.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "cpu": cpu_model(),
        "micro_kernel": _cells.MICROKERNEL, "blas": scipy_blas(), "threads": 1,
        "fma_peak_gflops": {dt: _cells.fma_peak(1, dt) for dt in ("float32", "float64")},
        "statistic": f"median of {args.repeats} interleaved repeats", "rows": rows}
    lines = [f"CPU: {result['cpu']}; micro-kernel: {result['micro_kernel']}; BLAS: "
             + ", ".join(f"{b['file']} ({b['architecture']})" for b in result["blas"])
             + "; one thread; FMA peak " + ", ".join(
                 f"{k} {v:.0f}" for k, v in result["fma_peak_gflops"].items()) + " GFLOP/s",
             "", "| product | M × N × K | dtype | rnncore µs (GFLOP/s) | BLAS µs (GFLOP/s) | "
             "× BLAS |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['product']} | {r['M']} × {r['N']} × {r['K']} | {r['dtype']} | "
                     f"{r['us']['rnncore']:,.0f} ({r['gflops']['rnncore']:.0f}) | "
                     f"{r['us']['BLAS']:,.0f} ({r['gflops']['BLAS']:.0f}) | "
                     f"{r['rnncore_vs_blas']:.2f}× |")
    table = "\n".join(lines)
    write_outputs(args, result, table)


if __name__ == "__main__":
    main()
