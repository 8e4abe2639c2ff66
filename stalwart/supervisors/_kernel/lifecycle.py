"""Starting and stopping: start in order, stop in reverse, one at a time; say so in one place.

The kernel *reconciles* after every event: children marked for a restart (or
for good) are stopped one at a time, latest-started first; when none is left
to stop, the children that are down start in start order (dependencies first,
then declaration order), each once the one before it is running, as in OTP.
Replicas of one child start together. Nothing starts while a stop is under way,
so a restart set goes fully down before it comes back up.
"""

from __future__ import annotations

import operator
from typing import Any

from ...actors.errors import ActorStopped, Overloaded, PoisonMessageError, StalwartError
from ...actors.messages import ErrorReply, Handover, Redelivery, RunHooks
from .._plan import restart_set
from ..messages import KillSubtree, RecoveryDone, Unavailable
from . import children, failures, outages, passivation, restarts
from .commands import (
    Answer,
    Cancel,
    DeadLetter,
    Finish,
    Kill,
    Register,
    Release,
    Report,
    ReportStarted,
    Send,
    Spawn,
    Stop,
    Timer,
)
from .common import Out, crash_info, describe, hang_info, note
from .events import (
    Begin,
    ChildExited,
    ChildGaveUp,
    ChildRetired,
    ChildStarted,
    HandoverDone,
    HooksRan,
    LostRequestArrived,
    NodeLost,
    NodesChanged,
    RecoveryRequested,
    RetireRequested,
    StoppedItself,
    Unplaceable,
)
from .state import (
    DOWN,
    REMOVED,
    STARTING,
    STOPPING,
    UP,
    ChildRecord,
    SupervisorState,
    forgotten_key,
)

FORWARD_GRACE_S = 2.0  # how long a replaced instance forwards late messages to its successor


def on_begin(s: SupervisorState, e: Begin, out: Out) -> None:
    s.floors.update(e.floors)
    forgotten = s.floors.pop(forgotten_key(s.path), 0)  # (from its parent, or the root)
    s.floor_forgotten = max(s.floor_forgotten, forgotten)
    if s.spec.health_interval_s > 0:
        out.append(Timer(s.spec.health_interval_s, ("health",), "health"))
    if children.idle_interval(s):
        out.append(Timer(children.idle_interval(s), ("idle",), "idle"))
    reconcile(s, e.now, out)


def reconcile(s: SupervisorState, now: float, out: Out) -> None:
    """Compare what runs with what should run, and take the next step.

    It reads the phase index (:class:`.state.PhaseIndex`), not every child: a supervisor
    of thousands of children pays for the few that change.
    """
    if s.escalated or s.finished:
        return
    by_phase = s.index.by_phase
    if s.pool is not None:  # a Pool's instances stop all at once, in no order (as OTP's)
        for c in list(s.index.marked.values()):
            if c.phase == UP:
                stop_child(s, c, out)
    elif by_phase[STOPPING]:
        return
    elif s.index.marked:  # the latest-started child marked to stop goes first
        c = s.index.latest_marked()
        if c.phase == UP:
            stop_child(s, c, out)
        return  # a starting child is stopped once it is up
    ending = []
    for c in list(s.index.marked_down.values()):  # (down, and to restart or to stop)
        if c.restart_pending:
            c.restart_pending = False
        if c.stop_for_good:
            ending.append(c)
    removed = sorted(ending, key=_in_order)
    for c in removed:
        c.phase, c.waiting = REMOVED, ""
        if not s.retiring:  # (it may have crashed, never asked to stop)
            out.append(Report(Unavailable(c.path, "stopped", removed=True)))
        restarts.drop_waiting(s, c, now, out)
    if removed and children.after_removed(s, removed, now, out):
        reconcile(s, now, out)  # it shuts itself down: its children stop now
        return
    if s.retiring:
        running = by_phase[UP] or by_phase[STARTING] or by_phase[STOPPING]
        if not s.lingering and not running and not any(c.retiring for c in s.order):
            s.retiring, s.finished = False, True
            out.append(Finish())
        return
    start_next(s, now, out)
    if not by_phase[STARTING] and not s.index.ready:  # (all down wait, if any)
        if not s.reported_started:
            s.reported_started = True
            out.append(ReportStarted())
        waiting, s.waiting_recoveries = s.waiting_recoveries, []
        for request_id, target in waiting:
            out.append(Report(RecoveryDone(request_id, True, f"{target} and its set are running")))


_in_order = operator.attrgetter("seq")  # a child's place in start order


def start_next(s: SupervisorState, now: float, out: Out) -> None:
    """Start the first child that can start (with its replicas), unless one is starting."""
    if not s.index.ready:
        return
    # (the replicas of a child are next to each other in start order: only children in
    # line, starting or down and not waiting, need a look, and only the first of them)
    taken: list[Any] = []
    try:
        starting: str | None = None
        while (c := s.index.next_in_line(taken)) is not None:
            group = c.slot.group or c.name
            if starting is not None and group != starting:
                return
            if c.phase == STARTING:
                starting = group
            elif dependencies_up(s, c):
                start_child(s, c, out)
                starting = group
    finally:
        s.index.put_back(taken)


def dependencies_up(s: SupervisorState, c: ChildRecord) -> bool:
    return not c.slot.depends_on or all(
        s.children[d].phase in (UP, REMOVED) or passivation.is_passivated(s.children[d])
        for d in c.slot.depends_on
    )


def start_child(s: SupervisorState, c: ChildRecord, out: Out) -> None:
    c.fresh = c.path not in s.floors  # (a path forgotten gave its floor to all of them)
    incarnation = max(s.floors.get(c.path, s.floor_forgotten), c.incarnation) + 1
    s.floors[c.path] = c.incarnation = incarnation
    c.phase = STARTING
    c.health_pending, c.health_missed = False, 0
    c.hung_reported = c.hung_killed = False
    redeliver, c.redeliver = tuple(c.redeliver), []
    for item in redeliver:  # they belong to this fresh incarnation now
        record = s.failures.get(item.failure_id) if item.failure_id else None
        if record is not None:
            record.fresh = (c.name, incarnation)
    out.append(Spawn(c.name, incarnation, redeliver))
    out.append(
        Timer(c.spec.start_timeout_s, ("start-timeout", c.name, incarnation), ("start", c.name))
    )


def stop_child(s: SupervisorState, c: ChildRecord, out: Out) -> None:
    forward = c.restart_pending and c.kind == "actor" and not c.stop_for_good
    c.phase = STOPPING
    label = "restarting" if forward else "stopping"
    if c.passivating:
        label = "passivating"
    # children of a supervisor that is itself being stopped are not gone for good: whether
    # they come back is its parent's decision (a subtree gone for good is gone at its top)
    out.append(Report(Unavailable(c.path, label, removed=c.stop_for_good and not s.retiring)))
    out.append(Stop(c.name, c.incarnation, forward, c.passivating))
    out.append(Timer(c.spec.shutdown_s, ("stop-timeout", c.name, c.incarnation), ("stop", c.name)))


def child_down(s: SupervisorState, c: ChildRecord, now: float, out: Out) -> None:
    out.append(Cancel(("stop", c.name)))
    c.phase = DOWN
    reconcile(s, now, out)


def mark_restart(c: ChildRecord) -> None:
    """``c`` goes down and comes back, as part of a restart.

    A temporary child goes for good instead (it is never restarted); a transient
    one that had stopped normally comes back with the others, as in OTP.
    """
    if c.restart == "temporary":
        c.stop_for_good = True
    elif c.phase == REMOVED:
        c.phase, c.stop_for_good = DOWN, False
    c.restart_pending = True


def mark_restart_set(s: SupervisorState, c: ChildRecord, count_c: bool = True) -> None:
    """``c`` and the siblings the strategy restarts with it go down and come back.

    Each sibling counts a restart; ``c`` too unless ``count_c`` is False (counted already).
    """
    for name in restart_set(s.spec.strategy, [o.slot for o in s.order], c.name):
        other = s.children[name]
        other.restarts += count_c or other is not c
        if other is not c and other.restart == "temporary":  # it ends, by this supervisor's doing
            other.stopped_by_us = True
        mark_restart(other)


# -- what instances report ---------------------------------------------------------------
def on_child_started(s: SupervisorState, e: ChildStarted, out: Out) -> None:
    c = s.children.get(e.child)
    if c is None or c.incarnation != e.incarnation or c.phase != STARTING:
        return
    out.append(Cancel(("start", c.name)))
    if not e.ok:
        # it sends what still reaches it on to the root, and leaves once that has stopped
        s.lingering.add((c.name, e.incarnation))
        out.append(Release(c.name, e.incarnation))
        c.phase = DOWN
        if not children.start_failed(s, c, e, out):  # (start_child's is answered instead)
            restarts.on_start_failed(s, c, e, out)
        reconcile(s, e.now, out)
        return
    c.phase, c.start_failures = UP, 0
    if c.start_outage:  # it started: what kept it from starting is back
        c.ladder(c.start_outage).end_outage()
        c.start_outage = ""
    out.append(
        Register(
            c.name,
            c.incarnation,
            c.lost_inflight,
            c.level(e.now),
            c.restarts,
            c.retiring,
            c.died,
            passivation.reactivating(c),
            c.fresh,
        )
    )
    c.lost_inflight = c.died = False
    children.on_up(s, c, e.now, out)
    passivation.on_up(s, c, e.now, out)
    if c.retiring:  # the replaced instance forwards stragglers for a while, then is released
        s.lingering.add((c.name, c.retiring))
        out.append(Timer(FORWARD_GRACE_S, ("release", c.name, c.retiring)))
        c.retiring = 0
    reconcile(s, e.now, out)


def on_child_retired(s: SupervisorState, e: ChildRetired, out: Out) -> None:
    c = s.children.get(e.child)
    if c is None or c.incarnation != e.incarnation:
        return
    c.trust_final_state = True
    c.retired_at = e.incarnation
    if c.phase != STOPPING:
        return
    if c.passivating and c.restart_pending and not c.stop_for_good:
        passivation.on_retired(s, c, e.now, out)
        return
    if c.exited_early == e.incarnation:  # its exit overtook this: now it is down
        child_down(s, c, e.now, out)
        return
    if c.restart_pending and c.kind == "actor" and not c.stop_for_good:
        c.retiring = c.incarnation  # it forwards to its successor, then exits
        child_down(s, c, e.now, out)
    # otherwise it is down once its process has exited


def on_stop_timeout(s: SupervisorState, name: str, incarnation: int, now: float, out: Out) -> None:
    c = s.children.get(name)
    if c is None or c.incarnation != incarnation or c.phase != STOPPING:
        return
    note(
        s,
        out,
        "stop-timeout",
        c,
        now,
        detail=f"{c.path} did not stop within {c.spec.shutdown_s:g}s; killed",
    )
    out.append(Kill(c.name, c.incarnation))
    child_down(s, c, now, out)


def on_start_timeout(s: SupervisorState, name: str, incarnation: int, now: float, out: Out) -> None:
    c = s.children.get(name)
    if c is None or c.incarnation != incarnation or c.phase != STARTING:
        return
    detail = f"{c.path} did not finish starting within {c.spec.start_timeout_s:g}s"
    out.append(Kill(c.name, c.incarnation))
    info = hang_info(c.path, detail, "StartTimeout")
    on_child_started(s, ChildStarted(name, incarnation, False, info, now=now), out)


def crash_loses_requests(s: SupervisorState, child: str, incarnation: int) -> bool:
    """Whether the exit of ``child``'s ``incarnation`` is a crash whose callers hand over
    what it was handling (as :func:`on_child_exited` will decide: its supervisor tells them
    at once, before deciding)."""
    c = s.children.get(child)
    return (
        c is not None
        and (child, incarnation) not in s.lingering
        and c.retiring != incarnation
        and c.incarnation == incarnation
        and c.phase not in (DOWN, REMOVED, STOPPING)
        and not c.hung_killed
    )


def on_child_exited(s: SupervisorState, e: ChildExited, out: Out) -> None:
    key = (e.child, e.incarnation)
    if key in s.lingering:
        s.lingering.discard(key)
        reconcile(s, e.now, out)
        return
    c = s.children.get(e.child)
    if c is None:
        return
    if c.retiring and c.retiring == e.incarnation:
        c.retiring = 0
        reconcile(s, e.now, out)
        return
    if c.incarnation != e.incarnation or c.phase in (DOWN, REMOVED):
        return
    if c.phase == STOPPING:
        if c.retired_at != c.incarnation:  # its Retired (final state, last answers) is on its
            c.exited_early = c.incarnation  # way: wait for it, up to the stop timeout
            return
        child_down(s, c, e.now, out)
        return
    out.append(Cancel(("start", c.name)))
    crashed(s, c, e.reason, e.now, out)


def _one_at_a_time(c: ChildRecord) -> bool:
    """Whether ``c`` handles the requests handed to it one at a time, in order (an actor),
    or several at once (a supervisor: which one killed it cannot be told)."""
    return c.kind == "actor"


def crashed(
    s: SupervisorState, c: ChildRecord, reason: str, now: float, out: Out, blame: bool = True
) -> None:
    """An instance is gone without being asked to stop: restarted from level 3.

    ``blame`` is False when the cause lies outside the instance (its node was lost): what
    was handed to it is then handed to the next one without counting this death against it.
    """
    # a hung actor's request would hang the new instance too: its callers time out instead
    c.phase, c.lost_inflight, c.died = DOWN, not c.hung_killed, True
    if c.handed and blame:  # it died on what was handed to it after the last death: a poison
        blamed = c.handed[:1] if _one_at_a_time(c) else c.handed  # (each one under way)
        if len(blamed) < len(c.handed) and any(i in c.handed_direct for i in c.handed):
            blamed = []  # (which one it was handling is unknown: each goes through here next)
        c.poisoned = [*c.poisoned, *blamed][-64:]
    forget_handed(c)
    hung = c.hung_killed
    if hung:
        reason = f"killed: it was hung ({c.last_error})"
    c.last_error = reason
    note(s, out, "crash", c, now, level=3, detail=f"{c.path}: {reason}")
    lost = c.lost_inflight
    out.append(
        Report(Unavailable(c.path, "crashed", lost_inflight=lost, incarnation=c.incarnation))
    )
    if c.kind == "supervisor":
        out.append(Report(KillSubtree(c.path)))
    info = hang_info(c.path, reason, "Hung") if hung else crash_info(c.path, reason)
    restarts.restart_after_crash(s, c, info, 3, now, out)


def on_stopped_itself(s: SupervisorState, e: StoppedItself, out: Out) -> None:
    """A normal stop: a permanent child is restarted (a restart like any other, counted
    against the intensity); a transient or temporary one is not."""
    c = s.children.get(e.child)
    if c is None or c.incarnation != e.incarnation or c.phase != UP:
        return
    c.phase = STOPPING
    out.append(Timer(c.spec.shutdown_s, ("stop-timeout", c.name, c.incarnation), ("stop", c.name)))
    if c.restart != "permanent":
        c.stop_for_good = True
        out.append(Report(Unavailable(c.path, "stopping", removed=True)))
        note(
            s,
            out,
            "stopped",
            c,
            e.now,
            detail=f"{c.path} stopped itself ({c.restart}): not restarted",
        )
        return
    out.append(Report(Unavailable(c.path, "restarting")))
    if not s.intensity.add(e.now):
        failures.escalate(s, failures.intensity_reason(s, c), None, c.path, e.now, out)
        return
    note(s, out, "stopped", c, e.now, detail=f"{c.path} stopped itself (permanent): restarted")
    # what reached it after it stopped was refused: its senders send their unconfirmed
    # tells again to the next instance (which drops what the stopped one had handled)
    c.died = True
    mark_restart_set(s, c)  # its restart set goes with it, as OTP restarts any exited child


def on_child_gave_up(s: SupervisorState, e: ChildGaveUp, out: Out) -> None:
    """A child supervisor exceeded its intensity: to this supervisor it is a failed child."""
    c = s.children.get(e.child)
    if c is None or c.phase not in (UP, STARTING):
        return
    c.last_error = e.reason[:300]
    note(s, out, "escalated", c, e.now, level=4, info=e.info, detail=e.reason)
    if c.phase == STARTING:
        out.append(Kill(c.name, c.incarnation))
        c.phase = DOWN
        failed = ChildStarted(c.name, c.incarnation, False, e.info, now=e.now)
        if children.start_failed(s, c, failed, out):
            reconcile(s, e.now, out)
            return
    if c.restart != "permanent":  # it exited with "shutdown": OTP restarts only a permanent one
        c.stop_for_good = True
        reconcile(s, e.now, out)
        return
    restarts.restart_after_crash(
        s, c, crash_info(c.path, "subtree gave up", "GaveUp"), 4, e.now, out
    )


def on_retire_requested(s: SupervisorState, e: RetireRequested, out: Out) -> None:
    begin_retiring(s, out)
    reconcile(s, e.now, out)


def begin_retiring(s: SupervisorState, out: Out) -> None:
    """Every child stops for good, in reverse start order (reconcile does it)."""
    s.retiring, s.escalated = True, False
    for c in s.order:
        c.stop_for_good = True
        if c.retiring:  # retired, its successor never came
            s.lingering.add((c.name, c.retiring))
            c.retiring = 0
    for name, incarnation in sorted(s.lingering):
        out.append(Release(name, incarnation))
    children.give_up_waiting(s, out)


# -- asked for from outside ---------------------------------------------------------------
def on_recovery_requested(s: SupervisorState, e: RecoveryRequested, out: Out) -> None:
    c = s.children.get(e.child)
    if c is None:
        out.append(
            Report(RecoveryDone(e.request_id, False, f"{e.child} is not a child of {s.path}"))
        )
        return
    note(s, out, "requested", c, e.now, level=e.level, detail=e.reason)
    if e.level <= 2:
        if c.kind == "actor" and c.phase == UP:
            out.append(Send(c.name, RunHooks(e.request_id, e.level, e.reason)))
        else:
            ok = c.kind != "actor"
            why = "a supervisor has no hooks to run" if ok else f"{c.path} is not running"
            out.append(Report(RecoveryDone(e.request_id, ok, why)))
        return
    if c.restart == "temporary":  # a restart would stop it for good
        why = f"{c.path} is temporary: it is never restarted (level {e.level} refused)"
        out.append(Report(RecoveryDone(e.request_id, False, why)))
        return
    s.intensity.add(e.now)  # counted, but a requested recovery is always performed
    if e.level == 3:
        c.restarts += 1
        mark_restart(c)
    else:
        mark_restart_set(s, c)
    s.waiting_recoveries.append((e.request_id, c.path))
    reconcile(s, e.now, out)


def on_hooks_ran(s: SupervisorState, e: HooksRan, out: Out) -> None:
    out.append(Report(RecoveryDone(e.request_id, e.ok, e.detail or "hooks ran")))


def on_lost_request(s: SupervisorState, e: LostRequestArrived, out: Out) -> None:
    """A request the crashed child was handling: to the next instance, after its Init.

    A request that was still being handled when the instance it was handed to died too
    has killed two instances in a row: it is set aside as a poison message instead. One
    queued behind an unconfirmed message of its channel is not blamed: the next instance
    may die on that message before it reaches this one.

    A supervisor child's (a ``start_child`` its crashed instance had taken) goes the same
    way: its next instance takes it once it has begun, and says when it has answered it.
    """
    c = s.children.get(e.child)
    if c is None:
        return
    request = e.request
    blamed = not e.behind or not _one_at_a_time(c)  # (behind another: not to blame)
    if e.direct:  # its caller handed it to the instance now serving: only counted here
        if blamed and request.id not in c.done_direct:
            c.handed.append(request.id)
            c.handed_direct = [*c.handed_direct, request.id]
        return
    error: StalwartError
    if request.id in c.poisoned:
        error = PoisonMessageError(
            f"{c.path}: {describe(request)} was being handled when two instances died in a"
            " row; set aside as a dead letter",
            c.path,
        )
        out.append(DeadLetter(c.path, request, None, error, "crash", ""))
    elif c.stop_for_good or c.phase == REMOVED:
        error = ActorStopped(f"{c.path} was stopped for good before handling the request", c.path)
        out.append(Answer(request, ErrorReply.of(error)))
    elif c.phase in (STARTING, UP):
        if blamed:
            c.handed.append(request.id)
        out.append(Send(c.name, Handover(request)))  # the Init it was sent comes first
    elif len(c.redeliver) >= s.hold_limit:
        error = Overloaded.waiting(c.path, s.hold_limit)
        out.append(Answer(request, ErrorReply.of(error)))
    else:
        if blamed:
            c.handed.append(request.id)
        c.redeliver.append(Redelivery(Handover(request), request.reply_to))


def on_handover_done(s: SupervisorState, e: HandoverDone, out: Out) -> None:
    c = s.children.get(e.child)
    if c is None or c.incarnation != e.incarnation:
        return
    if e.request_id in c.handed:
        c.handed.remove(e.request_id)
    else:  # (handed by its caller, whose note comes after this: it is not counted then)
        c.done_direct = [*c.done_direct, e.request_id][-64:]


def forget_handed(c: ChildRecord) -> None:
    """A new instance (or none) follows: what was handed to the last one is forgotten."""
    c.handed = []
    if c.handed_direct or c.done_direct:
        c.handed_direct, c.done_direct = [], []


# -- nodes --------------------------------------------------------------------------------
def on_node_lost(s: SupervisorState, e: NodeLost, out: Out) -> None:
    for name in e.children:
        c = s.children.get(name)
        if c is not None and c.phase in (UP, STARTING):
            out.append(Cancel(("start", c.name)))
            if c.phase == STARTING:  # (if it got to another node after all, it goes)
                out.append(Kill(c.name, c.incarnation))
            crashed(s, c, f"node {e.node} lost ({e.reason})", e.now, out, blame=False)


def on_unplaceable(s: SupervisorState, e: Unplaceable, out: Out) -> None:
    """No live node can take it: it waits for one, and the rest of the tree goes on."""
    c = s.children.get(e.child)
    if c is None or c.incarnation != e.incarnation or c.phase not in (STARTING, DOWN):
        return
    out.append(Cancel(("start", c.name)))
    c.phase, c.waiting, c.last_error = DOWN, e.reason, e.reason
    note(s, out, "placement-pending", c, e.now, detail=e.reason, state="waiting")
    out.append(Report(Unavailable(c.path, "waiting")))
    reconcile(s, e.now, out)


def on_nodes_changed(s: SupervisorState, e: NodesChanged, out: Out) -> None:
    for name in e.placeable:
        c = s.children.get(name)
        if c is not None and c.phase == DOWN and c.waiting and c.waiting != outages.OUTAGE_WAIT:
            c.waiting = ""
    reconcile(s, e.now, out)


def on_release_timer(name: str, incarnation: int, out: Out) -> None:
    out.append(Release(name, incarnation))


def on_start_backoff(s: SupervisorState, name: str, now: float, out: Out) -> None:
    c = s.children.get(name)
    if c is not None and c.waiting == outages.OUTAGE_WAIT:
        c.waiting = ""
        reconcile(s, now, out)
