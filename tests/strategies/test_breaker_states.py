"""Manual and initial states, the half-open limits, and the breaker's counters."""

import math

import pytest

from stalwart.strategies import BreakerState, CircuitBreaker, CircuitOpenError, Outcome
from tests.strategies.fakes import Clock, trip


def test_open_for_a_given_time_then_half_open():
    clock = Clock()
    b = CircuitBreaker(5, 10.0, 1, clock=clock)
    b.open(for_s=30.0)
    assert b.state is BreakerState.OPEN and b.remaining_open_s == 30.0
    clock.now = 29.0
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: None)
    assert info.value.remaining_s == 1.0
    clock.now = 30.0
    assert b.state is BreakerState.HALF_OPEN


def test_opening_by_hand_counts_as_a_trip():
    clock = Clock()
    b = CircuitBreaker(5, 10.0, 1, open_backoff=2.0, clock=clock)
    b.open()
    assert b.remaining_open_s == 10.0
    b.open()  # again: the wait grows as it would for a second trip
    assert b.remaining_open_s == 20.0


def test_half_open_and_close_by_hand():
    b = CircuitBreaker(5, 10.0, 1)
    changes = []
    b.on_state_change(lambda _b, old, new: changes.append((old.value, new.value)))
    b.half_open()
    b.half_open()  # no change, nothing to report
    b.close()
    assert changes == [("closed", "half_open"), ("half_open", "closed")]


def test_closing_starts_a_fresh_window():
    b = CircuitBreaker(5, 10.0, 1)
    trip(b, 2)
    b.close()
    assert b.counts().calls == 0 and b.consecutive_failures == 0


@pytest.mark.parametrize("state", list(BreakerState))
def test_a_breaker_can_start_in_any_state(state):
    clock = Clock()
    b = CircuitBreaker(5, 10.0, 1, state=state.value, clock=clock)
    assert b.state is state
    if state is BreakerState.OPEN:
        assert b.remaining_open_s == 10.0


def test_a_bad_initial_state_names_the_field():
    with pytest.raises(ValueError, match=r"CircuitBreaker\.state: must be one of .*'ajar'"):
        CircuitBreaker(state="ajar")


def test_metrics_only_records_every_call_and_never_trips():
    clock = Clock()
    b = CircuitBreaker(2, 10.0, 1, state="metrics_only", clock=clock)
    trip(b, 5)
    b.call(lambda: None)
    assert b.state is BreakerState.METRICS_ONLY
    assert (b.counts().calls, b.counts().failures) == (6, 5)
    b.metrics_only()  # entering it again starts a fresh window
    assert b.counts().calls == 0


def test_forced_open_rejects_every_call_and_never_half_opens():
    clock = Clock()
    b = CircuitBreaker(2, 10.0, 1, clock=clock)
    b.force_open()
    clock.now = 1e6
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: None)
    assert info.value.remaining_s == math.inf
    assert b.state is BreakerState.FORCED_OPEN
    b.close()
    assert b.call(lambda: 1) == 1


def test_disabled_permits_every_call_and_records_nothing():
    b = CircuitBreaker(1, 10.0, 1)
    b.disable()
    trip(b, 3)
    assert b.state is BreakerState.DISABLED and b.counts().calls == 0


def test_half_open_that_no_trial_decides_reopens_after_the_maximum_wait():
    clock = Clock()
    b = CircuitBreaker(1, 10.0, 1, half_open_max_calls=1, max_wait_in_half_open_s=5.0, clock=clock)
    trip(b, 1)
    clock.now = 10.0
    lost = b.permit()  # a trial whose outcome never comes back
    with pytest.raises(CircuitOpenError):
        b.permit()
    clock.now = 14.9
    assert b.state is BreakerState.HALF_OPEN
    clock.now = 15.0
    assert b.state is BreakerState.OPEN and b.remaining_open_s == 10.0
    clock.now = 25.0
    b.call(lambda: None)  # a new trial
    b.record(lost, ConnectionError("too late"))  # the lost one decides nothing now
    assert b.state is BreakerState.CLOSED


def test_a_trial_that_ends_after_the_maximum_wait_decides_nothing():
    clock = Clock()
    b = CircuitBreaker(1, 10.0, 1, max_wait_in_half_open_s=5.0, clock=clock)
    b.half_open()
    trial = b.permit()
    clock.now = 6.0
    b.record(trial)  # the wait ran out first: the breaker re-opened
    assert b.state is BreakerState.OPEN


def trials(clock, breaker, durations):
    for duration in durations:
        with breaker:
            clock.now += duration


@pytest.mark.parametrize(("rate", "after"), [(50, "open"), (60, "closed")])
def test_the_slow_share_of_the_trials_decides_whether_they_close_it(rate, after):
    """Two successful trials are needed; one of them is slow (50 %)."""
    clock = Clock()
    b = CircuitBreaker(
        None, 10.0, 2, slow_call_duration_s=1.0, slow_call_rate_threshold=rate, clock=clock
    )
    b.half_open()
    trials(clock, b, [2.0, 0.5])
    assert b.state.value == after


def test_a_breaker_tripped_for_slowness_stays_open_while_trials_stay_slow():
    clock = Clock()
    b = CircuitBreaker(
        None,
        10.0,
        1,
        slow_call_duration_s=1.0,
        slow_call_rate_threshold=80,
        minimum_calls=2,
        clock=clock,
    )
    trials(clock, b, [2.0, 2.0])
    assert b.state is BreakerState.OPEN
    clock.now += 10.0
    trials(clock, b, [2.0])  # the one trial is slow: open again
    assert b.state is BreakerState.OPEN
    clock.now += 10.0
    trials(clock, b, [0.5])
    assert b.state is BreakerState.CLOSED


def test_consecutive_failures_carry_into_half_open_and_a_success_ends_them():
    clock = Clock()
    b = CircuitBreaker(3, 10.0, 2, clock=clock)
    trip(b, 2)
    b.call(lambda: None)
    assert b.consecutive_failures == 0
    trip(b, 3)
    assert b.consecutive_failures == 3 and b.state is BreakerState.OPEN
    clock.now = 10.0
    trip(b, 1)  # the trial fails
    assert b.consecutive_failures == 4
    clock.now = 30.0
    b.call(lambda: None)
    assert b.consecutive_failures == 0 and b.state is BreakerState.HALF_OPEN


def test_rejected_calls_count_every_rejection():
    clock = Clock()
    b = CircuitBreaker(1, 10.0, 1, half_open_max_calls=1, clock=clock)
    trip(b, 1)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            b.call(lambda: None)  # open
    clock.now = 10.0
    trial = b.permit()
    with pytest.raises(CircuitOpenError):
        b.permit()  # half-open, no trial left
    b.record(trial)
    b.force_open()
    with pytest.raises(CircuitOpenError), b:
        pass
    assert b.rejected_calls == 5


def test_removed_listeners_hear_nothing_more():
    b = CircuitBreaker(1, 10.0, 1)
    changes, outcomes = [], []

    def on_change(_b, old, new):
        changes.append(new)

    def on_outcome(_b, outcome, _duration, _exc):
        outcomes.append(outcome)

    b.on_state_change(on_change)
    b.on_outcome(on_outcome)
    b.call(lambda: None)
    b.remove_listener(on_change)
    b.remove_listener(on_outcome)
    trip(b, 1)
    assert changes == [] and outcomes == [Outcome.SUCCESS]
    with pytest.raises(ValueError, match="no such listener"):
        b.remove_listener(on_change)


def test_bad_new_settings_name_the_field():
    with pytest.raises(ValueError, match="max_wait_in_half_open_s"):
        CircuitBreaker(max_wait_in_half_open_s=0)
    with pytest.raises(ValueError, match="for_s"):
        CircuitBreaker().open(for_s=-1)
