"""The guides' measured tables are the records in docs/, and train's defaults are the
trials' winner.  Nothing here trains or times anything.  A source distribution ships without
docs/ and bench/: these tests are skipped there."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnncore

ROOT = Path(__file__).resolve().parents[2]
DOCS, BENCH = ROOT / "docs", ROOT / "bench"
#: the guides that hold the tables: the proof on real text, and why these defaults
PROOF_GUIDE, DEFAULTS_GUIDE = DOCS / "tinyshakespeare.md", DOCS / "user-guide.md"
PROOFS = ["shakespeare-summary.json", "shakespeare-lstm-summary.json",
          "shakespeare-gru-summary.json", "shakespeare-gru384-summary.json"]

pytestmark = pytest.mark.skipif(not (DOCS.is_dir() and BENCH.is_dir()),
                                reason="no docs/ or bench/ (a source distribution)")


@pytest.mark.slow
def test_the_proof_table_is_made_from_the_records(tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "cells.png"
    proc = subprocess.run([sys.executable, str(BENCH / "shakespeare_table.py"),
                           *[DOCS / name for name in PROOFS], "--plot", plot],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(PROOFS)
    guide = PROOF_GUIDE.read_text(encoding="utf-8")
    for row in rows:
        assert row in guide, f"the proof table of {PROOF_GUIDE.name} lacks: {row}"
    assert plot.stat().st_size > 10_000
    for name in PROOFS:   # records name the corpus relative to the repository
        summary = json.loads((DOCS / name).read_text())
        assert summary["corpus"] == "../shared/data/tinyshakespeare.txt"


def test_records_name_no_absolute_path():
    """A record names its files relative to the repository (or as the command was typed
    there), never by a path of the machine it was made on.  A record's .md is the table a
    script wrote beside its .json; the guides (which name URL paths such as /v1/model)
    are not records."""
    import re
    tables = [p for p in sorted(DOCS.glob("*.md")) if p.with_suffix(".json").exists()]
    assert {"bench.md", "scaling.md", "serve.md"} <= {p.name for p in tables}
    for path in sorted(DOCS.glob("*.json*")) + tables:
        text = path.read_text(encoding="utf-8")
        found = re.findall(r'(?:^|[\s"=(\[])(/[A-Za-z][^\s"\])]*)', text)
        assert not found, f"{path.name} names {found[:3]}"


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
    guide = DEFAULTS_GUIDE.read_text(encoding="utf-8")
    assert f"| **{best['best_val_nats']:.4f}** |" in guide   # the bold row of the table


def load_bench(name):
    """A bench/ script as a module (bench/ is not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:   # a script may put bench/ on the path to import its neighbours
        sys.path[:] = [p for p in sys.path if Path(p).resolve() != BENCH]
    return module


def test_gated_cells_start_as_the_init_trials_best_scheme():
    trials = load_bench("init_trials")
    record = json.loads((DOCS / "init-trials.json").read_text())
    # the record is consistent: its summary and its choice are those of its runs
    summary = json.loads(json.dumps(trials.summarise(record["runs"])))
    assert summary == record["summary"]
    assert trials.choose(summary) == record["chosen"] and set(record["chosen"]) == {"lstm", "gru"}
    assert record["settings"]["steps"] >= 1500 and len(record["settings"]["seeds"]) >= 5
    assert {f["part"] for f in record["corpus"]["files"]} == {"train", "held_out"}
    assert all("/" not in f["file"] for f in record["corpus"]["files"])   # stdlib-relative
    # the code's default start is the chosen scheme, draw for draw, in both dtypes
    vocab = rnncore.Vocab.from_text("abcdefg")
    for cell, scheme in record["chosen"].items():
        for dtype in ("float64", "float32"):
            for seed in (0, 3):
                model = rnncore.CharRNN(vocab, 12, dtype=dtype, seed=seed, cell=cell,
                                        num_layers=2)
                drawn = trials.initial_params(scheme, cell, len(vocab), 12, 2, seed, dtype)
                assert drawn.keys() == model.params.keys()
                for name in drawn:
                    np.testing.assert_array_equal(model.params[name], drawn[name],
                                                  err_msg=f"{cell} {name}")
    # the proof guide shows the record's table
    guide = PROOF_GUIDE.read_text(encoding="utf-8")
    for row in trials.table(record["summary"], record["chosen"]).splitlines():
        assert row in guide, f"{PROOF_GUIDE.name} lacks the init trials' row: {row}"
