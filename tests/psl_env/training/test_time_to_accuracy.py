"""Time-to-accuracy bookkeeping: simulated time, the first evaluation reaching the target, step time."""

from __future__ import annotations

import math

import pytest

from psl_env.training.time_to_accuracy import AccuracyCurve, step_time_s


def test_first_evaluation_at_target_fixes_rounds_and_time():
    c = AccuracyCurve(0.9)
    c.start(0.1, 2.3)
    assert c.accuracy == 0.1 and not c.reached
    c.add(1.0, False)
    c.add(2.0, True, 0.85, 0.5)
    c.add(0.5, False)
    c.add(0.5, True, 0.92, 0.3)
    c.add(3.0, True, 0.88, 0.35)  # dropping below later changes nothing
    assert c.reached and c.rounds_to_target == 4 and c.sim_time_to_target_s == pytest.approx(4.0)
    assert c.summary() == {"rounds_to_target": 4, "sim_time_to_target_s": pytest.approx(4.0),
                           "final_accuracy": 0.88, "rounds": 5, "sim_time_s": pytest.approx(7.0)}
    assert c.eval_rounds == [0, 2, 4, 5] and c.eval_time_s == pytest.approx([0.0, 3.0, 4.0, 7.0])


def test_not_reached_and_no_evaluation():
    c = AccuracyCurve(0.99)
    assert math.isnan(c.accuracy)
    c.add(1.0, True, 0.5, 1.0)
    assert c.summary()["rounds_to_target"] is None and c.summary()["sim_time_to_target_s"] is None


def test_step_time_counts_sync_and_migration_once():
    class Lat:
        total = 3.0  # 0.5 + 0.25 + 0.75 + sync 1.0 + migration 0.5
        uplink_phase, server_compute, downlink_phase = 0.5, 0.25, 0.75

    assert step_time_s(Lat()) == 3.0
    assert step_time_s(Lat(), 4) == pytest.approx(3.0 + 3 * 1.5)
