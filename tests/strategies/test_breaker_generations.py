"""Late outcomes and concurrent permits: each call's outcome is decided by the state that
admitted it, whichever path it took through the breaker and whoever is listening."""

import asyncio
import threading

import pytest

from stalwart.strategies import BreakerState, CircuitBreaker, CircuitOpenError, Outcome
from tests.strategies.fakes import Clock, trip


class HeldCall:
    """``breaker.call(...)`` on a thread, admitted now and finished when the test says."""

    def __init__(self, breaker):
        self.started, self.release = threading.Event(), threading.Event()
        self.ending = None
        self.thread = threading.Thread(target=self._run, args=(breaker,))
        self.thread.start()
        assert self.started.wait(30)

    def _body(self):
        self.started.set()
        self.release.wait(30)
        if self.ending is not None:
            raise self.ending
        return "late"

    def _run(self, breaker):
        try:
            breaker.call(self._body)
        except (ConnectionError, LookupError):
            pass

    def finish(self, ending=None):
        self.ending = ending
        self.release.set()
        self.thread.join(30)


LATE_ENDINGS = {"fails": ConnectionError("late"), "succeeds": None, "is ignored": KeyError("x")}


@pytest.mark.parametrize("listening", [False, True], ids=["unobserved", "observed"])
@pytest.mark.parametrize("late", list(LATE_ENDINGS))
def test_a_call_admitted_while_closed_that_ends_late_leaves_half_open_its_one_trial(
    late, listening
):
    clock = Clock()
    b = CircuitBreaker(2, 10.0, 1, half_open_max_calls=1, ignore_on=(LookupError,), clock=clock)
    if listening:
        b.on_outcome(lambda *_: None)
    held = HeldCall(b)  # admitted while closed
    trip(b, 2)
    clock.now = 10.0
    assert b.state is BreakerState.HALF_OPEN
    held.finish(LATE_ENDINGS[late])
    assert b.state is BreakerState.HALF_OPEN  # it neither re-opened nor closed it
    trial = b.permit()
    with pytest.raises(CircuitOpenError):
        b.permit()  # nor gave back a permit it never took
    b.record(trial)
    assert b.state is BreakerState.CLOSED


@pytest.mark.parametrize("listening", [False, True], ids=["unobserved", "observed"])
def test_a_late_outcome_is_counted_in_the_window_that_admitted_it_and_decides_nothing(listening):
    clock = Clock()
    b = CircuitBreaker(2, 10.0, 1, open_backoff=2.0, clock=clock)
    if listening:
        b.on_outcome(lambda *_: None)
    held = HeldCall(b)
    trip(b, 2)
    held.finish(ConnectionError("late"))
    assert b.counts().calls == b.counts().failures == 3
    assert b.state is BreakerState.OPEN and b.remaining_open_s == 10.0  # not tripped twice


def test_a_permit_from_an_earlier_closed_period_is_not_counted_in_the_fresh_window():
    clock = Clock()
    b = CircuitBreaker(2, 10.0, 1, clock=clock)
    old = b.permit()
    trip(b, 2)
    clock.now = 10.0
    b.call(lambda: None)  # the trial closes it with a fresh window
    b.record(old, ConnectionError("late"))
    assert b.counts().calls == 0 and b.state is BreakerState.CLOSED


def test_async_with_blocks_on_one_loop_record_their_own_permits():
    """An older block's late failure must not take the half-open trial's permit."""
    clock = Clock()
    b = CircuitBreaker(2, 10.0, 1, half_open_max_calls=1, clock=clock)

    async def main():
        gates = {"old": asyncio.Event(), "trial": asyncio.Event()}
        inside = {"old": asyncio.Event(), "trial": asyncio.Event()}

        async def block(name, error=None):
            async with b:
                inside[name].set()
                await gates[name].wait()
                if error is not None:
                    raise error

        old = asyncio.create_task(block("old", ConnectionError("late")))
        await inside["old"].wait()
        trip(b, 2)
        clock.now = 10.0
        trial = asyncio.create_task(block("trial"))
        await inside["trial"].wait()
        gates["old"].set()
        with pytest.raises(ConnectionError):
            await old
        assert b.state is BreakerState.HALF_OPEN
        with pytest.raises(CircuitOpenError):
            b.permit()  # the trial still holds the only permit
        gates["trial"].set()
        await trial
        assert b.state is BreakerState.CLOSED

    asyncio.run(main())


def test_async_with_blocks_each_time_their_own_call():
    clock = Clock()
    b = CircuitBreaker(5, 10.0, 1, slow_call_duration_s=1.0, clock=clock)
    seen = []
    b.on_outcome(lambda _b, outcome, duration, _exc: seen.append((outcome, duration)))

    async def main():
        first_in, second_in, go = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def first():
            async with b:
                first_in.set()
                await go.wait()
                raise ConnectionError("slow and failed")

        async def second():
            async with b:
                second_in.set()
                await go.wait()

        one = asyncio.create_task(first())
        await first_in.wait()
        clock.now = 5.0
        two = asyncio.create_task(second())
        await second_in.wait()
        clock.now = 5.5
        go.set()
        await asyncio.gather(one, two, return_exceptions=True)

    asyncio.run(main())
    assert seen == [(Outcome.SLOW_FAILURE, 5.5), (Outcome.SUCCESS, 0.5)]


def test_with_blocks_of_two_breakers_nest_and_unwind_in_one_task():
    clock = Clock()
    outer, inner = CircuitBreaker(1, 10.0, 1, clock=clock), CircuitBreaker(1, 10.0, 1, clock=clock)
    with pytest.raises(ConnectionError), outer, inner:
        raise ConnectionError("both see it")
    assert outer.state is inner.state is BreakerState.OPEN
    with pytest.raises(RuntimeError, match="without __enter__"):
        outer.__exit__(None, None, None)
