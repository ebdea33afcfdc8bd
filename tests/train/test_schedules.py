"""Learning-rate schedules, value by value: the function, the Trainer, and every rate the
CLI logs."""
import json
import math

import pytest

import rnncore
from rnncore.train import Trainer, learning_rate_at

from support import corpus, run

COS_QUARTER = math.cos(math.pi / 4)


@pytest.mark.parametrize("step,expected", [
    (0, 0.01), (4, 0.05), (9, 0.1),                         # warm-up: (step + 1) / 10
    (10, 0.1),                                              # the cosine starts at its top
    (35, 0.05 * (1 + COS_QUARTER)),                         # a quarter of the 100-step span
    (60, 0.05),                                             # half-way down
    (85, 0.05 * (1 - COS_QUARTER)),
    (110, 0.0), (200, 0.0),                                 # 0 at total_steps, and after
])
def test_cosine_spans_the_steps_after_the_warm_up(step, expected):
    lr = learning_rate_at(step, 0.1, "cosine", total_steps=110, warmup_steps=10)
    assert lr == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("step,warmup,expected", [
    (0, 0, 0.1), (50, 0, 0.1 * (0.1 + 0.9 * 0.5)), (100, 0, 0.01), (150, 0, 0.01),
    (60, 10, 0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 50 / 90)))),
])
def test_cosine_falls_to_min_fraction_of_the_rate(step, warmup, expected):
    lr = learning_rate_at(step, 0.1, "cosine", total_steps=100, warmup_steps=warmup,
                          min_fraction=0.1)
    assert lr == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("schedule,epoch,step,expected", [
    ("step", 0, 7, 0.1), ("step", 1, 7, 0.097), ("step", 3, 7, 0.1 * 0.97 ** 3),
    ("step", 3, 1, 0.04),          # the warm-up comes first, whatever the schedule
    ("constant", 9, 4, 0.1), ("constant", 9, 2, 0.06),
])
def test_step_and_constant_schedules_with_a_warm_up(schedule, epoch, step, expected):
    lr = learning_rate_at(step, 0.1, schedule, warmup_steps=5 if step < 3 else 0, epoch=epoch)
    assert lr == pytest.approx(expected, rel=1e-12)


def test_defaults_and_a_cosine_without_an_end():
    assert learning_rate_at(7, 0.1, "step") == 0.1        # epoch 0 unless told
    assert learning_rate_at(7, 0.1, "step", decay=0.5, epoch=2) == 0.025
    with pytest.raises(ValueError, match="the cosine schedule needs total_steps"):
        learning_rate_at(0, 0.1, "cosine")
    with pytest.raises(ValueError, match="the cosine schedule needs total_steps"):
        Trainer(rnncore.CharRNN(rnncore.Vocab.from_text("ab"), 2), "abab",
                lr_schedule="cosine", seq_length=1)
    # a one-step cosine after the warm-up still ends at 0
    assert learning_rate_at(11, 0.1, "cosine", total_steps=11, warmup_steps=10) == 0


@pytest.mark.parametrize("seconds,cosine,linear", [
    (0.0, 0.1, 0.1),                                        # the top at the start
    (300.0, 0.01 + 0.09 * 0.5 * (1 + COS_QUARTER), 0.01 + 0.09 * 0.75),
    (600.0, 0.055, 0.055),                                  # half the time: half-way
    (900.0, 0.01 + 0.09 * 0.5 * (1 - COS_QUARTER), 0.01 + 0.09 * 0.25),
    (1200.0, 0.01, 0.01), (1500.0, 0.01, 0.01),             # the floor when time is up
])
def test_over_a_time_budget_the_rate_follows_the_seconds_spent(seconds, cosine, linear):
    # step 5000 of a 1,200-second budget: the steps play no part after the warm-up
    for schedule, expected in (("cosine", cosine), ("linear", linear)):
        lr = learning_rate_at(5000, 0.1, schedule, total_steps=10, warmup_steps=100,
                              min_fraction=0.1, seconds=seconds, total_seconds=1200.0)
        assert lr == pytest.approx(expected, rel=1e-12), schedule


def test_the_warm_up_comes_first_over_a_time_budget_too():
    for step in (0, 49, 99):
        assert learning_rate_at(step, 0.1, "cosine", warmup_steps=100, seconds=500.0,
                                total_seconds=600.0) == pytest.approx(0.1 * (step + 1) / 100)
    with pytest.raises(ValueError, match="over a time budget needs the training seconds"):
        learning_rate_at(200, 0.1, "linear", total_seconds=600.0)


@pytest.mark.parametrize("step,expected", [(0, 0.1), (50, 0.05), (100, 0.0), (130, 0.0)])
def test_linear_falls_along_a_line_over_the_steps(step, expected):
    assert learning_rate_at(step, 0.1, "linear", total_steps=100) == pytest.approx(
        expected, abs=1e-15)


def test_trainer_follows_its_seconds_under_a_time_budget():
    text = "abcdefghijklmnopqrstuvwxyz" * 4
    model = rnncore.CharRNN(rnncore.Vocab.from_text(text), 4, seed=0)
    t = Trainer(model, text, seq_length=10, learning_rate=0.1, lr_schedule="cosine",
                lr_floor=0.2, total_seconds=100.0)
    assert t.current_lr == 0.1
    t.seconds = 50.0
    assert t.current_lr == pytest.approx(0.06)
    t.train(1)
    assert t.last_lr == pytest.approx(0.06)
    t.seconds = 100.0
    assert t.current_lr == pytest.approx(0.02)
    with pytest.raises(ValueError, match="the linear schedule needs total_steps or "
                                         "total_seconds"):
        Trainer(model, text, lr_schedule="linear")


def test_trainer_uses_the_schedule_at_every_step():
    text = "abcdefghijklmnopqrstuvwxyz" * 4        # 103 targets, T=10: 11 steps per pass
    model = rnncore.CharRNN(rnncore.Vocab.from_text(text), 4, seed=0)
    t = Trainer(model, text, seq_length=10, learning_rate=0.1, lr_schedule="cosine",
                total_steps=30, warmup_steps=4, lr_floor=0.0)
    used = []
    real_step = t.optimizer.step
    t.optimizer.step = lambda grads, lr: (used.append(lr), real_step(grads, lr))
    t.train(30)
    expected = [0.1 * (i + 1) / 4 if i < 4 else
                0.05 * (1 + math.cos(math.pi * (i - 4) / 26)) for i in range(30)]
    assert used == pytest.approx(expected, rel=1e-12, abs=1e-15)


def _train_and_read_log(tmp_path, text, *options, steps):
    out = tmp_path / "model.npz"
    proc = run("train", corpus(tmp_path, text), "--out", out, "--steps", steps,
               "--hidden-size", "8", "--seq-length", "8", "--batch-size", "2",
               "--print-every", "1", "--eval-every", "1000", "--val-fraction", "0",
               "--learning-rate", "0.01", *options, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "model.metrics.jsonl") as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_every_logged_rate_follows_warm_up_then_cosine(tmp_path):
    log = _train_and_read_log(tmp_path, "the cat sat on the mat. " * 40, "--lr-schedule",
                              "cosine", "--warmup-steps", "10", "--lr-floor", "0", steps=60)
    assert [r["step"] for r in log] == list(range(1, 61))
    for r in log:   # the line of step s logs the rate step s used (0-based index s - 1)
        i = r["step"] - 1
        expected = 0.01 * (i + 1) / 10 if i < 10 else \
            0.005 * (1 + math.cos(math.pi * (i - 10) / 50))
        assert r["lr"] == pytest.approx(expected, rel=1e-12, abs=1e-15), r


@pytest.mark.slow
def test_every_logged_rate_decays_once_per_pass(tmp_path):
    text = "the cat sat on the mat. " * 10           # 240 chars: 2 streams of 119 targets
    per_pass = math.ceil((len(text) - 1) // 2 / 8)  # windows of 8: 15 steps per pass
    log = _train_and_read_log(tmp_path, text, "--lr-schedule", "step", "--lr-decay", "0.5",
                              steps=40)
    assert len(log) == 40
    for r in log:
        i = r["step"] - 1
        assert r["epoch"] == r["step"] // per_pass
        assert r["lr"] == pytest.approx(0.01 * 0.5 ** (i // per_pass), rel=1e-12), r
