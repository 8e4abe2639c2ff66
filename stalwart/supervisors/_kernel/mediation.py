"""Holding and health: no restart storms while a dependency is down; hung and unhealthy actors.

**Holding.** Restarting an actor whose dependency is down does not help. While a
dependency of a child is down (its breaker is open, the parent says an ancestor's
dependency is down, or the root traced the child's errors to a root cause), the
child's retryable failures are *held*: no ladder, no restart. A held request is
answered with ``DownstreamError`` just before its caller's deadline; held messages
are retried, in order, when the dependency is back. At most ``hold_limit`` wait
per child; past that a failure is answered with ``Overloaded``.

**Health.** Every ``health_interval_s`` each running actor is asked whether it is
well. One that misses ``health_misses`` checks in a row is hung: where it has a
process of its own, that process is killed once (seen next as a crash, so it is
restarted at level 3, and its replacement starts with a clean slate); in one
process it is reported. An actor whose ``health()`` says no is recovered like a
failing one: its hooks at levels 1-2, then restarts; each check that fails again
uses an attempt, and the next check that passes ends it. In one process an actor
whose class keeps the default ``health()`` is not asked (see :func:`asks_health`).
"""

from __future__ import annotations

from ...actors.errors import Overloaded
from ...actors.messages import HealthCheck
from ...strategies import ErrorCategory, ErrorInfo, Severity, fingerprint_of
from .._ladder import FailureKind
from ..messages import DependencyDown
from . import failures, restarts
from .commands import Cancel, Kill, Retry, Send, Timer
from .common import Out, attempt_done, note, set_aside, state_note, trace_of
from .events import BreakerChanged, DependencyChanged, HealthReported, IncidentHeld
from .state import UP, ChildRecord, FailedMessage, SupervisorState

DOWN_STATES = ("open", "forced_open", "half_open")  # half-open: not back until a probe works


# -- holding ------------------------------------------------------------------------------
def on_breaker_changed(s: SupervisorState, e: BreakerChanged, out: Out) -> None:
    c = s.children.get(e.child)
    if c is None:
        return
    was_down = c.breaker_state in DOWN_STATES
    c.breaker_state = e.state
    c.breaker_until = e.now + e.remaining_s if e.state in ("open", "forced_open") else 0.0
    down = e.state in DOWN_STATES
    if e.state == "half_open":
        release_held(s, e.now, out, probe=c.path)  # one held message is the trial call
    if down == was_down:
        return
    note(s, out, "dependency-down" if down else "dependency-up", c, e.now, detail=e.state)
    for other in s.order:
        if c.name in other.slot.depends_on and other.kind == "supervisor" and other.phase == UP:
            out.append(Send(other.name, DependencyDown(c.path, down)))
    if not down:
        release_held(s, e.now, out)


def on_dependency_changed(s: SupervisorState, e: DependencyChanged, out: Out) -> None:
    if e.down:
        s.down_dependencies.add(e.path)
    else:
        s.down_dependencies.discard(e.path)
    for c in s.order:
        if c.kind == "supervisor" and c.phase == UP:
            out.append(Send(c.name, DependencyDown(e.path, e.down)))
    if not e.down:
        release_held(s, e.now, out)


def on_incident_held(s: SupervisorState, e: IncidentHeld, out: Out) -> None:
    if e.probe:  # the root asks whether the cause is back: one held message is the trial
        release_held(s, e.now, out, probe=e.cause, trial=True)
        return
    for path in e.dependents:
        if e.on:
            s.incident_holds[path] = e.cause
        elif s.incident_holds.get(path) == e.cause:
            del s.incident_holds[path]
    if not e.on:
        release_held(s, e.now, out)


def dependency_down(s: SupervisorState, c: ChildRecord) -> str | None:
    """The path of a dependency of ``c`` that is down, if any."""
    if s.down_dependencies:
        return next(iter(sorted(s.down_dependencies)))
    cause = s.incident_holds.get(c.path)
    if cause is not None:
        return cause
    for name in c.slot.depends_on:
        dep = s.children.get(name)
        if dep is not None and dep.breaker_state in DOWN_STATES:
            return dep.path
    return None


def hold(
    s: SupervisorState, c: ChildRecord, record: FailedMessage, dependency: str, now: float, out: Out
) -> None:
    """Park a failure until ``dependency`` is back (no ladder, no restart).

    A request whose deadline comes before the dependency's breaker even lets a trial
    through is answered at once: waiting cannot help it.
    """
    blocker = s.by_path.get(dependency)
    until = blocker.breaker_until if blocker is not None else 0.0
    if record.deadline and until >= record.deadline - failures.DEADLINE_MARGIN_S:
        why = f"{dependency} is down (its breaker stays open for another {until - now:.1f}s)"
        failures.give_up_downstream(s, c, record, why, now, out)
        return
    if len(c.held) >= s.hold_limit:
        error = Overloaded.waiting(c.path, s.hold_limit, dependency)
        set_aside(s, out, record, error, now)
        return
    record.held_for = dependency
    c.held.append(record)
    info = record.info
    c.holding = True
    note(
        s,
        out,
        "held",
        c,
        now,
        info=info,
        state="waiting",
        trace=trace_of(record.sender),
        detail=f"waiting for {dependency}: {info.error_type}: {info.message}",
    )
    if record.deadline:
        delay = max(0.0, record.deadline - failures.DEADLINE_MARGIN_S - now)
        out.append(Timer(delay, ("hold-deadline", record.id), ("hold", record.id)))


def on_hold_deadline(s: SupervisorState, record_id: int, now: float, out: Out) -> None:
    """A held request's caller is about to give up: answer it now."""
    record = s.failures.get(record_id)
    if record is None or not record.held_for:
        return
    c = s.children[record.child]
    unhold(s, record)
    why = f"waited for {record.held_for}, which is still down, until its caller's deadline"
    failures.give_up_downstream(s, c, record, why, now, out)


def unhold(s: SupervisorState, record: FailedMessage) -> None:
    """Take ``record`` out of what is held (by the child it failed in, its own or the one it
    was handed to)."""
    for name in (record.assigned_to, record.child):
        c = s.children.get(name)
        if c is not None and record in c.held:
            c.held.remove(record)


def answered_late(s: SupervisorState, record: FailedMessage, out: Out) -> None:
    """A held message's retry, given up as timed out (and the message held again), was
    answered after all: it went through, so it waits no more and is not retried again."""
    unhold(s, record)
    record.held_for = ""
    out.append(Cancel(("hold", record.id)))


def release_held(
    s: SupervisorState, now: float, out: Out, probe: str | None = None, trial: bool = False
) -> None:
    """Retry the held messages whose dependencies are back.

    ``probe``: a breaker gone half-open; one message held for it alone is retried.
    ``trial``: the probe is an incident's; the child still waits until it is resolved
    (a ``trial`` event, not ``resumed``).
    """
    for c in s.order:
        if not (c.held or (c.holding and not probe)) or dependency_down(s, c) != probe:
            continue
        if not c.held and c.phase != UP:  # (what it held went out on trial; it restarted)
            c.holding = False
            continue
        held, c.held = (c.held[:1], c.held[1:]) if probe else (c.held, [])
        c.holding = trial  # resumed, unless this is an incident's trial (it waits for the verdict)
        for record in held:
            record.held_for = ""
            out.append(Cancel(("hold", record.id)))
            if c.phase == UP and not c.restart_pending:
                record.level, record.attempt, record.strategy = 1, 1, "resume"
                record.level_started = now
                out.append(Retry(c.name, failures.retry_message(record)))
            else:
                restarts.redeliver_later(s, c, record, now, out)
        if trial:
            note(s, out, "trial", c, now, detail=f"1 held message retried: is {probe} back?")
        else:
            note(
                s,
                out,
                "resumed",
                c,
                now,
                detail=f"{len(held)} held message(s) retried",
                state="running",
            )
        if probe:
            return


# -- health -------------------------------------------------------------------------------
def on_health_tick(s: SupervisorState, now: float, out: Out) -> None:
    s.health_seq += 1
    for c in s.order:
        if c.phase != UP or c.kind != "actor":
            c.health_pending, c.health_missed = False, 0
            continue
        if not asks_health(s, c):
            continue
        if c.health_pending:
            c.health_missed += 1
            if c.health_missed >= s.spec.health_misses:
                hung(s, c, now, out)
        c.health_pending = True
        out.append(Send(c.name, HealthCheck(s.health_seq)))
    out.append(Timer(s.spec.health_interval_s, ("health",), "health"))


def asks_health(s: SupervisorState, c: ChildRecord) -> bool:
    """Whether a check goes to actor ``c``: always where it has a process of its own; in
    one process only if its class defines ``health()``. The default answers yes whenever a
    check can reach it, and a handler that hangs there holds the one thread every actor
    runs on (the system's hang watch reports it): checks would only cost 100,000 idle
    actors two messages each per interval."""
    if s.can_kill or c.role != "actor":
        return True
    actor = getattr(c.spec, "actor", None)
    return actor is None or bool(getattr(actor, "_sw_own_health", True))


def hung(s: SupervisorState, c: ChildRecord, now: float, out: Out) -> None:
    """Report a hung actor once; where it has a process of its own, kill that once."""
    if c.hung_reported:
        return
    c.hung_reported = True
    missed = c.health_missed
    c.last_error = f"hung: missed {missed} health checks"
    note(
        s,
        out,
        "hung",
        c,
        now,
        level=3,
        detail=f"{c.path} missed {missed} health checks",
        state="hung",
    )
    if s.can_kill and not c.hung_killed:
        c.hung_killed = True
        out.append(Kill(c.name, c.incarnation))  # seen next as a crash: restarted at level 3


def unhealthy_info(c: ChildRecord, detail: str) -> ErrorInfo:
    return ErrorInfo(
        ErrorCategory.UNKNOWN,
        Severity.MEDIUM,
        fingerprint_of("Unhealthy", c.path),
        True,
        "Unhealthy",
        detail or "health() said no",
    )


def on_health_reported(s: SupervisorState, e: HealthReported, out: Out) -> None:
    c = s.children.get(e.child)
    if c is None or c.incarnation != e.incarnation:
        return
    if c.hung_reported:
        note(s, out, "unhung", c, e.now, detail="answers health checks again", state="running")
        c.hung_reported = False
    c.health_pending, c.health_missed = False, 0
    record = s.failures.get(c.health_failure) if c.health_failure is not None else None
    if e.ok:
        if record is not None:
            del s.failures[record.id]
            c.health_failure = None
            failures.recovered(s, record, e.now, out)
        return
    info = e.info or unhealthy_info(c, "")
    if record is None:
        record = s.new_failure(c.name, None, None, info, e.now)
        record.health = True
        c.health_failure = record.id
    else:
        attempt_done(s, out, record, False, e.now)
        record.info = info
    c.last_error = f"unhealthy: {info.message}"[:300]
    if c.phase != UP or c.restart_pending:
        return
    kind = c.kind_of(info)
    failures.decide_failure(
        s, c, record, FailureKind.FAULT if kind is FailureKind.INPUT else kind, e.now, out
    )


def on_levels_reset(s: SupervisorState, path: str, now: float, out: Out) -> None:
    for c in s.order:
        if not path or c.path == path or c.path.startswith(path + "/"):
            c.ladders = {}
            if c.phase == UP:
                state_note(out, c, "running", now)
