"""The ladder asks its driver for I/O with these steps, so one ladder serves sync and async code."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """Call a user function (it may be async); the driver answers ``(ok, value or error)``."""

    fn: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Blocking:
    """A blocking call of ours (a system request, the store): in a thread under asyncio."""

    fn: Callable[[], Any]


@dataclass(frozen=True)
class Sleep:
    """Wait."""

    seconds: float


Step = Call | Blocking | Sleep
Ladder = Generator[Step, Any, T]


def _sync_call(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> tuple[bool, Any]:
    try:
        value = fn(**kwargs)
    except Exception as exc:
        return False, exc
    if inspect.isawaitable(value):
        close = getattr(value, "close", None)
        if close is not None:
            close()
        raise TypeError(  # a programming error, not a failure to recover from
            f"{getattr(fn, '__qualname__', fn)!s} is async: use `await recovery.handle_error(...)`"
        )
    return True, value


def drive_sync(ladder: Ladder[T]) -> T:
    """Run a ladder in this thread (``time.sleep`` for waits)."""
    try:
        step = next(ladder)
        while True:
            if isinstance(step, Sleep):
                if step.seconds > 0:
                    time.sleep(step.seconds)
                step = ladder.send(None)
            elif isinstance(step, Call):
                step = ladder.send(_sync_call(step.fn, step.kwargs))
            else:
                step = ladder.send(_sync_call(step.fn, {}))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _async_call(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> tuple[bool, Any]:
    try:
        value = fn(**kwargs)
        if inspect.isawaitable(value):
            value = await value
    except Exception as exc:
        return False, exc
    return True, value


async def drive_async(ladder: Ladder[T]) -> T:
    """Run a ladder under asyncio: waits do not block the loop, our blocking calls use a thread."""
    try:
        step = next(ladder)
        while True:
            if isinstance(step, Sleep):
                if step.seconds > 0:
                    await asyncio.sleep(step.seconds)
                step = ladder.send(None)
            elif isinstance(step, Call):
                step = ladder.send(await _async_call(step.fn, step.kwargs))
            else:
                fn = step.fn
                step = ladder.send(await asyncio.to_thread(_sync_call, fn, {}))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
