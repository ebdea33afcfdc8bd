"""rnncore's benchmark suite: rnncore's kernels vs the numpy reference vs PyTorch, side by side.

    python bench/run.py                 # the full grid (a few minutes)
    python bench/run.py --quick         # a smaller grid, under a minute
    python bench/run.py --json out.json --markdown out.md

One window = forward + backward + clipping over T steps of B streams (no optimizer step), the
unit every system computes identically, for every cell (rnn, lstm, gru) and depth: PyTorch
runs nn.RNN / nn.LSTM / nn.GRU + Linear + cross-entropy + backward + clip, from the same
weights and the same carried state.  Systems run interleaved in one process: every repeat
times each system in turn, so a noisy neighbour hits all of them alike; the tables give
medians over the repeats, min-max in brackets, and the ratios of medians.  Every system gets
--threads threads (default 2: rnncore's team, torch's intra-op pool, numpy's BLAS), the
others' pools one; rnncore also runs on one thread ("rnncore·1"), for its own scaling, and
with each product engine forced ("own": its micro-kernel everywhere; "blas": scipy's BLAS
through cython_blas everywhere; "rnncore" itself is the default, `auto`).  The
report names the CPU, the micro-kernel that ran, the FMA peak measured in the same run (an
FMA loop of rnncore's own, on one thread and on the team) and BLAS's gemm rate; every row
gives its GFLOP/s and their share of that FMA peak.  PyTorch is used when it is importable
(optional).
"""
import argparse
import json
import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import rnncore
from blas_report import cpu_model, gemm_peak   # bench/ is this script's folder
from rnncore import _cells, _kernels, engines, layout, reference
from rnncore.train import Trainer

try:
    from threadpoolctl import ThreadpoolController, threadpool_info, threadpool_limits
except ImportError:  # the [bench] extra brings it; without it threads are not pinned
    ThreadpoolController = threadpool_info = threadpool_limits = None

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"


@contextmanager
def blas_threads(n):
    """Pin every BLAS pool (numpy's, scipy's) and torch's to n threads."""
    old_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    if threadpool_limits is not None:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    else:
        yield
    if torch is not None:
        torch.set_num_threads(old_torch)


class ThreadPools:
    """Gives one system its threads while every other pool gets one.

    numpy and scipy each load their own OpenBLAS, and torch has its own pool: three pools on
    two cores.  OpenBLAS workers spin for a while after each call, so a pool that just ran
    steals a core from the next; each system therefore runs with the others pinned to one
    thread, after a pause that lets idle workers go to sleep.
    """
    PAUSE = 0.2  # seconds

    def __init__(self):
        self.libs = ThreadpoolController().lib_controllers if ThreadpoolController else []

    @staticmethod
    def owner(lib):
        path = lib.filepath.replace("\\", "/")
        if "/numpy" in path:
            return "numpy"
        return None            # scipy's: no system calls it (rnncore's kernels call no BLAS)

    def give(self, system, n):
        if system == "rnncore·1":
            system, n = "rnncore", 1
        if system in ENGINE_SYSTEMS:
            system = "rnncore"
        for lib in self.libs:
            lib.set_num_threads(n if self.owner(lib) == system else 1)
        rnncore.set_num_threads(n if system == "rnncore" else 1)
        if torch is not None:
            torch.set_num_threads(n if system == "torch" else 1)
        if n > 1:
            time.sleep(self.PAUSE)


def flops_per_char(H, V, cell="rnn", layers=1):
    """Matrix work per character, forward + backward: 6·G·H² per recurrent product (one per
    layer) and per deeper layer's input projection, plus the decoder's 6·H·V (layer 0's
    one-hot input is a gather, not counted).  For one rnn layer: 6·H² + 6·H·V."""
    G = layout.GATES[cell]
    return 6 * G * H * H * (2 * layers - 1) + 6 * H * V


#: (cell, layers, V, H, B, T, dtype) of the rows the speed targets name: 32 streams of
#: float32 at 1×512 and 1×256, one stream of float64 at 2×128 and vanilla 1×64 / 1×256
#: (and the demo's own 1×64 with V=18, T=10)
TARGET_ROWS = [(cell, 1, 65, H, 32, 25, "float32") for cell in ("lstm", "gru", "rnn")
               for H in (512, 256)] + \
              [(cell, 2, 65, 128, 1, 25, "float64") for cell in ("lstm", "gru")] + \
              [("rnn", 1, 65, 64, 1, 25, "float64"), ("rnn", 1, 18, 64, 1, 10, "float64"),
               ("rnn", 1, 65, 256, 1, 25, "float64")]

#: rnncore with each product engine forced (rnncore.engines), beside its default ("auto")
ENGINE_SYSTEMS = {"own": "own", "cython_blas": "blas"}


# ---- the systems under test: each returns a zero-argument callable doing one window ----
def make_rnncore(params, dtype, x, y, state, engine="auto"):
    cell, layers = layout.infer_config(params)
    V, H = params["Why"].shape
    model = rnncore.CharRNN(rnncore.Vocab([chr(0x100 + i) for i in range(V)]), H, dtype=dtype,
                            cell=cell, num_layers=layers)
    for k, v in params.items():
        model.params[k] = v.astype(dtype)
    out = model.zeros_like_params()
    state = state.astype(dtype)

    def window():   # the model keeps one kernel per engine setting
        engines.set_gemm_engine(engine)
        return model.loss_and_grads(x, y, state, clip=5.0, out=out)
    return window


def make_numpy(params, dtype, x, y, state):
    p = {k: v.astype(dtype) for k, v in params.items()}
    state = state.astype(dtype)
    return lambda: reference.loss_and_grads(p, x, y, state, clip=5.0)


def make_torch(params, dtype, x, y, state):
    cell, layers = layout.infer_config(params)
    V, H = params["Why"].shape
    B, T = x.shape
    dt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = module(V, H, num_layers=layers, batch_first=True, dtype=dt)
    lin = torch.nn.Linear(H, V, dtype=dt)
    with torch.no_grad():
        for k in range(layers):
            s = layout.layer_suffix(k)
            getattr(rnn, f"weight_ih_l{k}").copy_(torch.from_numpy(params["Wxh" + s]))
            getattr(rnn, f"weight_hh_l{k}").copy_(torch.from_numpy(params["Whh" + s]))
            getattr(rnn, f"bias_ih_l{k}").copy_(torch.from_numpy(params["bh" + s]))
            bias_hh = getattr(rnn, f"bias_hh_l{k}")
            bias_hh.zero_()
            if cell == "gru":   # PyTorch's bias_hh is rnncore's bhn in the n block
                bias_hh[2 * H:] = torch.from_numpy(params["bhn" + s])
        lin.weight.copy_(torch.from_numpy(params["Why"]))
        lin.bias.copy_(torch.from_numpy(params["by"]))
    weights = list(rnn.parameters()) + list(lin.parameters())
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)
    state = torch.from_numpy(state).to(dt).reshape(-1, B, H)           # (S·L, B, H)
    h0t = (state[:layers], state[layers:]) if cell == "lstm" else state

    def window():
        for w in weights:
            w.grad = None
        out, h_last = rnn(F.one_hot(xt, V).to(dt), h0t)                  # (B,T,H)
        logits = lin(out).reshape(B * T, V)
        loss = F.cross_entropy(logits, yt)                               # mean over B·T
        (loss * T).backward()                                            # Σ_t mean_b
        torch.nn.utils.clip_grad_value_(weights, 5.0)
        return loss.item(), h_last
    return window


def check_agreement(systems):
    """The systems must compute the same loss before their speed means anything."""
    losses = {name: float(fn()[0]) for name, fn in systems.items()}
    ref = losses["numpy"]
    for name, loss in losses.items():
        if abs(loss - ref) > 1e-4 * abs(ref):
            raise SystemExit(f"bench: {name} computes loss {loss}, numpy {ref}: not comparable")


def time_interleaved(systems, repeats, budget, threads):
    """{name: [seconds per call] * repeats}, each repeat running every system in turn for
    about `budget` seconds (after one untimed call), each with `threads` threads of its
    own."""
    pools = ThreadPools()
    counts = {}
    for name, fn in systems.items():       # calibrate, and warm up
        pools.give(name, threads)
        fn()
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < budget / 4:
            fn()
            n += 1
        counts[name] = max(1, int(n * 4 * budget / (time.perf_counter() - t0) / 4))
    times = {name: [] for name in systems}
    for _ in range(repeats):
        for name, fn in systems.items():
            pools.give(name, threads)
            fn()        # untimed: the caches the other systems just used are its own again
            n = counts[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t0) / n)
    return times


def bench_window(V, H, B, T, dtype, threads, repeats, budget, use_torch, cell="rnn",
                 layers=1):
    rng = np.random.default_rng(0)
    if cell == "rnn" and layers == 1:
        params = {"Wxh": rng.standard_normal((H, V)) * 0.01,
                  "Whh": rng.standard_normal((H, H)) * 0.01,
                  "Why": rng.standard_normal((V, H)) * 0.01, "bh": np.zeros(H),
                  "by": np.zeros(V)}
    else:   # the model's own start (uniform ±1/√H for gated cells)
        vocab = rnncore.Vocab([chr(0x100 + i) for i in range(V)])
        params = rnncore.CharRNN(vocab, H, cell=cell, num_layers=layers, seed=0).params
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    rows = layout.state_rows(cell, layers)
    state = rng.uniform(-0.5, 0.5, (rows, B, H))
    state = state[0] if rows == 1 else state          # the model's state form
    systems = {"rnncore": make_rnncore(params, dtype, x, y, state),
               **{name: make_rnncore(params, dtype, x, y, state, engine)
                  for name, engine in ENGINE_SYSTEMS.items()},
               "numpy": make_numpy(params, dtype, x, y, state)}
    if threads > 1:
        systems["rnncore·1"] = systems["rnncore"]
    if use_torch:
        systems["torch"] = make_torch(params, dtype, x, y, state)
    with blas_threads(threads):
        check_agreement(systems)
        times = time_interleaved(systems, repeats, budget, threads)
    med = {k: float(np.median(v)) for k, v in times.items()}
    row = {"cell": cell, "layers": layers, "V": V, "H": H, "B": B, "T": T, "dtype": dtype,
           "threads": threads,
           "us_per_window": {k: med[k] * 1e6 for k in med},
           "us_min_max": {k: [min(v) * 1e6, max(v) * 1e6] for k, v in times.items()},
           "chars_per_s": {k: B * T / med[k] for k in med},
           "speedup_vs_numpy": med["numpy"] / med["rnncore"],
           "gflops_rnncore": flops_per_char(H, V, cell, layers) * B * T / med["rnncore"] / 1e9}
    # the default (auto) against the faster of the two engines forced: within 5% is the aim
    row["auto_vs_faster_engine"] = med["rnncore"] / min(med[name] for name in ENGINE_SYSTEMS)
    if "rnncore·1" in med:
        row["speedup_vs_1_thread"] = med["rnncore·1"] / med["rnncore"]
    if "torch" in med:
        row["speedup_vs_torch"] = med["torch"] / med["rnncore"]
    return row


def bench_generation(hidden_sizes, n_chars, repeats):
    """Sampling chars/s of one stream of the vanilla model, with the default threads."""
    rows = []
    vocab = rnncore.Vocab([chr(0x100 + i) for i in range(65)])
    for H in hidden_sizes:
        model = rnncore.CharRNN(vocab, H, seed=0)
        model.sample(100, seed=0)
        times = []
        for r in range(repeats):
            t0 = time.perf_counter()
            model.sample(n_chars, seed=r)
            times.append(time.perf_counter() - t0)
        rows.append({"H": H, "chars": n_chars, "threads": rnncore.get_num_threads(),
                     "chars_per_s": n_chars / float(np.median(times))})
    return rows


def bench_trainer(corpus_path, steps, threads):
    """End-to-end `Trainer` throughput with the CLI's defaults."""
    if corpus_path is not None and Path(corpus_path).exists():
        text = Path(corpus_path).read_text(encoding="utf-8")
        # records in docs/ name files relative to the repository, never by absolute path
        source = os.path.relpath(corpus_path, Path(__file__).resolve().parent.parent)
    else:
        rng = np.random.default_rng(0)
        words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.integers(2, 9)))
                 for _ in range(500)]
        text = " ".join(rng.choice(words, 200_000))
        source = "generated text"
    vocab = rnncore.Vocab.from_text(text)
    model = rnncore.CharRNN(vocab, 128, dtype="float32", seed=0)
    trainer = Trainer(model, text, seq_length=50, batch_size=16, learning_rate=2e-3,
                      optimizer="adam", clip=5.0)
    with blas_threads(threads), rnncore.threads.num_threads(threads):
        trainer.train(5)
        t0 = time.perf_counter()
        trainer.train(steps)
        elapsed = time.perf_counter() - t0
    return {"corpus": source, "chars": len(text), "H": 128, "B": 16, "T": 50,
            "dtype": "float32", "optimizer": "adam", "threads": threads, "steps": steps,
            "chars_per_s": steps * 16 * 50 / elapsed}


def fma_peaks(dtypes, threads):
    """{"float32 1 thread": GFLOP/s, ...}: rnncore's FMA loop on its micro-kernel's vectors,
    on one thread and on the team (median of 5; fma_peak sizes the team itself)."""
    peaks = {}
    for dt in dtypes:
        for n in sorted({1, threads}):
            peaks[f"{dt} {n} thread{'s' if n > 1 else ''}"] = float(np.median(
                [_cells.fma_peak(n, dt) for _ in range(5)]))
    return peaks


def environment():
    info = {"python": sys.version.split()[0], "numpy": np.__version__,
            "rnncore": rnncore.__version__, "machine": platform.machine(),
            "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "micro_kernel": _cells.MICROKERNEL, "libmvec": bool(_kernels.USES_LIBMVEC),
            "auto": engines.describe_auto(_cells.MICROKERNEL),
            "cython_blas": _cells.BLAS_LIBRARY,
            "torch": torch.__version__ if torch is not None else None}
    if threadpool_info is not None:
        info["blas"] = [{"library": p.get("internal_api"), "file": Path(p["filepath"]).name,
                         "num_threads": p.get("num_threads"),
                         "architecture": p.get("architecture")}
                        for p in threadpool_info() if p.get("user_api") == "blas"]
    return info


def fmt_range(row, k):
    lo, hi = row["us_min_max"][k]
    return f"{row['us_per_window'][k]:,.0f} ({lo:,.0f}-{hi:,.0f})"


def markdown(result):
    lines = []
    has_torch = any("speedup_vs_torch" in r for r in result["windows"])
    head = ("| cell | L | V | H | B | T | dtype | threads | rnncore µs | own µs | "
            "cython_blas µs | auto ÷ faster | numpy µs |")
    sep = "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    if has_torch:
        head += " torch µs |"
        sep += "---|"
    head += " × numpy |" + (" × torch |" if has_torch else "") + \
        " × 1 thread | rnncore GFLOP/s | % of FMA peak |"
    sep += "---|" + ("---|" if has_torch else "") + "---|---|---|"
    lines += [head, sep]
    for r in result["windows"]:
        cells = [r["cell"], r["layers"], r["V"], r["H"], r["B"], r["T"], r["dtype"], r["threads"],
                 fmt_range(r, "rnncore"), fmt_range(r, "own"), fmt_range(r, "cython_blas"),
                 f"{r['auto_vs_faster_engine']:.2f}", fmt_range(r, "numpy")]
        if has_torch:
            cells.append(fmt_range(r, "torch") if "torch" in r["us_per_window"] else "-")
        cells.append(f"{r['speedup_vs_numpy']:.1f}×")
        if has_torch:
            cells.append(f"{r['speedup_vs_torch']:.1f}×" if "speedup_vs_torch" in r else "-")
        cells.append(f"{r['speedup_vs_1_thread']:.2f}×" if "speedup_vs_1_thread" in r else "-")
        cells.append(f"{r['gflops_rnncore']:.1f}")
        share = r.get("share_of_fma_peak")
        cells.append("-" if share is None else f"{100 * share:.0f}%")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines.append("")
    env = result["environment"]
    lines.append(f"rnncore: its default, auto ({env['auto']}); own: every product on its "
                 "micro-kernel; cython_blas: every product on scipy's BLAS "
                 f"({env['cython_blas']}), one thread a call")
    lines.append(f"CPU: {env['cpu']}; micro-kernel: {env['micro_kernel']}; torch "
                 f"{env['torch']}; BLAS: " + ", ".join(
                     f"{b['file']} ({b['architecture']})" for b in env.get("blas", [])))
    lines.append("FMA peak (rnncore's FMA loop), GFLOP/s: " + ", ".join(
        f"{k} {v:.1f}" for k, v in result["fma_peak_gflops"].items()))
    lines.append("gemm rate (scipy's BLAS, 512×512), GFLOP/s: " + ", ".join(
        f"{k} {v:.1f}" for k, v in result["gemm_peak_gflops"].items()))
    lines.append("")
    lines.append("| generation (vanilla, one stream), H | threads | chars/s |")
    lines.append("|---|---|---|")
    for g in result["generation"]:
        lines.append(f"| {g['H']} | {g['threads']} | {g['chars_per_s']:,.0f} |")
    t = result.get("trainer")
    if t:
        lines.append("")
        lines.append(f"Trainer end to end on {Path(t['corpus']).name} (H={t['H']}, B={t['B']}, "
                     f"T={t['T']}, {t['dtype']}, {t['optimizer']}, {t['threads']} thread(s)): "
                     f"{t['chars_per_s']:,.0f} chars/s")
    lines.append("")
    lines.append(f"Peak RSS of the benchmark process: {result['peak_rss_mb']:.0f} MB")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller grid, under a minute")
    ap.add_argument("--targets", action="store_true",
                    help="only the rows the speed targets name (docs/performance.md)")
    ap.add_argument("--hidden", type=int, nargs="+", help="hidden sizes (default 64 128 256 512)")
    ap.add_argument("--batches", type=int, nargs="+", help="stream counts (default 1 32)")
    ap.add_argument("--dtypes", nargs="+", choices=["float32", "float64"],
                    default=["float64", "float32"])
    ap.add_argument("--cells", nargs="+", choices=list(layout.CELLS),
                    default=list(layout.CELLS), help="cells to time (default all)")
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2],
                    help="depths of the lstm and gru rows (default 1 2; rnn rows: 1)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats (median; >= 5)")
    ap.add_argument("--threads", type=int, default=2,
                    help="threads of every system (default 2)")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS),
                    help="text for the end-to-end Trainer run (generated text if absent)")
    ap.add_argument("--json", help="write the results as JSON here")
    ap.add_argument("--markdown", help="write the Markdown tables here")
    args = ap.parse_args(argv)

    hidden = args.hidden or ([64, 128] if args.quick else [64, 128, 256, 512])
    batches = args.batches or [1, 32]
    budget = 0.03 if args.quick else 0.15
    use_torch = torch is not None and not args.no_torch
    T, V = 25, 65

    configs = []
    if args.targets:
        configs = TARGET_ROWS
    elif "rnn" in args.cells:
        configs.append(("rnn", 1, 18, 64, 1, 10, "float64"))  # the demo's own configuration
        configs += [("rnn", 1, V, H, B, T, dt)
                    for B in batches for H in hidden for dt in args.dtypes]
    if not args.targets:
        configs += [(cell, layers, V, H, B, T, dt) for cell in args.cells if cell != "rnn"
                    for layers in args.layers for B in batches for H in hidden
                    for dt in args.dtypes]
    windows = []
    for cell, layers, V_, H, B, T_, dt in configs:
        threads = args.threads
        row = bench_window(V_, H, B, T_, dt, threads, args.repeats, budget, use_torch, cell,
                           layers)
        windows.append(row)
        print(f"{cell} x{layers} V={V_} H={H} B={B} T={T_} {dt} threads={threads}: rnncore "
              f"{row['us_per_window']['rnncore']:,.0f} µs/window, "
              f"{row['speedup_vs_numpy']:.1f}× numpy"
              + (f", {row['speedup_vs_torch']:.1f}× torch" if "speedup_vs_torch" in row else ""),
              file=sys.stderr, flush=True)
    result = {
        "command": "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment(),
        "windows": windows,
        "fma_peak_gflops": fma_peaks(args.dtypes, args.threads),
        "gemm_peak_gflops": {f"{dt} 1 thread": gemm_peak(dt, 1) for dt in args.dtypes}
        | {f"{dt} {args.threads} threads": gemm_peak(dt, args.threads)
           for dt in args.dtypes},
        "generation": bench_generation(hidden, 2000 if args.quick else 10000, args.repeats),
        "trainer": bench_trainer(args.corpus, 20 if args.quick else 200, 1),
    }
    for row in windows:   # each row against the peak of its own dtype and thread count
        peak = result["fma_peak_gflops"].get(
            f"{row['dtype']} {row['threads']} thread{'s' if row['threads'] > 1 else ''}")
        if peak:
            row["share_of_fma_peak"] = row["gflops_rnncore"] / peak
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    md = markdown(result)
    print(md)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(md + "\n")


if __name__ == "__main__":
    main()
