"""Restarts and redelivery: a failed or crashed child comes back, and its messages reach it.

A restarted child starts from its last good checkpoint; the failed message and what
arrived meanwhile go to its next instance (the one starting now, or the next to
start). What waited for a child that is gone for good is answered with
``ActorStopped`` and kept as dead letters.
"""

from __future__ import annotations

from ...actors.errors import (
    ActorStopped,
    Overloaded,
)
from ...actors.messages import Handover, Redelivery
from ...strategies import ErrorInfo
from . import failures, lifecycle, outages
from .commands import Retry
from .common import (
    Out,
    crash_info,
    describe,
    note,
    set_aside,
)
from .events import ChildStarted
from .state import (
    REMOVED,
    STARTING,
    UP,
    ChildRecord,
    FailedMessage,
    SupervisorState,
)


def restart_with(
    s: SupervisorState, c: ChildRecord, record: FailedMessage | None, now: float, out: Out
) -> None:
    """Restart ``c`` from its last good checkpoint and hand it the failed message."""
    lifecycle.mark_restart(c)
    c.trust_final_state = False  # its state after the failure is not trusted
    if record is not None:
        redeliver_later(s, c, record, now, out)


def redeliver_later(
    s: SupervisorState, c: ChildRecord, record: FailedMessage, now: float, out: Out
) -> None:
    """``record`` goes to ``c``'s next instance: the one starting now, or the next to start."""
    if record.message is None:
        s.failures.pop(record.id, None)
        if c.health_failure == record.id:
            c.health_failure = None
        return
    if c.phase == REMOVED:
        text = f"{c.path} was stopped for good before handling {describe(record.message)}"
        set_aside(s, out, record, ActorStopped(text, c.path), now)
        return
    if c.phase == STARTING and not c.restart_pending:
        # spawned already (with what waited then): it holds this until it has started
        record.assigned_to, record.fresh = c.name, (c.name, c.incarnation)
        out.append(Retry(c.name, failures.retry_message(record, 3, "restart")))
        return
    if len(c.redeliver) >= s.hold_limit:
        error = Overloaded.waiting(c.path, s.hold_limit)
        set_aside(s, out, record, error, now)
        return
    record.assigned_to = c.name
    c.redeliver.append(Redelivery(record.message, record.sender, record.id))


def drop_waiting(s: SupervisorState, c: ChildRecord, now: float, out: Out) -> None:
    """``c`` is gone for good: what waited for it is answered and kept as dead letters."""
    waiting, c.redeliver = c.redeliver, []
    held, c.held = c.held, []
    for item in waiting:
        record = s.failures.get(item.failure_id) if item.failure_id else None
        if record is None:
            info = crash_info(c.path, "stopped")
            record = s.new_failure(c.name, item.message, item.sender, info, now)
        held.append(record)
    for record in held:
        message = record.message
        if type(message) is Handover:  # (a lost request held for it)
            message = message.request
        text = f"{c.path} was stopped for good before handling {describe(message)}"
        set_aside(s, out, record, ActorStopped(text, c.path), now)


def healthy_replica(s: SupervisorState, c: ChildRecord) -> ChildRecord | None:
    if c.slot.group is None:
        return None
    for other in s.order:
        if (
            other is not c
            and other.slot.group == c.slot.group
            and other.phase == UP
            and not other.restart_pending
        ):
            return other
    return None


def reassign(s: SupervisorState, c: ChildRecord, record: FailedMessage, out: Out) -> bool:
    other = healthy_replica(s, c)
    if other is None or record.message is None:
        return False
    record.assigned_to = other.name
    record.fresh = (other.name, other.incarnation)
    out.append(Retry(other.name, failures.retry_message(record, 3, "reassign")))
    return True


def restart_after_crash(
    s: SupervisorState, c: ChildRecord, info: ErrorInfo, minimum: int, now: float, out: Out
) -> None:
    """``c`` is down (crashed, failed to start, gave up): start it again, from ``minimum``."""
    if c.restart == "temporary":
        c.stop_for_good = True
        lifecycle.reconcile(s, now, out)
        return
    kind = c.kind_of(info)
    ladder = c.ladder(info.fingerprint)
    allowed = outages.outage_restarts(s, c, ladder, kind, now)
    decision = ladder.on_failure(now, minimum, restarts_allowed=allowed)
    if decision is None:
        outages.wait_out_outage(s, c, info, now, out)
        return
    if not s.intensity.add(now):
        failures.escalate(s, failures.intensity_reason(s, c), info, c.path, now, out)
        return
    c.restarts += 1
    note(
        s,
        out,
        "restart",
        c,
        now,
        level=decision.level,
        info=info,
        detail=c.last_error,
        strategy="restart" if decision.level == 3 else "restart_subtree",
        state="restarting",
    )
    if decision.level >= 4:
        lifecycle.mark_restart_set(s, c, count_c=False)
    elif c.phase != "down":
        lifecycle.mark_restart(c)
    lifecycle.reconcile(s, now, out)


def on_start_failed(s: SupervisorState, c: ChildRecord, e: ChildStarted, out: Out) -> None:
    info = e.error or crash_info(c.path, "start failed")
    c.last_error = f"start failed: {info.error_type}: {info.message}"[:300]
    c.redeliver.extend(e.held)
    note(s, out, "start-failure", c, e.now, level=3, info=info, detail=c.last_error)
    restart_after_crash(s, c, info, 3, e.now, out)
