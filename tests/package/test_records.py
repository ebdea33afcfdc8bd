"""README's measured tables are the records in docs/, and train's defaults are the trials'
winner.  Nothing here trains or times anything.  A source distribution ships without
docs/ and bench/: these tests are skipped there."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import rnncore

ROOT = Path(__file__).resolve().parents[2]
DOCS, BENCH, README = ROOT / "docs", ROOT / "bench", ROOT / "README.md"
PROOFS = ["shakespeare-summary.json", "shakespeare-lstm-summary.json",
          "shakespeare-gru-summary.json", "shakespeare-gru384-summary.json"]

pytestmark = pytest.mark.skipif(not (DOCS.is_dir() and BENCH.is_dir()),
                                reason="no docs/ or bench/ (a source distribution)")


@pytest.mark.slow
def test_readme_proof_table_is_made_from_the_records(tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "cells.png"
    proc = subprocess.run([sys.executable, str(BENCH / "shakespeare_table.py"),
                           *[DOCS / name for name in PROOFS], "--plot", plot],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(PROOFS)
    readme = README.read_text(encoding="utf-8")
    for row in rows:
        assert row in readme, f"README's proof table lacks: {row}"
    assert plot.stat().st_size > 10_000
    for name in PROOFS:   # records name the corpus relative to the repository
        summary = json.loads((DOCS / name).read_text())
        assert summary["corpus"] == "../shared/data/tinyshakespeare.txt"


def test_train_defaults_are_the_trials_best_model():
    trials = json.loads((DOCS / "default-trials.json").read_text())
    best = min(trials["runs"], key=lambda run: run["best_val_nats"])
    flags = best["flags"].split()
    chosen = dict(zip(flags[::2], flags[1::2]))
    defaults = rnncore.TRAIN_DEFAULTS
    assert chosen["--cell"] == defaults["cell"]
    assert int(chosen.get("--num-layers", 1)) == defaults["num_layers"]
    assert int(chosen["--hidden-size"]) == defaults["hidden_size"]
    assert float(chosen.get("--dropout", 0)) == defaults["dropout"]
    readme = README.read_text(encoding="utf-8")
    assert f"| **{best['best_val_nats']:.4f}** |" in readme   # the bold row of the table
