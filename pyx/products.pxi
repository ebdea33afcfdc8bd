# For benchmarks and tests: the FMA peak every GFLOP/s figure is read against, and the
# products alone (the micro-kernel, a window's tile, one product on either engine).
# Included by _cells.pyx.

# ---------------------------------------------------------------------------------------
# The FMA peak, for benchmarks: what every GFLOP/s figure is read against.
# ---------------------------------------------------------------------------------------

cdef struct PeakRun:
    int is_double
    long iters
    double sink

cdef void fma_tile(void *arg, long tile, int thread) noexcept nogil:
    cdef PeakRun *p = <PeakRun *> arg
    cdef double result = rnncore_fma_loop(p.is_double, p.iters)
    if thread == 0:     # one writer; the loop's result is kept only so that it runs
        p.sink += result

cdef void fma_program(void *arg, rnncore_crew *crew) noexcept nogil:
    rnncore_phase(crew, crew.n_threads, fma_tile, arg)


def fma_peak(int threads, dtype="float32", double seconds=0.2):
    """GFLOP/s of independent fused multiply-adds of the micro-kernel's vectors, on
    `threads` threads of the team, each running one loop (the team is sized to `threads`
    for the measurement, whatever set_num_threads said, and restored after): the ceiling
    of every product.  RuntimeError if fewer threads ran (another Python thread held the
    team, or no thread could be created)."""
    cdef PeakRun run
    cdef int used
    run.is_double = np.dtype(dtype) == np.float64
    run.sink = 0
    run.iters = 1000
    W = rnncore_gemm_lanes_d() if run.is_double else rnncore_gemm_lanes_f()
    import time
    size = get_num_threads()
    set_num_threads(threads)
    try:
        while True:
            t0 = time.perf_counter()
            with nogil:
                used = rnncore_team_run(fma_program, &run, threads)
            elapsed = time.perf_counter() - t0
            if used != threads:
                raise RuntimeError(f"the FMA loop ran on {used} of {threads} threads")
            if elapsed >= seconds:
                return 24 * W * run.iters * used / elapsed / 1e9
            run.iters = int(run.iters * min(100.0, 1.5 * seconds / max(elapsed, 1e-6)))
    finally:
        set_num_threads(size)


# ---------------------------------------------------------------------------------------
# The micro-kernel alone, for its tests.
# ---------------------------------------------------------------------------------------

def matmul(a, b):
    """a (M, K) @ b (K, N) through the micro-kernel: b packed into panels of 4 vectors, a
    read in place through its strides (a transposed view is fine).  For tests."""
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64) or a.ndim != 2 \
            or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError("matmul needs 2-D float32/float64 arrays of one dtype, (M, K) @ (K, N)")
    if a.dtype == np.float64:
        return _matmul[double](a, np.ascontiguousarray(b))
    return _matmul[float](a, np.ascontiguousarray(b))


cdef object _matmul(const floating[:, :] a, const floating[:, ::1] b):
    cdef Py_ssize_t M = a.shape[0], K = a.shape[1], N = b.shape[1], p, r, j, c0
    cdef Py_ssize_t W = rnncore_gemm_lanes_d() if floating is double else rnncore_gemm_lanes_f()
    cdef Py_ssize_t NC = 4 * W, n_p = ceil_div(N, NC), itemsize = sizeof(floating)
    dt = np.float64 if floating is double else np.float32
    out = np.zeros((M, N), dt)
    cdef floating[:, ::1] o = out
    cdef floating[:, ::1] P = aligned_zeros((K, NC), dt)
    cdef floating[:, ::1] C = aligned_zeros((max(M, 1), NC), dt)
    if M == 0 or N == 0 or K == 0:
        return out
    with nogil:
        for p in range(n_p):
            c0 = p * NC
            pack(&P[0, 0], NC, &b[0, c0], N, 1, K, min(NC, N - c0), NC)
            gemm(M, <int> ceil_div(min(NC, N - c0), W), K, &a[0, 0], a.strides[0] // itemsize,
                 a.strides[1] // itemsize, &P[0, 0], NC, &C[0, 0], NC)
            for r in range(M):
                for j in range(min(NC, N - c0)):
                    o[r, c0 + j] = C[r, j]
    return out


def tile_matmul(a, b, bias=None):
    """a (M, K) @ b (K, N) [+ bias (N,)] as one tile of the window's products
    (rnncore_tile_product): b read in place (packed a chunk at a time), a through its
    strides (a transposed view is packed too).  For tests."""
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64) or a.ndim != 2 \
            or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError("tile_matmul needs 2-D float32/float64 arrays of one dtype, "
                         "(M, K) @ (K, N)")
    bias = None if bias is None else np.ascontiguousarray(bias, a.dtype)
    if a.dtype == np.float64:
        return _tile_matmul[double](a, np.ascontiguousarray(b), bias)
    return _tile_matmul[float](a, np.ascontiguousarray(b), bias)


cdef object _tile_matmul(const floating[:, :] a, const floating[:, ::1] b, bias):
    cdef Py_ssize_t M = a.shape[0], K = a.shape[1], N = b.shape[1]
    cdef Py_ssize_t W = rnncore_gemm_lanes_d() if floating is double else rnncore_gemm_lanes_f()
    cdef Py_ssize_t itemsize = sizeof(floating)
    dt = np.float64 if floating is double else np.float32
    out = np.zeros((M, N), dt)
    if M == 0 or N == 0:
        return out
    # b with a vector of slack behind it: the product reads whole vectors of a row
    padded_b = aligned_zeros((K, N), dt, W)
    padded_b[...] = b
    work = aligned_zeros(((rnncore_tile_work_d if floating is double
                           else rnncore_tile_work_f)(M, N),), dt)
    cdef floating[:, ::1] o = out
    cdef const floating[:, ::1] P = padded_b
    cdef floating[::1] w = work
    cdef const floating[::1] bias_v
    cdef const floating *bias_p = NULL
    if bias is not None:
        bias_v = bias
        bias_p = &bias_v[0]
    with nogil:
        tile_product(M, N, K, &a[0, 0], a.strides[0] // itemsize, a.strides[1] // itemsize,
                     &P[0, 0] if K > 0 else <const floating *> &w[0], N, 4 * W, &o[0, 0], N,
                     bias_p, &w[0])
    return out


# ---------------------------------------------------------------------------------------
# One product as the kernels compute it, on either engine: for bench/products.py and tests.
# ---------------------------------------------------------------------------------------

def product(a, b, engine="own", bint step=False, Py_ssize_t repeats=1):
    """a (M, K) @ b (K, N), computed `repeats` times on this thread as the kernels compute
    a product of its kind with `engine` ("own" or "blas"): Product(...).run(repeats)."""
    return Product(a, b, engine, step).run(repeats)


class Product:
    """a (M, K) @ b (K, N) as the kernels compute a product of its kind with `engine`
    ("own" or "blas"), its operands prepared once (for bench/products.py and the tests).
    step=False: a product over many rows (a window's): tiles of RT × NT, the
    micro-kernel packing chunks as it goes, BLAS one call a tile.  step=True: a step's
    recurrent product: tiles of one panel of the micro-kernel (b packed into panels here,
    once, as a window packs its weights once for all its steps), or of 64 columns a BLAS
    call.  run(repeats) computes it `repeats` times on this thread and returns C."""

    def __init__(self, a, b, engine="own", step=False):
        if engine not in _engines.ENGINES:
            raise ValueError(f"engine must be one of {', '.join(_engines.ENGINES)}, "
                             f"got {engine!r}")
        if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64) or a.ndim != 2 \
                or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError("product needs 2-D float32/float64 arrays of one dtype, "
                             "(M, K) @ (K, N)")
        self.a = np.ascontiguousarray(a)
        dt = a.dtype
        W = rnncore_gemm_lanes_d() if dt == np.float64 else rnncore_gemm_lanes_f()
        M, K, N = a.shape[0], a.shape[1], b.shape[1]
        self.b = aligned_zeros((K, N), dt, W)     # a vector of slack: whole vectors are read
        self.b[...] = b
        self.out = aligned_zeros((M, N), dt, W)
        self.RT = 16 * (rnncore_gemm_mr_d(4) if dt == np.float64 else rnncore_gemm_mr_f(4))
        self.NT = max(4 * W, 512 // (4 * W) * 4 * W)
        self.blas, self.step = engine == "blas", bool(step)
        self.panels = aligned_zeros((ceil_div(N, 4 * W), K, 4 * W), dt) \
            if step and not self.blas else self.b
        self.work = aligned_zeros(((rnncore_tile_work_d if dt == np.float64
                                    else rnncore_tile_work_f)(self.RT, self.NT) + M * 4 * W,), dt)
        if step and not self.blas:
            self._run(0, True)                  # pack once

    def run(self, Py_ssize_t repeats=1):
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self._run(repeats, False)
        return self.out

    def _run(self, repeats, pack_only):
        if self.a.dtype == np.float64:
            _product[double](self.a, self.b, self.panels, self.out, self.work, self.blas,
                             self.step, repeats, self.RT, self.NT, pack_only)
        else:
            _product[float](self.a, self.b, self.panels, self.out, self.work, self.blas,
                            self.step, repeats, self.RT, self.NT, pack_only)


cdef void _product(const floating[:, ::1] a, const floating[:, ::1] b, panels,
                   floating[:, ::1] out, floating[::1] work, bint blas, bint step,
                   Py_ssize_t repeats, Py_ssize_t RT, Py_ssize_t NT,
                   bint pack_only) except *:
    cdef Py_ssize_t M = a.shape[0], K = a.shape[1], N = b.shape[1], i, p, r0, c0, cols
    cdef Py_ssize_t W = rnncore_gemm_lanes_d() if floating is double else rnncore_gemm_lanes_f()
    cdef Py_ssize_t NC = 4 * W, n_p = ceil_div(N, NC)
    cdef floating *P = NULL
    cdef floating *S = &work[0]
    cdef const floating *B = &b[0, 0] if K > 0 else NULL
    cdef floating *C = &out[0, 0]
    if M == 0 or N == 0 or K == 0:
        return
    if step and not blas:
        P = <floating *> <size_t> panels.ctypes.data
    if pack_only:
        for p in range(n_p):
            pack(P + p * K * NC, NC, B + p * NC, N, 1, K, min(NC, N - p * NC), NC)
        return
    with nogil:
        if blas:
            rnncore_blas_enter()
        for i in range(repeats):
            if step and blas:           # one call per 64 columns (a gate's units)
                c0 = 0
                while c0 < N:
                    gemm_rm(M, min(64, N - c0), K, &a[0, 0], K, 1, B + c0, N, 1, 0, C + c0, N)
                    c0 += 64
            elif step:                  # one packed panel a tile, into the tile's scratch
                for p in range(n_p):
                    cols = min(NC, N - p * NC)
                    gemm(M, <int> ceil_div(cols, W), K, &a[0, 0], K, 1, P + p * K * NC, NC,
                         S, NC)
                    if i == repeats - 1:    # the last time, kept
                        for r0 in range(M):
                            memcpy(C + r0 * N + p * NC, S + r0 * NC, cols * sizeof(floating))
            else:
                c0 = 0
                while c0 < N:
                    cols = min(NT, N - c0)
                    r0 = 0
                    while r0 < M:
                        if blas:
                            gemm_rm(min(RT, M - r0), cols, K, &a[0, 0] + r0 * K, K, 1,
                                    B + c0, N, 1, 0, C + r0 * N + c0, N)
                        else:
                            tile_product(min(RT, M - r0), cols, K, &a[0, 0] + r0 * K, K, 1,
                                         B + c0, N, NC, C + r0 * N + c0, N, NULL, S)
                        r0 += RT
                    c0 += NT
        if blas:
            rnncore_blas_leave()
