"""The fake clock: strategies read it, and it moves the in-process base's timers."""

import pytest

from stalwart import Child, LevelPolicy, Supervisor
from stalwart.strategies import BreakerState, CircuitBreaker, CircuitOpenError, retry
from stalwart.testing import FakeClock, inject_fault, wait_for_event, wait_until
from tests.support import Ping, Worker
from tests.testing.actors import Alarm, Arm, Rang

ALARM = Supervisor("t", children=[Child("a", Alarm)])


def test_a_fake_clock_reads_only_what_the_test_moves():
    clock = FakeClock(start=100.0)
    assert clock() == clock.now == 100.0
    clock.advance(2.5)
    assert clock() == 102.5
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)


def test_its_sleep_records_the_waits_of_a_retry_and_moves_the_clock(stalwart_clock):
    calls = []

    @retry(max_attempts=4, delay=1.0, backoff=2.0, sleep=stalwart_clock.sleep, clock=stalwart_clock)
    def flaky():
        calls.append(stalwart_clock())
        if len(calls) < 4:
            raise ConnectionError("refused")
        return "ok"

    assert flaky() == "ok"
    assert stalwart_clock.slept == [1.0, 2.0, 4.0]
    assert calls == [0.0, 1.0, 3.0, 7.0]


def test_it_takes_a_circuit_breaker_through_its_recovery_timeout(stalwart_clock):
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30.0, clock=stalwart_clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_refused)
    assert breaker.state is BreakerState.OPEN
    stalwart_clock.advance(29.0)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: "not yet")
    stalwart_clock.advance(1.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.call(lambda: "trial") == "trial"


def test_advancing_it_fires_an_actors_timer_on_the_in_process_base(stalwart_start, stalwart_clock):
    system = stalwart_start(ALARM)
    assert system.ask("t/a", Arm(3600)) == "armed"
    stalwart_clock.advance(1800)
    assert system.ask("t/a", Rang()) == 0
    stalwart_clock.advance(1800)  # fires before advance returns
    assert system.ask("t/a", Rang()) == 1


def test_advancing_it_fires_the_trees_own_retry_delay_on_the_in_process_base(
    stalwart_start, stalwart_clock
):
    slow = LevelPolicy(basic_attempts=1, basic_delay_s=600, enhanced_attempts=0)
    system = stalwart_start(Supervisor("t", children=[Child("w", Worker, levels=slow)]), chaos=True)
    fault = inject_fault(system, "t/w")
    system.tell("t/w", Ping(1))
    failure = wait_for_event(system, "failure", "t/w", since=fault.seq)
    assert failure.level == 1
    assert [e.kind for e in system.events(failure.seq) if e.path == "t/w"] == []  # waiting
    stalwart_clock.advance(600)
    assert wait_for_event(system, "recovered", "t/w", since=failure.seq).level == 1


def test_timers_of_the_multi_process_bases_keep_real_time(stalwart_start, stalwart_clock):
    system = stalwart_start(ALARM, base="multiproc")
    assert system.ask("t/a", Arm(0.05)) == "armed"
    stalwart_clock.advance(10.0)  # nothing to move there; the actor's timer runs on its own
    wait_until(lambda: system.ask("t/a", Rang()) == 1, message="the timer did not ring")


def test_each_test_gets_a_clock_at_zero(stalwart_clock):
    assert stalwart_clock() == 0.0
    assert stalwart_clock.slept == []


def _refused():
    raise ConnectionError("refused")
