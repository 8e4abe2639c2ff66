"""``retry``: run a callable again when it fails, waiting per a backoff schedule.

The policy object (:class:`Retrying`) holds the rules; the decorator is a thin
shell over it. Every form (decorator, :meth:`Retrying.call`, async, the
iterators of :mod:`._attempts`) makes the same decisions in :meth:`Retrying._plan`,
and each call keeps its own :class:`RetryStats`, published per context (thread
or asyncio task) so re-entrant and concurrent calls never overwrite each other.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from ._backoff import Backoff, JitterKind, schedule_from
from ._budget import RetryBudget
from ._classify import _retry_after_of
from ._retry_state import (
    FIRST_TRY,
    LAST_CALLS,
    NO_CALL_YET,
    NO_CALLS,
    Callback,
    Predicate,
    ResultRejected,
    RetryState,
    RetryStats,
    StatisticsView,
    async_truth,
    is_final,
    publish,
    truth,
)

if TYPE_CHECKING:
    from ._attempts import Attempt

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Retried(Protocol[P, T_co]):
    """A function :func:`retry` decorated: called as before; ``.retry`` is its policy and
    ``.statistics`` the statistics of its call running or last completed in this context."""

    retry: Retrying
    statistics: RetryStats

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T_co: ...


log = logging.getLogger("stalwart.retry")


class _DefaultAttempts:
    def __repr__(self) -> str:
        return "3 (no limit when only stop_after_s is given)"


_DEFAULT_ATTEMPTS: Any = _DefaultAttempts()
# Options that cost the success path something, kept as two flags (see __setattr__): with
# none of them, a call is one try and two context lookups.
_HOOKS = frozenset({"before", "after", "retry_if_result"})  # need the full attempt loop
_TIMED = frozenset({"stop_after_s", "before_sleep", "on_give_up"})  # read the time from the start


class Retrying:
    """A retry policy: which outcomes to retry, how often, how long to wait.

    Use it as a decorator (sync or ``async def``), with :meth:`call` /
    :meth:`call_async`, or as an iterator of attempts::

        for attempt in retry(max_attempts=3, delay=0.1):
            with attempt:
                send()

    Errors that are not retried (or the last one, when retrying stops) are
    raised unchanged, with a note saying how many attempts were made. A result
    still rejected by ``retry_if_result`` raises :class:`ResultRejected`. One
    policy may serve many threads and tasks at once: each call keeps its own
    state, and :attr:`statistics` is per context.
    """

    _hooked: bool
    _timed: bool

    def __init__(
        self,
        *,
        max_attempts: int | None = _DEFAULT_ATTEMPTS,
        delay: float | Backoff = 1.0,
        backoff: float = 2.0,
        max_delay: float | None = None,
        jitter: bool | JitterKind = False,
        min_wait_s: float = 0.0,
        stop_after_s: float | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        retry_if: Predicate | None = None,
        retry_if_result: Predicate | None = None,
        give_up_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        honor_retry_after: bool = True,
        budget: RetryBudget | None = None,
        before: Callback | None = None,
        after: Callback | None = None,
        before_sleep: Callback | None = None,
        on_give_up: Callback | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_attempts is _DEFAULT_ATTEMPTS:
            max_attempts = None if stop_after_s is not None else 3
        if max_attempts is None and stop_after_s is None:
            raise ValueError("retry: give max_attempts or stop_after_s, or it never stops")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"retry: max_attempts must be >= 1, got {max_attempts}")
        if stop_after_s is not None and stop_after_s < 0:
            raise ValueError(f"retry: stop_after_s must be >= 0, got {stop_after_s}")
        if min_wait_s < 0:
            raise ValueError(f"retry: min_wait_s must be >= 0, got {min_wait_s}")
        hooks = {"retry_if": retry_if, "retry_if_result": retry_if_result, "before": before}
        hooks |= {"after": after, "before_sleep": before_sleep, "on_give_up": on_give_up}
        for name, hook in (*hooks.items(), ("sleep", sleep), ("clock", clock)):
            if hook is not None and not callable(hook):
                raise ValueError(f"retry: {name} must be callable, got {hook!r}")
        self.max_attempts = max_attempts
        self.schedule = schedule_from(delay, backoff, max_delay, jitter)
        self.min_wait_s = min_wait_s
        self.stop_after_s = stop_after_s
        self.retry_on = retry_on if retry_on is None or isinstance(retry_on, tuple) else (retry_on,)
        self.retry_if = retry_if
        self.retry_if_result = retry_if_result
        self.give_up_on = give_up_on if isinstance(give_up_on, tuple) else (give_up_on,)
        self.honor_retry_after = honor_retry_after
        self.budget = budget
        self.before = before
        self.after = after
        self.before_sleep = before_sleep
        self.on_give_up = on_give_up
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.clock = clock
        self._key = weakref.ref(self)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _HOOKS or name in _TIMED:  # kept current: the success path reads flags
            hooked = any(getattr(self, option, None) is not None for option in _HOOKS)
            timed = any(getattr(self, option, None) is not None for option in _TIMED)
            object.__setattr__(self, "_hooked", hooked)
            object.__setattr__(self, "_timed", timed)

    # -- statistics ---------------------------------------------------------------
    @property
    def statistics(self) -> RetryStats:
        """The call running or last completed in this context (thread or asyncio task).

        ``attempts`` is 0 before the first call in this context.
        """
        return LAST_CALLS.get(NO_CALLS).get(self._key, NO_CALL_YET)

    def _start_retrying(self) -> RetryStats:
        stats = RetryStats()
        publish(self._key, stats)
        return stats

    # -- the decisions shared by every form ---------------------------------------
    def _matches(self, exc: BaseException) -> tuple[bool, float | None]:
        """Whether the type of ``exc`` is retried, and the wait it asks for (if any)."""
        if not isinstance(exc, Exception) or isinstance(exc, self.give_up_on):
            return False, None
        chosen = self.retry_on
        if chosen is not None and not isinstance(exc, chosen):
            return False, None
        if chosen is not None and not self.honor_retry_after:
            return True, None
        if chosen is None and is_final(exc):
            return False, None
        return True, _retry_after_of(exc) if self.honor_retry_after else None

    def _plan(
        self,
        stats: RetryStats,
        started: float,
        wanted: bool,
        error: BaseException | None,
        asked_wait: float | None = None,
    ) -> float | None:
        """The wait before the next attempt, or None to stop (``stats`` updated)."""
        attempt = stats.attempts
        # the sum of the waits counts too, so an injected sleep still bounds the total
        elapsed = max(self.clock() - started, stats.total_delay)
        if not wanted:
            self._give_up(stats, elapsed, error, quiet=attempt == 1)
            return None
        if self.max_attempts is not None and attempt >= self.max_attempts:
            self._give_up(stats, elapsed, error)
            return None
        delay = max(self.schedule.next_delay(attempt, stats.last_delay, self.rng), self.min_wait_s)
        if asked_wait is not None and asked_wait > delay:
            delay = asked_wait
        if self.stop_after_s is not None and elapsed + delay >= self.stop_after_s:
            self._give_up(stats, elapsed, error)
            return None
        if self.budget is not None and not self.budget.try_retry():
            stats.budget_exhausted = True
            self._give_up(stats, elapsed, error, why="retry budget exhausted; ")
            return None
        if self.before_sleep is not None:
            self.before_sleep(RetryState(attempt, error, delay, elapsed, stats, stats.last_result))
        if log.isEnabledFor(logging.DEBUG):
            outcome = repr(error) if error is not None else f"result {stats.last_result!r}"
            log.debug("attempt %d gave %s; retrying in %.3fs", attempt, outcome, delay)
        stats.total_delay += delay
        stats.last_delay = delay
        return delay

    def _give_up(
        self,
        stats: RetryStats,
        elapsed: float,
        error: BaseException | None,
        quiet: bool = False,
        why: str = "",
    ) -> None:
        """Stop: record it, and unless ``quiet``, log, call ``on_give_up`` and note the error."""
        stats.gave_up = True
        if quiet:  # an outcome that was never going to be retried
            return
        outcome = error if error is not None else f"result {stats.last_result!r}"
        log.warning("%sgiving up after %d attempt(s): %r", why, stats.attempts, outcome)
        if self.on_give_up is not None:
            state = RetryState(stats.attempts, error, 0.0, elapsed, stats, stats.last_result)
            self.on_give_up(state)
        if error is not None:
            error.add_note(f"stalwart.retry: {why}gave up after {stats.attempts} attempt(s)")

    def _rejected(self, fn: Callable[..., Any], stats: RetryStats) -> ResultRejected:
        rejected = ResultRejected(stats.last_result, stats.attempts, _name(fn))
        if stats.budget_exhausted:
            rejected.add_note("stalwart.retry: retry budget exhausted")
        return rejected

    def _state(self, stats: RetryStats, started: float, attempt: int) -> RetryState:
        return RetryState(attempt, None, 0.0, self.clock() - started, stats)

    def _report(
        self, stats: RetryStats, started: float, error: BaseException | None, result: Any
    ) -> None:
        if self.after is not None:
            elapsed = self.clock() - started
            self.after(RetryState(stats.attempts, error, 0.0, elapsed, stats, result))

    def _start_call(self, stats: RetryStats) -> float:
        started = self.clock()
        if self.budget is not None:
            self.budget.record_call()
        publish(self._key, stats)
        return started

    def _failed(
        self, stats: RetryStats, started: float, error: BaseException
    ) -> tuple[RetryStats, bool, float | None]:
        """Record a failed attempt: the call's stats, whether ``error`` is retried, its wait."""
        if stats is FIRST_TRY:
            stats = self._start_retrying()
        stats.last_error = error
        self._report(stats, started, error, None)
        wanted, asked = self._matches(error)
        return stats, wanted, asked

    def _wait_or_stop(
        self,
        stats: RetryStats,
        started: float,
        wanted: bool,
        error: BaseException | None,
        asked_wait: float | None,
    ) -> float | None:
        """:meth:`_plan`, publishing the call's final stats when it stops."""
        delay = self._plan(stats, started, wanted, error, asked_wait)
        if delay is None:
            publish(self._key, stats)
        return delay

    def _result_rejected(
        self, fn: Callable[..., Any], stats: RetryStats, started: float, result: Any
    ) -> tuple[RetryStats, float]:
        """Record a rejected result: the call's stats and the wait, or ResultRejected."""
        if stats is FIRST_TRY:
            stats = self._start_retrying()
        stats.last_result = result
        delay = self._wait_or_stop(stats, started, True, None, None)
        if delay is None:
            raise self._rejected(fn, stats)
        return stats, delay

    def _sleep_sync(self, delay: float) -> None:
        if delay > 0:
            slept = self.sleep(delay)
            if slept is not None:
                truth(slept, "sleep")

    # -- call forms ---------------------------------------------------------------
    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn`` under this policy and return its result."""
        return self._runner(fn)(*args, **kwargs)

    def _runner(self, fn: Callable[P, T]) -> Callable[P, T]:
        """``fn`` under this policy; the decorator returns it, so the success path is one frame."""
        policy = self
        key = self._key
        attempts = self._attempts
        last_calls, none, first_try = LAST_CALLS.get, NO_CALLS, FIRST_TRY  # cells: faster

        def run(*args: Any, **kwargs: Any) -> Any:
            if policy._hooked:
                return attempts(fn, args, kwargs, policy._start_call(first_try), None)
            started = policy.clock() if policy._timed else None
            budget = policy.budget
            if budget is not None:
                budget.record_call()
            if last_calls(none).get(key) is not first_try:
                publish(key, first_try)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                if started is None:  # nothing in this policy read the time before now
                    started = policy.clock()
                return attempts(fn, args, kwargs, started, exc)
            if last_calls(none).get(key) is not first_try:  # a nested call of ours
                publish(key, first_try)
            return result

        return run

    def _attempts(
        self,
        fn: Callable[..., T],
        args: Any,
        kwargs: Any,
        started: float,
        failed: BaseException | None,
    ) -> T:
        """Every attempt after the fast path; ``failed`` is the first attempt's error, if made."""
        stats = FIRST_TRY
        while True:
            if failed is None:
                if self.before is not None:
                    self.before(self._state(stats, started, stats.attempts))
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    failed = exc
            if failed is not None:
                error, failed = failed, None
                stats, wanted, asked = self._failed(stats, started, error)
                if wanted and self.retry_if is not None:
                    wanted = truth(self.retry_if(error), "retry_if")
                delay = self._wait_or_stop(stats, started, wanted, error, asked)
                if delay is None:
                    raise error
            else:
                self._report(stats, started, None, result)
                check = self.retry_if_result
                if check is None or not truth(check(result), "retry_if_result"):
                    publish(self._key, stats)
                    return result
                stats, delay = self._result_rejected(fn, stats, started, result)
            self._sleep_sync(delay)
            stats.attempts += 1

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` under this policy; predicates may be async."""
        return await self._run_async(fn, args, kwargs)

    async def _run_async(self, fn: Callable[..., Awaitable[T]], args: Any, kwargs: Any) -> T:
        started = self._start_call(FIRST_TRY)
        stats = FIRST_TRY
        while True:
            if self.before is not None:
                self.before(self._state(stats, started, stats.attempts))
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                stats, wanted, asked = self._failed(stats, started, exc)
                if wanted and self.retry_if is not None:
                    wanted = await async_truth(self.retry_if(exc))
                delay = self._wait_or_stop(stats, started, wanted, exc, asked)
                if delay is None:
                    raise
            else:
                self._report(stats, started, None, result)
                check = self.retry_if_result
                if check is None or not await async_truth(check(result)):
                    publish(self._key, stats)
                    return result
                stats, delay = self._result_rejected(fn, stats, started, result)
            await self._sleep_async(delay)
            stats.attempts += 1

    async def _sleep_async(self, delay: float) -> None:
        if delay <= 0:
            return
        if self.sleep is time.sleep:  # the default: never block the event loop
            await asyncio.sleep(delay)
            return
        slept = self.sleep(delay)
        if slept is not None and inspect.isawaitable(slept):
            await slept

    def __call__(self, fn: Callable[P, T]) -> Retried[P, T]:
        """Decorate ``fn`` (a plain or ``async def`` function)."""
        wrapper: Any
        if inspect.iscoroutinefunction(fn):
            run_async = self._run_async

            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                return await run_async(fn, args, kwargs)  # type: ignore[arg-type]

        else:
            if inspect.iscoroutinefunction(self.sleep):
                raise TypeError(f"retry: sleep is async; {_name(fn)} cannot await it")
            wrapper = functools.wraps(fn)(self._runner(fn))

        wrapper.retry = self
        wrapper.statistics = StatisticsView(self)
        return wrapper  # type: ignore[no-any-return]

    # -- iterator forms (see _attempts) -------------------------------------------
    def __iter__(self) -> Iterator[Attempt]:
        from ._attempts import attempts

        return attempts(self)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        from ._attempts import async_attempts

        return async_attempts(self)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


@overload
def retry(fn: Callable[P, T], /) -> Retried[P, T]: ...


@overload
def retry(
    fn: None = None,
    /,
    *,
    max_attempts: int | None = ...,
    delay: float | Backoff = 1.0,
    backoff: float = 2.0,
    max_delay: float | None = None,
    jitter: bool | JitterKind = False,
    min_wait_s: float = 0.0,
    stop_after_s: float | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    retry_if: Predicate | None = None,
    retry_if_result: Predicate | None = None,
    give_up_on: type[BaseException] | tuple[type[BaseException], ...] = (),
    honor_retry_after: bool = True,
    budget: RetryBudget | None = None,
    before: Callback | None = None,
    after: Callback | None = None,
    before_sleep: Callback | None = None,
    on_give_up: Callback | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Retrying: ...


def retry(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Retry a callable when it raises; ``@retry`` or ``@retry(max_attempts=5, ...)``.

    ``delay`` is the first wait and ``backoff`` its growth factor (1.0 gives a
    fixed wait); pass a :class:`Backoff` schedule as ``delay`` for anything else.
    ``jitter=True`` means full jitter; ``min_wait_s`` is a floor under every
    wait, and an error that asks for a wait (``classify(exc).retry_after_s``,
    e.g. a ``Retry-After`` header) gets at least that unless
    ``honor_retry_after=False``.

    Attempts stop at ``max_attempts`` (3 by default; no limit when only
    ``stop_after_s`` is given) and/or when the next attempt would start after
    ``stop_after_s`` seconds from the start of the first; ``budget`` (a shared
    :class:`RetryBudget`) can refuse a retry too.

    What is retried: errors of the ``retry_on`` types (by default any
    ``Exception`` except bad input, configuration and programming errors, as
    :func:`classify` sees them: ``ValueError``, ``TypeError``, ``NameError``,
    ``KeyError``...) for which ``retry_if`` (if given) also says yes;
    ``give_up_on`` types are raised at once. ``retry_if_result`` retries a
    returned value; when retrying stops it raises :class:`ResultRejected`. In
    the async forms the predicates and ``sleep`` may be coroutine functions.
    """
    policy = Retrying(**options)
    if fn is not None:
        return policy(fn)
    return policy
