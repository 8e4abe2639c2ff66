import asyncio
import pickle
import threading

import pytest

from stalwart.strategies import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    CountWindow,
    Outcome,
    TimeWindow,
)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fail():
    raise ConnectionError("down")


def trip(breaker, n):
    for _ in range(n):
        with pytest.raises(ConnectionError):
            breaker.call(fail)


def test_familiar_names_open_after_the_threshold_and_close_after_successes():
    clock = Clock()
    b = CircuitBreaker(failure_threshold=5, recovery_timeout=60.0, success_threshold=2, clock=clock)
    trip(b, 4)
    assert b.state is BreakerState.CLOSED
    trip(b, 1)
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: "never")
    assert info.value.remaining_s == pytest.approx(60.0)
    clock.now = 60.0
    assert b.state is BreakerState.HALF_OPEN
    assert b.call(lambda: 1) == 1
    assert b.state is BreakerState.HALF_OPEN
    assert b.call(lambda: 2) == 2
    assert b.state is BreakerState.CLOSED


def test_a_success_resets_the_consecutive_failure_count():
    b = CircuitBreaker(3, 10, 1)
    trip(b, 2)
    b.call(lambda: None)
    trip(b, 2)
    assert b.state is BreakerState.CLOSED


def test_failure_rate_threshold_needs_the_minimum_number_of_calls():
    b = CircuitBreaker(
        None, 10, 1, failure_rate_threshold=50, minimum_calls=4, window=CountWindow(10)
    )
    b.call(lambda: None)
    trip(b, 1)
    assert b.state is BreakerState.CLOSED  # 2 calls < minimum
    b.call(lambda: None)
    trip(b, 1)
    assert b.state is BreakerState.OPEN  # 4 calls, 50 %


def test_slow_calls_trip_the_slow_call_rate_threshold():
    clock = Clock()
    b = CircuitBreaker(
        None,
        10,
        1,
        slow_call_rate_threshold=50,
        slow_call_duration_s=1.0,
        minimum_calls=2,
        clock=clock,
    )

    def slow():
        clock.now += 2.0
        return "late"

    b.call(lambda: "quick")
    assert b.call(slow) == "late"
    assert b.state is BreakerState.OPEN


def test_time_window_forgets_old_failures():
    clock = Clock()
    b = CircuitBreaker(
        None, 10, 1, failure_rate_threshold=60, minimum_calls=3, window=TimeWindow(5.0), clock=clock
    )
    trip(b, 2)
    clock.now = 10.0
    for _ in range(3):
        b.call(lambda: None)
    trip(b, 1)
    assert b.counts().calls == 4
    assert b.state is BreakerState.CLOSED


def test_open_wait_grows_on_repeated_trips_and_is_capped():
    clock = Clock()
    b = CircuitBreaker(1, 1.0, 1, open_backoff=3.0, max_recovery_timeout=5.0, clock=clock)
    waits = []
    for _ in range(4):
        trip(b, 1)
        waits.append(b.remaining_open_s)
        clock.now += waits[-1]
        assert b.state is BreakerState.HALF_OPEN
    assert waits == [1.0, 3.0, 5.0, 5.0]
    b.call(lambda: None)
    trip(b, 1)
    assert b.remaining_open_s == 1.0  # closing resets the growth


def test_half_open_permits_only_the_configured_trial_calls():
    clock = Clock()
    b = CircuitBreaker(1, 1.0, 2, half_open_max_calls=2, clock=clock)
    trip(b, 1)
    clock.now = 1.0
    b.__enter__()
    b.__enter__()
    with pytest.raises(CircuitOpenError) as info:
        b.__enter__()
    assert info.value.state == "half_open"
    b.__exit__(None, None, None)
    b.__exit__(None, None, None)
    assert b.state is BreakerState.CLOSED


def test_record_and_ignore_lists_and_predicate():
    b = CircuitBreaker(2, 10, 1, record_on=(ConnectionError,), ignore_on=(ConnectionResetError,))
    for exc in (KeyError("x"), ConnectionResetError(), ConnectionResetError()):
        with pytest.raises(type(exc)):
            b.call(lambda e=exc: (_ for _ in ()).throw(e))
    assert b.state is BreakerState.CLOSED
    assert b.counts().calls == 1  # KeyError counted as a success, resets ignored
    p = CircuitBreaker(1, 10, 1, is_failure=lambda e: "fatal" in str(e))
    with pytest.raises(RuntimeError):
        p.call(lambda: (_ for _ in ()).throw(RuntimeError("fatal: disk")))
    assert p.state is BreakerState.OPEN


def test_listeners_see_state_changes_and_every_outcome():
    clock = Clock()
    b = CircuitBreaker(1, 1, 1, clock=clock)
    changes, outcomes = [], []
    b.on_state_change(lambda br, old, new: changes.append((old.value, new.value)))
    b.on_outcome(lambda br, outcome, duration, exc: outcomes.append(outcome))
    b.call(lambda: None)
    trip(b, 1)
    with pytest.raises(CircuitOpenError):
        b.call(lambda: None)
    clock.now = 1
    b.call(lambda: None)
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert outcomes == [Outcome.SUCCESS, Outcome.FAILURE, Outcome.REJECTED, Outcome.SUCCESS]


def test_manual_states():
    b = CircuitBreaker(1, 1, 1)
    b.force_open()
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: 1)
    assert info.value.remaining_s == float("inf")
    b.disable()
    trip(b, 3)
    assert b.state is BreakerState.DISABLED
    b.reset()
    assert b.state is BreakerState.CLOSED and b.counts().calls == 0


def test_health_score_follows_the_window():
    b = CircuitBreaker(10, 1, 1)
    assert b.health() == 100
    for _ in range(3):
        b.call(lambda: None)
    trip(b, 1)
    assert b.health() == 75
    b.force_open()
    assert b.health() == 0


def test_adaptive_threshold_tightens_when_trips_cluster_and_relaxes_when_stable():
    clock = Clock()
    b = CircuitBreaker(
        8, 1.0, 1, adaptive=True, cluster_window_s=30, stable_period_s=100, clock=clock
    )
    trip(b, 8)
    clock.now += 1
    b.call(lambda: None)  # half-open trial closes it
    trip(b, 8)  # trips again within 30 s of closing: failures cluster
    assert b.current_threshold == 4
    clock.now += 1
    b.call(lambda: None)
    trip(b, 4)
    assert b.current_threshold == 2
    clock.now += 1
    b.call(lambda: None)
    clock.now += 350  # three stable periods
    trip(b, 1)
    assert b.current_threshold == 5
    assert b.state is BreakerState.CLOSED


def test_decorator_and_context_manager_forms():
    b = CircuitBreaker(1, 60, 1)

    @b
    def ok(x):
        return x

    assert ok(3) == 3
    with pytest.raises(ConnectionError), b:
        raise ConnectionError()
    with pytest.raises(CircuitOpenError):
        ok(1)


def test_async_forms():
    b = CircuitBreaker(2, 60, 1)

    @b
    async def fetch(x):
        if x < 0:
            raise TimeoutError()
        return x

    async def main():
        assert await fetch(1) == 1
        for _ in range(2):
            with pytest.raises(TimeoutError):
                await fetch(-1)
        with pytest.raises(CircuitOpenError):
            await fetch(1)
        async with b:
            pass

    with pytest.raises(CircuitOpenError):
        asyncio.run(main())


def test_open_error_pickles_with_its_details():
    err = pickle.loads(pickle.dumps(CircuitOpenError("payments", "open", 2.5)))
    assert (err.name, err.state, err.remaining_s) == ("payments", "open", 2.5)
    assert "payments" in str(err) and "2.500s" in str(err)


def test_concurrent_callers_never_exceed_the_threshold_while_closed():
    b = CircuitBreaker(50, 60, 1, window=CountWindow(1000))
    errors = []

    def worker(i):
        for j in range(300):
            try:
                if (i + j) % 3 == 0:
                    b.call(fail)
                else:
                    b.call(lambda: None)
            except ConnectionError:
                pass
            except Exception as exc:  # anything else is a bug
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert b.state is BreakerState.CLOSED
    assert b.counts().calls == 1000


def test_bad_configuration_names_the_field():
    for kwargs, field in [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"recovery_timeout": -1}, "recovery_timeout"),
        ({"success_threshold": 0}, "success_threshold"),
        ({"failure_rate_threshold": 150}, "failure_rate_threshold"),
        ({"half_open_max_calls": 1, "success_threshold": 2}, "half_open_max_calls"),
        ({"window": CountWindow(2), "failure_threshold": 5}, "window"),
        ({"open_backoff": 0.5}, "open_backoff"),
    ]:
        with pytest.raises(ValueError, match=field):
            CircuitBreaker(**kwargs)
