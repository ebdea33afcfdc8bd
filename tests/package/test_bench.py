"""The benchmark scripts run (on tiny sizes) and write the fields README's tables are made of.
Nothing here times anything.

They are slow, so they run only when asked for: `pytest --run-bench` (or
RNNCORE_RUN_BENCH=1).  bench/ is not part of the source distribution: without it these
tests are skipped.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import require

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"

pytestmark = [pytest.mark.slow, pytest.mark.bench,
              pytest.mark.skipif(not BENCH_DIR.is_dir(),
                                 reason="no bench/ folder (a source distribution ships without it)")]


def run_script(name, *args, cwd, timeout=600):
    return subprocess.run([sys.executable, str(BENCH_DIR / name), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_quick_benchmark_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    proc = run_script("run.py", "--quick", "--hidden", "8", "--batches", "1", "2",
                      "--dtypes", "float64", "--no-torch", "--repeats", "2",
                      "--corpus", tmp_path / "no-such-corpus.txt", "--json", out,
                      "--markdown", md, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert {"command", "environment", "windows", "gemm_peak_gflops", "generation", "trainer",
            "peak_rss_mb"} <= set(result)
    # the demo's row + B=1 + B=2 for rnn; lstm and gru × 1, 2 layers × B=1, 2
    assert len(result["windows"]) == 3 + 2 * 2 * 2
    assert {(r["cell"], r["layers"]) for r in result["windows"]} == {
        ("rnn", 1), ("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 2)}
    for row in result["windows"]:
        assert {"cell", "layers", "V", "H", "B", "T", "dtype", "threads", "us_per_window",
                "us_min_max", "chars_per_s", "speedup_vs_numpy", "gflops_rnncore"} <= set(row)
        assert set(row["us_per_window"]) == {"rnncore", "numpy"}
        assert row["threads"] == (1 if row["B"] == 1 else 2)
        assert row["share_of_gemm_peak"] > 0
    assert result["trainer"]["corpus"] == "generated text"
    assert result["generation"][0]["chars_per_s"] > 0
    assert "| rnncore µs |" in md.read_text().replace(
        "| cell | L | V | H | B | T | dtype | threads ", "|")


def test_gated_rows_agree_with_torch(tmp_path):
    # the benchmark refuses to time systems whose losses differ: this runs its check of
    # rnncore, numpy and PyTorch's nn.LSTM / nn.GRU on the same weights and state
    require("torch")
    out = tmp_path / "bench.json"
    proc = run_script("run.py", "--quick", "--hidden", "8", "--batches", "2",
                      "--dtypes", "float64", "--cells", "lstm", "gru", "--layers", "2",
                      "--repeats", "2", "--corpus", tmp_path / "no-such-corpus.txt",
                      "--json", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["windows"]
    assert [(r["cell"], r["layers"]) for r in rows] == [("lstm", 2), ("gru", 2)]
    assert all(set(r["us_per_window"]) == {"rnncore", "numpy", "torch"} for r in rows)


def test_shakespeare_script_runs_on_a_small_corpus(tmp_path):
    text = tmp_path / "play.txt"
    text.write_text("ROMEO:\nBut soft, what light through yonder window breaks?\n" * 40)
    proc = run_script("shakespeare.py", "--corpus", text, "--minutes", "0.01",
                      "--hidden-size", "8", "--batch-size", "2", "--seq-length", "10",
                      "--eval-every", "5", "--no-torch", "--out-dir", tmp_path / "run",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["rnncore"]["best_val_nats"] > 0 and summary["rnncore"]["steps"] >= 5
    assert (tmp_path / "run" / "sample.txt").read_text().startswith("ROMEO:")
    assert (tmp_path / "run" / "shakespeare.npz").exists()


def test_scaling_script_runs_at_a_tiny_size(tmp_path):
    pytest.importorskip("mpi4py", reason="needs mpi4py and mpiexec: pip install '.[test]'")
    out = tmp_path / "scaling.json"
    proc = run_script("scaling.py", "--hidden", "8", "--batch-size", "2", "--seq-length", "5",
                      "--steps", "5", "--repeats", "2", "--json", out, cwd=tmp_path,
                      timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["parameters"] == 8 * 65 * 2 + 8 * 8 + 8 + 65
    assert row["2_ranks"] > 0 and row["one_process_1_thread"] > 0 and row["allreduce_us"] > 0
    assert row["gradient_bytes"] == 4 * (row["parameters"] + 3)
    assert "| 2 ranks × 1 thread |" in proc.stdout


def test_big_corpus_script_ignores_a_source_folder_in_the_working_directory(tmp_path):
    # README: `python bench/big_corpus.py` from the repository root after `pip install .`.
    # There the unbuilt source folder rnncore/ sits in the working directory; the child
    # `rnncore train` must import the installed package, not that folder.  A decoy
    # package that cannot be imported stands in for it.
    decoy = tmp_path / "rnncore"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('imported the decoy source folder')\n")
    (decoy / "__main__.py").write_text("raise SystemExit('ran the decoy source folder')\n")
    work = tmp_path / "corpora"
    out_json = tmp_path / "big.json"
    proc = run_script("big_corpus.py", "--gigabytes", "0.0011", "--steps", "2",
                      "--dir", work, "--json", out_json, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "decoy" not in proc.stderr + proc.stdout
    result = json.loads(out_json.read_text())
    assert result["steps"] == 2 and result["corpus_bytes"] >= 1.1e6
    runs = [v for k, v in result.items() if k.endswith("corpus") or "corpus," in k]
    assert len(runs) == 3 and all(r["peak_rss_mb"] > 0 for r in runs)


def test_window_loop_reports_a_median(tmp_path):
    proc = run_script("window_loop.py", "--cell", "gru", "--num-layers", "2", "--hidden-size",
                      "8", "--batch-size", "3", "--seconds", "0.2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("gru 2x8 B=3 float64, 1 thread(s): median ")
    assert "µs a window over" in proc.stdout
