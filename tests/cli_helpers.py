import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig


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


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def corpus(tmp_path, text="the cat sat on the mat. " * 40, name="corpus.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


SMALL = ["--hidden-size", "16", "--seq-length", "8", "--batch-size", "2", "--print-every", "10"]
