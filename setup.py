"""Only what pyproject.toml cannot say: the compiled kernels and how they are built.

Every extension module is listed in KERNEL_MODULES and built the same way: with
csrc/vecmath.c (the run-time choice of libmvec, see pyx/vecmath.h) and the same flags.

Release builds (the default) are optimised, carry no debug information, are stripped, and
name no folder of the build machine (no RUNPATH), so that `auditwheel repair` can tag the
wheel manylinux (docs/development.md, "Building the wheel").

RNNCORE_CYTHON_DEBUG=1 builds them with bounds and initialisation checks on and with
debug information, unstripped, and with the entry points checking their arguments again
(RNNCORE_DEBUG_CHECKS: rnncore.doorway's checks), for a test run that hunts for indexing
bugs; the normal build leaves every check to the Python layer (rnncore/model.py,
rnncore/doorway.py), which validates before the compiled code is entered.

RNNCORE_SYMBOLS=1 keeps the release build's optimisation and adds symbols and debug
information, for profiling (`perf report` names the kernels' functions).

RNNCORE_LIBMVEC=0 builds the loops of pyx/vecmath.h with scalar libm only (no vector ABI);
RNNCORE_VECMATH=scalar does the same at run time without rebuilding.
"""
import os
import platform
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# every compiled module and the hand-written C it links, built alike (everything below);
# they share pyx/kernel_maths.pxd and pyx/vecmath.h, and each links its own copy of
# csrc/vecmath.c
KERNEL_MODULES = {
    "rnncore._kernels": ["pyx/_kernels.pyx"],                        # optimizer updates
    # every cell's window and generation, on the thread team and the micro-kernel
    # (and, as the second engine, scipy's BLAS through scipy.linalg.cython_blas)
    "rnncore._cells": ["pyx/_cells.pyx", "csrc/team.c", "csrc/gemm.c", "csrc/blas_threads.c"],
}

debug = os.environ.get("RNNCORE_CYTHON_DEBUG") == "1"
directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": True,
}

# -fno-math-errno: libm calls need not set errno, so gcc may inline sqrt and vectorise;
# -fopenmp-simd: the `omp simd` loops of vecmath.h, without the OpenMP runtime
compile_args = ["-O3", "-fno-math-errno", "-fopenmp-simd", "--param=vect-max-version-for-alias-checks=64"]
link_args, macros = [], []
if os.environ.get("RNNCORE_SYMBOLS") == "1":
    compile_args.append("-g")   # a release build that perf can name functions in
elif not debug:
    compile_args.append("-g0")  # Python's own CFLAGS say -g
    link_args.append("-s")
if debug:
    macros.append(("RNNCORE_DEBUG_CHECKS", "1"))
if os.environ.get("RNNCORE_LIBMVEC", "1") == "0":
    macros.append(("RNNCORE_NO_LIBMVEC", "1"))
if sys.platform.startswith("linux"):
    compile_args.append("-pthread")   # the thread team (csrc/team.c)
    link_args.append("-pthread")
    if platform.machine() == "x86_64" and platform.libc_ver()[0] == "glibc":
        compile_args += ["-include", "pyx/glibc_compat.h"]


class BuildWithoutRunpath(build_ext):
    """Python's LDSHARED carries its configure-time -Wl,-rpath,<its lib folder> (a
    --enable-shared build): a folder of the build machine that would end up in the
    module's RUNPATH.  The module needs none: libpython is already loaded."""

    def build_extensions(self):
        for attr in ("linker_so", "linker_so_cxx"):
            command = getattr(self.compiler, attr, None)
            if command:
                setattr(self.compiler, attr,
                        [a for a in command if not a.startswith(("-Wl,-rpath", "-Wl,-R"))])
        super().build_extensions()


extensions = [
    Extension(
        name,
        sources=sources + ["csrc/vecmath.c"],
        include_dirs=["pyx", "csrc"],
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for name, sources in KERNEL_MODULES.items()
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives,
                            include_path=["pyx"]),
      cmdclass={"build_ext": BuildWithoutRunpath})
