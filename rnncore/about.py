"""What this install of rnncore runs on: the maths path of its kernels (libmvec or scalar
libm, chosen at run time: pyx/vecmath.h), the micro-kernel its products run on (chosen at
run time: csrc/gemm.h), its thread team, and which engine runs each kind of product
(rnncore.engines) with the BLAS that the BLAS engine calls.  `rnncore --version` prints
it."""
import argparse

from . import __version__

MICRO_KERNELS = {"avx512": "AVX-512", "avx2": "AVX2", "generic": "generic (plain C)"}


def kernels_description():
    """'AVX-512 micro-kernel, 2 threads' and the like."""
    from . import _cells
    from .threads import get_num_threads

    n = get_num_threads()
    return (f"{MICRO_KERNELS.get(_cells.MICROKERNEL, _cells.MICROKERNEL)} micro-kernel, "
            f"{n} thread{'s' if n > 1 else ''}")


def engines_description():
    """'auto: forward, backward, wide, logits on the micro-kernel; BLAS: OpenBLAS …' and
    the like: which engine each kind of product runs on under the current setting."""
    from . import _cells, engines

    setting = engines.get_gemm_engine()
    chosen = engines.engines_for(_cells.MICROKERNEL, setting)
    names = {"own": "the micro-kernel", "blas": "BLAS"}
    groups = {engine: [kind for kind in engines.KINDS if chosen[kind] == engine]
              for engine in engines.ENGINES}
    parts = [f"{', '.join(kinds)} on {names[engine]}" for engine, kinds in groups.items()
             if kinds]
    held = "" if _cells.BLAS_THREADS_HELD else ", its threads not held"
    return f"{setting}: {'; '.join(parts)} (BLAS: scipy's {_cells.BLAS_LIBRARY}{held})"


def version_report():
    from . import _cells  # where the cells' tanh, sigmoid and exp run

    return (f"rnncore {__version__}\n"
            f"maths: {_cells.MATHS}\n"
            f"kernels: {kernels_description()}\n"
            f"products: {engines_description()}")


class ReportVersion(argparse.Action):
    """--version: the report above, built only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show the version, the maths path, the micro-kernel and the product "
                 "engines in use, and exit"):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_report())
        parser.exit()
