"""Small pieces every part of the kernel uses: reports to the root, attempts, setting aside."""

from __future__ import annotations

from typing import Any

from ...actors.errors import StalwartError
from ...actors.messages import ReplyTo, Request
from ...strategies import ErrorCategory, ErrorInfo, Severity, fingerprint_of
from ..messages import Attempt, EventNote, StateNote
from .commands import AttemptBegins, AttemptEnds, Command, DeadLetter, Report
from .state import TREE_CANDIDATES, UP, ChildRecord, FailedMessage, SupervisorState

Out = list[Command]


def note(
    s: SupervisorState,
    out: Out,
    kind: str,
    c: ChildRecord | None,
    now: float,
    *,
    level: int = 0,
    detail: str = "",
    info: ErrorInfo | None = None,
    strategy: str = "",
    duration_ms: float = 0.0,
    state: str = "",
    trace: str = "",
    context: str = "",
    at: str = "",
) -> None:
    """Tell the root what happened (and, with ``state``, the child's new state), at ``c``'s
    path, else at ``at``, else at the supervisor's."""
    out.append(
        Report(
            EventNote(
                kind,
                c.path if c is not None else at or s.path,
                level,
                detail[:300],
                info.category if info else "",
                info.fingerprint if info else "",
                strategy,
                duration_ms,
                state,
                c.level(now) if c is not None else 0,
                c.restarts if c is not None else 0,
                c.last_error if c is not None else "",
                int(info.severity) if info else 0,
                trace,
                context,
            )
        )
    )


def state_note(out: Out, c: ChildRecord, label: str, now: float) -> None:
    out.append(Report(StateNote(c.path, label, c.level(now), c.restarts, c.last_error)))


def crash_info(path: str, detail: str, kind: str = "ProcessExit") -> ErrorInfo:
    """The classification of an instance that died or gave up (a fault)."""
    return ErrorInfo(
        ErrorCategory.CRASH, Severity.HIGH, fingerprint_of(kind, path), True, kind, detail
    )


def hang_info(path: str, detail: str, kind: str) -> ErrorInfo:
    """The classification of an instance that stopped answering (it hung, a retry or a start
    got no answer): most often it waits for something that does not answer, so it is an
    outage, which restarts do not fix."""
    return ErrorInfo(
        ErrorCategory.TIMEOUT, Severity.HIGH, fingerprint_of(kind, path), True, kind, detail
    )


def trace_of(sender: Any) -> str:
    """The trace id a failed message's sender carries ("" for a plain message)."""
    return sender.trace if type(sender) is ReplyTo else ""


def context_of(sender: Any) -> str:
    """The traceparent of the span that handled a failed request ("" without tracing)."""
    return sender.context if type(sender) is ReplyTo else ""


def operation(message: Any) -> str:
    """The message type a failure was about (its "operation")."""
    if isinstance(message, Request):
        message = message.message
    return "" if message is None else type(message).__name__


def describe(message: Any) -> str:
    return f"message {operation(message) or 'None'}"


def attempt_begins(out: Out, c: ChildRecord, record: FailedMessage, now: float) -> None:
    record.level_started = now
    out.append(AttemptBegins(record.id, c.name))


def attempt_done(
    s: SupervisorState, out: Out, record: FailedMessage, success: bool, now: float
) -> None:
    """Feed the selector, and the recovery store through the root, with how an attempt went."""
    if not record.strategy:
        return
    duration = now - record.level_started
    if record.strategy in TREE_CANDIDATES.get(record.level, ()):
        s.selector.record(record.info.category, record.level, record.strategy, success, duration)
    c = s.children.get(record.assigned_to)
    path, op = (c.path if c is not None else s.path), operation(record.message)
    learned = s.timeouts.get(f"{path}|{op}")
    timeout = learned.learned_s() if learned is not None else None
    attempt = Attempt(
        0.0,
        path,
        op,
        record.info.category,
        record.info.fingerprint,
        record.level,
        record.strategy,
        success,
        duration,
        timeout_s=timeout or 0.0,
        longest_s=learned.longest_s if learned is not None else 0.0,
    )
    out.append(AttemptEnds(record.id, record.assigned_to, attempt))
    record.strategy = ""


def set_aside(
    s: SupervisorState,
    out: Out,
    record: FailedMessage,
    error: StalwartError,
    now: float,
    poison: bool = False,
    refused: bool = False,
) -> None:
    """Give up on a message: it becomes a dead letter and its sender gets ``error``
    (``refused``: bad input, answered and not kept when it was a request)."""
    s.failures.pop(record.id, None)
    c = s.children.get(record.child)
    attempt_done(s, out, record, False, now)
    if c is not None and c.health_failure == record.id:
        c.health_failure = None
    if c is not None and poison:
        note(s, out, "poison", c, now, level=record.level, info=record.info, detail=str(error))
    if c is not None and c.phase == UP and not any(r.child == c.name for r in s.failures.values()):
        state_note(out, c, "degraded" if c.in_outage(now) else "running", now)
    if record.message is None and record.sender is None:
        return  # a failed health check or hook: nothing waits for an answer
    out.append(
        DeadLetter(
            c.path if c is not None else s.path,
            record.message,
            record.sender,
            error,
            record.info.category,
            record.info.fingerprint,
            refused,
        )
    )
