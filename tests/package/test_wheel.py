"""A new user's path, end to end, on every supported Python found here.

README's release build runs once per test session (tools/build_wheel.py: the sdist once,
from it one wheel per interpreter, each repaired by auditwheel).  Then, for each supported
version (pyproject.toml's classifiers) whose interpreter is here, its wheel goes into a
fresh venv of that Python with no compiler on the PATH: `rnncore --version`, `rnncore demo`
on both maths paths, the test extra installed from the wheel without a rebuild, and the
sdist's kernel tests against the installed wheel (on the oldest and the newest Python the
model, CLI and MPI tiers too).  On the oldest Python, a second venv holds the oldest
release of every dependency pyproject.toml declares, and the same tiers run there.

A supported version with no interpreter here is skipped, naming it.  The build and the
venvs need PyPI (pip's cache once seen) and take several minutes in all: these tests are
marked `wheel` and `slow` (`pytest -m "not wheel"` leaves them out); the checks of the
build script's arguments and of the declared versions run in the fast tier.
"""
import ast
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tools" / "build_wheel.py"
COMPLETION = "completion: do redes recurrentes!"

_spec = importlib.util.spec_from_file_location("build_wheel", BUILD)
build_wheel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_wheel)
SUPPORTED = build_wheel.supported_versions()
OLDEST, NEWEST = SUPPORTED[0], SUPPORTED[-1]

# the tiers run against installed wheels, by test area: each name is a folder of
# tests/<area>/; every tier must find its folders (so a renamed area fails here instead of
# running nothing).  The kernel tests that re-run the suite under other settings, qemu or
# a compiler are the source folder's to run (NOT_IN_TIERS)
TIERS = {
    "kernel": ["kernels"],
    "model": ["reference", "train", "sample", "optim", "corpus", "checkpoint", "export",
              "predict"],
    "cli": ["cli"],
    "parallel": ["parallel"],
}
NOT_IN_TIERS = ("not other_maths_paths and not older_cpus and not every_micro_kernel "
                "and not in_c")


def slow(test):
    return pytest.mark.wheel(pytest.mark.slow(test))


def run_build(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, str(BUILD), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def kernel_modules():
    """setup.py's KERNEL_MODULES names (read, not run: a literal dict)."""
    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text())):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "KERNEL_MODULES"
                                                for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no literal KERNEL_MODULES")


def pyproject():
    try:
        import tomllib
    except ImportError:  # Python 3.10: pytest brings tomli
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# ---- the declared versions and the build script's arguments (fast) ---------------------

def test_requires_python_starts_at_the_oldest_classifier_and_they_run_unbroken():
    project = pyproject()["project"]
    assert project["requires-python"] == f">={OLDEST}"
    minors = [int(v.split(".")[1]) for v in SUPPORTED]
    assert minors == list(range(minors[0], minors[-1] + 1)), SUPPORTED
    assert {"3.10", "3.11", "3.12", "3.13"} <= set(SUPPORTED)


def test_the_development_guide_names_a_wheel_for_every_supported_version():
    if not (ROOT / "docs").is_dir():
        pytest.skip("no docs/ (a source distribution)")
    guide = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    for version in SUPPORTED:
        tag = "cp" + version.replace(".", "")
        assert f"{tag}-{tag}-manylinux2010_x86_64.manylinux_2_12_x86_64.whl" in guide, version
        assert f"| {version} |" in guide, f"the support table has no row for {version}"


def test_every_declared_dependency_has_a_lower_bound():
    assert set(lower_bound_requirements()) >= {"numpy", "tqdm"}


def fake_python(folder, name, says, status=0):
    """A stand-in interpreter: a script that answers build_wheel.py's probe with `says`
    (on stderr, as a failing pyenv shim does, when status is not 0)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{says}'{' >&2' if status else ''}\nexit {status}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("says, status, error", [
    (None, 0, "no such interpreter"),
    ("cpython 3.9 3.9.18", 0, "Python 3.9.18 is not supported (supported: "),
    ("pypy 3.10 3.10.14", 0, "pypy 3.10.14: only CPython's default (GIL) build"),
    ("cpython 3.13 3.13.0 t", 0, "cpython 3.13.0t: only CPython's default (GIL) build"),
    ("pyenv: python3.12: command not found", 127, "does not run as a Python interpreter "
                                                  "(pyenv: python3.12: command not found)"),
])
def test_a_named_interpreter_that_cannot_be_used_is_an_error_before_any_build(
        tmp_path, says, status, error):
    python = (tmp_path / "missing" / "python3.12" if says is None else
              fake_python(tmp_path / "bin", "python3", says, status))
    out = tmp_path / "out"
    result = run_build("--python", sys.executable, "--python", python, "--out", out)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()  # one line, no traceback
    assert line.startswith(f"build_wheel.py: error: --python {python}: ") and error in line
    assert "+ " not in result.stdout and not out.exists()  # nothing was run or built


def test_without_python_every_supported_version_is_looked_for_and_a_missing_one_reported(
        tmp_path):
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    others = [v for v in SUPPORTED if v != running]
    bin_dir, pyenv = tmp_path / "bin", tmp_path / "pyenv"
    # the first other version: a pyenv shim on PATH that fails, and two pyenv releases
    # (the newer is taken) beside a free-threaded build (never taken)
    first = others[0]
    fake_python(bin_dir, f"python{first}", f"pyenv: python{first}: command not found", 127)
    for release, says in (("2", f"cpython {first} {first}.2"),
                          ("11", f"cpython {first} {first}.11"),
                          ("12t", f"cpython {first} {first}.12 t")):
        fake_python(pyenv / "versions" / f"{first}.{release}" / "bin", f"python{first}", says)
    # the second: on PATH; every later one: nowhere
    fake_python(bin_dir, f"python{others[1]}", f"cpython {others[1]} {others[1]}.4")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "PYENV_ROOT": pyenv}
    result = run_build("--list", env=env)
    assert result.returncode == 0, result.stderr
    expected = {running: f"python: {platform.python_version()} {sys.executable}",
                first: f"python: {first}.11 {pyenv}/versions/{first}.11/bin/python{first}",
                others[1]: f"python: {others[1]}.4 {bin_dir}/python{others[1]}"}
    lines = result.stdout.splitlines()
    assert lines == ([expected[v] for v in SUPPORTED if v in expected]
                     + [f"missing: Python {v}" for v in others[2:]])
    for version in others[2:]:
        assert f"Python {version} not found" in result.stderr


# ---- the release build, once per session ------------------------------------------------

class Wheel:
    def __init__(self, version, full, python, path, tag):
        self.version, self.full, self.python, self.path, self.tag = (
            version, full, Path(python), Path(path), tag)


@pytest.fixture(scope="session")
def release(tmp_path_factory):
    """Every wheel tools/build_wheel.py builds here, by version, beside its one sdist."""
    out = tmp_path_factory.mktemp("release")
    result = run_build("--out", out, timeout=3600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    lines = [l for l in result.stdout.splitlines()
             if l.startswith(("sdist:", "python:", "wheel:", "tag:", "missing:"))]
    (sdist,) = [l.split()[1] for l in lines if l.startswith("sdist:")]
    wheels, missing = {}, []
    for i, line in enumerate(lines):
        if line.startswith("python:"):
            _, full, python = line.split(" ", 2)
            wheel, tag = lines[i + 1].split()[1], lines[i + 2].split()[1]
            version = ".".join(full.split(".")[:2])
            wheels[version] = Wheel(version, full, python, wheel, tag)
        elif line.startswith("missing:"):
            missing.append(line.split()[-1])
    return {"sdist": Path(sdist), "wheels": wheels, "missing": missing,
            "out": out, "report": result.stdout}


def wheel_for(release, version):
    if version not in release["wheels"]:
        assert version in release["missing"], release["report"]
        pytest.skip(f"no Python {version} here (build_wheel.py reported it missing)")
    return release["wheels"][version]


@pytest.fixture(scope="session")
def sdist_tree(release, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sdist")
    with tarfile.open(release["sdist"]) as sdist:
        sdist.extractall(folder)
    (tree,) = folder.glob("rnncore-*")
    return tree


@slow
def test_one_wheel_for_each_supported_python_found_and_nothing_else(release):
    found, missing = build_wheel.find_interpreters(SUPPORTED)
    assert set(release["wheels"]) == set(found) and release["missing"] == missing
    assert sorted(p.name for p in release["out"].iterdir()) == sorted(
        [release["sdist"].name] + [w.path.name for w in release["wheels"].values()])


@slow
@pytest.mark.parametrize("version", SUPPORTED)
def test_the_wheel_is_manylinux_for_its_python_stripped_and_names_no_build_folder(
        release, version, tmp_path):
    wheel = wheel_for(release, version)
    cp = "cp" + version.replace(".", "")
    if platform.machine() == "x86_64":
        assert wheel.tag == f"{cp}-{cp}-manylinux2010_x86_64.manylinux_2_12_x86_64"
    else:
        assert wheel.tag.startswith(f"{cp}-{cp}-manylinux_"), wheel.tag
    with zipfile.ZipFile(wheel.path) as z:
        modules = [n for n in z.namelist() if n.endswith(".so")]
        assert not [n for n in z.namelist() if ".libs/" in n]  # nothing grafted
        z.extractall(tmp_path)
    # one module per setup.py KERNEL_MODULES entry, each for this Python's ABI
    assert {m.split(".")[0].replace("/", ".") for m in modules} == kernel_modules()
    assert all(f".cpython-{cp[2:]}-" in m for m in modules), modules
    for name in modules:
        data = (tmp_path / name).read_bytes()
        for folder in {sys.prefix, sys.base_prefix, str(ROOT), str(Path.home()),
                       str(wheel.python.parent.parent)}:
            assert folder.encode() not in data, f"{name} names {folder}"
        with open(tmp_path / name, "rb") as f:
            elf = ELFFile(f)
            sections = [s.name for s in elf.iter_sections()]
            assert ".symtab" not in sections and not any(s.startswith(".debug") for s in sections)
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    tags = {t.entry.d_tag for t in section.iter_tags()}
                    assert not tags & {"DT_RPATH", "DT_RUNPATH"}, f"{name}: {tags}"


@slow
def test_the_sdist_holds_every_kernel_source_and_the_tests(release):
    with tarfile.open(release["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    sources = [*ROOT.glob("pyx/*.pyx"), *ROOT.glob("pyx/*.pxd"), *ROOT.glob("pyx/*.pxi"),
               *ROOT.glob("pyx/*.h"),
               *ROOT.glob("csrc/*.c"), *ROOT.glob("csrc/*.h"), *ROOT.glob("tests/**/*.py")]
    needed = {str(p.relative_to(ROOT)) for p in sources}
    needed |= {"setup.py", "pyproject.toml", "README.md", "tools/build_wheel.py"}
    assert needed - names == set()
    assert not [n for n in names if n.startswith("pyx/") and n.endswith(".c")]  # generated


# ---- each wheel in a fresh venv of its own Python ---------------------------------------

def fresh_venv(python, folder):
    """A venv of `python` and the environment to run it in: its bin alone on PATH, so no
    compiler can be found."""
    venv = folder / "venv"
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True, timeout=300,
                   capture_output=True)
    # CI is dropped too: in CI, require() fails where a module is missing, but PyTorch is
    # installed for the machine's Python alone, so its oracle tests run in the suite's own
    # run and skip in these venvs
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CC", "CXX", "CI")}
    env["PATH"] = str(venv / "bin")
    for compiler in ("cc", "gcc", "clang", "c++"):
        assert shutil.which(compiler, path=env["PATH"]) is None
    return venv, env


def pip(venv, env, *args):
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *map(str, args)],
                            env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    log = result.stdout + result.stderr
    assert "Building wheel" not in log and "setup.py" not in log, log  # nothing compiled
    return log


def run_in(venv, env, *args, **extra_env):
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], env={**env, **extra_env},
                          capture_output=True, text=True, timeout=1200, cwd=venv)


def run_tiers(venv, env, tests, tiers):
    """The given tiers of the test folder `tests` in `venv`, importing the installed
    rnncore (checked before pytest starts: the folder holds a source tree too)."""
    paths = []
    for tier in tiers:
        found = [tests / name for name in TIERS[tier] if (tests / name).exists()]
        assert found, f"no test of the {tier} tier in {tests}: update TIERS"
        paths += found
    runner = ("import sys, rnncore, pytest; "
              "assert rnncore.__file__.startswith(sys.prefix), rnncore.__file__; "
              "sys.exit(pytest.main(sys.argv[1:]))")
    # hypothesis derandomized: these runs ask whether the wheel works on this Python, and
    # the same examples every time keep them from failing by chance (the suite's own run,
    # from the source folder, explores new ones)
    result = run_in(venv, env, "python", "-c", runner, "-q", "-p", "no:cacheprovider",
                    "--hypothesis-seed=0", "-k", NOT_IN_TIERS, *map(str, paths))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout.splitlines()[-1]), result.stdout[-2000:]
    return result.stdout


@pytest.fixture(scope="session", params=SUPPORTED, ids=lambda v: f"py{v}")
def user(request, release, tmp_path_factory):
    """The wheel of one supported Python, installed alone into a fresh venv of it."""
    wheel = wheel_for(release, request.param)
    venv, env = fresh_venv(wheel.python, tmp_path_factory.mktemp(f"user{request.param}"))
    pip(venv, env, "install", wheel.path)
    return {"wheel": wheel, "venv": venv, "env": env}


@slow
def test_the_installed_wheel_runs_its_own_python_and_reports_its_maths_and_micro_kernel(user):
    venv, env = user["venv"], user["env"]
    version = run_in(venv, env, "python", "-c", "import platform; print(platform.python_version())")
    assert version.stdout.strip() == user["wheel"].full
    result = run_in(venv, env, "rnncore", "--version")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "rnncore 0.1.0" and lines[1].startswith("maths: ")
    assert lines[2].startswith("kernels: ") and "micro-kernel" in lines[2]
    forced = run_in(venv, env, "rnncore", "--version", RNNCORE_VECMATH="scalar")
    assert "maths: scalar libm (RNNCORE_VECMATH=scalar)" in forced.stdout


@slow
def test_the_installed_wheel_completes_the_demo_on_both_maths_paths(user):
    for setting in ("", "scalar"):
        result = run_in(user["venv"], user["env"], "rnncore", "demo", RNNCORE_VECMATH=setting)
        assert result.returncode == 0, result.stderr
        assert COMPLETION in result.stdout.splitlines(), result.stdout


@slow
def test_the_test_extra_installs_from_the_wheel_and_the_sdist_tests_pass_against_it(
        user, sdist_tree):
    venv, env, wheel = user["venv"], user["env"], user["wheel"]
    pip(venv, env, "install", f"{wheel.path}[test]")
    tiers = (["kernel", "model", "cli", "parallel"] if wheel.version in (OLDEST, NEWEST)
             else ["kernel"])
    run_tiers(venv, env, sdist_tree / "tests", tiers)


# ---- the declared lower bounds, on the oldest supported Python --------------------------

def lower_bound_requirements():
    """{name: "name==X"} for every dependency and every extra's package, X its declared
    lower bound (AssertionError for one without)."""
    project = pyproject()["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    pins = {}
    for requirement in requirements:
        spec = requirement.split(";")[0].strip()
        name = re.match(r"[A-Za-z0-9._-]+", spec).group(0).lower()
        bound = re.search(r">=\s*([0-9][0-9a-zA-Z.]*)", spec)
        assert bound, f"{requirement!r} declares no lower bound"
        pins[name] = f"{name}=={bound.group(1)}"
    return pins


@slow
def test_the_oldest_declared_dependencies_pass_the_kernel_model_cli_and_mpi_tests(
        release, sdist_tree, tmp_path):
    wheel = wheel_for(release, OLDEST)
    pins = lower_bound_requirements()
    constraints = tmp_path / "oldest.txt"
    constraints.write_text("\n".join(pins.values()) + "\n")
    venv, env = fresh_venv(wheel.python, tmp_path)
    pip(venv, env, "install", "--constraint", constraints, f"{wheel.path}[test,plot,mpi,export]")
    listed = run_in(venv, env, "python", "-m", "pip", "list", "--format=freeze").stdout
    installed = {l.split("==")[0].lower().replace("_", "-"): l.split("==")[1]
                 for l in listed.splitlines() if "==" in l}
    for name, pin in pins.items():
        wanted = Version(pin.split("==")[1])
        assert name in installed and Version(installed[name]) == wanted, (
            f"{name}: {installed.get(name)} installed, not the declared lower bound {wanted}")
    run_tiers(venv, env, sdist_tree / "tests", ["kernel", "model", "cli", "parallel"])
