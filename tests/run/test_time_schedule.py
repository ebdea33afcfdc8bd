"""A decaying schedule over a --minutes budget: the rate follows the training time, every
step's rate is the promised value at the time the step started, and a run stopped and
resumed continues the same schedule bit for bit.  The clock is a fake one that moves
only while a step trains (half a second per step), so the times are exact."""
import numpy as np
import pytest

import rnncore
from rnncore import clock as clock_module
from rnncore.train import Trainer, learning_rate_at

from support import quiet_fit, read_log

SECONDS_PER_STEP = 0.5


class FakeTime:
    """time.perf_counter that advances SECONDS_PER_STEP during each training step."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self):
        return self.now


@pytest.fixture
def fake_clock(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(clock_module, "time", fake)
    real_step = Trainer.train_step

    def timed_step(self, *args, **kwargs):
        loss = real_step(self, *args, **kwargs)
        fake.now += SECONDS_PER_STEP
        return loss
    monkeypatch.setattr(Trainer, "train_step", timed_step)
    return fake


SCHEDULE = dict(lr_schedule="cosine", lr_floor=0.1, warmup_steps=6, learning_rate=0.02,
                print_every=1, eval_every=10, minutes=0.5, average_start=10)
#: 30 s: 60 steps, and the one whose start finds the time up (the stop travels with a
#: step's gradients, so the step runs; at the floor)
STEPS = 61


def promised(step, total_seconds=30.0, schedule="cosine"):
    """The rate of step `step` (from 1), which starts after step - 1 half-seconds."""
    return learning_rate_at(step - 1, 0.02, schedule, warmup_steps=6, min_fraction=0.1,
                            seconds=SECONDS_PER_STEP * (step - 1),
                            total_seconds=total_seconds)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_every_step_uses_the_rate_of_the_time_it_starts_at(tmp_path, fake_clock, schedule):
    result, lines = quiet_fit(tmp_path, **{**SCHEDULE, "lr_schedule": schedule})
    assert result.status == "finished" and result.step == STEPS
    log = read_log(tmp_path)
    assert [r["step"] for r in log] == list(range(1, STEPS + 1))
    for r in log:
        assert r["lr"] == promised(r["step"], schedule=schedule), r
        assert r["elapsed"] == SECONDS_PER_STEP * r["step"]
    rates = [r["lr"] for r in log]
    assert rates[5] == 0.02 and rates[:6] == [0.02 * (i + 1) / 6 for i in range(6)]
    assert rates[6:] == sorted(rates[6:], reverse=True)             # down from the top...
    assert rates[-2] == pytest.approx(0.02 * (0.1 + 0.9 * (
        0.5 * (1 + np.cos(np.pi * 59 / 60)) if schedule == "cosine" else 1 / 60)))
    assert rates[-1] == pytest.approx(0.002)                        # ...to the floor
    assert f"({schedule} to 0.1x at 0.5 minutes of training, warm-up 6 steps)" in lines[0]
    ckpt = rnncore.load_checkpoint(tmp_path / "model.npz")
    assert ckpt.train_meta["config"]["total_seconds"] == 30.0


def test_a_run_stopped_and_resumed_continues_the_same_schedule_bit_for_bit(tmp_path,
                                                                          fake_clock):
    whole = tmp_path / "whole"
    cut = tmp_path / "cut"
    whole.mkdir(), cut.mkdir()
    quiet_fit(whole, **SCHEDULE)
    # the same run stopped after step 23 (its checkpoint: 11.5 s of its 30), then resumed
    # without a budget: it trains on to its 30 seconds
    quiet_fit(cut, **SCHEDULE, callback=lambda record: record["step"] == 23)
    assert rnncore.load_checkpoint(cut / "model.npz").train_meta["step"] == 23
    result, _ = quiet_fit(cut, resume=True, print_every=1, eval_every=10)
    assert result.status == "finished" and result.step == STEPS
    rates = {r["step"]: r["lr"] for r in read_log(cut)}
    assert rates == {r["step"]: r["lr"] for r in read_log(whole)}
    assert rates[24] == promised(24)
    a, b = (rnncore.load_checkpoint(d / "model.npz") for d in (whole, cut))
    for name, p in a.model.params.items():
        assert np.array_equal(p, b.model.params[name]), name
    for name, p in a.average_model.params.items():
        assert np.array_equal(p, b.average_model.params[name]), name


def test_a_resume_given_minutes_spans_the_schedule_over_them(tmp_path, fake_clock):
    quiet_fit(tmp_path, **SCHEDULE, callback=lambda record: record["step"] == 20)
    result, _ = quiet_fit(tmp_path, resume=True, minutes=0.25, print_every=1,
                          eval_every=10)                          # 10 s + 15 s more
    assert result.step == 51
    log = read_log(tmp_path)
    assert [r["lr"] for r in log[20:]] == [promised(s, total_seconds=25.0)
                                           for s in range(21, 52)]
