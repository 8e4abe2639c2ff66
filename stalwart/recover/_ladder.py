"""The levels outside a tree, for one failure: retry, backoff/adjust, reset, then the system.

Level 1 re-runs the operation at once (plainly, or after the remedy for its
kind of error); level 2 waits a jittered exponential backoff (applying the
remedy as its adjustment) or takes the fallback; level 3 resets the component
through the ``reset`` hook and re-runs; levels 4 and 5 ask an attached system
to restart ``target``'s subtree (4) or to take system-wide measures (5), then
re-run. The adaptive selector picks among the strategies that apply at each
level. A strategy that fails escalates to the next level; the fallback is the
last resort. An open breaker for the service stops the re-runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..actors.messages import RecoveryRequest
from ..strategies import CircuitOpenError, ErrorInfo
from ..supervisors.messages import Attempt, EventNote
from ._context import Context
from ._outcome import RecoveryOutcome, describe
from ._remedies import Problem, RemedyAction
from ._steps import Blocking, Call, Ladder, Sleep

if TYPE_CHECKING:
    from ._recovery import Recovery


@dataclass
class _Run:
    """One failure's recovery as it goes."""

    ctx: Context
    info: ErrorInfo
    started: float
    last: BaseException
    notes: list[tuple[float, EventNote | Attempt]] = field(default_factory=list)
    calls: int = 0
    remedies: list[str] = field(default_factory=list)
    circuit_open: bool = False
    fallback_tried: bool = False
    tried: str = ""
    reached: int = 1

    def note(self, kind: str, level: int, **fields: Any) -> None:
        self.notes.append(
            (
                time.time(),
                EventNote(
                    kind,
                    self.ctx.service,
                    level=level,
                    category=self.info.category,
                    fingerprint=self.info.fingerprint,
                    **fields,
                ),
            )
        )

    def attempt(self, level: int, strategy: str, ok: bool, seconds: float) -> None:
        self.notes.append(
            (
                time.time(),
                Attempt(
                    time.time(),
                    self.ctx.service,
                    self.ctx.operation,
                    self.info.category,
                    self.info.fingerprint,
                    level,
                    strategy,
                    ok,
                    seconds,
                ),
            )
        )


def available(r: Recovery, level: int, run: _Run, remedy: RemedyAction | None) -> list[str]:
    """The strategies that apply at ``level`` to this failure and context."""
    ctx, retryable = run.ctx, run.info.retryable and run.ctx.retry is not None
    if r.tries.get(level, 1) == 0:  # this level is turned off
        return []
    if run.circuit_open and level <= 2:  # no more re-runs; a reset or restart may still help
        return ["fallback"] if level == 2 and ctx.fallback and not run.fallback_tried else []
    if level == 1:
        if not retryable:
            return []
        return ["retry"] if remedy is None else [remedy.name, "retry"]  # the remedy first
    if level == 2:
        return (["backoff"] if retryable else []) + (["fallback"] if ctx.fallback else [])
    if level == 3:
        return ["reset"] if ctx.reset is not None and ctx.retry is not None else []
    if r.system is not None and ctx.target is not None:
        return ["restart_subtree"] if level == 4 else ["restart_tree"]
    return []


def ladder(
    r: Recovery, error: BaseException, ctx: Context, *, counted: bool = False
) -> Ladder[RecoveryOutcome]:
    """Recover from ``error``; yields the I/O it needs, returns the outcome.

    ``counted``: the service's breaker has already seen ``error`` (or rejected the call).
    """
    info = r.classifier.classify(error)
    run = _Run(ctx, info, time.perf_counter(), error)
    key = (ctx.service, info.fingerprint)
    first = r.start_level(key)
    run.note("failure", first, detail=describe(error), severity=int(info.severity))
    if r.system is not None:  # the system hears of the failure before any request it gets
        failure, run.notes = run.notes, []
        yield Blocking(lambda: r.publish(failure))
    if not counted:
        r.breaker_saw_failure(ctx.service, error)
    remedy = r.remedy_for(Problem(error, info, ctx, r))
    run.reached = first
    for level in range(first, r.max_level + 1):
        names = available(r, level, run, remedy)
        while names:
            strategy = r.choose(info.category, level, names)
            names.remove(strategy)
            run.tried, run.reached = strategy, level
            began = time.perf_counter()
            ok, value = yield from _strategy(r, run, level, strategy, remedy)
            run.attempt(level, strategy, ok, time.perf_counter() - began)
            r.learn(info.category, level, strategy, ok, time.perf_counter() - began)
            if ok:
                return (yield from _finish(r, run, key, level, strategy, True, value))
            if run.circuit_open:
                names = [n for n in names if n == "fallback"]
        if level < r.max_level and available(r, level + 1, run, remedy):
            run.note("escalate", level + 1, detail=describe(run.last))
    if ctx.fallback is not None and not run.fallback_tried:
        began = time.perf_counter()
        run.tried = "fallback"
        ok, value = yield from _fallback(run)
        run.attempt(run.reached, "fallback", ok, time.perf_counter() - began)
        if ok:
            return (yield from _finish(r, run, key, run.reached, "fallback", True, value))
    return (yield from _finish(r, run, key, run.reached, "", False, None))


def _strategy(
    r: Recovery, run: _Run, level: int, strategy: str, remedy: RemedyAction | None
) -> Ladder[tuple[bool, Any]]:
    ctx = run.ctx
    if strategy == "fallback":
        return (yield from _fallback(run))
    if strategy == "reset":
        assert ctx.reset is not None
        ok, value = yield Call(ctx.reset)
        if not ok:
            run.last = value
            return False, value
        return (yield from _after_reset(r, run))
    if strategy in ("restart_subtree", "restart_tree"):
        request = RecoveryRequest(
            str(ctx.target),
            level,
            f"{ctx.service}: {describe(run.last)}",
            by=f"recovery of {ctx.service}",
        )
        ok, result = yield Blocking(lambda: r.system.request_recovery(request))
        if not ok or not result.ok:
            detail = result if not ok else RuntimeError(result.detail)
            run.last = detail
            return False, detail
        return (yield from _after_reset(r, run))
    tries = r.tries.get(level, 1)
    for attempt in range(1, tries + 1):
        kwargs: dict[str, Any] = {}
        wait = r.backoff_delay(attempt) if strategy == "backoff" else 0.0
        use_remedy = remedy is not None and (strategy == remedy.name or strategy == "backoff")
        if use_remedy:
            assert remedy is not None
            wait = max(wait, remedy.wait_s)
            kwargs.update(remedy.kwargs)
        if wait > 0:
            yield Sleep(wait)
        if use_remedy and remedy is not None:
            run.remedies.append(remedy.name)
            if remedy.hook is not None:
                ok, value = yield Blocking(remedy.hook)
                if not ok:
                    run.last = value
                    continue
        ok, value = yield from _rerun(r, run, kwargs)
        if ok or run.circuit_open:
            return ok, value
    return False, run.last


def _after_reset(r: Recovery, run: _Run) -> Ladder[tuple[bool, Any]]:
    """The component is fresh: its breaker starts closed again, and the operation re-runs."""
    r.breaker(run.ctx.service).reset()
    run.circuit_open = False
    return (yield from _rerun(r, run, {}))


def _rerun(r: Recovery, run: _Run, kwargs: dict[str, Any]) -> Ladder[tuple[bool, Any]]:
    """Run the operation again, through the service's breaker."""
    ctx = run.ctx
    if ctx.retry is None:
        return False, run.last
    breaker = r.breaker(ctx.service)
    try:
        permit = breaker.permit()
    except CircuitOpenError as exc:
        run.circuit_open, run.last = True, exc
        return False, exc
    run.calls += 1
    began = time.perf_counter()
    ok, value = yield Call(ctx.retry, kwargs)
    breaker.record(permit, None if ok else value)
    if ok:
        r.learn_duration(ctx, time.perf_counter() - began)
        return True, value
    run.last = value
    return False, value


def _fallback(run: _Run) -> Ladder[tuple[bool, Any]]:
    fallback: Callable[..., Any] | None = run.ctx.fallback
    if fallback is None or run.fallback_tried:
        return False, run.last
    run.fallback_tried = True
    run.calls += 1
    ok, value = yield Call(fallback)
    if not ok:
        run.last = value
    return ok, value


def _finish(
    r: Recovery,
    run: _Run,
    key: tuple[str, str],
    level: int,
    strategy: str,
    ok: bool,
    value: Any,
) -> Ladder[RecoveryOutcome]:
    duration_ms = (time.perf_counter() - run.started) * 1000
    if ok:
        run.note("recovered", level, strategy=strategy, duration_ms=duration_ms)
    else:
        run.note("unrecovered", level, detail=describe(run.last), duration_ms=duration_ms)
    r.remember_level(key, level)
    notes = run.notes
    yield Blocking(lambda: r.publish(notes))
    return RecoveryOutcome(
        success=ok,
        strategy=strategy or run.tried,
        level=level,
        attempts=run.calls,
        duration_ms=duration_ms,
        error=None if ok else describe(run.last),
        value=value,
        category=str(run.info.category),
        fingerprint=run.info.fingerprint,
        remedies=tuple(dict.fromkeys(run.remedies)),
        exception=None if ok else run.last,
    )
