import asyncio
import collections
import pickle
import sys
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
from tests.strategies.fakes import Clock, trip


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


@pytest.fixture
def busy_switching():
    """Let the interpreter switch threads every microsecond or so (by default: every 5 ms),
    so that threads interleave inside the breaker's methods, where a race would show."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


class Crowd:
    """``size`` threads that run one step all at the same moment, as often as the test says,
    and count what happened to them. Barriers line them up; the test changes the clock only
    while they wait."""

    def __init__(self, size):
        self.size = size
        self.start = threading.Barrier(size + 1, timeout=30)
        self.end = threading.Barrier(size + 1, timeout=30)
        self.decided = threading.Barrier(size + 1, timeout=30)  # see race_for_trials
        self.gates: list[threading.Event] = []
        self.step = None
        self.tally = collections.Counter()
        self.errors = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work) for _ in range(size)]
        for thread in self._threads:
            thread.start()

    def count(self, what):
        with self._lock:
            self.tally[what] += 1

    def run(self, step, meanwhile=None):
        """Have every thread run ``step`` at once (the test runs ``meanwhile``); what they
        counted."""
        self.tally.clear()
        self.step = step
        self.start.wait()
        if meanwhile is not None:
            meanwhile()
        self.end.wait()
        return dict(self.tally)

    def close(self):
        for barrier in (self.start, self.end, self.decided):
            barrier.abort()
        for gate in self.gates:
            gate.set()
        for thread in self._threads:
            thread.join(30)

    def _work(self):
        try:
            while True:
                self.start.wait()
                try:
                    self.step()
                except Exception as exc:  # anything a step does not expect is a bug
                    self.errors.append(exc)
                self.end.wait()
        except threading.BrokenBarrierError:
            return  # closed


def test_many_threads_drive_it_across_its_thresholds_and_every_limit_holds(busy_switching):
    """Round after round, a crowd of threads trips the breaker at once, hits it while it is
    open, and races for its half-open trials, which fail and reopen it, then succeed and
    close it. A race inside the breaker would show as a count that does not add up: more
    trials than allowed, a second trip, a failure recorded twice or not at all, a wrong
    state."""
    size, calls_each, rounds = 12, 25, 15
    threshold, wait, successes, trials = 5, 10.0, 2, 3
    clock = Clock()
    b = CircuitBreaker(
        threshold, wait, successes, half_open_max_calls=trials, open_backoff=2.0, clock=clock
    )
    changes = []
    b.on_state_change(lambda br, old, new: changes.append((old.value, new.value)))
    crowd = Crowd(size)

    def failing():
        crowd.count("ran")
        raise ConnectionError("down")

    def call_it_failing():
        for _ in range(calls_each):
            try:
                b.call(failing)
            except ConnectionError:
                crowd.count("failed")
            except CircuitOpenError as exc:
                crowd.count(("refused", exc.state, exc.remaining_s))

    def race_for_trials(fails):
        """Each thread asks for a trial once; a trial waits until every thread has been
        let in or refused, and then until the test opens the gate."""
        gate = threading.Event()
        crowd.gates.append(gate)

        def trial():
            crowd.count("trial")
            crowd.decided.wait()
            gate.wait(30)
            if fails:
                raise ConnectionError("still down")

        def step():
            try:
                b.call(trial)
            except ConnectionError:
                crowd.count("trial failed")
            except CircuitOpenError as exc:
                crowd.count(("refused", exc.state, exc.remaining_s))
                crowd.decided.wait()

        def let_them_finish():
            crowd.decided.wait()
            assert crowd.tally["trial"] == trials  # taken while the others are refused
            gate.set()

        return crowd.run(step, let_them_finish)

    total = size * calls_each
    refused = 0
    try:
        for _ in range(rounds):
            # closed: `threshold` failures open it, once. The calls already under way fail
            # too (at most one per other thread) and are counted in the window that admitted
            # them, each once; every call after is refused with the whole wait left, since the
            # clock stands still
            done = crowd.run(call_it_failing)
            failed = done.pop("failed")
            assert done.pop("ran") == failed
            assert threshold <= failed <= threshold + size - 1, failed
            assert done == {("refused", "open", wait): total - failed}, done
            assert b.state is BreakerState.OPEN and b.remaining_open_s == wait
            assert b.counts().calls == b.counts().failures == failed
            # open: nothing goes through
            assert crowd.run(call_it_failing) == {("refused", "open", wait): total}
            # half-open: `trials` are let in, the rest refused; the first trial to fail
            # reopens it, once (for twice as long: open_backoff), the others change nothing
            clock.now += wait
            assert race_for_trials(fails=True) == {
                "trial": trials,
                "trial failed": trials,
                ("refused", "half_open", 0.0): size - trials,
            }
            assert b.state is BreakerState.OPEN and b.remaining_open_s == 2 * wait
            # half-open again: the trials succeed; `successes` of them close it, and those
            # that finish after that are not recorded in the fresh window
            clock.now += 2 * wait
            assert race_for_trials(fails=False) == {
                "trial": trials,
                ("refused", "half_open", 0.0): size - trials,
            }
            assert b.state is BreakerState.CLOSED and b.counts().calls == 0
            refused += (total - failed) + total + 2 * (size - trials)
    finally:
        crowd.close()
    assert crowd.errors == []
    assert b.rejected_calls == refused  # every refusal counted, once, whatever the thread
    # one legal path through the states, each change reported once, in order
    assert changes == rounds * [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


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
