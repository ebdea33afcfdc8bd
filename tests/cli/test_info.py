"""rnncore info: what a checkpoint holds."""
import json

import pytest

import rnncore

from support import FOX, assert_clean_error, quiet_fit, run

pytestmark = pytest.mark.slow   # every test here starts a process


TEXT = FOX


def test_info_reports_what_the_checkpoint_holds(tmp_path):
    out = tmp_path / "model.npz"
    quiet_fit(tmp_path, steps=40, keep_best=True, lr_schedule="step")
    proc = run("info", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert ("LSTM, 2 layers of 16 units, dropout 0.25 (locked), weight drop 0.2, float32"
            in text)                                                   # the defaults
    assert "weight decay 0.1" in text and "averaged weights: decay 0.999" in text
    assert "step 40/40" in text and "schedule step" in text
    assert "best validation" in text and "parameters kept" in text
    assert "corpus.txt" in text and f"{len(set(TEXT))} symbols" in text
    summary = json.loads(run("info", out, "--json", cwd=tmp_path).stdout)
    assert summary["training"]["step"] == 40
    assert summary["vocabulary"] == "".join(sorted(set(TEXT)))
    bare = tmp_path / "bare.npz"
    rnncore.CharRNN(rnncore.Vocab.from_text("ab"), 3).save(bare)
    assert "training state: none" in run("info", bare, cwd=tmp_path).stdout
    assert_clean_error(run("info", tmp_path / "none.npz", cwd=tmp_path), "checkpoint not found")
