"""Peak memory of `rnncore train` on a large generated corpus, against a small one.

    python bench/big_corpus.py --gigabytes 1 --steps 300

Writes a corpus of random words (a few GB of disk for the text and its encoded cache, in
--dir), then runs the real CLI twice on it (the first run scans, encodes and caches it; the
second maps the cache) and once on a 1 MB corpus, and reports each run's wall time and peak
resident memory (ru_maxrss of the child).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def generate(path, n_bytes, seed=0):
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, rng.integers(1, 10))) for _ in range(5000)]
    words += ["ñandú", "año", "über", "café", "—"]
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < n_bytes:
            line = " ".join(rng.choice(words, 200_000)) + ".\n"
            f.write(line)
            written += len(line.encode())
    return os.path.getsize(path)


def measure(args, cwd):
    """Run a child via a tiny wrapper so ru_maxrss is that child's alone.

    The child runs in `cwd`, not here: run from the repository root, `python -m rnncore`
    would import the source folder rnncore/ (whose kernels are not built there) instead of
    the installed package."""
    code = ("import resource, subprocess, sys, json, time;"
            "t=time.perf_counter();"
            "p=subprocess.run(sys.argv[1:], capture_output=True, text=True);"
            "print(json.dumps({'rc': p.returncode, 'seconds': time.perf_counter()-t,"
            "'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024,"
            "'stderr': p.stderr[-2000:], 'stdout': p.stdout[-2000:]}))")
    env = {**os.environ, "PYTHONSAFEPATH": "1"}  # and, from Python 3.11, never the cwd
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         cwd=cwd, env=env)
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result['stderr']}")
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gigabytes", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--dir", default=None, help="where to write the corpus (default: a temp dir)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    folder = os.path.abspath(args.dir) if args.dir else tempfile.mkdtemp(prefix="rnncore-big-")
    os.makedirs(folder, exist_ok=True)
    big = os.path.join(folder, f"big-{args.gigabytes:g}GB.txt")
    small = os.path.join(folder, "small-1MB.txt")
    if not os.path.exists(big):
        t0 = time.perf_counter()
        generate(big, int(args.gigabytes * 1e9))
        print(f"generated {big}: {os.path.getsize(big) / 1e9:.2f} GB in "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if not os.path.exists(small):
        generate(small, int(1e6), seed=1)
    rnncore = [sys.executable, "-m", "rnncore", "train"]
    common = ["--steps", str(args.steps), "--cell", "rnn", "--num-layers", "1", "--dropout", "0",
              "--hidden-size", "128", "--batch-size", "16",
              "--seq-length", "50", "--val-fraction", "0.0001", "--eval-every", str(args.steps),
              "--force", "--checkpoint-every", str(args.steps)]
    results = {}
    for name, corpus in (("1 MB corpus", small), (f"{args.gigabytes:g} GB corpus, first run "
                         "(scan + encode + cache)", big),
                         (f"{args.gigabytes:g} GB corpus, cached", big)):
        r = measure(rnncore + [corpus, "--out", os.path.join(folder, "m.npz")] + common,
                    cwd=folder)
        results[name] = {"seconds": round(r["seconds"], 1), "peak_rss_mb": round(r["peak_rss_mb"])}
        print(f"{name}: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    results["corpus_bytes"] = os.path.getsize(big)
    results["steps"] = args.steps
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
