"""``Recovery``: the levels, remedies, breakers and learning of the tree, for plain code."""

from __future__ import annotations

import functools
import inspect
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, overload

from .._deferred import np
from ..strategies import (
    AdaptiveSelector,
    Backoff,
    CircuitBreaker,
    CircuitOpenError,
    Classifier,
    Exponential,
)
from ..strategies._classify import default_classifier
from ..telemetry._store import RecoveryStore, open_store
from ._context import Context, Hook
from ._ladder import ladder
from ._outcome import RecoveryOutcome
from ._remedies import DEFAULT_REMEDIES, Problem, Remedy, RemedyAction
from ._sinks import Note, StoreSink, SystemSink
from ._steps import drive_async, drive_sync

F = TypeVar("F", bound=Callable[..., Any])

CANDIDATES: dict[int, tuple[str, ...]] = {
    1: ("retry",),  # and the remedies' names, as they come up
    2: ("backoff", "fallback"),
    3: ("reset",),
    4: ("restart_subtree",),
    5: ("restart_tree",),
}
DEFAULT_TRIES = {1: 2, 2: 3, 3: 1, 4: 1, 5: 1}
_DURATIONS_KEPT = 100


class Recovery:
    """Recovery for code outside actors: classify, pick a strategy, run it, record, learn.

    ``store``: a recovery-store file (or :class:`RecoveryStore`) to record into
    and learn from; ``system``: a running Stalwart system to report to (its
    store, events and correlator get the records) and to ask for levels 4-5.
    ``tries``: re-runs per strategy, per level (default 2, 3, 1, 1, 1).
    ``backoff``: level 2's schedule; ``quiet_s``: how long a service keeps
    starting at the level that last recovered it; ``breaker``: options of the
    per-service :class:`CircuitBreaker`; ``hooks``: default ``reconnect`` /
    ``refresh_token`` hooks for every service. Thread-safe.
    """

    def __init__(
        self,
        *,
        store: str | Path | RecoveryStore | None = None,
        system: Any = None,
        tries: Mapping[int, int] | None = None,
        backoff: Backoff | None = None,
        max_level: int = 5,
        quiet_s: float = 60.0,
        breaker: Mapping[str, Any] | None = None,
        hooks: Mapping[str, Hook] | None = None,
        classifier: Classifier | None = None,
        max_wait_s: float = 30.0,
        timeout_factor: float = 2.0,
        max_timeout_s: float = 60.0,
        seed: int | None = None,
    ) -> None:
        self.tries = {**DEFAULT_TRIES, **(tries or {})}
        for level, n in self.tries.items():
            if level not in DEFAULT_TRIES or not isinstance(n, int) or n < 0:
                raise ValueError(f"tries[{level!r}] must be a level 1-5 with a count >= 0")
        if not 1 <= max_level <= 5:
            raise ValueError(f"max_level must be 1..5, got {max_level!r}")
        for name, value in (
            ("quiet_s", quiet_s),
            ("max_wait_s", max_wait_s),
            ("timeout_factor", timeout_factor),
            ("max_timeout_s", max_timeout_s),
        ):
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        self.backoff = backoff or Exponential(0.05, 2.0).capped(5.0).jittered("full")
        self.max_level, self.quiet_s = max_level, float(quiet_s)
        self.max_wait_s, self.timeout_factor = float(max_wait_s), float(timeout_factor)
        self.max_timeout_s = float(max_timeout_s)
        self.breaker_options = dict(breaker or {})
        CircuitBreaker(**self.breaker_options)  # bad options fail here, naming the field
        self.hooks: dict[str, Hook] = dict(hooks or {})
        self.classifier = classifier or default_classifier
        self.remedies: dict[str, Remedy] = dict(DEFAULT_REMEDIES)
        self.selector = AdaptiveSelector(dict(CANDIDATES), seed=seed)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._levels: dict[tuple[str, str], tuple[int, float]] = {}
        self._durations: dict[tuple[str, str], deque[float]] = {}
        self.store, self._own_store = open_store(store)
        if self.store is not None:
            self.selector.load_state(self.store.strategy_scores())
        self.system = system
        self._store_sink = StoreSink(self.store) if self.store is not None else None
        self._system_sink = SystemSink(system) if system is not None else None

    # -- entry points -----------------------------------------------------------------------
    async def handle_error(
        self, error: BaseException, context: Context | Mapping[str, Any] | None = None
    ) -> RecoveryOutcome:
        """Recover from ``error`` (async): see :mod:`stalwart.recover` for the levels."""
        return await drive_async(ladder(self, error, Context.of(context)))

    def handle_error_sync(
        self, error: BaseException, context: Context | Mapping[str, Any] | None = None
    ) -> RecoveryOutcome:
        """Recover from ``error`` in this thread (waits block it)."""
        return drive_sync(ladder(self, error, Context.of(context)))

    @overload
    def protect(self, fn: F, /) -> F: ...
    @overload
    def protect(
        self, fn: None = None, /, *, breaker: bool = False, **context: Any
    ) -> Callable[[F], F]: ...
    def protect(self, fn: F | None = None, /, *, breaker: bool = False, **context: Any) -> Any:
        """Decorate a sync or async function: a failure goes through :meth:`handle_error`.

        ``context`` as for :meth:`handle_error` (``service`` defaults to the
        function's module, ``operation`` to its name); ``retry`` re-runs the call
        with its arguments and ``fallback`` is called with them too. If recovery
        fails, the last error is raised. ``breaker=True`` also sends the first
        call through the service's breaker: an open one rejects it at once (and
        recovery starts from the rejection), and the call's outcome, whatever it
        is (a failure, an ignored exception, a cancellation), goes back to the
        breaker with its permit, once.
        """

        def decorate(func: F) -> F:
            fallback = context.pop("fallback", None)
            if fallback is not None and not callable(fallback):
                raise ValueError(f"fallback must be callable, got {fallback!r}")
            base = Context.of(
                {
                    "service": func.__module__ or "default",
                    "operation": func.__qualname__,
                    **context,
                }
            )
            guard = self.breaker(base.service) if breaker else None

            def for_call(args: Any, kwargs: Any) -> Context:
                retry = functools.partial(func, *args, **kwargs)
                fb = functools.partial(fallback, *args, **kwargs) if fallback else None
                return replace(base, retry=retry, fallback=fb)

            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    try:
                        if guard is None:
                            return await func(*args, **kwargs)
                        return await guard.call_async(func, *args, **kwargs)
                    except Exception as exc:
                        ctx = for_call(args, kwargs)
                        if guard is None:
                            return _result(await self.handle_error(exc, ctx))
                        # the breaker has this outcome (or rejected the call): not twice
                        return _result(await drive_async(ladder(self, exc, ctx, counted=True)))

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    if guard is None:
                        return func(*args, **kwargs)
                    return guard.call(func, *args, **kwargs)
                except Exception as exc:
                    ctx = for_call(args, kwargs)
                    if guard is None:
                        return _result(self.handle_error_sync(exc, ctx))
                    # the breaker has this outcome (or rejected the call): not twice
                    return _result(drive_sync(ladder(self, exc, ctx, counted=True)))

            return wrapper  # type: ignore[return-value]

        return decorate(fn) if fn is not None else decorate

    def remedy(self, category: str) -> Callable[[Remedy], Remedy]:
        """Register (or replace) the remedy for an error category; use as a decorator."""

        def register(fn: Remedy) -> Remedy:
            self.remedies[str(category)] = fn
            return fn

        return register

    # -- used by the ladder -----------------------------------------------------------------
    def start_level(self, key: tuple[str, str]) -> int:
        """The level to start at: where this error last got to, within the quiet period."""
        with self._lock:
            seen = self._levels.get(key)
        if seen is None or time.monotonic() - seen[1] > self.quiet_s:
            return 1
        return min(seen[0], self.max_level)

    def remember_level(self, key: tuple[str, str], level: int) -> None:
        with self._lock:
            self._levels[key] = (level, time.monotonic())

    def remedy_for(self, problem: Problem) -> RemedyAction | None:
        rule = self.remedies.get(str(problem.info.category))
        action = rule(problem) if rule is not None else None
        if action is not None:
            with self._lock:
                names = self.selector.candidates.get(1, ())
                if action.name not in names:
                    self.selector.candidates[1] = (action.name, *names)  # remedies first
        return action

    def choose(self, category: str, level: int, names: list[str]) -> str:
        with self._lock:
            return self.selector.choose(category, level, available=names)

    def learn(self, category: str, level: int, strategy: str, ok: bool, seconds: float) -> None:
        with self._lock:
            self.selector.record(category, level, strategy, ok, seconds)

    def backoff_delay(self, attempt: int) -> float:
        return float(self.backoff.next_delay(attempt, 0.0, self._rng))

    def breaker(self, service: str) -> CircuitBreaker:
        """The circuit breaker of ``service`` (created on first use)."""
        found = self._breakers.get(service)
        if found is None:
            with self._lock:
                found = self._breakers.setdefault(
                    service, CircuitBreaker(name=service, **self.breaker_options)
                )
        return found

    def breaker_saw_failure(self, service: str, error: BaseException) -> None:
        breaker = self.breaker(service)
        try:
            breaker.record(breaker.permit(), error)
        except CircuitOpenError:  # open already: nothing more to count
            pass

    def learn_duration(self, ctx: Context, seconds: float) -> None:
        with self._lock:
            self._durations.setdefault(
                (ctx.service, ctx.operation), deque(maxlen=_DURATIONS_KEPT)
            ).append(seconds)

    def adapted_timeout(self, ctx: Context) -> float | None:
        """A longer timeout for a retry after a timeout: ``timeout_factor`` times the larger of
        the one that ran out and the p95 of recent successful runs, capped."""
        with self._lock:
            seen = list(self._durations.get((ctx.service, ctx.operation), ()))
        bases = [ctx.timeout or 0.0]
        if seen:
            bases.append(float(np.percentile(seen, 95)))
        base = max(bases)
        return min(base * self.timeout_factor, self.max_timeout_s) if base > 0 else None

    def publish(self, notes: list[tuple[float, Note]]) -> None:
        with self._lock:
            scores = self.selector.state()
        if self._system_sink is not None:
            self._system_sink.publish(notes, scores)
        elif self._store_sink is not None:
            self._store_sink.publish(notes, scores)

    # -- lifetime ---------------------------------------------------------------------------
    def attach(self, system: Any) -> None:
        """Report to a running system from now on (``None`` detaches)."""
        self.system = system
        self._system_sink = SystemSink(system) if system is not None else None

    def close(self) -> None:
        """Close the store if this object opened it."""
        if self._own_store and self.store is not None:
            self.store.close()
            self.store = None
            self._store_sink = None

    def __enter__(self) -> Recovery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _result(out: RecoveryOutcome) -> Any:
    if out.success:
        return out.value
    error = out.exception
    if isinstance(error, BaseException):
        error.add_note(
            f"stalwart.recover: not recovered ({out.attempts} attempts, up to level {out.level})"
        )
        raise error
    raise RuntimeError(out.error or "recovery failed")
