"""The metrics log: a torn last line (a killed writer) and foreign lines are skipped."""
import json

from rnncore.metrics import MetricsLog, metrics_path, read_metrics


def test_read_metrics_skips_a_torn_last_line_and_non_records(tmp_path):
    path = tmp_path / "m.metrics.jsonl"
    lines = [json.dumps({"step": 1, "train_loss": 2.0}), json.dumps([1, 2]),
             json.dumps({"note": "no step"}), json.dumps("a step"), json.dumps(["step"]),
             json.dumps({"step": 2, "train_loss": 1.5}),
             '{"step": 3, "train_lo']
    path.write_text("\n".join(lines))
    assert read_metrics(path) == [{"step": 1, "train_loss": 2.0},
                                  {"step": 2, "train_loss": 1.5}]


def test_truncate_after_keeps_the_given_step_and_drops_later_ones(tmp_path):
    log = MetricsLog(str(tmp_path / "m.metrics.jsonl"))
    log.truncate_after(5)                      # no log yet: nothing to do
    for step in (5, 10, 15):
        log.write({"step": step})
    log.truncate_after(10)
    assert read_metrics(log.path) == [{"step": 5}, {"step": 10}]
    log.reset()
    assert not (tmp_path / "m.metrics.jsonl").exists()


def test_metrics_path_sits_beside_the_checkpoint():
    assert metrics_path("runs/model.npz") == "runs/model.metrics.jsonl"
    assert metrics_path("runs/model") == "runs/model.metrics.jsonl"
