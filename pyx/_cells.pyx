# cython: language_level=3
"""Compiled kernels of every cell (rnn, lstm, gru) and depth: the training window (forward,
softmax cross-entropy, backward, clipping) and generation (feeding, sampling, the
next-character distribution, beam search, the word beam), run on the process's thread
team.

What Python sees: Weights (a model's parameters, bound once, read by all its kernels),
WindowKernel (the window of one (B, T) shape and its buffers), GenerationKernel and the
generation programs that run on it (advance, feed, feed_rows, sample_rows, next_probs,
beam, word_beam), the team's settings, and for benchmarks and tests the FMA peak and the
products alone.  Everything they are handed is trusted: the Python layer checks it first
(rnncore/model.py, rnncore/doorway.py), and a RNNCORE_CYTHON_DEBUG=1 build checks it again.

The files, each a layer of the design: the .pxd files are contracts (the C it calls, and
the one fused wrapper per C function that picks its dtype), the .pxi files this module's
implementation, included here in order:
  team.pxd      csrc/team.c: the persistent thread team, its phases and tiles
  gemm.pxd      csrc/gemm.c: the register-blocked micro-kernel over packed panels
  blas.pxd      scipy's BLAS on rnncore's row-major arrays, and csrc/blas_threads.c
  cellmath.pxd, kernel_maths.pxd  the cells' elementwise maths; tanh, sigmoid, exp
  net.pxi       the model as the kernels see it (Net), its tiling, its weights' packing
  step.pxi      one step of one layer as tiles of hidden units; the products over many rows
  window.pxi    the training window as one program of phases
  gen_stack.pxi generation's machinery: the stack stepped over a batch of streams
  gen_feed.pxi, gen_sample.pxi, gen_next.pxi, gen_beam.pxi, gen_words.pxi: its programs,
                one each (its struct, its tiles, its phases, its entry);
                gen_candidates.pxi what the two beams share
  weights.pxi   Weights, and building a kernel's Net and panels
  window_kernel.pxi, generation_kernel.pxi  the kernels as Python sees them
  products.pxi  the FMA peak and the products alone
Every computation is written once over Cython's fused type `floating`; the dtype is chosen
in one place, below: the tile functions the team calls, one per dtype (a kernel takes its
dtype's when it is built).  A program itself is dtype-free.
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
from blas cimport gemm_rm, rnncore_blas_bind, rnncore_blas_get_threads_t, \
    rnncore_blas_set_threads_t, rnncore_blas_enter, rnncore_blas_leave, rnncore_blas_threads
from team cimport (RNNCORE_MAX_THREADS, rnncore_crew, rnncore_phase, rnncore_program,
                   rnncore_tile, rnncore_team_set_size, rnncore_team_size, rnncore_team_run,
                   rnncore_team_steals, rnncore_team_sleeps)

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


include "net.pxi"
include "step.pxi"
include "window.pxi"
include "gen_stack.pxi"
include "gen_candidates.pxi"
include "weights.pxi"
include "window_kernel.pxi"
include "generation_kernel.pxi"
include "gen_feed.pxi"
include "gen_sample.pxi"
include "gen_next.pxi"
include "gen_beam.pxi"
include "gen_words.pxi"
include "products.pxi"

#: This module's maths path (vecmath.c chooses per module, at import): what
#: `rnncore --version` reports, since the cells' tanh, sigmoid and exp run here
MATHS, USES_LIBMVEC = vecmath_choice(True)

if rnncore_gemm_setting_error() != NULL:
    import sys
    sys.stderr.write(f"rnncore: warning: {rnncore_gemm_setting_error().decode()}; using "
                     f"{rnncore_gemm_isa().decode()}\n")

#: Which micro-kernel the products run on: "avx512", "avx2" or "generic" (csrc/gemm.h)
MICROKERNEL = rnncore_gemm_isa().decode()

#: Where the thread controls of the BLAS engine's library are and what they are called:
#: OpenBLAS as scipy's wheels prefix its names, as ILP64 builds suffix them, as system
#: builds leave them; MKL.  (get threads, set threads, config, core name, vendor)
BLAS_CONTROLS = [
    (f"{p}openblas_get_num_threads{s}", f"{p}openblas_set_num_threads{s}",
     f"{p}openblas_get_config{s}", f"{p}openblas_get_corename{s}", "OpenBLAS")
    for s in ("", "64_") for p in ("scipy_", "")] + [
    ("MKL_Get_Max_Threads", "MKL_Set_Num_Threads", None, None, "MKL")]


def locate_blas():
    """Bind the thread controls of the BLAS that scipy's cython_blas calls (found, as
    threadpoolctl finds them, among that loaded module's dependencies; numpy's own copy of
    OpenBLAS is another library) and say what it is: (held, e.g. "OpenBLAS 0.3.31 (Haswell
    kernels)")."""
    import ctypes
    import scipy.linalg.cython_blas as cython_blas
    try:    # the module is loaded: RTLD_NOLOAD only hands out a handle whose lookups search
        lib = ctypes.CDLL(cython_blas.__file__, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        lib = None
    for get, set_, config, core, vendor in BLAS_CONTROLS:
        if lib is None or not (hasattr(lib, get) and hasattr(lib, set_)):
            continue
        rnncore_blas_bind(<rnncore_blas_get_threads_t> <size_t> ctypes.cast(
                              getattr(lib, get), ctypes.c_void_p).value,
                          <rnncore_blas_set_threads_t> <size_t> ctypes.cast(
                              getattr(lib, set_), ctypes.c_void_p).value)
        if config and hasattr(lib, config) and hasattr(lib, core):
            getattr(lib, config).restype = getattr(lib, core).restype = ctypes.c_char_p
            # "OpenBLAS 0.3.31 DYNAMIC_ARCH ...": its first two words
            words = getattr(lib, config)().decode(errors="replace").split(" ")[:2]
            return True, f"{' '.join(words)} ({getattr(lib, core)().decode()} kernels)"
        return True, vendor
    rnncore_blas_bind(NULL, NULL)
    return False, "a BLAS without known thread controls"


#: Whether the BLAS engine's library was found with its thread controls, and what it is
#: (csrc/blas_threads.h): the library scipy's cython_blas calls
BLAS_THREADS_HELD, BLAS_LIBRARY = locate_blas()


# ---------------------------------------------------------------------------------------
# The dtype, chosen here: the team calls a tile as tile(job, index, thread); each calls
# its fused body with the thread's scratch, whose type picks the body's dtype.
# ---------------------------------------------------------------------------------------

cdef void window_tile_f(void *job, long tile, int thread) noexcept nogil:
    window_tile(<float *> scratch_of((<Job *> job).w, thread), <Job *> job, tile)

cdef void window_tile_d(void *job, long tile, int thread) noexcept nogil:
    window_tile(<double *> scratch_of((<Job *> job).w, thread), <Job *> job, tile)

cdef void stack_tile_f(void *st, long tile, int thread) noexcept nogil:
    stack_tile(<float *> stack_scratch(<Stack *> st, thread), <Stack *> st, tile, thread)

cdef void stack_tile_d(void *st, long tile, int thread) noexcept nogil:
    stack_tile(<double *> stack_scratch(<Stack *> st, thread), <Stack *> st, tile, thread)


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
