"""The benchmark scripts run (on tiny sizes) and write the fields README's tables are made of.
Nothing here times anything.

They are slow, so they run only when asked for: `pytest --run-bench` (or
RNNCORE_RUN_BENCH=1).  bench/ is not part of the source distribution: without it these
tests are skipped.
"""
import importlib.util
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
    assert {"command", "environment", "windows", "fma_peak_gflops", "gemm_peak_gflops",
            "generation", "trainer", "peak_rss_mb"} <= set(result)
    assert set(result["fma_peak_gflops"]) == {"float64 1 thread", "float64 2 threads"}
    assert result["environment"]["micro_kernel"] in ("avx512", "avx2", "generic")
    # the demo's row + B=1 + B=2 for rnn; lstm and gru × 1, 2 layers × B=1, 2
    assert len(result["windows"]) == 3 + 2 * 2 * 2
    assert {(r["cell"], r["layers"]) for r in result["windows"]} == {
        ("rnn", 1), ("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 2)}
    for row in result["windows"]:
        assert {"cell", "layers", "V", "H", "B", "T", "dtype", "threads", "us_per_window",
                "us_min_max", "chars_per_s", "speedup_vs_numpy", "gflops_rnncore"} <= set(row)
        assert set(row["us_per_window"]) == {"rnncore", "rnncore·1", "numpy"}
        assert row["threads"] == 2
        assert row["share_of_fma_peak"] > 0 and row["speedup_vs_1_thread"] > 0
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
    assert all(set(r["us_per_window"]) == {"rnncore", "rnncore·1", "numpy", "torch"}
               for r in rows)


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
    assert row["one_process_default_threads"] > 0 and row["speedup_vs_one_process"] > 0
    assert row["gradient_bytes"] == 4 * (row["parameters"] + 3)
    assert "| 2 ranks, default threads |" in proc.stdout


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


def test_busy_script_runs_at_a_tiny_size(tmp_path):
    out = tmp_path / "busy.json"
    proc = run_script("busy.py", "--quick", "--repeats", "1", "--budget", "0.05", "--json", out,
                      cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["default_threads"] >= 1 and result["micro_kernel"]
    (busy,), (idle,) = result["busy"], result["idle"]
    assert busy["default_vs_1_thread"] > 0 and idle["default_vs_1_thread"] > 0
    assert "| busy: default × 1 thread |" in proc.stdout


def test_generation_script_runs_against_this_install_as_its_baseline(tmp_path):
    out = tmp_path / "generation.json"
    proc = run_script("generation.py", "--baseline-python", sys.executable, "--repeats", "1",
                      "--json", out, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    this, base = result["median"]["this"], result["median"]["baseline"]
    assert set(this) == set(base) and "gru 2x256 float32" in this
    assert this["gru 2x256 float32"]["complete 200 (ms)"] > 0
    assert "| × baseline |" in proc.stdout


def test_products_script_compares_with_blas(tmp_path):
    out = tmp_path / "products.json"
    proc = run_script("products.py", "--repeats", "1", "--budget", "0.01", "--json", out,
                      cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 10 and all(r["rnncore_vs_blas"] > 0 for r in rows)


def test_init_trials_script_runs_a_few_steps(tmp_path):
    out = tmp_path / "init.json"
    torch_args = [] if importlib.util.find_spec("torch") else ["--no-torch"]
    proc = run_script("init_trials.py", "--steps", "6", "--eval-every", "3", "--seeds", "2",
                      "--cells", "gru", "--dropouts", "0.1", "--schemes", "zero", "pytorch",
                      *torch_args, "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["command"].startswith("python bench/init_trials.py --steps 6")
    assert "/root" not in out.read_text() and "/work" not in out.read_text()
    systems = {"rnncore"} | ({"torch"} if not torch_args else set())
    assert {r["system"] for r in record["runs"]} == systems
    assert len(record["runs"]) == 2 * (2 + len(systems) - 1)      # seeds × (schemes + torch)
    assert all(set(r["held_out"]) == {"3", "6"} for r in record["runs"])
    assert record["chosen"]["gru"] in ("zero", "pytorch")
    assert record["corpus"]["held_out_chars"] > 10_000 and not record["corpus"]["missing"]
    if not torch_args:
        (twin,) = record["twins"]
        assert twin["max_abs_difference"] < 1e-3    # the same weights, the same 6 steps
    assert "| GRU | **" in proc.stdout
