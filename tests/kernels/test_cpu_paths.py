"""The SSE2 and AVX2 builds of the vector maths, run for real on emulated CPUs.

vecmath.h's loops are compiled three times (target_clones) and the CPU picks one at load
time, so on an AVX-512 machine the other two never run.  qemu-user emulates an x86-64
without AVX2 (SandyBridge: the SSE2 clone) and one with AVX2 but no AVX-512 (max: the AVX2
clone); the kernel tests run under each.  Skipped where qemu-x86_64 is not installed
(Debian: apt-get install qemu-user).
"""
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rnncore

QEMU = shutil.which("qemu-x86_64")
TESTS = Path(__file__).resolve().parent
KERNEL_TESTS = ["test_vecmath.py", "test_kernels.py", "test_cells.py", "../sample/test_beam.py",
                "../optim/test_optim.py"]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(QEMU is None or platform.machine() != "x86_64",
                                 reason="needs qemu-x86_64 (apt-get install qemu-user)")]


def emulated(cpu, *args):
    """Run this Python under qemu as `cpu`, importing the rnncore (and every package) this
    process imports: from tests/, so a source tree's uncompiled rnncore/ cannot shadow it."""
    package_root = os.path.dirname(os.path.dirname(rnncore.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_root, *filter(None, sys.path)]))
    # the machine's BLAS settings name the host's CPU; the emulated one has its own
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return subprocess.run([QEMU, "-cpu", cpu, os.path.realpath(sys.executable), *args],
                          cwd=TESTS, env=env, capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("cpu, loops", [("SandyBridge", "SSE2 loops"), ("max", "AVX2 loops")])
def test_kernels_match_the_reference_on_older_cpus(cpu, loops):
    which = emulated(cpu, "-c", "import rnncore._cells as c, rnncore._kernels as k; "
                                "print(c.MATHS); print(k.MATHS)")
    assert which.returncode == 0, which.stderr
    assert which.stdout.count(loops) == 2, which.stdout
    proc = emulated(cpu, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    *[str(TESTS / name) for name in KERNEL_TESTS])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout.splitlines()[-1]
