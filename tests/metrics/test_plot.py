"""rnncore plot: the PNG of a run's metrics log."""
import sys

import pytest

from rnncore import cli

from support import FOX, run, train_fox

pytestmark = pytest.mark.slow   # every test here starts a process


TEXT = FOX


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out, _ = train_fox(tmp_path, steps=40)
    proc = run("plot", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    png = tmp_path / "model.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_or_log(tmp_path, monkeypatch, capsys):
    out, _ = train_fox(tmp_path, steps=20)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    assert cli.main(["plot", str(out)]) == 1
    assert "plotting needs matplotlib: pip install 'rnncore[plot]'" in capsys.readouterr().err
    assert cli.main(["plot", str(tmp_path / "other.npz")]) == 1
    assert "no metrics log" in capsys.readouterr().err
