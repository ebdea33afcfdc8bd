"""What every benchmark report says about the BLAS it ran on: the kernels scipy's OpenBLAS
chose (threadpoolctl's `architecture`: SkylakeX means AVX-512, Haswell AVX2) and the GEMM
peak measured in the same run, the ceiling the kernels' GFLOP/s are read against."""
import platform
import time

import numpy as np


def cpu_model():
    """The CPU's model name with its family, model and widest vector instructions (Linux:
    /proc/cpuinfo), e.g. "AMD EPYC (family 25, model 17; AVX-512)": the name alone says
    "AMD EPYC" for a Zen 3, a Zen 4 and a Zen 5 alike.  Else what platform knows."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not line.strip():
                    break                           # the first CPU's block is enough
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    flags = fields.get("flags", "").split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (f"{fields['model name']} (family {fields.get('cpu family', '?')}, model "
            f"{fields.get('model', '?')}; {isa})")


def scipy_blas():
    """[{library, file, architecture, num_threads}] of the BLAS pools loaded now."""
    from scipy.linalg import blas  # noqa: F401 (loads scipy's BLAS, the kernels' one)
    from threadpoolctl import threadpool_info
    return [{"library": p.get("internal_api"), "file": p["filepath"].rsplit("/", 1)[-1],
             "architecture": p.get("architecture"), "num_threads": p.get("num_threads")}
            for p in threadpool_info() if p.get("user_api") == "blas"]


def seconds_per_call(fn, budget):
    """Mean seconds of one fn() over about `budget` seconds of back-to-back calls, after
    one call to warm it up."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def gemm_peak(dtype, threads, n=512, repeats=5):
    """GFLOP/s of scipy's BLAS gemm on n×n matrices with `threads` threads (median)."""
    from scipy.linalg import blas
    from threadpoolctl import threadpool_limits
    gemm = blas.dgemm if dtype == "float64" else blas.sgemm
    a = np.asfortranarray(np.random.default_rng(0).standard_normal((n, n)).astype(dtype))
    with threadpool_limits(limits=threads, user_api="blas"):
        gemm(1.0, a, a)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(5):
                gemm(1.0, a, a)
            times.append((time.perf_counter() - t0) / 5)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


def write_outputs(args, result, table):
    """Print the table; write the result as JSON to args.json and the table as Markdown to
    args.markdown, where given."""
    import json
    from pathlib import Path
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
