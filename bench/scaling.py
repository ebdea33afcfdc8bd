"""Data-parallel scaling on one machine: training chars/s of one process against R MPI ranks,
and the time of the gradient all-reduce alone.

    python bench/scaling.py                           # H = 128, 256, 512; B = 32; R = 2
    python bench/scaling.py --hidden 128 --ranks 2 --steps 300 --json docs/scaling.json

Every configuration runs the real CLI (`rnncore train`, float32, T=50, no validation, no
periodic checkpoints) on a generated corpus and reads the rate it logs at the last step
(chars of all B streams per second of training).  One process is measured with one thread
and with its default threads (the CPUs it may use); R ranks run as a user starts them,
without --threads (`mpiexec -n R ... --distributed`: each rank's default is the CPUs shared
out among the ranks on the host).  The all-reduce is timed by R ranks exchanging a buffer
of each model's gradient size, the same call the training step makes.  Needs mpi4py and
mpiexec: pip install ".[mpi]".
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from blas_report import cpu_model, gemm_peak, scipy_blas   # bench/ is this script's folder

V_GENERATED = 65     # symbols in the generated corpus, as in tinyshakespeare


def find_mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


def rnncore_command():
    """The CLI of this environment (the console script, else `python -m rnncore`)."""
    script = os.path.join(os.path.dirname(sys.executable), "rnncore")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "rnncore"]


def generate_corpus(path, n_chars, seed=0):
    """Random words over 65 symbols: enough text that no run wraps often."""
    rng = np.random.default_rng(seed)
    symbols = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\n-&")
    symbols = symbols[:V_GENERATED]
    words = ["".join(rng.choice(symbols[:52], rng.integers(1, 9))) for _ in range(3000)]
    text = []
    size = 0
    while size < n_chars:
        word = words[rng.integers(len(words))] + symbols[52 + rng.integers(V_GENERATED - 52)]
        text.append(word)
        size += len(word)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(text)[:n_chars])


def train_rate(prefix, corpus, out, hidden, batch, seq, steps, threads, distributed=False):
    """chars/s that `rnncore train` logs at its last step (prefix: the command, e.g.
    under mpiexec with distributed=True)."""
    cmd = [*prefix, "train", corpus, "--out", out, "--force", "--steps", str(steps),
           "--cell", "rnn", "--num-layers", "1", "--dropout", "0",   # the measured model
           "--hidden-size", str(hidden), "--batch-size", str(batch), "--seq-length", str(seq),
           "--dtype", "float32", "--val-fraction", "0", "--print-every", str(steps),
           "--checkpoint-every", str(10 * steps)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if distributed:
        cmd.append("--distributed")
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    metrics = os.path.splitext(out)[0] + ".metrics.jsonl"
    with open(metrics) as f:
        last = [json.loads(line) for line in f][-1]
    return last["chars_per_s"]


def allreduce_worker(sizes, repeats):
    """Run under mpiexec: median seconds of an in-place float32 sum all-reduce of each
    size (elements), printed as JSON by rank 0."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    result = {}
    for n in sizes:
        buf = np.ones(n, np.float32)
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)      # warm-up
        times = []
        for _ in range(repeats):
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            times.append(time.perf_counter() - t0)
        result[str(n)] = float(np.median(times))
    if comm.Get_rank() == 0:
        print(json.dumps(result))


def parameters(hidden, n_vocab=V_GENERATED):
    """Parameters of a one-layer vanilla RNN: H·V + H·H + V·H + H + V."""
    return hidden * n_vocab + hidden * hidden + n_vocab * hidden + hidden + n_vocab


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-length", type=int, default=50)
    ap.add_argument("--steps", type=int, default=300, help="steps per measured run")
    ap.add_argument("--runs", type=int, default=5,
                    help="runs of each configuration, interleaved (median)")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=50, help="all-reduce repetitions")
    ap.add_argument("--corpus", help="text file (default: 2 MB generated in a temp dir)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--markdown", help="write the table here")
    ap.add_argument("--allreduce-worker", nargs="+", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.allreduce_worker:
        return allreduce_worker(args.allreduce_worker, args.repeats)
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise SystemExit("no mpiexec found beside python or on PATH: pip install '.[mpi]'")
    folder = tempfile.mkdtemp(prefix="rnncore-scaling-")
    corpus = args.corpus
    if corpus is None:
        corpus = os.path.join(folder, "generated.txt")
        generate_corpus(corpus, 2_000_000)
    out = os.path.join(folder, "model.npz")
    cli = rnncore_command()
    R = args.ranks
    rows = []
    for H in args.hidden:
        common = (corpus, out, H, args.batch_size, args.seq_length, args.steps)
        runs = {"one_1": [], "one_default": [], "ranks": []}
        for _ in range(args.runs):   # interleaved, so a slow moment hits all three alike
            runs["one_1"].append(train_rate(cli, *common, threads=1))
            runs["one_default"].append(train_rate(cli, *common, threads=None))
            runs["ranks"].append(train_rate([mpiexec, "-n", str(R), *cli], *common,
                                            threads=None, distributed=True))
        one_1, one_default, ranks = (float(np.median(runs[k]))
                                     for k in ("one_1", "one_default", "ranks"))
        rows.append({"H": H, "parameters": parameters(H), "B": args.batch_size,
                     "T": args.seq_length, "one_process_1_thread": one_1,
                     "one_process_default_threads": one_default, f"{R}_ranks": ranks,
                     "speedup_vs_one_process": ranks / one_default,
                     "speedup_vs_1_thread": ranks / one_1,
                     "runs_chars_per_s": runs})
        print(json.dumps(rows[-1]), flush=True)
    sizes = [parameters(H) + 3 for H in args.hidden]   # + loss and two stop requests
    proc = subprocess.run([mpiexec, "-n", str(R), sys.executable, os.path.abspath(__file__),
                           "--repeats", str(args.repeats), "--allreduce-worker",
                           *map(str, sizes)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the all-reduce timing failed:\n{proc.stderr}")
    allreduce = json.loads(proc.stdout.strip().splitlines()[-1])
    for row, n in zip(rows, sizes):
        row["allreduce_us"] = allreduce[str(n)] * 1e6
        row["gradient_bytes"] = 4 * n
    result = {"command": " ".join(sys.argv), "ranks": R, "dtype": "float32", "rows": rows,
              "runs": args.runs, "statistic": "median chars/s over the runs",
              "corpus": args.corpus or "generated text (2 MB, 65 symbols)",
              "cpu": cpu_model(), "default_threads": len(os.sched_getaffinity(0)),
              "blas": scipy_blas(),
              "sgemm_peak_gflops": {f"{t}_threads": gemm_peak("float32", t)
                                    for t in sorted({1, R})}}
    table = markdown(result)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    shutil.rmtree(folder, ignore_errors=True)


def markdown(result):
    R = result["ranks"]
    kernels = ", ".join(f"{b['library']} {b['architecture']}" for b in result["blas"])
    peaks = ", ".join(f"{k.replace('_', ' ')} {v:.0f}" for k, v in
                      result["sgemm_peak_gflops"].items())
    lines = [f"CPU: {result['cpu']}; BLAS (not called by the kernels): {kernels}; sgemm peak "
             f"(512×512), GFLOP/s: {peaks}", "",
             f"| H | parameters | B | T | 1 process, 1 thread (chars/s) | 1 process, default "
             f"threads ({result['default_threads']}) | {R} ranks, default threads | "
             f"× 1 process | × 1 thread | all-reduce µs (bytes) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['H']} | {r['parameters']:,} | {r['B']} | {r['T']} | "
                     f"{r['one_process_1_thread']:,.0f} | "
                     f"{r['one_process_default_threads']:,.0f} | "
                     f"{r[f'{R}_ranks']:,.0f} | {r['speedup_vs_one_process']:.2f}× | "
                     f"{r['speedup_vs_1_thread']:.2f}× | "
                     f"{r['allreduce_us']:,.0f} ({r['gradient_bytes']:,}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
