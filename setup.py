"""Only what pyproject.toml cannot say: the compiled kernels.

RNNCORE_CYTHON_DEBUG=1 builds them with bounds and initialisation checks on, for a test
run that hunts for indexing bugs; the normal build leaves every check to the Python-visible
wrappers, which validate before entering nogil code.

RNNCORE_LIBMVEC=0 turns off glibc's vector tanh/exp (pyx/vecmath.h), which is used by
default where it exists: x86-64 Linux, glibc >= 2.35, gcc.
"""
import os
import platform
import sys
import sysconfig

from Cython.Build import cythonize
from setuptools import Extension, setup


def libmvec_available():
    if os.environ.get("RNNCORE_LIBMVEC", "1") == "0":
        return False
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return False
    lib, version = platform.libc_ver()
    if lib != "glibc" or tuple(int(p) for p in version.split(".")[:2]) < (2, 35):
        return False
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or ""
    return "clang" not in compiler  # clang does not map `omp declare simd` onto libmvec


debug = os.environ.get("RNNCORE_CYTHON_DEBUG") == "1"
directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": True,
}

# -fno-math-errno: libm calls need not set errno, so gcc may inline sqrt and vectorise
compile_args = ["-O3", "-fno-math-errno"]
macros, libraries = [], []
if libmvec_available():
    compile_args.append("-fopenmp-simd")
    macros.append(("RNNCORE_USE_LIBMVEC", "1"))
    libraries.append("mvec")

# every compiled module, built alike; they share pyx/kernel_maths.pxd and pyx/vecmath.h
KERNEL_MODULES = {
    "rnncore._kernels": "pyx/_kernels.pyx",   # optimizer updates
    "rnncore._cells": "pyx/_cells.pyx",       # every cell's window and generation
}

extensions = [
    Extension(name, sources=[source], include_dirs=["pyx"], define_macros=macros,
              libraries=libraries, extra_compile_args=compile_args)
    for name, source in KERNEL_MODULES.items()
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives,
                            include_path=["pyx"]))
