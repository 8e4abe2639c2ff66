"""The forms a call takes through a :class:`CircuitBreaker`, and its configuration check.

Every form takes one permit per call and hands it back exactly once: a decorated
function when it returns or raises, a generator when it is exhausted, raises or is
closed, a ``with`` block when it exits. ``with`` blocks keep their permits in a
context variable, so each thread and each asyncio task sees only its own.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import TYPE_CHECKING, Any

from ._breaker_types import BreakerState, Permit
from ._window import OK, CountWindow, TimeWindow

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker

_STALE = -1  # a generation no permit has: "find the window from the recorder"

# the permits of the `with` blocks under way in this thread or task, innermost last
_HELD: contextvars.ContextVar[tuple[tuple[CircuitBreaker, Permit], ...]] = contextvars.ContextVar(
    "stalwart_breaker_permits", default=()
)


def enter(breaker: CircuitBreaker) -> None:
    """Take a permit for a ``with`` block in the current context."""
    permit = breaker._acquire()
    _HELD.set((*_HELD.get(), (breaker, permit)))


def leave(breaker: CircuitBreaker, exc: BaseException | None) -> None:
    """Record the outcome of the innermost ``with`` block of ``breaker`` in this context."""
    held = _HELD.get()
    for i in range(len(held) - 1, -1, -1):
        if held[i][0] is breaker:
            break
    else:
        raise RuntimeError(f"{breaker!r}: __exit__ without __enter__ in this context")
    generation, started = held[i][1]
    _HELD.set(held[:i] + held[i + 1 :])
    breaker._complete(generation, exc, breaker.clock() - started)


def guard(breaker: CircuitBreaker, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` wrapped to run through ``breaker``, in the form that matches its kind."""
    if inspect.isasyncgenfunction(fn):
        return _guard_async_generator(breaker, fn)
    if inspect.isgeneratorfunction(fn):
        return _guard_generator(breaker, fn)
    if inspect.iscoroutinefunction(fn):
        call_async = breaker.call_async

        @functools.wraps(fn)
        async def async_guarded(*args: Any, **kwargs: Any) -> Any:
            return await call_async(fn, *args, **kwargs)

        return async_guarded

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        record = breaker._fast  # the window the call is admitted into, if no lock is needed
        if record is not None:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                breaker._complete(_STALE, exc, 0.0, record)
                raise
            record(OK)
            return result
        return breaker.call(fn, *args, **kwargs)

    return guarded


def _guard_generator(breaker: CircuitBreaker, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        generation, started = breaker._acquire()
        try:
            result = yield from fn(*args, **kwargs)
        except BaseException as exc:  # GeneratorExit (closed early) is ignored
            breaker._complete(generation, exc, breaker.clock() - started)
            raise
        breaker._complete(generation, None, breaker.clock() - started)
        return result

    return guarded


def _guard_async_generator(breaker: CircuitBreaker, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def guarded(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        generation, started = breaker._acquire()
        inner = fn(*args, **kwargs)
        error: BaseException | None = None
        try:
            try:
                value = await inner.__anext__()
            except StopAsyncIteration:
                return
            while True:  # what `yield from` does for a plain generator
                try:
                    sent = yield value
                except GeneratorExit:
                    await inner.aclose()
                    raise
                except BaseException as thrown:
                    step = inner.athrow(thrown)
                else:
                    step = inner.asend(sent)
                try:
                    value = await step
                except StopAsyncIteration:
                    return
        except BaseException as exc:
            error = exc
            raise
        finally:
            breaker._complete(generation, error, breaker.clock() - started)

    return guarded


def initial_state(state: BreakerState | str) -> BreakerState:
    """``state`` as a :class:`BreakerState`, or ``ValueError`` naming the field."""
    try:
        return BreakerState(state)
    except ValueError:
        names = ", ".join(s.value for s in BreakerState)
        raise ValueError(f"CircuitBreaker.state: must be one of {names}, got {state!r}") from None


def validate(
    failure_threshold: int | None,
    recovery_timeout: float,
    success_threshold: int,
    window: CountWindow | TimeWindow,
    failure_rate_threshold: float | None,
    slow_call_rate_threshold: float | None,
    minimum_calls: int,
    half_open_max_calls: int | None,
    max_wait_in_half_open_s: float | None,
    open_backoff: float,
    record_on: object,
    ignore_on: object,
    is_failure: object,
) -> None:
    """Raise ``ValueError`` naming the first bad setting."""

    def bad(field: str, why: str, value: object) -> ValueError:
        return ValueError(f"CircuitBreaker.{field}: {why}, got {value!r}")

    if failure_threshold is not None and failure_threshold < 1:
        raise bad("failure_threshold", "must be >= 1 or None", failure_threshold)
    if (
        failure_threshold is None
        and failure_rate_threshold is None
        and (slow_call_rate_threshold is None)
    ):
        raise bad("failure_threshold", "some threshold is needed or the breaker never opens", None)
    if recovery_timeout < 0:
        raise bad("recovery_timeout", "must be >= 0", recovery_timeout)
    if success_threshold < 1:
        raise bad("success_threshold", "must be >= 1", success_threshold)
    for field, rate in (
        ("failure_rate_threshold", failure_rate_threshold),
        ("slow_call_rate_threshold", slow_call_rate_threshold),
    ):
        if rate is not None and not 0 < rate <= 100:
            raise bad(field, "must be a percentage in (0, 100]", rate)
    if minimum_calls < 1:
        raise bad("minimum_calls", "must be >= 1", minimum_calls)
    if half_open_max_calls is not None and half_open_max_calls < success_threshold:
        raise bad("half_open_max_calls", "must be >= success_threshold", half_open_max_calls)
    if max_wait_in_half_open_s is not None and not max_wait_in_half_open_s > 0:
        raise bad("max_wait_in_half_open_s", "must be > 0 or None", max_wait_in_half_open_s)
    if open_backoff < 1:
        raise bad("open_backoff", "must be >= 1", open_backoff)
    if (
        isinstance(window, CountWindow)
        and failure_threshold is not None
        and window.size < failure_threshold
    ):
        raise bad("window", "a CountWindow must hold at least failure_threshold calls", window)
    for field, types in (("record_on", record_on), ("ignore_on", ignore_on)):
        for kind in types if isinstance(types, tuple) else (types,):
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise bad(field, "must be exception types (is_failure takes a predicate)", types)
    if is_failure is not None and not callable(is_failure):
        raise bad("is_failure", "must be a callable taking the exception", is_failure)
