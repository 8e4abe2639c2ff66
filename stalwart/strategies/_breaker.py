"""The circuit-breaker state machine (closed -> open -> half-open -> closed).

Semantics, precisely (the property tests hold the breaker to a reference model):

- **Closed.** Every call outcome is recorded in the sliding window (count- or
  time-based). The breaker trips to *open* when a failure leaves
  ``failure_threshold`` consecutive failures at the end of the window, or when a
  failure or slow call is recorded while the window holds at least
  ``minimum_calls`` calls and the failure (slow-call) rate is at or above
  ``failure_rate_threshold`` (``slow_call_rate_threshold``) percent.
- **Open.** Calls are rejected with :class:`CircuitOpenError` until the wait has
  passed: ``recovery_timeout``, multiplied by ``open_backoff`` for every trip
  since the breaker last closed, capped at ``max_recovery_timeout``. The first
  call (or ``state`` read) after the wait moves it to half-open.
- **Half-open.** Up to ``half_open_max_calls`` trial calls are permitted (others
  are rejected). ``success_threshold`` successes close it; any failure re-opens it.
- **Forced-open / disabled.** Manual states: reject everything / permit
  everything without recording. :meth:`reset` closes the breaker again.

Exceptions count as failures when ``is_failure(exc)`` says so if given, else when
they are instances of ``record_on`` and not of ``ignore_on``; ignored exceptions
are not recorded at all, other exceptions count as successes.

Thread safety: every state change happens under a lock. The closed-state path
of a call takes no lock (it appends to a deque, an atomic operation), which is
what keeps a protected call cheap.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from ._window import FAILED, OK, SLOW_FAILED, SLOW_OK, CountWindow, TimeWindow, WindowCounts

P = ParamSpec("P")
T = TypeVar("T")


class BreakerState(StrEnum):
    """The states of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


class Outcome(StrEnum):
    """What a call through the breaker came to; passed to outcome listeners."""

    SUCCESS = "success"
    FAILURE = "failure"
    SLOW_SUCCESS = "slow_success"
    SLOW_FAILURE = "slow_failure"
    IGNORED = "ignored"
    REJECTED = "rejected"


class CircuitOpenError(Exception):
    """A call was rejected because the breaker is open; ``remaining_s`` says for how long.

    Raised as ``CircuitOpenError(name, state, remaining_s)``; it pickles, so it can
    cross process boundaries.
    """

    args: tuple[str, str, float]

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self.args[0]

    @property
    def state(self) -> str:
        """The breaker's state when the call was rejected."""
        return self.args[1]

    @property
    def remaining_s(self) -> float:
        """Seconds until the breaker lets a trial call through (``inf`` when forced open)."""
        return self.args[2]

    def __str__(self) -> str:
        return (
            f"circuit {self.name!r} is {self.state}: calls are rejected"
            f" for another {self.remaining_s:.3f}s"
        )


_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN
_DISABLED = BreakerState.DISABLED

_CODES = {
    (False, False): OK,
    (True, False): FAILED,
    (False, True): SLOW_OK,
    (True, True): SLOW_FAILED,
}
_OUTCOMES = {
    OK: Outcome.SUCCESS,
    FAILED: Outcome.FAILURE,
    SLOW_OK: Outcome.SLOW_SUCCESS,
    SLOW_FAILED: Outcome.SLOW_FAILURE,
}

StateListener = Callable[["CircuitBreaker", BreakerState, BreakerState], None]
OutcomeListener = Callable[["CircuitBreaker", Outcome, float, BaseException | None], None]


class CircuitBreaker:
    """Protects calls to something that may be down; see the module docstring for semantics.

    Use as ``breaker.call(fn, *args)``, ``await breaker.call_async(fn, *args)``,
    a decorator (``@breaker``), or a context manager (``with breaker: ...``).
    ``clock`` is a zero-argument callable returning seconds (tests inject one).
    """

    def __init__(
        self,
        failure_threshold: int | None = 5,
        recovery_timeout: float = 60.0,
        success_threshold: int = 2,
        *,
        name: str = "breaker",
        window: CountWindow | TimeWindow | None = None,
        failure_rate_threshold: float | None = None,
        slow_call_rate_threshold: float | None = None,
        slow_call_duration_s: float | None = None,
        minimum_calls: int = 10,
        half_open_max_calls: int | None = None,
        open_backoff: float = 1.0,
        max_recovery_timeout: float | None = None,
        record_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        ignore_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        is_failure: Callable[[BaseException], bool] | None = None,
        adaptive: bool = False,
        adaptive_min_threshold: int = 1,
        cluster_window_s: float = 60.0,
        stable_period_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        window = window or CountWindow(max(100, failure_threshold or 0))
        _validate(
            failure_threshold,
            recovery_timeout,
            success_threshold,
            window,
            failure_rate_threshold,
            slow_call_rate_threshold,
            minimum_calls,
            half_open_max_calls,
            open_backoff,
        )
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.success_threshold = success_threshold
        self.failure_rate_threshold = failure_rate_threshold
        self.slow_call_rate_threshold = slow_call_rate_threshold
        self.slow_call_duration_s = slow_call_duration_s
        self.minimum_calls = minimum_calls
        self.half_open_max_calls = half_open_max_calls or success_threshold
        self.open_backoff = open_backoff
        self.max_recovery_timeout = max_recovery_timeout
        self.record_on = record_on if isinstance(record_on, tuple) else (record_on,)
        self.ignore_on = ignore_on if isinstance(ignore_on, tuple) else (ignore_on,)
        self.is_failure = is_failure
        self.adaptive = adaptive
        self.adaptive_min_threshold = adaptive_min_threshold
        self.cluster_window_s = cluster_window_s
        self.stable_period_s = stable_period_s
        self.clock = clock

        self._lock = threading.RLock()
        self._window = window.build(clock)
        self._record = self._window.record
        self._state = _CLOSED
        self._opened_at = 0.0
        self._wait = recovery_timeout
        self._reopen_at = 0.0
        self._trips = 0
        self._half_open_permits = 0
        self._half_open_successes = 0
        self._generation = 0
        self._threshold = failure_threshold
        self._closed_at: float | None = None
        self._adapted_at = clock()
        self._state_listeners: list[StateListener] = []
        self._outcome_listeners: list[OutcomeListener] = []
        self._local = threading.local()
        self._fast = True
        self._update_fast()

    # -- introspection --------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose wait has passed reads as half-open)."""
        if self._state is _OPEN:
            with self._lock:
                self._enter_half_open_if_due(self.clock())
            self._fire_pending()
        return self._state

    @property
    def remaining_open_s(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 unless open)."""
        if self._state is _FORCED_OPEN:
            return math.inf
        if self._state is not _OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._wait - self.clock())

    @property
    def current_threshold(self) -> int | None:
        """The consecutive-failure threshold in force (differs from the base when adaptive)."""
        return self._threshold

    def counts(self) -> WindowCounts:
        """Calls, failures and slow calls in the current window."""
        return self._window.counts()

    def health(self) -> int:
        """A 0-100 health score.

        Open or forced-open: 0. Disabled: 100. Half-open: 50 times the fraction of
        the successes needed to close. Closed: ``100 * (1 - failure rate) * (1 -
        slow rate / 2)`` over the window, 100 when the window is empty.
        """
        state = self.state
        if state in (_OPEN, _FORCED_OPEN):
            return 0
        if state is _DISABLED:
            return 100
        if state is _HALF_OPEN:
            return round(50 * min(1.0, self._half_open_successes / self.success_threshold))
        c = self._window.counts()
        if not c.calls:
            return 100
        return round(100 * (1 - c.failures / c.calls) * (1 - c.slow / c.calls / 2))

    # -- listeners -------------------------------------------------------------------
    def on_state_change(self, listener: StateListener) -> None:
        """Call ``listener(breaker, old, new)`` after every state change."""
        self._state_listeners.append(listener)

    def on_outcome(self, listener: OutcomeListener) -> None:
        """Call ``listener(breaker, outcome, duration_s, exc)`` after every call."""
        self._outcome_listeners.append(listener)
        self._update_fast()

    # -- manual control ----------------------------------------------------------------
    def force_open(self) -> None:
        """Reject every call until :meth:`reset`."""
        self._transition(_FORCED_OPEN)

    def disable(self) -> None:
        """Permit every call and record nothing until :meth:`reset`."""
        self._transition(_DISABLED)

    def reset(self) -> None:
        """Close the breaker and forget the window and the trip history."""
        self._transition(_CLOSED)

    # -- calls -----------------------------------------------------------------------
    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` through the breaker."""
        if self._fast:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._complete(-1, exc, 0.0)
                raise
            self._record(OK)
            return result
        if self._state is _OPEN and not self._outcome_listeners:
            now = self.clock()
            if now < self._reopen_at:
                raise CircuitOpenError(self.name, "open", self._reopen_at - now)
        generation, started = self._acquire()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._complete(generation, exc, self.clock() - started)
            raise
        self._complete(generation, None, self.clock() - started)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        generation, started = self._acquire()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._complete(generation, exc, self.clock() - started)
            raise
        self._complete(generation, None, self.clock() - started)
        return result

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Use the breaker as a decorator of a plain or ``async def`` function."""
        if inspect.iscoroutinefunction(fn):
            call_async = self.call_async

            @functools.wraps(fn)
            async def async_guarded(*args: Any, **kwargs: Any) -> Any:
                return await call_async(fn, *args, **kwargs)

            return async_guarded  # type: ignore[return-value]

        breaker = self
        record = self._record

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if breaker._fast:
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    breaker._complete(-1, exc, 0.0)
                    raise
                record(OK)
                return result
            return breaker.call(fn, *args, **kwargs)

        return guarded

    def __enter__(self) -> CircuitBreaker:
        stack = self._local.__dict__.setdefault("permits", [])
        stack.append(self._acquire())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        generation, started = self._local.permits.pop()
        self._complete(generation, exc, self.clock() - started)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- for callers whose call completes later (actors, callbacks) ---------------------------
    def permit(self) -> tuple[int, float]:
        """Take a permit for a call that will finish later, or raise :class:`CircuitOpenError`.

        Hand the permit back with :meth:`record` when the call has finished.
        """
        return self._acquire()

    def record(self, permit: tuple[int, float], error: BaseException | None = None) -> None:
        """Record how the call of ``permit`` went (``error=None``: success)."""
        generation, started = permit
        if error is None and self._fast and generation == self._generation:
            self._record(OK)  # closed, nobody listening, no slow calls: nothing else to do
            return
        self._complete(generation, error, self.clock() - started)

    # -- the machine ---------------------------------------------------------------------
    def _acquire(self) -> tuple[int, float]:
        """Permit a call or raise CircuitOpenError; returns (generation, start time)."""
        state = self._state
        now = self.clock()
        if state is _CLOSED or state is _DISABLED:
            return self._generation, now
        if state is _OPEN and now < self._opened_at + self._wait:
            self._reject(now)
        with self._lock:
            self._enter_half_open_if_due(now)
            state = self._state
            if state is _HALF_OPEN:
                if self._half_open_permits < self.half_open_max_calls:
                    self._half_open_permits += 1
                    permit = (self._generation, now)
                else:
                    permit = None
            elif state is _CLOSED or state is _DISABLED:
                permit = (self._generation, now)
            else:
                permit = None
        self._fire_pending()
        if permit is None:
            self._reject(now)
        return permit  # type: ignore[return-value]

    def _reject(self, now: float) -> None:
        state = self._state
        if state is _OPEN:
            remaining = max(0.0, self._opened_at + self._wait - now)
        elif state is _FORCED_OPEN:
            remaining = math.inf
        else:
            remaining = 0.0
        if self._outcome_listeners:
            for listener in list(self._outcome_listeners):
                listener(self, Outcome.REJECTED, 0.0, None)
        raise CircuitOpenError(self.name, str(state), remaining)

    def _classify(self, exc: BaseException | None) -> bool | None:
        """True: failure, False: success, None: ignored."""
        if exc is None:
            return False
        if not isinstance(exc, Exception):
            return None
        if self.is_failure is not None:
            return bool(self.is_failure(exc))
        if isinstance(exc, self.ignore_on):
            return None
        return isinstance(exc, self.record_on)

    def _complete(self, generation: int, exc: BaseException | None, duration: float) -> None:
        failed = self._classify(exc)
        slow = self.slow_call_duration_s is not None and duration >= self.slow_call_duration_s
        with self._lock:
            now = self.clock()
            state = self._state
            same_epoch = generation == -1 or generation == self._generation
            if failed is None:
                if state is _HALF_OPEN and same_epoch:
                    self._half_open_permits -= 1
                code = -1
            else:
                code = _CODES[(failed, slow)]
                if state is _CLOSED and same_epoch:
                    self._record(code)
                    if code != OK:
                        self._evaluate_trip(now, failed)
                elif state is _HALF_OPEN and same_epoch:
                    if failed:
                        self._trip(now)
                    else:
                        self._half_open_successes += 1
                        if self._half_open_successes >= self.success_threshold:
                            self._set_state(_CLOSED, now)
        self._fire_pending()
        if self._outcome_listeners:
            outcome = Outcome.IGNORED if code == -1 else _OUTCOMES[code]
            for listener in list(self._outcome_listeners):
                listener(self, outcome, duration, exc)

    def _evaluate_trip(self, now: float, failed: bool) -> None:
        if self.adaptive:
            self._relax_threshold(now)
        threshold = self._threshold
        if (
            failed
            and threshold is not None
            and self._window.trailing_failures(threshold) >= threshold
        ):
            self._trip(now)
            return
        if self.failure_rate_threshold is None and self.slow_call_rate_threshold is None:
            return
        c = self._window.counts()
        if c.calls < self.minimum_calls:
            return
        if (
            self.failure_rate_threshold is not None
            and c.failure_rate >= self.failure_rate_threshold
        ) or (
            self.slow_call_rate_threshold is not None
            and c.slow_rate >= self.slow_call_rate_threshold
        ):
            self._trip(now)

    def _trip(self, now: float) -> None:
        if self.adaptive and self._state is _CLOSED:
            self._tighten_threshold(now)
        self._trips += 1
        wait = self.recovery_timeout * self.open_backoff ** (self._trips - 1)
        if self.max_recovery_timeout is not None:
            wait = min(wait, self.max_recovery_timeout)
        self._wait = wait
        self._opened_at = now
        self._reopen_at = now + wait
        self._set_state(_OPEN, now)

    def _tighten_threshold(self, now: float) -> None:
        if (
            self._threshold is not None
            and self._closed_at is not None
            and now - self._closed_at < self.cluster_window_s
        ):
            self._threshold = max(self.adaptive_min_threshold, math.ceil(self._threshold / 2))
        self._adapted_at = now

    def _relax_threshold(self, now: float) -> None:
        base, current = self.failure_threshold, self._threshold
        if base is None or current is None or current >= base:
            self._adapted_at = now
            return
        periods = int((now - self._adapted_at) // self.stable_period_s)
        if periods >= 1:
            self._threshold = min(base, current + periods)
            self._adapted_at += periods * self.stable_period_s

    def _enter_half_open_if_due(self, now: float) -> None:
        if self._state is _OPEN and now >= self._opened_at + self._wait:
            self._set_state(_HALF_OPEN, now)

    def _transition(self, state: BreakerState) -> None:
        with self._lock:
            self._set_state(state, self.clock())
        self._fire_pending()

    def _set_state(self, state: BreakerState, now: float) -> None:
        """Enter ``state`` (caller holds the lock); listeners fire after the lock is released."""
        old = self._state
        self._generation += 1
        self._half_open_permits = 0
        self._half_open_successes = 0
        if state is _CLOSED:
            self._trips = 0
            self._window.clear()
            self._closed_at = now
        self._state = state
        self._update_fast()
        if old is not state and self._state_listeners:
            self._local.__dict__.setdefault("pending", []).append((old, state))

    def _fire_pending(self) -> None:
        pending = self._local.__dict__.get("pending")
        if not pending:
            return
        self._local.pending = []
        for old, new in pending:
            for listener in list(self._state_listeners):
                listener(self, old, new)

    def _update_fast(self) -> None:
        self._fast = (
            self._state is _CLOSED
            and not self._outcome_listeners
            and self.slow_call_duration_s is None
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._state.value}>"


def _validate(
    failure_threshold: int | None,
    recovery_timeout: float,
    success_threshold: int,
    window: CountWindow | TimeWindow,
    failure_rate_threshold: float | None,
    slow_call_rate_threshold: float | None,
    minimum_calls: int,
    half_open_max_calls: int | None,
    open_backoff: float,
) -> None:
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
    if open_backoff < 1:
        raise bad("open_backoff", "must be >= 1", open_backoff)
    if (
        isinstance(window, CountWindow)
        and failure_threshold is not None
        and window.size < failure_threshold
    ):
        raise bad("window", "a CountWindow must hold at least failure_threshold calls", window)
