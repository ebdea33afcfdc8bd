"""Generation latency of one stream: greedy completion, beam search and sampling, against
another install of rnncore (the previous release) side by side.

    python bench/generation.py --baseline-python /path/to/old-venv/bin/python \\
        --json docs/generation.json --markdown docs/generation.md

Each measurement runs in a fresh worker process of this script: rnncore (this install,
default threads) and the baseline (its interpreter, one BLAS thread) take turns, --repeats
times, and the table gives medians and the ratio.  Models: a 2-layer GRU of 256 units
(the case the release's aim names) and the vanilla cell at 256 and 512 units, from their
seeded starts, float32 and float64; workload: complete(prime, 1) (feeding the prime of 180
characters is most of it), complete(prime, 200), beam_search(prime, 30, beam=8),
sample(4000).
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

PRIME = "The quick brown fox jumps over the lazy dog. " * 4
MODELS = [("gru", 2, 256), ("rnn", 1, 256), ("rnn", 1, 512)]
DTYPES = ["float32", "float64"]


def worker():
    """One measurement of every model and workload, as JSON on stdout."""
    import numpy as np
    import rnncore
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(limits=1, user_api="blas")   # the old kernels' BLAS
    except ImportError:
        limit = None
    vocab = rnncore.Vocab(sorted(set(PRIME) | set("abcdefghijklmnopqrstuvwxyz.,;:!?'\n")))
    result = {"threads": rnncore.get_num_threads() if hasattr(rnncore, "get_num_threads")
              else "1 (BLAS)"}
    for cell, layers, H in MODELS:
        for dtype in DTYPES:
            model = rnncore.CharRNN(vocab, H, dtype=dtype, cell=cell, num_layers=layers,
                                    seed=0)
            rng = np.random.default_rng(0)
            for p in model.params.values():     # weights of a trained model's scale
                p[...] = rng.standard_normal(p.shape) * (1.5 / np.sqrt(H))
            model.complete(PRIME, 10)
            key = f"{cell} {layers}x{H} {dtype}"
            runs = {}
            for name, call, reps in (
                    ("prime 180 + 1 (ms)", lambda: model.complete(PRIME, 1), 5),
                    ("complete 200 (ms)", lambda: model.complete(PRIME, 200), 5),
                    ("beam 8 × 30 (ms)", lambda: model.beam_search(PRIME, 30, beam=8), 3),
                    ("sample (chars/s)", lambda: model.sample(4000, seed=1), 1)):
                times = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - t0)
                best = min(times)
                runs[name] = 4000 / best if name.startswith("sample") else best * 1e3
            result[key] = runs
    if limit is not None:
        limit.restore_original_limits()
    print(json.dumps(result))


def run_worker(python):
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--worker"],
                          capture_output=True, text=True, cwd="/")
    if proc.returncode != 0:
        raise SystemExit(f"{python}: the worker failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown(result):
    import numpy as np
    lines = [f"CPU: {result['cpu']}; this install: {result['threads']} thread(s), "
             f"micro-kernel {result['micro_kernel']}; baseline: one BLAS thread", "",
             "| model | workload | this install | baseline | × baseline |",
             "|---|---|---|---|---|"]
    for key in result["median"]["this"]:
        for name, value in result["median"]["this"][key].items():
            base = result["median"]["baseline"].get(key, {}).get(name)
            if base is None:
                continue
            better = value / base if name.startswith("sample") else base / value
            lines.append(f"| {key} | {name} | {value:,.1f} | {base:,.1f} | {better:.2f}× |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline-python", required="--worker" not in sys.argv,
                    help="the interpreter of the install to compare with")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker()
    import numpy as np
    from blas_report import cpu_model, write_outputs   # bench/ is this script's folder
    import rnncore
    from rnncore import _cells
    runs = {"this": [], "baseline": []}
    for _ in range(args.repeats):               # interleaved
        runs["this"].append(run_worker(sys.executable))
        runs["baseline"].append(run_worker(args.baseline_python))
    median = {}
    for system, results in runs.items():
        median[system] = {key: {name: float(np.median([r[key][name] for r in results]))
                                for name in results[0][key]}
                          for key in results[0] if key != "threads"}
    result = {"command": "python bench/generation.py --baseline-python BASELINE "
              f"--repeats {args.repeats}", "cpu": cpu_model(),
              "threads": runs["this"][0]["threads"], "micro_kernel": _cells.MICROKERNEL,
              "prime_chars": len(PRIME), "statistic": f"median of {args.repeats} "
              "interleaved worker runs, each the best of its calls", "median": median,
              "runs": runs, "rnncore": rnncore.__version__}
    table = markdown(result)
    write_outputs(args, result, table)


if __name__ == "__main__":
    main()
