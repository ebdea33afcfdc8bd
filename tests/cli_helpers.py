import hashlib
import shutil
import subprocess
import sys

RNNCORE = shutil.which("rnncore")


def run(*args, cwd, timeout=120, script=True):
    """Run the installed console script (or `python -m rnncore`) in a subprocess."""
    cmd = [RNNCORE] if script and RNNCORE else [sys.executable, "-m", "rnncore"]
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def assert_clean_error(proc, match, status=None):
    """A non-zero exit with one `rnncore: error:` line naming the problem, no traceback."""
    assert proc.returncode != 0, proc.stdout
    if status is not None:
        assert proc.returncode == status
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
