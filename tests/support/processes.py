"""Running the real CLI and Python in subprocesses, and reading what they print."""

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest


def _installed_script():
    """The `rnncore` console script of this interpreter's installation: beside the
    interpreter (a venv's bin, also when that venv is not activated), else on PATH."""
    for folder in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        found = shutil.which("rnncore", path=folder)
        if found:
            return found
    return shutil.which("rnncore")


RNNCORE = _installed_script()


def rnncore_command(script=True):
    """argv prefix that starts rnncore: the console script when installed, else
    `python -m rnncore` with the interpreter running the tests."""
    return [RNNCORE] if script and RNNCORE else [sys.executable, "-m", "rnncore"]


def run(*args, cwd, timeout=120, script=True):
    """Run the installed console script (or `python -m rnncore`) in a subprocess."""
    return subprocess.run(rnncore_command(script) + [str(a) for a in args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def assert_clean_error(proc, match, status=1):
    """Exit status `status` (README: 1 for bad input, 2 for a bad argument) with one
    `rnncore: error:` line naming the problem, and no traceback."""
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [l for l in proc.stderr.splitlines() if "error:" in l]
    assert len(errors) == 1, proc.stderr
    assert match in errors[0], errors[0]


def require(module):
    """The module, or a skip where it is not installed; in CI (CI=true, where .ci/run
    installs it) a missing module fails instead, so that its tests never skip unseen."""
    import importlib
    import pytest
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def warnings_of(proc):
    """The warning lines a CLI run printed on stderr."""
    return [line for line in proc.stderr.splitlines() if "warning:" in line]


def run_unprivileged(*args, cwd, timeout=120):
    """The CLI in a subprocess that cannot write where only root could: as root (who
    writes anywhere) it imports rnncore, then drops to the user nobody before main runs;
    as anyone else it runs as that user.  cwd must be readable by nobody (see
    shared_tmp)."""
    code = ("import os, sys\n"
            "import rnncore, rnncore.cli\n"
            "rnncore.cli.build_parser()  # what argparse imports lazily (locale), while root\n"
            "if os.geteuid() == 0:\n"
            "    os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
            "sys.exit(rnncore.cli.main(sys.argv[1:]))\n")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def shared_tmp(tmp_path):
    """A folder the user nobody can read and enter (pytest's tmp_path is root's alone)."""
    import tempfile
    from pathlib import Path
    folder = Path(tempfile.mkdtemp(prefix="rnncore-shared-"))
    folder.chmod(0o755)
    return folder


def run_dying(*args, cwd, kill_at, where="mid-write", timeout=120):
    """The CLI in a subprocess that SIGKILLs itself inside its kill_at-th checkpoint
    write: "mid-write" after half the file's bytes, "before-rename" once the whole
    temporary file is written and fsync'ed, just before it would replace the checkpoint.
    A deterministic stand-in for a kill that happens to land inside a write."""
    code = f"""
import io, os, signal, sys
import rnncore.checkpoint as checkpoint, rnncore.files as files
original, count = files.write_atomically, [0]

def dying(path, write, what="the checkpoint"):
    count[0] += 1
    if count[0] < {kill_at}:
        return original(path, write, what)
    if {where!r} == "mid-write":
        def half(f):
            buf = io.BytesIO()
            write(buf)
            data = buf.getvalue()
            f.write(data[:len(data) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return original(path, half, what)
    os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
    return original(path, write, what)

checkpoint.write_atomically = dying
import rnncore.cli
sys.exit(rnncore.cli.main(sys.argv[1:]))
"""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
