"""``retry``: run a callable again when it fails, waiting per a backoff schedule.

The policy object (:class:`Retrying`) holds the rules and the per-thread
statistics of the last call; the decorator is a thin shell over it. The success
path of a decorated function costs one ``try`` and one attribute store.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

import msgspec

from ._backoff import Backoff, JitterKind, schedule_from

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("stalwart.retry")


class RetryStats(msgspec.Struct):
    """What happened during one call: attempts made, time slept, the last error."""

    attempts: int = 1
    total_delay: float = 0.0
    last_error: BaseException | None = None
    gave_up: bool = False
    last_delay: float = 0.0


class RetryState(msgspec.Struct):
    """Passed to ``before_sleep`` and ``on_give_up`` callbacks."""

    attempt: int
    error: BaseException
    next_delay: float
    elapsed: float
    stats: RetryStats


_FIRST_TRY = RetryStats()


class _Decision:
    __slots__ = ("delay", "retry")

    def __init__(self, retry: bool, delay: float) -> None:
        self.retry = retry
        self.delay = delay


class Retrying:
    """A retry policy: which errors to retry, how often, how long to wait.

    Use it as a decorator (sync or ``async def``), with :meth:`call`, or as an
    iterator of attempts::

        for attempt in retry(max_attempts=3, delay=0.1):
            with attempt:
                send()

    Errors that are not retried (or the last one, when attempts run out) are
    raised unchanged, with a note saying how many attempts were made.
    """

    def __init__(
        self,
        *,
        max_attempts: int | None = 3,
        delay: float | Backoff = 1.0,
        backoff: float = 2.0,
        max_delay: float | None = None,
        jitter: bool | JitterKind = False,
        stop_after_s: float | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        retry_if: Callable[[BaseException], bool] | None = None,
        give_up_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        before_sleep: Callable[[RetryState], None] | None = None,
        on_give_up: Callable[[RetryState], None] | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts is None and stop_after_s is None:
            raise ValueError("retry: give max_attempts or stop_after_s, or it never stops")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"retry: max_attempts must be >= 1, got {max_attempts}")
        if stop_after_s is not None and stop_after_s < 0:
            raise ValueError(f"retry: stop_after_s must be >= 0, got {stop_after_s}")
        self.max_attempts = max_attempts
        self.schedule = schedule_from(delay, backoff, max_delay, jitter)
        self.stop_after_s = stop_after_s
        self.retry_on = retry_on if isinstance(retry_on, tuple) else (retry_on,)
        self.retry_if = retry_if
        self.give_up_on = give_up_on if isinstance(give_up_on, tuple) else (give_up_on,)
        self.before_sleep = before_sleep
        self.on_give_up = on_give_up
        self.rng = rng or random.Random()
        self.sleep = sleep
        self._local = threading.local()

    # -- statistics ---------------------------------------------------------------
    @property
    def statistics(self) -> RetryStats:
        """Statistics of the last call made on this thread."""
        stats: RetryStats = getattr(self._local, "stats", _FIRST_TRY)
        return stats

    # -- the decision shared by every form --------------------------------------
    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, Exception) or isinstance(exc, self.give_up_on):
            return False
        if self.retry_if is not None:
            return bool(self.retry_if(exc))
        return isinstance(exc, self.retry_on)

    def _decide(self, exc: BaseException, stats: RetryStats, started: float) -> _Decision:
        stats.last_error = exc
        attempt = stats.attempts
        # the sum of the waits counts too, so an injected sleep still bounds the total
        elapsed = max(time.monotonic() - started, stats.total_delay)
        if not self._should_retry(exc) or (
            self.max_attempts is not None and attempt >= self.max_attempts
        ):
            return self._give_up(exc, stats, elapsed)
        delay = self.schedule.next_delay(attempt, stats.last_delay, self.rng)
        if self.stop_after_s is not None and elapsed + delay > self.stop_after_s:
            return self._give_up(exc, stats, elapsed)
        if self.before_sleep is not None:
            self.before_sleep(RetryState(attempt, exc, delay, elapsed, stats))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("attempt %d failed with %r; retrying in %.3fs", attempt, exc, delay)
        stats.total_delay += delay
        stats.last_delay = delay
        return _Decision(True, delay)

    def _give_up(self, exc: BaseException, stats: RetryStats, elapsed: float) -> _Decision:
        stats.gave_up = True
        if stats.attempts > 1 or self._should_retry(exc):
            log.warning("giving up after %d attempt(s): %r", stats.attempts, exc)
            if self.on_give_up is not None:
                self.on_give_up(RetryState(stats.attempts, exc, 0.0, elapsed, stats))
            exc.add_note(f"stalwart.retry: gave up after {stats.attempts} attempt(s)")
        return _Decision(False, 0.0)

    # -- call forms ---------------------------------------------------------------
    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn`` under this policy and return its result."""
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            return self._retry_sync(exc, fn, args, kwargs)
        self._local.stats = _FIRST_TRY
        return result

    def _retry_sync(self, exc: BaseException, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
        stats = RetryStats()
        self._local.stats = stats
        started = time.monotonic()
        while True:
            decision = self._decide(exc, stats, started)
            if not decision.retry:
                raise exc
            if decision.delay > 0:
                self.sleep(decision.delay)
            stats.attempts += 1
            try:
                return fn(*args, **kwargs)
            except BaseException as again:
                exc = again

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` under this policy."""
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            return await self._retry_async(exc, fn, args, kwargs)
        self._local.stats = _FIRST_TRY
        return result

    async def _retry_async(
        self, exc: BaseException, fn: Callable[..., Awaitable[T]], args: Any, kwargs: Any
    ) -> T:
        stats = RetryStats()
        self._local.stats = stats
        started = time.monotonic()
        while True:
            decision = self._decide(exc, stats, started)
            if not decision.retry:
                raise exc
            if decision.delay > 0:
                await asyncio.sleep(decision.delay)
            stats.attempts += 1
            try:
                return await fn(*args, **kwargs)
            except BaseException as again:
                exc = again

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate ``fn`` (a plain or ``async def`` function)."""
        if inspect.iscoroutinefunction(fn):
            call_async = self.call_async

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await call_async(fn, *args, **kwargs)

            async_wrapper.retry = self  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        local = self._local
        retry_sync = self._retry_sync

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                return retry_sync(exc, fn, args, kwargs)
            local.stats = _FIRST_TRY
            return result

        wrapper.retry = self  # type: ignore[attr-defined]
        return wrapper

    # -- iterator forms -----------------------------------------------------------
    def __iter__(self) -> Iterator[Attempt]:
        stats = RetryStats(attempts=0)
        self._local.stats = stats
        started = time.monotonic()
        while True:
            stats.attempts += 1
            attempt = Attempt(self, stats, started)
            yield attempt
            if attempt.delay is None:
                return
            if attempt.delay > 0:
                self.sleep(attempt.delay)

    async def __aiter__(self) -> AsyncIterator[Attempt]:
        stats = RetryStats(attempts=0)
        self._local.stats = stats
        started = time.monotonic()
        while True:
            stats.attempts += 1
            attempt = Attempt(self, stats, started)
            yield attempt
            if attempt.delay is None:
                return
            if attempt.delay > 0:
                await asyncio.sleep(attempt.delay)


class Attempt:
    """One attempt of the iterator form; use it as a ``with`` block."""

    def __init__(self, policy: Retrying, stats: RetryStats, started: float) -> None:
        self._policy = policy
        self._stats = stats
        self._started = started
        self.delay: float | None = None

    @property
    def number(self) -> int:
        """The 1-based number of this attempt."""
        return self._stats.attempts

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            return False
        decision = self._policy._decide(exc, self._stats, self._started)
        if decision.retry:
            self.delay = decision.delay
            return True
        return False


@overload
def retry(fn: Callable[P, T], /) -> Callable[P, T]: ...


@overload
def retry(
    fn: None = None,
    /,
    *,
    max_attempts: int | None = 3,
    delay: float | Backoff = 1.0,
    backoff: float = 2.0,
    max_delay: float | None = None,
    jitter: bool | JitterKind = False,
    stop_after_s: float | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    retry_if: Callable[[BaseException], bool] | None = None,
    give_up_on: type[BaseException] | tuple[type[BaseException], ...] = (),
    before_sleep: Callable[[RetryState], None] | None = None,
    on_give_up: Callable[[RetryState], None] | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Retrying: ...


def retry(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Retry a callable when it raises; ``@retry`` or ``@retry(max_attempts=5, ...)``.

    ``delay`` is the first wait and ``backoff`` its growth factor (1.0 gives a
    fixed wait); pass a :class:`Backoff` schedule as ``delay`` for anything else.
    ``jitter=True`` means full jitter. Attempts stop at ``max_attempts`` and/or
    ``stop_after_s``. ``retry_on`` (types) or ``retry_if`` (a predicate) choose
    what is retried; ``give_up_on`` types are raised at once.
    """
    policy = Retrying(**options)
    if fn is not None:
        return policy(fn)
    return policy
