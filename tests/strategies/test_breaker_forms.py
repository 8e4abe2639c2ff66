"""Decorated generators, sync and async: one permit per iteration, held until it ends."""

import asyncio

import pytest

from stalwart.strategies import BreakerState, CircuitBreaker, CircuitOpenError, Outcome
from tests.strategies.fakes import Clock


def half_open_breaker(clock, **options):
    b = CircuitBreaker(1, 10.0, 1, half_open_max_calls=1, clock=clock, **options)
    b.half_open()
    return b


def guarded_rows(b):
    """A generator function yielding 1 and 2, guarded by ``b``."""

    @b
    def rows():
        yield 1
        yield 2

    return rows


def test_an_error_raised_while_a_generator_is_iterated_counts_as_a_failure():
    b = CircuitBreaker(1, 10.0, 1)

    @b
    def rows():
        yield 1
        raise ConnectionError("lost the cursor")

    with pytest.raises(ConnectionError):
        list(rows())
    assert b.state is BreakerState.OPEN


def test_a_generator_holds_its_permit_until_it_is_exhausted():
    b = half_open_breaker(Clock())
    it = guarded_rows(b)()
    assert next(it) == 1
    with pytest.raises(CircuitOpenError):
        b.call(lambda: None)  # the generator holds the only trial
    assert list(it) == [2]
    assert b.state is BreakerState.CLOSED


def test_a_generator_closed_early_gives_its_permit_back():
    b = half_open_breaker(Clock())
    it = guarded_rows(b)()
    next(it)
    it.close()
    assert b.state is BreakerState.HALF_OPEN
    b.call(lambda: None)
    assert b.state is BreakerState.CLOSED


def test_a_generator_takes_its_permit_when_iteration_starts():
    clock = Clock()
    b = CircuitBreaker(1, 10.0, 1, clock=clock)

    @b
    def rows():
        yield 1

    it = rows()  # created while closed
    b.open()
    with pytest.raises(CircuitOpenError):
        next(it)


def test_a_generator_gets_what_is_sent_and_thrown_into_it():
    b = CircuitBreaker(1, 10.0, 1)

    @b
    def echo():
        got = yield "ready"
        try:
            yield got
        except KeyError:
            yield "handled"
        return "done"

    it = echo()
    assert next(it) == "ready"
    assert it.send("hello") == "hello"
    assert it.throw(KeyError("x")) == "handled"
    with pytest.raises(StopIteration) as stop:
        next(it)
    assert stop.value.value == "done"
    assert b.state is BreakerState.CLOSED and b.counts().failures == 0


def test_a_generator_is_timed_from_its_first_item_to_its_end():
    clock = Clock()
    b = CircuitBreaker(5, 10.0, 1, slow_call_duration_s=1.0, clock=clock)
    seen = []
    b.on_outcome(lambda _b, outcome, duration, _exc: seen.append((outcome, duration)))

    @b
    def rows():
        yield 1
        clock.now += 3.0
        yield 2

    assert list(rows()) == [1, 2]
    assert seen == [(Outcome.SLOW_SUCCESS, 3.0)]


def test_an_error_raised_while_an_async_generator_is_iterated_counts_as_a_failure():
    b = CircuitBreaker(1, 10.0, 1)

    @b
    async def rows():
        yield 1
        raise ConnectionError("lost the stream")

    async def main():
        return [row async for row in rows()]

    with pytest.raises(ConnectionError):
        asyncio.run(main())
    assert b.state is BreakerState.OPEN


def test_an_async_generator_holds_its_permit_until_it_ends_or_is_closed():
    b = half_open_breaker(Clock())

    @b
    async def rows():
        yield 1
        yield 2

    async def main():
        it = rows()
        assert await it.__anext__() == 1
        with pytest.raises(CircuitOpenError):
            b.permit()
        await it.aclose()  # closed early: the permit is back, nothing recorded
        assert b.state is BreakerState.HALF_OPEN
        assert [row async for row in rows()] == [1, 2]

    asyncio.run(main())
    assert b.state is BreakerState.CLOSED


def test_an_async_generator_gets_what_is_sent_and_thrown_into_it():
    b = CircuitBreaker(1, 10.0, 1)

    @b
    async def echo():
        got = yield "ready"
        try:
            yield got
        except KeyError:
            yield "handled"

    async def main():
        it = echo()
        assert await it.asend(None) == "ready"
        assert await it.asend("hello") == "hello"
        assert await it.athrow(KeyError("x")) == "handled"
        with pytest.raises(StopAsyncIteration):
            await it.__anext__()

    asyncio.run(main())
    assert b.state is BreakerState.CLOSED and b.counts().calls == 1
