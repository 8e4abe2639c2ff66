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
  are rejected). Any failure re-opens it. ``success_threshold`` successes close
  it, unless ``slow_call_rate_threshold`` is set and the slow share of those
  trials is at or above it: then it re-opens. A breaker that stays half-open for
  ``max_wait_in_half_open_s`` (trials never recorded) re-opens.
- **Metrics-only.** Permits every call and records it in a fresh window, but
  never changes state by itself.
- **Forced-open / disabled.** Reject everything / permit everything and record
  nothing. These two and metrics-only are left only by a manual transition
  (:meth:`open`, :meth:`half_open`, :meth:`close` and the like enter any state at
  any time); a breaker can also start in any state (``state=``).

Generations: every state change starts a new generation, and a permit carries
the generation it was taken in. A late outcome (one whose generation is no
longer current) is recorded only in the window of the closed period that
admitted it, if that window is still the breaker's, and never decides anything:
it does not trip, close or re-open the breaker, nor return a half-open permit.
This holds on the lock-free path as on the others, so a breaker behaves the same
with or without listeners.

Exceptions count as failures when ``is_failure(exc)`` says so if given, else when
they are instances of ``record_on`` and not of ``ignore_on``; ignored exceptions
(and ``BaseException``s such as cancellation) are not recorded at all and give a
half-open permit back; other exceptions count as successes.

Thread safety: every state change happens under a lock. The closed-state path
of a call takes no lock (it appends to a deque, an atomic operation), which is
what keeps a protected call cheap. ``with`` and ``async with`` keep each entry's
permit in the current context (thread or task), so concurrent blocks never
record each other's outcome.
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

from ._breaker_types import (
    BreakerState,
    CircuitOpenError,
    Outcome,
    OutcomeListener,
    Permit,
    StateListener,
)
from ._guard import _STALE, enter, guard, initial_state, leave, validate
from ._window import FAILED, OK, SLOW_FAILED, SLOW_OK, CountWindow, TimeWindow, WindowCounts

P = ParamSpec("P")
T = TypeVar("T")


_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN
_DISABLED = BreakerState.DISABLED
_METRICS_ONLY = BreakerState.METRICS_ONLY
_RECORDING = (_CLOSED, _METRICS_ONLY)  # the states that open a window

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


class CircuitBreaker:
    """Protects calls to something that may be down; see the module docstring for semantics.

    Use as ``breaker.call(fn, *args)``, ``await breaker.call_async(fn, *args)``,
    a decorator (``@breaker`` on a function, coroutine function or generator
    function, sync or async), or a context manager (``with breaker: ...``,
    ``async with breaker: ...``). ``clock`` is a zero-argument callable returning
    seconds (tests inject one). ``state`` is the state it starts in.
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
        max_wait_in_half_open_s: float | None = None,
        open_backoff: float = 1.0,
        max_recovery_timeout: float | None = None,
        record_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        ignore_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        is_failure: Callable[[BaseException], bool] | None = None,
        adaptive: bool = False,
        adaptive_min_threshold: int = 1,
        cluster_window_s: float = 60.0,
        stable_period_s: float = 300.0,
        state: BreakerState | str = BreakerState.CLOSED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        window = window or CountWindow(max(100, failure_threshold or 0))
        initial = initial_state(state)
        validate(
            failure_threshold,
            recovery_timeout,
            success_threshold,
            window,
            failure_rate_threshold,
            slow_call_rate_threshold,
            minimum_calls,
            half_open_max_calls,
            max_wait_in_half_open_s,
            open_backoff,
            record_on,
            ignore_on,
            is_failure,
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
        self.max_wait_in_half_open_s = max_wait_in_half_open_s
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
        self._window_spec = window
        self._state = _CLOSED
        self._generation = 0
        self._new_window()
        self._opened_at = 0.0
        self._wait = recovery_timeout
        self._reopen_at = 0.0
        self._rejecting_until = -math.inf
        self._half_opened_at = 0.0
        self._trips = 0
        self._half_open_permits = 0
        self._half_open_successes = 0
        self._half_open_slow = 0
        self._streak = 0  # consecutive failures, outside the window's states
        self._rejections = itertools.count()
        self._threshold = failure_threshold
        self._closed_at: float | None = None
        self._adapted_at = clock()
        self._state_listeners: list[StateListener] = []
        self._outcome_listeners: list[OutcomeListener] = []
        self._local = threading.local()
        self._fast: Callable[[int], None] | None = None  # see _update_fast
        self._update_fast()
        if initial is _OPEN:
            self._open(self._adapted_at, None)
        elif initial is not _CLOSED:
            self._set_state(initial, self._adapted_at)

    # -- introspection --------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose wait has passed reads as half-open)."""
        state = self._state
        if state is _OPEN or (state is _HALF_OPEN and self.max_wait_in_half_open_s is not None):
            with self._lock:
                self._advance(self.clock())
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

    @property
    def consecutive_failures(self) -> int:
        """Failures recorded since the last recorded success or the last close.

        While closed (or metrics-only) they are counted in the window, so at most its size.
        """
        if self._state in _RECORDING:
            return self._window.trailing_failures(sys.maxsize)
        return self._streak

    @property
    def rejected_calls(self) -> int:
        """Calls rejected with :class:`CircuitOpenError` since the breaker was created."""
        # itertools.count counts atomically but has no getter; its repr is "count(n)"
        return int(repr(self._rejections)[6:-1])

    def counts(self) -> WindowCounts:
        """Calls, failures and slow calls in the current window."""
        return self._window.counts()

    def health(self) -> int:
        """A 0-100 health score.

        Open or forced-open: 0. Disabled: 100. Half-open: 50 times the fraction of
        the successes needed to close. Closed and metrics-only: ``100 * (1 - failure
        rate) * (1 - slow rate / 2)`` over the window, 100 when the window is empty.
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
        with self._lock:
            self._outcome_listeners.append(listener)
            self._update_fast()

    def remove_listener(self, listener: StateListener | OutcomeListener) -> None:
        """Stop calling ``listener`` (a state or an outcome listener); ``ValueError`` if unknown."""
        with self._lock:
            found = False
            for listeners in (self._state_listeners, self._outcome_listeners):
                if listener in listeners:
                    listeners.remove(listener)  # type: ignore[arg-type]
                    found = True
            self._update_fast()
        if not found:
            raise ValueError(f"{self!r}: no such listener {listener!r}")

    # -- manual control ----------------------------------------------------------------
    def open(self, for_s: float | None = None) -> None:
        """Open the breaker now: for ``for_s`` seconds, or the wait a trip would get.

        It counts as a trip (the next automatic wait grows by ``open_backoff``) and,
        as after a trip, the first call after the wait moves it to half-open.
        """
        if for_s is not None and not for_s >= 0:
            raise ValueError(f"CircuitBreaker.open: for_s must be >= 0, got {for_s!r}")
        with self._lock:
            self._open(self.clock(), for_s)
        self._fire_pending()

    def half_open(self) -> None:
        """Let ``half_open_max_calls`` trial calls decide, from now."""
        self._transition(_HALF_OPEN)

    def close(self) -> None:
        """Close the breaker with an empty window and forget the trip history."""
        self._transition(_CLOSED)

    def reset(self) -> None:
        """The same as :meth:`close`."""
        self._transition(_CLOSED)

    def force_open(self) -> None:
        """Reject every call until another state is chosen."""
        self._transition(_FORCED_OPEN)

    def disable(self) -> None:
        """Permit every call and record nothing until another state is chosen."""
        self._transition(_DISABLED)

    def metrics_only(self) -> None:
        """Permit every call and record it in a fresh window, but never change state alone."""
        self._transition(_METRICS_ONLY)

    # -- calls -----------------------------------------------------------------------
    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` through the breaker."""
        record = self._fast  # the window the call is admitted into, if no lock is needed
        if record is not None:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._complete(_STALE, exc, 0.0, record)
                raise
            record(OK)
            return result
        now = self.clock()
        if now < self._rejecting_until:  # open, and no listener to tell
            next(self._rejections)
            raise CircuitOpenError(self.name, "open", self._rejecting_until - now)
        generation, started = self._acquire(now)
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
        """Decorate a function, coroutine function or (async) generator function.

        A generator takes its permit when iteration starts and holds it until it
        returns, raises (a failure, if it counts) or is closed (ignored).
        """
        return guard(self, fn)

    def __enter__(self) -> CircuitBreaker:
        enter(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        leave(self, exc)

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
    def permit(self) -> Permit:
        """Take a permit for a call that will finish later, or raise :class:`CircuitOpenError`.

        Hand the permit back with :meth:`record` when the call has finished.
        """
        return self._acquire()

    def record(self, permit: Permit, error: BaseException | None = None) -> None:
        """Record how the call of ``permit`` went (``error=None``: success)."""
        generation, started = permit
        record = self._fast  # read before the check: the window of `generation` or newer
        if error is None and record is not None and generation == self._generation:
            record(OK)  # closed, nobody listening, no slow calls: nothing else to do
            return
        self._complete(generation, error, self.clock() - started)

    # -- the machine ---------------------------------------------------------------------
    def _acquire(self, now: float | None = None) -> Permit:
        """Permit a call or raise CircuitOpenError; returns (generation, start time)."""
        generation = self._generation  # before the state: see _set_state
        state = self._state
        if now is None:
            now = self.clock()
        if state is _CLOSED or state is _DISABLED or state is _METRICS_ONLY:
            return generation, now
        if state is _OPEN and now < self._reopen_at:
            self._reject(now)
        with self._lock:
            self._advance(now)
            state = self._state
            permit: Permit | None = None
            if state is _HALF_OPEN:
                if self._half_open_permits < self.half_open_max_calls:
                    self._half_open_permits += 1
                    permit = (self._generation, now)
            elif state is _CLOSED or state is _DISABLED or state is _METRICS_ONLY:
                permit = (self._generation, now)
        self._fire_pending()
        if permit is None:
            self._reject(now)
        return permit  # type: ignore[return-value]

    def _reject(self, now: float) -> None:
        next(self._rejections)
        state = self._state
        if state is _OPEN:
            remaining = max(0.0, self._reopen_at - now)
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

    def _complete(
        self,
        generation: int,
        exc: BaseException | None,
        duration: float,
        record: Callable[[int], None] | None = None,
    ) -> None:
        """Record an outcome; ``record`` (the lock-free path) names the window it was admitted
        into instead of a generation."""
        failed = self._classify(exc)
        slow = self.slow_call_duration_s is not None and duration >= self.slow_call_duration_s
        code = -1 if failed is None else _CODES[(failed, slow)]
        with self._lock:
            if record is not None:
                generation = self._window_generation if record is self._record else _STALE
            now = self.clock()
            self._advance(now)
            current = generation == self._generation
            state = self._state
            if code == -1:
                if current and state is _HALF_OPEN:
                    self._half_open_permits -= 1
            else:
                if generation == self._window_generation:
                    self._record(code)
                if current and state is _CLOSED and code != OK:
                    self._evaluate_trip(now, bool(failed))
                elif current and state is _HALF_OPEN:
                    self._trial_done(now, bool(failed), slow)
        self._fire_pending()
        if self._outcome_listeners:
            outcome = Outcome.IGNORED if code == -1 else _OUTCOMES[code]
            for listener in list(self._outcome_listeners):
                listener(self, outcome, duration, exc)

    def _trial_done(self, now: float, failed: bool, slow: bool) -> None:
        if failed:
            self._streak += 1
            self._trip(now)
            return
        self._streak = 0
        self._half_open_successes += 1
        self._half_open_slow += slow
        if self._half_open_successes < self.success_threshold:
            return
        rate = self.slow_call_rate_threshold
        if rate is not None and 100.0 * self._half_open_slow / self._half_open_successes >= rate:
            self._trip(now)
        else:
            self._set_state(_CLOSED, now)

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
        self._open(now, None)

    def _open(self, now: float, wait: float | None) -> None:
        self._trips += 1
        if wait is None:
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

    def _advance(self, now: float) -> None:
        """The timed transitions (caller holds the lock): open -> half-open after the wait,
        half-open -> open after ``max_wait_in_half_open_s``."""
        if self._state is _OPEN and now >= self._reopen_at:
            self._set_state(_HALF_OPEN, now)
        max_wait = self.max_wait_in_half_open_s
        if (
            self._state is _HALF_OPEN
            and max_wait is not None
            and now >= self._half_opened_at + max_wait
        ):
            self._open(now, None)

    def _transition(self, state: BreakerState) -> None:
        with self._lock:
            self._set_state(state, self.clock())
        self._fire_pending()

    def _set_state(self, state: BreakerState, now: float) -> None:
        """Enter ``state`` (caller holds the lock); listeners fire after the lock is released.

        The lock-free path is shut first. ``_acquire`` reads the generation before the
        state, so the state is written first: a reader that sees the old state also gets
        the old generation.
        """
        old = self._state
        self._fast = None
        if old in _RECORDING:
            self._streak = self._window.trailing_failures(sys.maxsize)
        self._state = state
        self._generation += 1
        self._half_open_permits = self._half_open_successes = self._half_open_slow = 0
        if state is _HALF_OPEN:
            self._half_opened_at = now
        elif state in _RECORDING:
            if state is _CLOSED:
                self._trips = 0
                self._closed_at = now
            self._streak = 0
            self._new_window()
        self._update_fast()
        if old is not state and self._state_listeners:
            self._local.__dict__.setdefault("pending", []).append((old, state))

    def _new_window(self) -> None:
        """A fresh window for the generation now starting; late outcomes of earlier
        generations go to the old window, which nothing reads any more."""
        self._window = self._window_spec.build(self.clock)
        self._record = self._window.record
        self._window_generation = self._generation

    def _fire_pending(self) -> None:
        pending = self._local.__dict__.get("pending")
        if not pending:
            return
        self._local.pending = []
        for old, new in pending:
            for listener in list(self._state_listeners):
                listener(self, old, new)

    def _update_fast(self) -> None:
        """Open or shut the lock-free paths (caller holds the lock).

        ``_fast`` is the window's recorder while a call may run and record without the
        lock (closed or metrics-only, nobody listening, no slow calls), else None: one
        read tells a caller both whether it may and where its outcome goes.
        ``_rejecting_until`` lets an open breaker nobody listens to reject without it.
        """
        quiet = not self._outcome_listeners
        fast = self._state in _RECORDING and quiet and self.slow_call_duration_s is None
        self._fast = self._record if fast else None
        self._rejecting_until = self._reopen_at if self._state is _OPEN and quiet else -math.inf

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._state.value}>"
