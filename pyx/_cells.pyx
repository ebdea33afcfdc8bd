# cython: language_level=3
"""Compiled kernels of every cell (rnn, lstm, gru) and depth: the training window (forward,
softmax cross-entropy, backward, clipping) and generation (feeding, sampling, beam search),
run on the process's thread team.

This module holds what Python sees: StackKernel, which checks and binds a model's arrays
and owns the buffers of one (B, T) window shape, and the team's settings.  The work is in
the files it cimports (contracts, .pxd) and includes (implementations, .pxi), each a
layer of the design:
  team.pxd      csrc/team.c: the persistent thread team, its phases and tiles
  gemm.pxd      csrc/gemm.c: the register-blocked micro-kernel over packed panels
  net.pxi       the model as the kernels see it, its tiling, weight packing
  step.pxi      one step of one layer as tiles of hidden units, the products over many rows
  window.pxi    the window as one program of phases
  generate.pxi  generation as programs of phases
  kernel_maths.pxd  the vectorised tanh, sigmoid, exp (pyx/vecmath.h, csrc/vecmath.c)
Every operation is written once over `floating`; the dtype picks, once per call, which of
the two compiled programs (and tile functions) the team runs: the table `PROGRAMS` below.
"""
import os

import numpy as np

from rnncore.layout import GATES, param_shapes    # what a model is: cells, gates, shapes
from rnncore import engines as _engines             # which engine runs which products

from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.string cimport memcpy, memset

from cython cimport floating
from gemm cimport (gemm, pack, tile_product, rnncore_tile_work_f, rnncore_tile_work_d,
                   rnncore_fma_loop, rnncore_gemm_isa, rnncore_gemm_setting_error,
                   rnncore_gemm_lanes_f, rnncore_gemm_lanes_d, rnncore_gemm_mr_f,
                   rnncore_gemm_mr_d)
from kernel_maths cimport vecmath_choice
from blas cimport gemm_rm, rnncore_blas_locate, rnncore_blas_name, rnncore_blas_enter, \
    rnncore_blas_leave, rnncore_blas_threads
from team cimport (RNNCORE_MAX_THREADS, rnncore_crew, rnncore_phase, rnncore_program,
                   rnncore_tile,
                   rnncore_team_set_size, rnncore_team_size, rnncore_team_run,
                   rnncore_team_steals, rnncore_team_sleeps)

include "net.pxi"
include "step.pxi"
include "window.pxi"
include "generate.pxi"

cdef extern from *:
    """
    #ifndef RNNCORE_DEBUG_CHECKS
    #define RNNCORE_DEBUG_CHECKS 0
    #endif
    """
    const bint RNNCORE_DEBUG_CHECKS     # 1 in a RNNCORE_CYTHON_DEBUG=1 build (setup.py)

#: Whether the entry points check their arguments again (RNNCORE_CYTHON_DEBUG=1): the
#: checks of rnncore.doorway, which the Python layer runs before every call anyway
DEBUG_CHECKS = bool(RNNCORE_DEBUG_CHECKS)

cdef object debug_doorway():
    """rnncore.doorway, whose checks a debug build runs again inside every entry point."""
    from rnncore import doorway
    return doorway

#: This module's maths path (vecmath.c chooses per module, at import): what
#: `rnncore --version` reports, since the cells' tanh, sigmoid and exp run here
MATHS, USES_LIBMVEC = vecmath_choice(True)

if rnncore_gemm_setting_error() != NULL:
    import sys
    sys.stderr.write(f"rnncore: warning: {rnncore_gemm_setting_error().decode()}; using "
                     f"{rnncore_gemm_isa().decode()}\n")

#: Which micro-kernel the products run on: "avx512", "avx2" or "generic" (csrc/gemm.h)
MICROKERNEL = rnncore_gemm_isa().decode()

import scipy.linalg.cython_blas as _cython_blas
#: Whether the BLAS engine's library was found with its thread controls, and what it is
#: (csrc/blas_threads.h): the library scipy's cython_blas calls
BLAS_THREADS_HELD = bool(rnncore_blas_locate(os.fsencode(_cython_blas.__file__)))
BLAS_LIBRARY = rnncore_blas_name().decode()

#: The units of a forward or backward step tile when BLAS runs its products: one call per
#: gate of 64 units (the micro-kernel's tiles are a vector's lanes)
cdef Py_ssize_t BLAS_UNITS = 64

CELL_CODES = {"rnn": RNN, "lstm": LSTM, "gru": GRU}

#: Below this many multiply-adds in a step of one layer (B·G·H·H), a call runs on one
#: thread: handing a step over between cores costs more than splitting it saves.
cdef Py_ssize_t min_parallel_work = 1 << 17


# ---------------------------------------------------------------------------------------
# The team's settings.
# ---------------------------------------------------------------------------------------

def set_num_threads(int n):
    """Size the team (the calling thread included) that every compiled call runs on."""
    if not 1 <= n <= RNNCORE_MAX_THREADS:
        raise ValueError(f"the number of threads must be 1 to {RNNCORE_MAX_THREADS}, got {n}")
    with nogil:
        rnncore_team_set_size(n)


def get_num_threads():
    return rnncore_team_size()


def set_min_parallel_work(Py_ssize_t n):
    """Calls whose steps are smaller than n multiply-adds run on one thread (0: every call
    uses the whole team; for tests and benchmarks)."""
    global min_parallel_work
    min_parallel_work = max(n, 0)


def blas_threads():
    """The BLAS engine's library's thread count now (-1: unknown), for tests."""
    return rnncore_blas_threads()


def team_stats():
    """(tiles taken from another worker, sleeps inside a run) since the process started."""
    return int(rnncore_team_steals()), int(rnncore_team_sleeps())


# ---------------------------------------------------------------------------------------
# The float/double dispatch, written once: each operation's program and tile per dtype.
# ---------------------------------------------------------------------------------------

cdef enum:
    FEED = 0
    SAMPLE = 1
    BEAM = 2
    TEXTS = 3
    NEXT = 4
    WORDS = 5

cdef struct GenCall:
    Gen *g
    Py_ssize_t n_steps
    int op

cdef void window_tile_f(void *job, long tile, int thread) noexcept nogil:
    window_tile(<float *> scratch_of((<Job *> job).w, thread), <Job *> job, tile)

cdef void window_tile_d(void *job, long tile, int thread) noexcept nogil:
    window_tile(<double *> scratch_of((<Job *> job).w, thread), <Job *> job, tile)

cdef void gen_tile_f(void *job, long tile, int thread) noexcept nogil:
    gen_tile(<float *> NULL, <GenJob *> job, tile, thread)

cdef void gen_tile_d(void *job, long tile, int thread) noexcept nogil:
    gen_tile(<double *> NULL, <GenJob *> job, tile, thread)

cdef inline void generate(floating *_, GenCall *c, rnncore_crew *crew,
                          rnncore_tile tile) noexcept nogil:
    if c.op == BEAM:
        beam_program(_, c.g, c.n_steps, crew, tile)
    elif c.op == TEXTS:
        texts_program(_, c.g, crew, tile)
    elif c.op == NEXT:
        next_program(_, c.g, crew, tile)
    elif c.op == WORDS:
        word_program(_, c.g, crew, tile)
    else:
        steps_program(_, c.g, c.n_steps, c.op == SAMPLE, crew, tile)

cdef void generate_f(void *call, rnncore_crew *crew) noexcept nogil:
    generate(<float *> NULL, <GenCall *> call, crew, gen_tile_f)

cdef void generate_d(void *call, rnncore_crew *crew) noexcept nogil:
    generate(<double *> NULL, <GenCall *> call, crew, gen_tile_d)


# ---------------------------------------------------------------------------------------
# Buffers.
# ---------------------------------------------------------------------------------------

cdef inline void *data_pointer(object a):
    return <void *> <size_t> a.ctypes.data


def aligned_zeros(shape, dtype, Py_ssize_t slack=0):
    """Zeros of `shape` starting on a 64-byte boundary, with `slack` more values behind
    the last one (a product may read whole vectors past a row's end)."""
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.zeros(count + slack + 64 // dt.itemsize, dt)
    start = (-raw.ctypes.data % 64) // dt.itemsize
    return raw[start:start + count].reshape(shape)


cdef void set_engines(Net *n, dict engines) except *:
    """n's engine for each kind of product, and the step tiles that follow from them."""
    n.eng_fwd = BLAS if engines["forward"] == "blas" else OWN
    n.eng_bwd = BLAS if engines["backward"] == "blas" else OWN
    n.eng_wide = BLAS if engines["wide"] == "blas" else OWN
    n.eng_logits = BLAS if engines["logits"] == "blas" else OWN
    cdef Py_ssize_t unit_vectors = ceil_div(n.H, n.W)
    if n.eng_fwd == BLAS:               # one BLAS call per gate of BLAS_UNITS units
        n.UW, n.NVG, n.NVF = BLAS_UNITS, 0, 0
    else:                               # every gate of NVG vectors of units: 8 vectors in
        # all (rnn: 8 of units; lstm 4 × 2; gru 3 × 2), so that one stream's product has 8
        # chains of multiply-adds; never wider than the layer
        n.NVG = min(max(1, 8 // n.G), unit_vectors)
        n.UW, n.NVF = n.NVG * n.W, n.NVG * n.G
    if n.eng_bwd == BLAS:
        n.UB = BLAS_UNITS
    elif n.bwd_in_place:                # Whh's rows in place: tiles of 8 vectors
        n.UB = 2 * n.NC
    else:
        n.UB = n.NC
    n.n_uf = ceil_div(n.H, n.UW)
    n.n_ub = ceil_div(n.H, n.UB)


cdef class StackKernel:
    """The compiled window and generation of one model: cell, depth, sizes and dtype fixed,
    parameters and gradient arrays bound once (bind_params / bind_grads), and the buffers
    of (batch_size, seq_length) windows owned here.

    The caller writes the carried state into `state_in` (S·L, B, H) and, for dropout,
    the scaled masks into `masks` (L, T, B, H); run() leaves the last state in
    `state_out`.  Arrays bound must stay alive and keep their shapes: the model rebinds
    whenever it replaces one.  `threads`: None lets each call choose (the whole team, or
    one thread for steps too small to split); a number caps it.  The results are the same
    bits whatever the number of threads.
    """
    cdef Net net                                # the window's
    cdef Net gen_net                            # generation's: the same parameters
    cdef Window w
    cdef bint is_double
    cdef void **layer_pointers                  # 12 arrays of L pointers, see Net
    cdef void **grad_pointers                   # the gradient arrays, for clipping
    cdef Py_ssize_t *grad_sizes
    cdef rnncore_program generate_run
    cdef readonly str cell
    cdef readonly Py_ssize_t num_layers, n_vocab, hidden_size, batch_size, seq_length
    cdef readonly object dtype
    cdef readonly object state_in, state_out, masks
    cdef readonly object bound_params, bound_grads
    cdef readonly dict engines                  # {kind: "own" | "blas"}, fixed when built
    cdef readonly dict gen_engines              # generation's
    cdef object gen_packed
    cdef public object threads
    cdef object buffers, packed, scratch, dscratch
    cdef Py_ssize_t scratch_threads

    def __cinit__(self, str cell, Py_ssize_t num_layers, Py_ssize_t n_vocab,
                  Py_ssize_t hidden_size, Py_ssize_t batch_size, Py_ssize_t seq_length,
                  dtype, engine=None):
        cdef Py_ssize_t L = num_layers, V = n_vocab, H = hidden_size
        cdef Py_ssize_t B = batch_size, T = seq_length, G, W, k
        self.layer_pointers = NULL
        self.grad_pointers = NULL
        self.grad_sizes = NULL
        if cell not in CELL_CODES:
            raise ValueError(f"cell must be one of rnn, lstm, gru, got {cell!r}")
        for name, value in (("num_layers", num_layers), ("n_vocab", n_vocab),
                            ("hidden_size", hidden_size), ("batch_size", batch_size),
                            ("seq_length", seq_length)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        dt = np.dtype(dtype)
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dt}")
        self.cell, self.dtype, self.is_double = cell, dt, dt == np.float64
        self.num_layers, self.n_vocab, self.hidden_size = num_layers, n_vocab, hidden_size
        self.batch_size, self.seq_length = batch_size, seq_length
        self.threads = None
        self.w.tile = window_tile_d if self.is_double else window_tile_f
        self.generate_run = generate_d if self.is_double else generate_f
        G = GATES[cell]
        W = rnncore_gemm_lanes_d() if self.is_double else rnncore_gemm_lanes_f()
        cdef Net *n = &self.net
        n.cell, n.L, n.V, n.H, n.G, n.GH = CELL_CODES[cell], L, V, H, G, G * H
        n.itemsize = dt.itemsize
        n.W, n.NC = W, 4 * W
        n.n_hp = ceil_div(H, n.NC)
        n.n_gp = ceil_div(G * H, n.NC)
        n.n_vp = ceil_div(V, n.NC)
        n.RT = 16 * (rnncore_gemm_mr_d(4) if self.is_double else rnncore_gemm_mr_f(4))
        n.NT = max(n.NC, 512 // n.NC * n.NC)     # a weight gradient's rows whole (H <= 512)
        n.SW = n.NC * max(1, min(8, 16384 // (V * n.NC)))
        n.RTD = max(1, min(n.RT, 65536 // (n.n_vp * n.NC)))
        # 12 arrays of L pointers for the window's Net (see Net), 4 more for the panels of
        # generation's when its engines differ
        self.layer_pointers = <void **> PyMem_Malloc(16 * L * sizeof(void *))
        self.grad_pointers = <void **> PyMem_Malloc((4 * L + 2) * sizeof(void *))
        self.grad_sizes = <Py_ssize_t *> PyMem_Malloc((4 * L + 2) * sizeof(Py_ssize_t))
        if self.layer_pointers == NULL or self.grad_pointers == NULL or self.grad_sizes == NULL:
            raise MemoryError()
        memset(self.layer_pointers, 0, 16 * L * sizeof(void *))
        cdef void **lp = self.layer_pointers
        n.Wxh, n.Whh, n.bh, n.bhn = lp, lp + L, lp + 2 * L, lp + 3 * L
        n.dWxh, n.dWhh, n.dbh, n.dbhn = lp + 4 * L, lp + 5 * L, lp + 6 * L, lp + 7 * L
        n.Pf, n.Pb, n.Px, n.Pd = lp + 8 * L, lp + 9 * L, lp + 10 * L, lp + 11 * L
        # the window's engines and generation's (the same parameters; under `auto`
        # generation keeps to the micro-kernel: a stream's bits must not depend on its batch)
        self.engines = _engines.engines_for(MICROKERNEL, engine, "window", B)
        self.gen_engines = _engines.engines_for(MICROKERNEL, engine, "generation")
        # a window of a few streams reads the backward products' weights in place (whole
        # vectors of a row: H a multiple of the lanes, so no read runs past an array)
        n.bwd_in_place = B <= 4 and H % W == 0
        set_engines(n, self.engines)
        self.packed = self._allocate_packed(n, self.engines)
        self.gen_net = self.net
        if self.gen_engines == self.engines:
            self.gen_packed = self.packed           # one set of panels serves both
        else:
            self.gen_net.Pf, self.gen_net.Pb = lp + 12 * L, lp + 13 * L
            self.gen_net.Px, self.gen_net.Pd = lp + 14 * L, lp + 15 * L
            set_engines(&self.gen_net, self.gen_engines)
            self.gen_packed = self._allocate_packed(&self.gen_net, self.gen_engines)
        self._allocate_window()
        self.bound_params = self.bound_grads = None
        self.scratch = self.dscratch = None
        self.scratch_threads = 0

    def __dealloc__(self):
        PyMem_Free(self.layer_pointers)
        PyMem_Free(self.grad_pointers)
        PyMem_Free(self.grad_sizes)

    cdef object _allocate_packed(self, Net *n, dict engines):
        """The packed weights of n (net.pxi), rebuilt from the parameters by
        every call: the micro-kernel's panels for the kinds of product it runs, and E.
        Returns the arrays (keep them alive)."""
        cdef Py_ssize_t k, L = n.L, H = n.H, GH = n.GH, NC = n.NC, V = n.V
        dt = self.dtype
        own = {kind: engine == "own" for kind, engine in engines.items()}
        shapes = {"E": (V, GH)}
        if own["logits"]:
            shapes["Pyt"] = (n.n_vp, H, NC)
        if own["wide"] and not n.bwd_in_place:
            shapes["Py"] = (n.n_hp, V, NC)
        for k in range(L):
            if own["forward"]:
                shapes[f"Pf{k}"] = (n.n_uf, H, n.NVF * n.W)
            if own["backward"] and not n.bwd_in_place:
                shapes[f"Pb{k}"] = (n.n_hp, GH, NC)
            if k > 0 and own["wide"]:
                shapes[f"Px{k}"] = (n.n_gp, H, NC)
                if not n.bwd_in_place:
                    shapes[f"Pd{k}"] = (n.n_hp, GH, NC)
        packed = {name: aligned_zeros(shape, dt) for name, shape in shapes.items()}
        address = {name: a.ctypes.data for name, a in packed.items()}     # NULL: not packed
        for k in range(L):
            n.Pf[k] = <void *> <size_t> address.get(f"Pf{k}", 0)
            n.Pb[k] = <void *> <size_t> address.get(f"Pb{k}", 0)
            n.Px[k] = <void *> <size_t> address.get(f"Px{k}", 0)
            n.Pd[k] = <void *> <size_t> address.get(f"Pd{k}", 0)
        n.E = <void *> <size_t> address["E"]
        n.Pyt = <void *> <size_t> address.get("Pyt", 0)
        n.Py = <void *> <size_t> address.get("Py", 0)
        return packed

    def _allocate_window(self):
        """The buffers of one (B, T) window (window.pxi)."""
        cdef Window *w = &self.w
        cdef Net *n = &self.net
        cdef Py_ssize_t L = n.L, V = n.V, H = n.H, GH = n.GH
        cdef Py_ssize_t B = self.batch_size, T = self.seq_length
        rows = (2 if self.cell == "lstm" else 1) * L
        shapes = {"hs": (L, T + 1, B, H), "ys": (L, T, B, H), "masks": (L, T, B, H),
                  "probs": (T, B, V), "dH": (2, T, B, H), "state_in": (rows, B, H),
                  "state_out": (rows, B, H), "loss": (T * B,)}
        if self.cell == "lstm":
            shapes.update(cs=(L, T + 1, B, H), dc_next=(B, H))
        if self.cell != "rnn":
            shapes.update(pre=(L, T, B, GH), aux=(L, T, B, H), da=(T, B, GH))
        if self.cell == "gru":
            shapes.update(da_h=(T, B, GH), dh_carry=(B, H))
        if n.eng_wide == OWN:
            shapes.update(rows_h=(n.n_hp, T * B, n.NC))
            if L > 1:
                shapes.update(rows_x=(n.n_hp, T * B, n.NC))
        self.buffers = {name: aligned_zeros(shape, np.float64 if name == "loss" else self.dtype,
                                            n.W) for name, shape in shapes.items()}
        w.net = n
        w.B, w.T = B, T
        w.hs = self.buffer_pointer("hs")
        w.cs = self.buffer_pointer("cs")
        w.pre = self.buffer_pointer("pre")
        w.aux = self.buffer_pointer("aux")
        w.ys = self.buffer_pointer("ys")
        w.masks = self.buffer_pointer("masks")
        w.probs = self.buffer_pointer("probs")
        w.da = self.buffer_pointer("da")
        w.da_h = self.buffer_pointer("da_h")
        w.dH = self.buffer_pointer("dH")
        w.dh_carry = self.buffer_pointer("dh_carry")
        w.rows_h = self.buffer_pointer("rows_h")
        w.rows_x = self.buffer_pointer("rows_x")
        w.dc_next = self.buffer_pointer("dc_next")
        w.state_in = self.buffer_pointer("state_in")
        w.state_out = self.buffer_pointer("state_out")
        w.loss = <double *> self.buffer_pointer("loss")
        w.grads_at, w.grad_sizes, w.n_grads = self.grad_pointers, self.grad_sizes, 0
        self.state_in = self.buffers["state_in"]
        self.state_out = self.buffers["state_out"]
        self.masks = self.buffers["masks"]

    cdef void *buffer_pointer(self, str name):
        """The data of buffer `name`; NULL for one this cell does not use."""
        a = self.buffers.get(name)
        return NULL if a is None else data_pointer(a)

    # ---- threads and scratch -------------------------------------------------------------
    cdef int threads_for(self, Py_ssize_t B):
        """How many threads a call of B streams may use (see `threads`)."""
        cdef Py_ssize_t H = self.hidden_size, work = B * GATES[self.cell] * H * H
        team = rnncore_team_size()
        if self.threads is not None:
            return max(1, min(int(self.threads), team))
        return team if work >= min_parallel_work else 1

    cdef void reserve_scratch(self, int threads, Py_ssize_t B):
        """Per-thread scratch for `threads` workers and calls of up to B streams."""
        cdef Net *n = &self.net
        cdef Py_ssize_t size = max(forward_scratch(n, max(B, self.batch_size)),
                                   forward_scratch(&self.gen_net, B),
                                   backward_scratch(n, self.batch_size),
                                   rnncore_tile_work_d(n.RT, n.NT) if self.is_double
                                   else rnncore_tile_work_f(n.RT, n.NT),
                                   n.RTD * n.n_vp * n.NC, n.V * n.SW)
        size = padded(size)
        if self.scratch is not None and threads <= self.scratch_threads and \
                size <= self.scratch.shape[1]:
            return
        threads = max(threads, self.scratch_threads)
        self.scratch = aligned_zeros((threads, size), self.dtype)
        self.dscratch = np.zeros((threads, 2 * n.V))
        self.scratch_threads = threads
        self.w.scratch = data_pointer(self.scratch)
        self.w.scratch_size = size

    # ---- binding ---------------------------------------------------------------------------
    cdef dict named(self, tuple arrays, str what, bint writable):
        """{name: array} of arrays in param_shapes's order (checked by the caller; again
        here in a debug build)."""
        if RNNCORE_DEBUG_CHECKS:
            debug_doorway().check_bound(self, arrays, what, writable)
        return dict(zip(param_shapes(self.cell, self.n_vocab, self.hidden_size,
                                     self.num_layers), arrays))

    cdef void point_at(self, dict named, void **Wxh, void **Whh, void **bh, void **bhn,
                       void **Why, void **by):
        """Fill the per-layer pointer arrays (and the decoder's two) from checked arrays."""
        cdef Py_ssize_t k
        for k in range(self.num_layers):
            s = "" if k == 0 else f"_l{k}"
            Wxh[k] = data_pointer(named["Wxh" + s])
            Whh[k] = data_pointer(named["Whh" + s])
            bh[k] = data_pointer(named["bh" + s])
            bhn[k] = data_pointer(named["bhn" + s]) if self.cell == "gru" else NULL
        Why[0] = data_pointer(named["Why"])
        by[0] = data_pointer(named["by"])

    def bind_params(self, tuple arrays):
        """Bind the parameter arrays, in param_shapes's order: C-contiguous arrays of the
        kernel's dtype and the shapes param_shapes gives (read-only is fine)."""
        named = self.named(arrays, "parameter", False)
        self.point_at(named, self.net.Wxh, self.net.Whh, self.net.bh, self.net.bhn,
                      &self.net.Why, &self.net.by)
        # generation's Net shares the per-layer pointer arrays; its decoder's are its own
        self.gen_net.Why, self.gen_net.by = self.net.Why, self.net.by
        self.bound_params = arrays

    def bind_grads(self, tuple arrays):
        """Bind the gradient output arrays, in param_shapes's order: as bind_params's, and
        writable."""
        cdef Py_ssize_t i
        named = self.named(arrays, "gradient", True)
        self.point_at(named, self.net.dWxh, self.net.dWhh, self.net.dbh, self.net.dbhn,
                      &self.net.dWhy, &self.net.dby)
        for i, a in enumerate(arrays):
            self.grad_pointers[i] = data_pointer(a)
            self.grad_sizes[i] = a.size
        self.w.n_grads = len(arrays)
        self.bound_grads = arrays

    # ---- the window ------------------------------------------------------------------------
    def run(self, const Py_ssize_t[:, ::1] inputs, const Py_ssize_t[:, ::1] targets,
            bint compute_grads=True, double clip=0.0, bint use_masks=False):
        """Forward (and, if compute_grads, backward) over one window.

        inputs, targets: (B, T) character indices in [0, V).  The state carried in is
        read from state_in; the last state is left in state_out.  With use_masks, every
        layer's output is multiplied by `masks` (already scaled).  Gradients (of
        Σ_t mean_b cross-entropy) overwrite the bound gradient arrays; clip > 0 clips them
        elementwise to [-clip, clip].  Returns the mean cross-entropy, nats per character.
        """
        cdef Py_ssize_t B = self.batch_size, T = self.seq_length, r
        if RNNCORE_DEBUG_CHECKS:
            if self.bound_params is None or (compute_grads and self.bound_grads is None):
                raise ValueError("bind_params (and bind_grads for gradients) before run")
            debug_doorway().check_run(self, inputs, targets, clip)
        cdef int threads = self.threads_for(B)
        self.reserve_scratch(threads, B)
        threads = min(threads, self.scratch_threads)
        cdef Window *w = &self.w
        w.inputs = &inputs[0, 0]
        w.targets = &targets[0, 0]
        w.use_masks = use_masks
        w.grads = compute_grads
        w.clip = clip
        cdef double loss = 0.0
        cdef bint uses_blas = "blas" in self.engines.values()
        with nogil:
            if uses_blas:
                rnncore_blas_enter()
            rnncore_team_run(window_program, w, threads)
            if uses_blas:
                rnncore_blas_leave()
            for r in range(B * T):
                loss += w.loss[r]
        w.inputs = w.targets = NULL
        return loss / (B * T)

    # ---- generation ------------------------------------------------------------------------
    cdef object prepare_gen(self, Gen *g, object state, Py_ssize_t B):
        """Fill g for B streams of `state`; returns the arrays it points into (keep them
        alive through the call)."""
        rows = (2 if self.cell == "lstm" else 1) * self.num_layers
        other = np.zeros((rows, B, self.hidden_size), self.dtype)
        pre = np.zeros((B, GATES[self.cell] * self.hidden_size), self.dtype)
        memset(g, 0, sizeof(Gen))
        g.net = &self.gen_net
        g.B = B
        g.state = data_pointer(state)
        g.other = data_pointer(other)
        g.pre = data_pointer(pre)
        g.scratch = data_pointer(self.scratch)
        g.scratch_size = self.w.scratch_size
        g.dscratch = <double *> data_pointer(self.dscratch)
        return other, pre

    cdef object prepare_feed(self, Gen *g, Py_ssize_t B):
        """g's buffers for feeding B streams layer after layer (generate.pxi's
        feed_program); returns them (keep them alive through the call)."""
        chunk = max(1, FEED_ROWS // B)
        rows = chunk * B if self.num_layers > 1 else 1
        hist = np.zeros((rows, self.hidden_size), self.dtype)
        pre_rows = np.zeros((rows, GATES[self.cell] * self.hidden_size), self.dtype)
        g.feed_chunk = chunk
        g.hist = data_pointer(hist)
        g.pre_rows = data_pointer(pre_rows)
        return hist, pre_rows

    cdef int gen_threads(self, Py_ssize_t B):
        cdef int threads = self.threads_for(B)
        self.reserve_scratch(threads, B)
        return min(threads, self.scratch_threads)

    cdef void run_generation(self, Gen *g, int op, Py_ssize_t n_steps, int threads):
        """Run generation program `op` over g on the team (without the GIL)."""
        cdef GenCall call
        cdef bint uses_blas = "blas" in self.gen_engines.values()
        call.g, call.n_steps, call.op = g, n_steps, op
        with nogil:
            if uses_blas:
                rnncore_blas_enter()
            rnncore_team_run(self.generate_run, &call, threads)
            if uses_blas:
                rnncore_blas_leave()

    def advance(self, const Py_ssize_t[:, ::1] chars, state):
        """Feed chars[i, b] to stream b of `state` (S·L, B, H) at step i, for every row i
        of chars (n, B), in place.  Never drops out."""
        if RNNCORE_DEBUG_CHECKS:
            debug_doorway().check_advance(self, chars, state)
        cdef Py_ssize_t B = state.shape[1], n = chars.shape[0]
        if n == 0:
            return
        cdef Gen g
        cdef int threads = self.gen_threads(B)
        keep = self.prepare_gen(&g, state, B), self.prepare_feed(&g, B)
        g.chars = &chars[0, 0]
        self.run_generation(&g, FEED, n, threads)

    def feed(self, const Py_ssize_t[::1] chars, state):
        """Feed the characters `chars` in order to every stream of `state` (S·L, B, H),
        in place.  Never drops out."""
        if RNNCORE_DEBUG_CHECKS:
            debug_doorway().check_feed(self, chars, state)
        cdef Py_ssize_t B = state.shape[1], n = chars.shape[0]
        if n == 0:
            return
        self.advance(np.ascontiguousarray(np.broadcast_to(
            np.asarray(chars)[:, None], (n, B))), state)

    def sample_rows(self, state, Py_ssize_t[:, ::1] out, const double[:, ::1] uniforms,
                    const double[::1] temperature, const Py_ssize_t[::1] top_k,
                    const double[::1] top_p):
        """Generate out.shape[0] characters for each of the B streams of `state`
        (S·L, B, H), into out (n, B), advancing the state in place past every character
        generated (so a further call continues the streams), each stream with settings of
        its own: temperature (B,) (0: greedy, else > 0), top_k (B,) (0: all), top_p (B,)
        in (0, 1] (1: all; below 1, nucleus sampling).  The first character is predicted
        from the state as given.  uniforms (n, B): one number in [0, 1) per character,
        unused where greedy.  Never drops out."""
        if RNNCORE_DEBUG_CHECKS:
            debug_doorway().check_sample_rows(self, state, out, uniforms, temperature,
                                              top_k, top_p)
        cdef Py_ssize_t B = state.shape[1], n = out.shape[0]
        if n == 0:
            return
        cdef Gen g
        cdef int threads = self.gen_threads(B)
        keep = self.prepare_gen(&g, state, B)
        g.out = &out[0, 0]
        g.uniforms = &uniforms[0, 0]
        g.temperature, g.top_k, g.top_p = &temperature[0], &top_k[0], &top_p[0]
        self.run_generation(&g, SAMPLE, n, threads)

    def feed_rows(self, const Py_ssize_t[:, ::1] chars, const Py_ssize_t[::1] starts,
                  state):
        """Feed stream b of `state` (S·L, B, H) the characters chars[b, starts[b]:] in
        place, all B streams advanced as one batch: chars (B, P) holds every stream's
        text right-aligned (what stands before starts[b] is padding, never fed: it must
        still be a valid index).  Different texts, one batch; no step is spent on
        padding.  Never drops out."""
        if RNNCORE_DEBUG_CHECKS:
            debug_doorway().check_feed_rows(self, chars, starts, state)
        cdef Py_ssize_t B = state.shape[1], P = chars.shape[1]
        if P == 0:
            return
        order = np.argsort(np.asarray(starts), kind="stable").astype(np.intp)
        sorted_starts = np.ascontiguousarray(np.asarray(starts)[order])
        if sorted_starts[0] >= P:
            return
        cdef Gen g
        cdef int threads = self.gen_threads(B)
        work = np.zeros_like(state)                     # the streams, in order of start
        keep = self.prepare_gen(&g, work, B), self.prepare_feed(&g, B)
        xs = np.zeros(B, np.intp)
        g.text, g.P = &chars[0, 0], P
        g.order = <const Py_ssize_t *> data_pointer(order)
        g.sorted_starts = <const Py_ssize_t *> data_pointer(sorted_starts)
        g.xs = <Py_ssize_t *> data_pointer(xs)
        g.given = data_pointer(state)
        self.run_generation(&g, TEXTS, 0, threads)

    def next_probs(self, state, double[:, ::1] out):
        """out (B, V) = the next-character distribution of every stream of `state`
        (S·L, B, H): softmax(Why·h + by) of its top layer's h, in float64."""
        if RNNCORE_DEBUG_CHECKS:
            debug_doorway().check_next_probs(self, state, out)
        cdef Py_ssize_t B = state.shape[1]
        cdef Gen g
        cdef int threads = self.gen_threads(B)
        keep = self.prepare_gen(&g, state, B)
        g.probs = &out[0, 0]
        self.run_generation(&g, NEXT, 0, threads)

    def beam(self, state, Py_ssize_t[:, ::1] out, double[::1] scores):
        """Beam search of width K = out.shape[0] for n = out.shape[1] characters, from the
        one-stream state (S·L, 1, H) (left as it was).  Writes the best beams' characters
        to out (K, n) and their total log-probabilities (nats) to scores (K,), best first;
        returns how many beams there are (min(K, V**n); rows after them are untouched).
        The next character of a beam is predicted from its state, exactly as sample()
        predicts it; never drops out."""
        if RNNCORE_DEBUG_CHECKS:
            debug_doorway().check_beam(self, state, out, scores)
        cdef Py_ssize_t K = out.shape[0], n = out.shape[1], V = self.n_vocab
        cdef Py_ssize_t H = self.hidden_size, rows = state.shape[0], b, i, p, m
        if n == 0:
            return 0
        # the live beams are the first m of (S·L, K, H); the first one is given
        live = np.zeros((rows, K, H), self.dtype)
        live[:, 0] = state[:, 0]
        logits = np.zeros((K, V))
        history = np.zeros((3, n, K), np.intp)        # chars, parents, live counts
        cdef Candidate *cands = <Candidate *> PyMem_Malloc(K * V * sizeof(Candidate))
        if cands == NULL:
            raise MemoryError()
        cdef Gen g
        cdef int threads
        cdef Py_ssize_t *hist = <Py_ssize_t *> data_pointer(history)
        try:
            threads = self.gen_threads(K)
            keep = self.prepare_gen(&g, live, K)
            g.scores = &scores[0]
            g.logits = <double *> data_pointer(logits)
            g.cands = cands
            g.beam_chars = hist
            g.parents = hist + n * K
            g.live = hist + 2 * n * K
            scores[0] = 0.0
            self.run_generation(&g, BEAM, n, threads)
            with nogil:
                # follow each surviving beam back through its parents
                m = g.live[n - 1]
                for b in range(m):
                    p = b
                    i = n - 1
                    while i >= 0:
                        out[b, i] = hist[i * K + p]
                        p = hist[n * K + i * K + p]
                        i -= 1
        finally:
            PyMem_Free(cands)
        return m

    def word_beam(self, state, const unsigned char[::1] is_sep,
                  const unsigned char[::1] started, Py_ssize_t beam,
                  Py_ssize_t[:, :, ::1] out, Py_ssize_t[:, ::1] out_len,
                  double[:, ::1] out_scores, bint fixed_length=False):
        """R word searches of width `beam`, one per stream of `state` (S·L, R, H) (left as
        it was), advanced as one batch: the most probable completions of the word being
        typed, each ending in a separator (is_sep (V,): 1 for a separator character).
        started (R,): 1 where the text ends inside a word (a separator then ends it at
        once), 0 where it ends in a separator or is empty (separators may then lead into
        the word).  out (R, kf, n): search r's kf best completions of at most n characters
        that spell different words (each word in its most probable spelling: separators
        may lead into it), the ending separator not included, best first, their lengths
        in out_len (R, kf) and log-probabilities in nats, the ending separator's
        included, in out_scores (R, kf).  Returns an (R,) array: how many each search found (rows after them are
        untouched).  fixed_length: R plain beam searches for exactly n characters
        instead (is_sep and started unused; kf <= beam best beams each).  See
        generate.pxi's word_select."""
        if RNNCORE_DEBUG_CHECKS:
            debug_doorway().check_word_beam(self, state, is_sep, started, beam, out, out_len,
                                            out_scores, fixed_length)
        cdef Py_ssize_t R = state.shape[1], K = beam, kf = out.shape[1]
        cdef Py_ssize_t n = out.shape[2], V = self.n_vocab, H = self.hidden_size
        cdef Py_ssize_t rows = state.shape[0], r, b, i, p, m, j
        cdef Py_ssize_t RK = R * K, n_hist = max(n, 1)
        cdef int threads = self.gen_threads(RK)
        # the batch: up to R·K live beams, the R texts' states first
        batch = np.zeros((rows, RK, H), self.dtype)
        batch[:, :R] = state
        logits = np.zeros((RK, V))
        scores = np.zeros((2, R, K))
        flags = np.zeros((2, R, K), np.uint8)
        flags[0, :, 0] = started
        live = np.zeros((n + 2, R), np.intp)
        live[0] = 1
        total = np.zeros(n + 2, np.intp)
        total[0] = R
        history = np.zeros((2, R, n_hist, K), np.intp)     # chars, parents
        rows_of = np.zeros(RK, np.intp)                     # the kept beams' parents' rows
        xs = np.zeros(RK, np.intp)
        finished = np.zeros((2, R, kf), np.intp)            # steps, beams
        counts = np.zeros(R, np.intp)
        cdef Candidate *cands = <Candidate *> PyMem_Malloc(
            threads * K * V * sizeof(Candidate))
        if cands == NULL:
            raise MemoryError()
        cdef Gen g
        cdef WordBeam s
        cdef Py_ssize_t *hist = <Py_ssize_t *> data_pointer(history)
        cdef Py_ssize_t *fin = <Py_ssize_t *> data_pointer(finished)
        s.R, s.K, s.kf, s.n = R, K, kf, n
        s.fixed = fixed_length
        s.is_sep = &is_sep[0]
        s.has_sep = any(is_sep)
        s.scores = <double *> data_pointer(scores)
        s.started = <unsigned char *> data_pointer(flags)
        s.live = <Py_ssize_t *> data_pointer(live)
        s.total = <Py_ssize_t *> data_pointer(total)
        s.chars, s.parents = hist, hist + R * n_hist * K
        s.xs = <Py_ssize_t *> data_pointer(xs)
        s.cands = cands
        s.fin_scores = &out_scores[0, 0]
        s.fin_step, s.fin_beam = fin, fin + R * kf
        s.n_fin = <Py_ssize_t *> data_pointer(counts)
        try:
            keep = self.prepare_gen(&g, batch, RK)
            g.logits = <double *> data_pointer(logits)
            g.parents = <Py_ssize_t *> data_pointer(rows_of)
            g.word = &s
            self.run_generation(&g, WORDS, n, threads)
            with nogil:
                # follow every finished word back through its parents
                for r in range(R):
                    for b in range(s.n_fin[r]):
                        m = s.fin_step[r * kf + b]
                        out_len[r, b] = m
                        p = s.fin_beam[r * kf + b]
                        i = m - 1
                        while i >= 0:
                            out[r, b, i] = s.chars[(r * n + i) * K + p]
                            p = s.parents[(r * n + i) * K + p]
                            i -= 1
        finally:
            PyMem_Free(cands)
        return counts


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
