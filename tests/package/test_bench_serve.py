"""bench/serve.py runs (on tiny sizes) and writes the fields README's table is made of.
Nothing here times anything; it runs with the other benchmark scripts' tests, when asked
for (`pytest --run-bench`)."""
import json

import pytest

from test_bench import BENCH_DIR, run_script

pytest.importorskip("fastapi")
pytestmark = [pytest.mark.bench, pytest.mark.slow,
              pytest.mark.skipif(not BENCH_DIR.is_dir(), reason="no bench/ folder")]


def test_serve_benchmark_runs_and_writes_its_table(tmp_path):
    out, md = tmp_path / "serve.json", tmp_path / "serve.md"
    proc = run_script("serve.py", "--hidden-size", 8, "--num-layers", 1, "--seconds", 0.3,
                      "--warmup", 0.1, "--clients", "1,3", "--sample-length", 10,
                      "--json", out, "--markdown", md, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["model"].startswith("gru 1x8 float32")
    rows = {(r["kind"], r["clients"], r["mode"]): r for r in result["rows"]}
    assert set(rows) == {(k, c, m) for k in ("suggest", "sample") for c in (1, 3)
                         for m in ("batched", "one at a time")}
    for r in rows.values():
        assert r["requests"] > 0 and r["requests_per_s"] > 0
        assert 0 < r["p50_ms"] <= r["p99_ms"]
    work = result["model_work_ms"]
    assert work["texts"] == 3
    assert all(work[f"{mode}, {part}"] > 0 for mode in ("one at a time", "as one batch")
               for part in ("feed", "word search"))
    table = md.read_text()
    assert "| suggest | 3 |" in table and "| sample | 1 |" in table
    assert "| as one batch |" in table
