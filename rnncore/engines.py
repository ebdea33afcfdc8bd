"""Which engine runs each kind of matrix product: rnncore's own micro-kernel or scipy's BLAS.

Every product of the training window and of generation runs on one of two engines
(pyx/net.pxi): `own`, rnncore's register-blocked micro-kernel over packed panels
(csrc/gemm.h), or `blas`, scipy's BLAS through scipy.linalg.cython_blas, one
single-threaded call per tile of the same thread team (pyx/blas.pxd).  Both keep the
promises: the same bits on any number of threads, bit-exact resume, the reference's values.
The products come in four kinds:

  forward   the recurrent product of a forward step (h_{t-1} · Whhᵀ), training and generation
  backward  the recurrent product of a backward step (da_{t+1} · Whh)
  wide      the products over many rows: a deeper layer's input projection, the decoder's
            gradients, the weight gradients, the gradient into the layer below
  logits    the decoder's logits (h · Whyᵀ), training and generation

The setting (`RNNCORE_GEMM` in the environment, or set_gemm_engine) is `own`, `blas` or
`auto` (the default).  `auto` is a fixed rule of this release's, a table decided by
measurement (bench/engines.py and bench/products.py, recorded in docs/engines.md and
docs/products.md), never a timing taken while the user's program runs, so a run gives the
same bits every time.  For a training window it looks at the micro-kernel and at the
window's number of streams: where the micro-kernel is the generic C one (no AVX2:
aarch64, ppc64le, old x86) every window runs on BLAS, whose OpenBLAS has kernels for those
CPUs; on AVX2 and AVX-512 the table below.  Generation (feeding, sampling, beams,
predictive text) keeps to the micro-kernel under `auto` on every CPU, whatever its number
of streams: it reads the weights once for the whole batch.  On either engine a stream's
answer is the same bits alone or in a batch of any size and mix: the micro-kernel sums
every element in the same order whatever the number of rows; a BLAS sums a row
differently by the size of the product (OpenBLAS does, measured), so generation calls it
one row at a time (a matrix-vector product per stream), which costs a batch the weights'
reuse: the reason auto does not choose it for generation.

A kernel fixes its engines when it is built; rnncore.CharRNN keeps one kernel per setting,
so set_gemm_engine takes effect at the next call.
"""
import os

ENGINES = ("own", "blas")
SETTINGS = ENGINES + ("auto",)
KINDS = ("forward", "backward", "wide", "logits")

#: auto's table: for a training window on each micro-kernel, in each dtype, the largest
#: number of streams whose window runs every product on BLAS, by cell (the rest run on
#: the micro-kernel).  From bench/engines.py (docs/engines.md) and bench/run.py
#: (docs/bench.md) on a 2-core AMD EPYC (Zen 4, family 25 model 17), the micro-kernel and
#: scipy's OpenBLAS 0.3.30 held to the same instruction set.  One stream's window of a
#: gated cell ran 5-20% faster on BLAS's matrix-vector products in float64 (AVX2 and
#: AVX-512) and, for the LSTM, in float32 on AVX2; one stream of the vanilla cell, and
#: of the GRU in float32 on AVX2, 13% faster on the micro-kernel, as was every float32
#: window of one stream on AVX-512; two or more streams ran as fast or faster on the
#: micro-kernel everywhere (1.0-4.7× with AVX2, 1.0-1.6× with AVX-512, the most at 32).
#: None: every window on BLAS (the generic micro-kernel is plain C).
AUTO_BLAS_STREAMS = {
    "avx512": {"float64": {"lstm": 1, "gru": 1, "rnn": 0},
               "float32": {"lstm": 0, "gru": 0, "rnn": 0}},
    "avx2": {"float64": {"lstm": 1, "gru": 1, "rnn": 0},
             "float32": {"lstm": 1, "gru": 0, "rnn": 0}},
    "generic": None,
}

_setting = None          # None: not read yet


def _from_environment():
    value = os.environ.get("RNNCORE_GEMM", "").strip().lower() or "auto"
    if value not in SETTINGS:
        import sys
        sys.stderr.write(f"rnncore: warning: RNNCORE_GEMM={value} is not one of own, blas, "
                         f"auto; using auto\n")
        value = "auto"
    return value


def get_gemm_engine():
    """The setting: "own", "blas" or "auto"."""
    global _setting
    if _setting is None:
        _setting = _from_environment()
    return _setting


def set_gemm_engine(name):
    """Run the products of the calls from now on with `name`: "own" (rnncore's
    micro-kernel), "blas" (scipy's BLAS) or "auto" (this release's rule, see the module)."""
    global _setting
    if name not in SETTINGS:
        raise ValueError(f"the product engine must be one of own, blas, auto, got {name!r}")
    _setting = name


def engines_for(micro_kernel, setting=None, use="window", streams=1, cell="lstm",
                dtype="float64"):
    """{kind: "own" | "blas"} for a kernel on this `micro_kernel` ("avx512", "avx2",
    "generic") under `setting` (None: the current one), for `use`: "window" (training and
    evaluation of a `cell` in `dtype`, of `streams` streams) or "generation" (feeding,
    sampling, beams, predictive text: any number of streams, always the same engines)."""
    setting = get_gemm_engine() if setting is None else setting
    if setting not in SETTINGS:
        raise ValueError(f"the product engine must be one of own, blas, auto, got {setting!r}")
    if setting == "auto":
        if use == "generation":
            setting = "own"
        else:
            table = AUTO_BLAS_STREAMS.get(micro_kernel)
            limit = None if table is None else table[str(dtype)][cell]
            setting = "blas" if limit is None or streams <= limit else "own"
    return dict.fromkeys(KINDS, setting)


def describe_auto(micro_kernel):
    """auto's rule on this micro-kernel, in words."""
    table = AUTO_BLAS_STREAMS.get(micro_kernel)
    if table is None:
        return "training windows on BLAS, generation on the micro-kernel"
    on_blas = [f"{dtype}: {', '.join(cell for cell, limit in cells.items() if limit)}"
               for dtype, cells in table.items() if any(cells.values())]
    if not on_blas:
        return "every product on the micro-kernel"
    return (f"one-stream training windows on BLAS ({'; '.join(on_blas)}), the rest and "
            "generation on the micro-kernel")
