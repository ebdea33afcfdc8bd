"""What this install of rnncore runs on: the maths path of its kernels (libmvec or scalar
libm, chosen at run time: pyx/vecmath.h) and the BLAS they call.  `rnncore --version`
prints it."""
import argparse
import os

from . import __version__


def blas_description():
    """The BLAS behind scipy.linalg.cython_blas, which is what the kernels call (numpy may
    load a BLAS of its own beside it: that one does not count here)."""
    import scipy
    import threadpoolctl

    from . import _cells  # noqa: F401  (loads scipy's BLAS, if nothing has yet)

    blas = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    in_scipy = [lib for lib in blas
                if "scipy" in os.path.basename(os.path.dirname(lib["filepath"]))]
    chosen = in_scipy or blas
    if not chosen:
        return f"scipy {scipy.__version__}'s (threadpoolctl cannot see which)"
    lib = chosen[0]
    name = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}.get(
        lib["internal_api"], lib["internal_api"])
    details = [f"{lib['architecture']} kernels"] if lib.get("architecture") else []
    details.append(f"{lib['num_threads']} thread(s)")
    return (f"{name} {lib.get('version') or ''} from scipy {scipy.__version__} "
            f"({', '.join(details)}): {lib['filepath']}").replace("  ", " ")


def version_report():
    from . import _cells  # where the cells' tanh, sigmoid and exp run

    return (f"rnncore {__version__}\n"
            f"maths: {_cells.MATHS}\n"
            f"BLAS:  {blas_description()}")


class ReportVersion(argparse.Action):
    """--version: the report above, built only when asked for (it loads the BLAS)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show the version, the maths path and the BLAS in use, and exit"):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_report())
        parser.exit()
