"""The type checker (mypy, the test extra) over rnncore/ passes, and it does check the
typed public API: a call with a setting of the wrong type is an error it reports."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def mypy(*args, cwd=ROOT):
    pytest.importorskip("mypy")
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def test_mypy_passes_over_the_package():
    proc = mypy()                         # pyproject.toml's [tool.mypy]: files = rnncore
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("Success: no issues found")


def test_mypy_sees_the_settings_of_fit_and_the_configs(tmp_path):
    user = tmp_path / "user.py"
    user.write_text(
        "import rnncore\n"
        "result = rnncore.fit('c.txt', 'm.npz', hidden_size='big', steps=10)\n"
        "step: str = result.step\n"
        "model = rnncore.CharRNN(rnncore.Vocab.from_text('ab'),\n"
        "                        config=rnncore.TrainConfig())\n")
    proc = mypy("--config-file", str(ROOT / "pyproject.toml"), str(user), cwd=tmp_path)
    assert proc.returncode == 1
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 3, proc.stdout
    assert '"hidden_size" to "fit" has incompatible type "str"' in errors[0]
    assert 'expression has type "int", variable has type "str"' in errors[1]
    assert '"config" to "CharRNN" has incompatible type "TrainConfig"' in errors[2]
