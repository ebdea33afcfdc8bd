"""bench/shakespeare.py's PyTorch twin computes what rnncore computes: the same windows,
dropout and weight-drop masks, the same AdamW with weight decay, the same averaged
weights and the same learning rate at every step (a cosine over the steps with warm-up),
so in float64 the two validate alike at every evaluated step."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import require

BENCH = Path(__file__).resolve().parent.parent.parent / "bench"

pytestmark = pytest.mark.skipif(not BENCH.is_dir(), reason="no bench/ (a source distribution)")


@pytest.mark.slow
def test_the_twin_validates_as_rnncore_does_at_every_step(tmp_path):
    require("torch")
    text = tmp_path / "play.txt"
    text.write_text("ROMEO:\nBut soft, what light through yonder window breaks?\n"
                    "JULIET:\nAy me! O Romeo, Romeo, wherefore art thou Romeo?\n" * 30)
    proc = subprocess.run(
        [sys.executable, str(BENCH / "shakespeare.py"), "--corpus", str(text),
         "--steps", "24", "--eval-every", "6", "--hidden-size", "12", "--batch-size", "3",
         "--seq-length", "10", "--dtype", "float64", "--threads", "1",
         "--lr-schedule", "cosine", "--lr-floor", "0.1", "--warmup-steps", "4",
         "--learning-rate", "0.01", "--average-start", "8", "--torch-cap", "200",
         "--out-dir", str(tmp_path / "run")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    ours = {r["step"]: r for r in records if r["system"] == "rnncore"}
    theirs = {r["step"]: r for r in records if r["system"] == "torch"}
    assert sorted(ours) == [6, 12, 18, 24] and set(ours) <= set(theirs)
    for step in set(ours) & set(theirs):
        assert theirs[step]["val_loss"] == pytest.approx(ours[step]["val_loss"], rel=1e-9)
        assert theirs[step]["train_loss"] == pytest.approx(ours[step]["train_loss"],
                                                          rel=1e-9)
    assert ours[24]["lr"] == pytest.approx(0.001, rel=1e-9)     # the floor at the end
