"""``Recovery.protect(breaker=True)``: every guarded call hands its permit back, once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stalwart import Recovery
from stalwart.strategies import BreakerState, CircuitOpenError, Fixed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Abort(BaseException):
    """Not an error: ends a call the way a cancellation or a KeyboardInterrupt does."""


def guarded(clock: Clock, **options: Any) -> Recovery:
    breaker = {"failure_threshold": 1, "recovery_timeout": 10.0, "success_threshold": 1}
    return Recovery(backoff=Fixed(0.01), seed=3, breaker={**breaker, "clock": clock, **options})


def test_a_failed_trial_reopens_the_breaker_and_a_good_one_closes_it() -> None:
    clock = Clock()
    recovery = guarded(clock)
    outcomes = iter([ValueError("bad amount"), ValueError("bad amount"), None])

    @recovery.protect(service="pay", breaker=True)
    def charge() -> str:
        error = next(outcomes)
        if error is not None:
            raise error  # a validation error: recovery gives up at once
        return "charged"

    breaker = recovery.breaker("pay")
    with pytest.raises(ValueError):
        charge()
    assert breaker.state is BreakerState.OPEN
    clock.now += 10.0
    with pytest.raises(ValueError):
        charge()  # the trial fails
    assert breaker.state is BreakerState.OPEN
    clock.now += 10.0
    assert charge() == "charged"
    assert breaker.state is BreakerState.CLOSED


def test_an_async_failed_trial_reopens_the_breaker_and_a_good_one_closes_it() -> None:
    clock = Clock()
    recovery = guarded(clock, state="half_open")
    outcomes = iter([ValueError("bad amount"), None])

    @recovery.protect(service="pay", breaker=True)
    async def charge() -> str:
        await asyncio.sleep(0)
        error = next(outcomes)
        if error is not None:
            raise error
        return "charged"

    breaker = recovery.breaker("pay")
    with pytest.raises(ValueError):
        asyncio.run(charge())
    assert breaker.state is BreakerState.OPEN
    clock.now += 10.0
    assert asyncio.run(charge()) == "charged"
    assert breaker.state is BreakerState.CLOSED


def test_a_guarded_failure_is_counted_once() -> None:
    clock = Clock()
    recovery = guarded(clock, failure_threshold=2)

    @recovery.protect(service="pay", breaker=True)
    def charge() -> None:
        raise ValueError("bad amount")

    with pytest.raises(ValueError):
        charge()
    breaker = recovery.breaker("pay")
    assert breaker.counts().failures == 1 and breaker.state is BreakerState.CLOSED


def test_an_interrupted_trial_gives_its_permit_back() -> None:
    clock = Clock()
    recovery = guarded(clock, state="half_open")
    interrupt = iter([True, False])

    @recovery.protect(service="pay", breaker=True)
    def charge() -> str:
        if next(interrupt):
            raise Abort()
        return "charged"

    with pytest.raises(Abort):
        charge()
    assert recovery.breaker("pay").state is BreakerState.HALF_OPEN
    assert charge() == "charged"  # the trial permit is free again
    assert recovery.breaker("pay").state is BreakerState.CLOSED


def test_a_cancelled_async_trial_gives_its_permit_back() -> None:
    clock = Clock()
    recovery = guarded(clock, state="half_open")

    @recovery.protect(service="pay", breaker=True)
    async def charge(hang: asyncio.Event | None) -> str:
        if hang is not None:
            hang.set()
            await asyncio.Event().wait()
        return "charged"

    async def main() -> str:
        started = asyncio.Event()
        task = asyncio.create_task(charge(started))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await charge(None)

    assert asyncio.run(main()) == "charged"
    assert recovery.breaker("pay").state is BreakerState.CLOSED


def test_a_rejected_call_goes_to_recovery_without_counting_as_a_failure() -> None:
    clock = Clock()
    recovery = guarded(clock, state="open")
    ran: list[int] = []

    @recovery.protect(service="pay", breaker=True, fallback=lambda: "later")
    def charge() -> str:
        ran.append(1)
        return "charged"

    assert charge() == "later" and ran == []
    breaker = recovery.breaker("pay")
    assert breaker.rejected_calls >= 1 and breaker.counts().calls == 0
    with pytest.raises(CircuitOpenError):
        breaker.permit()
