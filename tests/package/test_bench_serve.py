"""bench/serve.py and bench/typing_load.py run (on tiny sizes) and write the fields the
server guide's tables are made of.  Nothing here times anything; it runs with the other
benchmark scripts' tests, when asked for (`pytest --run-bench`)."""
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
                      "--beam-seconds", 1.5, "--json", out, "--markdown", md, cwd=tmp_path)
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
    beside = result["beside_beams"]["batched"]
    assert beside["requests"] > 0 and beside["p99_ms"] >= beside["p50_ms"] > 0
    table = md.read_text()
    assert "| suggest | 3 |" in table and "| sample | 1 |" in table
    assert "| as one batch |" in table and "beams answered" in table


def test_typing_benchmark_runs_and_writes_its_tables(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("To be, or not to be, that is the question: " * 80)
    out, md = tmp_path / "typing.json", tmp_path / "typing.md"
    proc = run_script("typing_load.py", "--text", text, "--clients", 2, "--seconds", 0.3,
                      "--warmup", 0.1, "--repeats", 1, "--keystrokes", 3, "--start-max", 10,
                      "--json", out, "--markdown", md, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert set(result["keystroke_ms_in_process"]) == {
        f"{kind}, {n} characters" for kind in ("session", "model.suggest(whole text)")
        for n in (20, 2000)}
    assert set(result["keystroke_ms_http"]) == {"this, 20 characters", "this, 2000 characters"}
    assert result["typing"]["this"]["requests"] > 0
    assert "| typing session: type + suggest |" in md.read_text()
