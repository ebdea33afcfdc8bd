"""Only what pyproject.toml cannot say: the compiled kernels.

RNNCORE_CYTHON_DEBUG=1 builds them with bounds and initialisation checks on, for a test
run that hunts for indexing bugs; the normal build leaves every check to the Python-visible
wrappers, which validate before entering nogil code.
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("RNNCORE_CYTHON_DEBUG") == "1"
directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": True,
}

kernels = Extension(
    "rnncore._kernels",
    sources=["pyx/_kernels.pyx"],
    # -fno-math-errno: libm calls need not set errno, so gcc may inline sqrt
    extra_compile_args=["-O3", "-fno-math-errno"],
)

setup(ext_modules=cythonize([kernels], compiler_directives=directives))
