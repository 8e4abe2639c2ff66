"""Levels from samples: thresholds with hysteresis, repeats, trend prediction and PSI."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart import MemoryLevel, SpecError, start
from stalwart.memory import LevelTracker, MemorySample, MemorySettings, Pressure
from stalwart.memory._levels import Trigger


def sample(t, percent, psi=None):
    return MemorySample(t, percent, int(percent * 10), 1000, "budget", psi)


def run(tracker, percents, start_t=0.0, step=1.0):
    fired = []
    for i, p in enumerate(percents):
        trigger = tracker.observe(sample(start_t + i * step, p))
        if trigger is not None:
            fired.append((i, int(trigger.level), trigger.reason))
    return fired


FLAT = MemorySettings(horizon_s=0)  # no prediction: thresholds only


def test_rising_through_the_thresholds_fires_each_tier_once_in_order():
    fired = run(LevelTracker(FLAT), [50, 60, 71, 72, 80, 86, 90, 96, 97, 99])
    assert fired == [(2, 1, "threshold"), (5, 2, "threshold"), (7, 3, "threshold")]


def test_hovering_around_a_threshold_does_not_fire_again():
    fired = run(LevelTracker(FLAT), [69, 71, 69, 71, 68, 70.5, 66, 72, 69.9])
    assert fired == [(1, 1, "threshold")]


def test_leaving_a_level_below_the_hysteresis_band_arms_it_again():
    fired = run(LevelTracker(FLAT), [71, 60, 71])  # 60 < 70 - 5: back to normal
    assert fired == [(0, 1, "threshold"), (2, 1, "threshold")]


def test_staying_in_a_level_fires_again_after_repeat_s():
    tracker = LevelTracker(MemorySettings(horizon_s=0, repeat_s=10))
    fired = run(tracker, [75] * 25)
    assert [i for i, _lvl, _r in fired] == [0, 10, 20]


def test_a_predicted_crossing_fires_the_next_tier_early():
    tracker = LevelTracker(MemorySettings(horizon_s=1.5, trend_samples=5))
    fired = run(tracker, [50, 55, 60, 65])  # +5 points/s: 70 % in 1 s
    assert fired and fired[0][1:] == (1, "trend")
    assert fired[0][0] == 3


def test_a_falling_trend_predicts_nothing():
    tracker = LevelTracker(MemorySettings(horizon_s=60))
    assert run(tracker, [69, 66, 63, 60, 57]) == []


def test_memory_stall_raises_the_level_by_one():
    tracker = LevelTracker(MemorySettings(horizon_s=0, psi_some=10))
    trigger = tracker.observe(sample(0, 72, Pressure(25.0, 5.0)))
    assert trigger == Trigger(MemoryLevel.CRITICAL, "psi", trigger.detail)
    assert tracker.observe(sample(1, 50, Pressure(1.0, 0.0))) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=60))
def test_firing_follows_the_rules_on_any_series(percents):
    s = MemorySettings(horizon_s=0, repeat_s=1e9, hysteresis=5)
    tracker = LevelTracker(s)
    level = 0
    for i, p in enumerate(percents):
        before = tracker.level
        trigger = tracker.observe(sample(float(i), p))
        measured = sum(p >= t for t in s.thresholds)
        # the level is never below what the thresholds say, nor above it unless within
        # the hysteresis band of the level it came from
        assert tracker.level >= measured
        if tracker.level > measured:
            assert tracker.level <= before and p >= s.thresholds[tracker.level - 1] - 5
        if trigger is not None:
            # a tier fires only on entering a higher level than the one it was in
            assert int(trigger.level) == tracker.level and tracker.level > before
        elif tracker.level > before:
            raise AssertionError(f"entered level {tracker.level} at {p} without firing")
        level = tracker.level
    assert level == tracker.level


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"memory_thresholds": (85, 70, 95)}, "memory_thresholds"),
        ({"memory_thresholds": (70, 85, 120)}, "memory_thresholds"),
        ({"memory_budget": "-1GiB"}, "memory_budget"),
        ({"memory_budget": "3 bananas"}, "memory_budget"),
        ({"memory_interval_s": 0}, "memory_interval_s"),
        ({"memory": {"hysteresis": -1}}, "memory.hysteresis"),
        ({"memory": {"hysteresis": 80}}, "memory.hysteresis"),  # (a level would never be left)
        ({"memory": {"psi_some": 150}}, "memory.psi_some"),  # (a share of time, in %)
        ({"memory": {"colour": "red"}}, "memory.colour"),
    ],
)
def test_bad_memory_options_name_the_field(options, field):
    from stalwart import Child, Supervisor
    from tests.support import Worker

    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        start(Supervisor("s", children=[Child("w", Worker)]), **options)
