"""The SSE2 and AVX2 builds of the vector maths and of the micro-kernel, run for real on
emulated CPUs.

vecmath.h's and cellmath.h's loops are compiled three times (target_clones) and the
micro-kernel has three versions (csrc/gemm.c); the CPU picks one at load time, so on an
AVX-512 machine the other two never run.  qemu-user emulates an x86-64 without AVX2
(SandyBridge: the SSE2 clones, the generic micro-kernel) and one with AVX2 but no AVX-512
(max: the AVX2 clones and micro-kernel); the kernel tests run under each.  Skipped where qemu-x86_64 is not installed
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
KERNEL_TESTS = ["test_vecmath.py", "test_kernels.py", "test_cells.py", "test_products.py",
                "../sample/test_beam.py", "../optim/test_optim.py", "test_threads.py"]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(QEMU is None or platform.machine() != "x86_64",
                                 reason="needs qemu-x86_64 (apt-get install qemu-user)")]


# numpy's OpenBLAS (the reference's) for each emulated CPU: its own detection under qemu
# picks kernels the emulated CPU lacks (an illegal instruction inside numpy's matmul, on
# every CPU without AVX2 and now and then on `max`)
OPENBLAS_CORES = {"SandyBridge": "Sandybridge", "max": "Haswell"}


def emulated(cpu, *args):
    """Run this Python under qemu as `cpu`, importing the rnncore (and every package) this
    process imports: from tests/, so a source tree's uncompiled rnncore/ cannot shadow it."""
    package_root = os.path.dirname(os.path.dirname(rnncore.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_root, *filter(None, sys.path)]))
    # the machine's BLAS settings name the host's CPU; the emulated one gets its own
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OPENBLAS_CORETYPE"] = OPENBLAS_CORES[cpu]
    env["OPENBLAS_NUM_THREADS"] = "1"
    # and numpy's own AVX2/AVX-512 loops off: qemu-user 7.2 faults on their masked
    # gathers (vgatherqpd in numpy's tanh, now and then, depending on what the masked-off
    # lanes hold); the reference's SIMD level is not what these runs test
    env["NPY_DISABLE_CPU_FEATURES"] = "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"
    return subprocess.run([QEMU, "-cpu", cpu, os.path.realpath(sys.executable), *args],
                          cwd=TESTS, env=env, capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("cpu, loops, micro_kernel", [("SandyBridge", "SSE2 loops", "generic"),
                                                      ("max", "AVX2 loops", "avx2")])
def test_kernels_match_the_reference_on_older_cpus(cpu, loops, micro_kernel):
    which = emulated(cpu, "-c", "import rnncore._cells as c, rnncore._kernels as k; "
                                "print(c.MATHS); print(k.MATHS); print(c.MICROKERNEL)")
    assert which.returncode == 0, which.stderr
    assert which.stdout.count(loops) == 2, which.stdout
    assert which.stdout.split()[-1] == micro_kernel
    # (the team's C stress test, the forced-version runs and the fork test are the host's
    # to do: qemu-user 7.2 asserts when a forked child of a threaded process makes threads)
    proc = emulated(cpu, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    *[str(TESTS / name) for name in KERNEL_TESTS],
                    "-k", "not in_c and not every_micro_kernel and not unknown_micro "
                          "and not forked_child")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout.splitlines()[-1]
