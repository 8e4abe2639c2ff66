"""Passivation: idle children that opted in (``Child(passivate_after_s=S)``) are stopped
with their state kept, and started again from it by the next message to their path.

**Idle.** A supervisor with such children asks them every quarter of the smallest ``S``
how long ago they took a sender's message (``ActivityCheck``); one that has taken none
for ``S`` seconds, and is handling none, is passivated.

**Passivating** is a stop through the restart path (its final ``snapshot()`` is kept,
as a restart keeps it) that does not start a successor: the child waits, down, as
``passivated``. Senders hear the path has no address for now and hold what they send,
in order; the first to hold a message sends ``Wake`` to the root, which asks this
supervisor to start the child again (:func:`on_reactivate`). The new instance starts
from the kept state and the senders' marks, then the held messages go to it, each
sender's in its order. What reached the old instance after it stopped goes to the root,
which holds it the same way. A wake that comes while the child is still stopping turns
the passivation into a restart (the old instance forwards to its successor).

Nothing of this is a failure: no level, no restart counted, no incident.

**Memory pressure.** At the warning tier and above the memory actor tells every
supervisor, at each sample (and at each requested cleanup): each asks its opted-in
children how idle they are and passivates the idlest quarter (at least one) of those
that took no message for ``PRESSURE_IDLE_S`` (or ``S``, if smaller), longest idle first,
before ``S``. The hysteresis: a child under traffic is never idle that long, and one
started again less than ``REST_S`` ago is not passivated at pressure (only by its own
``S``), so pressure cannot make a child go and come back in a loop.
"""

from __future__ import annotations

import math

from ...actors._children import ActivityCheck
from ..messages import Unavailable
from . import lifecycle
from .commands import Cancel, Release, Report, Send, Timer
from .common import Out, note
from .events import ActivityReported, PressureNoted, ReactivateRequested
from .state import DOWN, STOPPING, UP, ChildRecord, SupervisorState

PASSIVATED = "passivated"  # why a passivated child is down and not started (its ``waiting``)
CHECKS = 4  # idle checks per passivate_after_s
PRESSURE_IDLE_S = 1.0  # idle this long (or its passivate_after_s) to go at pressure
REST_S = 30.0  # started again less than this long ago: not passivated at pressure
PRESSURE_SHARE = 0.25  # the idlest quarter of those that may go, each round
PRESSURE_WAIT_S = 5.0  # a round decides with the answers it has after this long (a child
# that has not answered by then, hung or starved of CPU, counts as busy for the round)


def after_s(c: ChildRecord) -> float | None:
    """Its ``passivate_after_s`` (None: it is never passivated)."""
    return getattr(c.spec, "passivate_after_s", None) if c.role == "actor" else None


def candidates(s: SupervisorState) -> list[ChildRecord]:
    """Children that opted in and run, not marked to stop."""
    return [
        c
        for c in s.order
        if c.phase == UP
        and not c.restart_pending
        and not c.stop_for_good
        and after_s(c) is not None
    ]


def on_up(s: SupervisorState, c: ChildRecord, now: float, out: Out) -> None:
    """``c`` runs (a first start, a restart or a reactivation): its idle time counts from
    now; the idle checks run while children that opted in are kept."""
    after = after_s(c)
    if after is None:
        return
    c.up_at, c.passivating, c.idle_s = now, False, 0.0
    if c.reactivating:
        c.reactivating, c.reactivated_at = False, now
    every = max(0.01, after / CHECKS)
    if not s.passivation_every or every < s.passivation_every:
        s.passivation_every = every
        out.append(Timer(every, ("passivate",), "passivate"))


def reactivating(c: ChildRecord) -> bool:
    """Its start is a reactivation (said so when it registers)."""
    return c.reactivating


def on_tick(s: SupervisorState, now: float, out: Out) -> None:
    for c in candidates(s):
        out.append(Send(c.name, ActivityCheck()))
    out.append(Timer(s.passivation_every, ("passivate",), "passivate"))


def on_activity(s: SupervisorState, c: ChildRecord, e: ActivityReported, out: Out) -> None:
    """An idle report of ``c`` (up, this incarnation): passivate it once idle long enough."""
    after = after_s(c)
    if after is None or c.restart_pending or c.stop_for_good:
        return
    c.idle_s = 0.0 if e.busy else max(0.0, min(e.idle_s, e.now - c.up_at))
    c.idle_busy = e.busy
    c.idle_seen, c.idle_at = s.pressure_round, e.now
    if c.idle_s >= after:
        passivate(s, c, f"no message for {c.idle_s:.1f}s (passivate_after_s={after:g})", e.now, out)
    if s.pressure_waiting:
        s.pressure_waiting.discard(c.name)
        if not s.pressure_waiting:
            decide_at_pressure(s, e.now, out)


def passivate(s: SupervisorState, c: ChildRecord, reason: str, now: float, out: Out) -> None:
    """Stop ``c`` with its state kept; it waits, passivated, for the next message."""
    c.passivating, c.restart_pending = True, True
    c.last_passivation = reason
    lifecycle.reconcile(s, now, out)


def on_retired(s: SupervisorState, c: ChildRecord, now: float, out: Out) -> None:
    """The instance stopped and its final state is kept: the child is passivated. The old
    instance leaves once late messages stop reaching it (it sends them to the root)."""
    c.passivating, c.restart_pending, c.waiting = False, False, PASSIVATED
    if c.exited_early != c.incarnation:
        s.lingering.add((c.name, c.incarnation))
        out.append(Release(c.name, c.incarnation))
    out.append(Report(Unavailable(c.path, PASSIVATED)))
    note(s, out, "passivated", c, now, detail=f"{c.path}: {c.last_passivation}")
    lifecycle.child_down(s, c, now, out)


def on_reactivate(s: SupervisorState, e: ReactivateRequested, out: Out) -> None:
    c = s.by_path.get(e.path)
    if c is None or s.retiring:
        return
    if c.passivating and c.phase == UP:  # (marked, not stopping yet: it stays)
        c.passivating = c.restart_pending = False
    elif c.phase == STOPPING and c.passivating:
        # a message came as it stopped: its successor starts at once (the stopping
        # instance forwards to it), and that is still no restart
        c.passivating, c.reactivating = False, True
    elif c.phase == DOWN and c.waiting == PASSIVATED:
        c.waiting, c.reactivating = "", True
        lifecycle.reconcile(s, e.now, out)


def is_passivated(c: ChildRecord) -> bool:
    """Down and passivated (counts as up for what depends on it)."""
    return c.phase == DOWN and c.waiting == PASSIVATED


# -- memory pressure --------------------------------------------------------------------------
def on_pressure(s: SupervisorState, e: PressureNoted, out: Out) -> None:
    """Memory is high: ask the children that opted in how idle they are, then decide."""
    if s.pressure_waiting or s.retiring:
        return  # (a round is under way)
    kept = candidates(s)
    if not kept:
        return
    s.pressure_round += 1
    s.pressure_waiting = {c.name for c in kept}
    for c in kept:
        out.append(Send(c.name, ActivityCheck()))
    out.append(Timer(PRESSURE_WAIT_S, ("pressure",), "pressure"))


def on_pressure_timer(s: SupervisorState, now: float, out: Out) -> None:
    if s.pressure_waiting:
        decide_at_pressure(s, now, out)


def decide_at_pressure(s: SupervisorState, now: float, out: Out) -> None:
    """Passivate the idlest quarter of the children that may go at pressure, idlest first.

    Each reported its idle time when it answered; it is counted on to now, so children
    that answered at different moments compare as at one moment (its supervisor measures
    a child on its own host by the one clock they share: their order is exact).
    """
    s.pressure_waiting = set()
    out.append(Cancel("pressure"))

    def idle_now(c: ChildRecord) -> float:  # (busy: it took a message it still handles)
        return -1.0 if c.idle_busy else c.idle_s + (now - c.idle_at)

    floor = PRESSURE_IDLE_S
    eligible = sorted(
        (
            c
            for c in candidates(s)
            if c.idle_seen == s.pressure_round
            and idle_now(c) >= min(floor, after_s(c) or floor)
            and (not c.reactivated_at or now - c.reactivated_at >= REST_S)
        ),
        key=lambda c: (-idle_now(c), c.seq),
    )
    for c in eligible[: max(1, math.ceil(len(eligible) * PRESSURE_SHARE))]:
        passivate(s, c, f"memory pressure, no message for {idle_now(c):.1f}s", now, out)
