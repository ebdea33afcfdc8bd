"""A new user's path, end to end, built once per test run: README's release build
(tools/build_wheel.py: the sdist, a wheel built from it, auditwheel repair), then that
wheel installed into a fresh venv with no compiler on PATH, `rnncore demo` completing the
sentence on both maths paths, and an extra installed from the wheel without a rebuild.

It needs PyPI (the isolated build and the fresh venv fetch their packages, from pip's cache
once seen) and takes 1 to 3 minutes: `pytest -m "not wheel"` leaves it out."""
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

pytestmark = [pytest.mark.slow, pytest.mark.wheel]

ROOT = Path(__file__).resolve().parents[2]
COMPLETION = "completion: do redes recurrentes!"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_wheel.py"),
                             "--out", str(out)],
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = dict(line.split(":", 1) for line in result.stdout.splitlines()
                  if line.startswith(("sdist:", "wheel:", "tag:")))
    return {"sdist": next(out.glob("*.tar.gz")), "wheel": next(out.glob("*.whl")),
            "tag": report["tag"].strip(), "report": result.stdout}


@pytest.fixture(scope="module")
def fresh_venv(release, tmp_path_factory):
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CC", "CXX")}
    env["PATH"] = str(venv / "bin")  # the venv alone: no compiler on the PATH
    for compiler in ("cc", "gcc", "clang", "c++"):
        assert shutil.which(compiler, path=env["PATH"]) is None
    install = pip(venv, env, "install", release["wheel"])
    assert "Building wheel" not in install and "setup.py" not in install, install
    return venv, env


def pip(venv, env, *args):
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *map(str, args)],
                            env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout + result.stderr


def run_in(venv, env, *args, **extra_env):
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], env={**env, **extra_env},
                          capture_output=True, text=True, timeout=600, cwd=venv)


def test_the_wheel_is_manylinux_stripped_and_names_no_build_folder(release, tmp_path):
    expected = "manylinux_2_12_x86_64" if platform.machine() == "x86_64" else "manylinux_"
    assert expected in release["tag"], release["report"]
    with zipfile.ZipFile(release["wheel"]) as wheel:
        modules = [n for n in wheel.namelist() if n.endswith(".so")]
        assert modules and not [n for n in wheel.namelist() if ".libs/" in n]  # nothing grafted
        wheel.extractall(tmp_path)
    for name in modules:
        data = (tmp_path / name).read_bytes()
        for folder in {sys.prefix, sys.base_prefix, str(ROOT), str(Path.home())}:
            assert folder.encode() not in data, f"{name} names {folder}"
        with open(tmp_path / name, "rb") as f:
            elf = ELFFile(f)
            sections = [s.name for s in elf.iter_sections()]
            assert ".symtab" not in sections and not any(s.startswith(".debug") for s in sections)
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    tags = {t.entry.d_tag for t in section.iter_tags()}
                    assert not tags & {"DT_RPATH", "DT_RUNPATH"}, f"{name}: {tags}"


def test_the_sdist_holds_the_sources_and_the_tests(release):
    with tarfile.open(release["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    for needed in ("setup.py", "pyproject.toml", "README.md", "pyx/_kernels.pyx",
                   "pyx/vecmath.h", "csrc/vecmath.c", "pyx/glibc_compat.h",
                   "tools/build_wheel.py", "tests/conftest.py", "tests/support.py", "tests/kernels/test_kernels.py"):
        assert needed in names


def test_the_installed_wheel_completes_the_demo_on_both_maths_paths(fresh_venv):
    venv, env = fresh_venv
    for setting in ("", "scalar"):
        result = run_in(venv, env, "rnncore", "demo", RNNCORE_VECMATH=setting)
        assert result.returncode == 0, result.stderr
        assert COMPLETION in result.stdout.splitlines(), result.stdout


def test_the_installed_wheel_reports_its_maths_and_blas(fresh_venv):
    venv, env = fresh_venv
    result = run_in(venv, env, "rnncore", "--version")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "rnncore 0.1.0" and lines[1].startswith("maths: ")
    assert lines[2].startswith("BLAS:  ") and "from scipy" in lines[2]
    forced = run_in(venv, env, "rnncore", "--version", RNNCORE_VECMATH="scalar")
    assert "maths: scalar libm (RNNCORE_VECMATH=scalar)" in forced.stdout


def test_an_extra_installs_from_the_wheel_without_rebuilding_and_the_sdist_tests_pass(
        release, fresh_venv, tmp_path):
    venv, env = fresh_venv
    log = pip(venv, env, "install", f"{release['wheel']}[test]")
    assert "Building wheel" not in log and "Running setup.py" not in log, log
    with tarfile.open(release["sdist"]) as sdist:
        sdist.extractall(tmp_path)
    tests = next(tmp_path.glob("rnncore-*")) / "tests"
    # the sdist's own kernel tests, against the installed wheel (pytest's script, not
    # `python -m pytest`, so that the sdist's source folder is not what gets imported);
    # the other maths paths were run by the demo above
    result = run_in(venv, env, "pytest", "-q", "-p", "no:cacheprovider",
                    str(tests / "kernels" / "test_kernels.py"), str(tests / "kernels" / "test_vecmath.py"),
                    "-k", "not other_maths_paths")
    assert result.returncode == 0, result.stdout[-4000:]
    where = run_in(venv, env, "python", "-c", "import rnncore; print(rnncore.__file__)")
    assert where.stdout.startswith(str(venv)), where.stdout
