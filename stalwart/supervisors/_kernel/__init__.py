"""The supervision kernel: every decision a supervisor makes, as one pure function.

``decide(state, event) -> (state, commands)``. The kernel imports no actor runtime,
reads no clock (events carry ``now``) and draws randomness only from the state's
seeded generator, so a sequence of events always leads to the same commands. The
supervisor actor turns Thespian's messages into :mod:`.events`, calls
:func:`decide`, and carries out the :mod:`.commands` in order; the root does the
same with :func:`decide_root`.

``decide`` updates the state it is given in place and returns it: the caller keeps
using the returned state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import children, failures, lifecycle, mediation, passivation
from .commands import Command, Escalate
from .events import (
    ActivityReported,
    Begin,
    BreakerChanged,
    ChildExited,
    ChildGaveUp,
    ChildRequested,
    ChildRetired,
    ChildStarted,
    DependencyChanged,
    Exiting,
    Failed,
    HandoverDone,
    HealthReported,
    HooksRan,
    IncidentHeld,
    InternalError,
    KernelEvent,
    LevelsReset,
    LostRequestArrived,
    NodeLost,
    NodesChanged,
    PressureNoted,
    ReactivateRequested,
    Recovered,
    RecoveryRequested,
    RetireRequested,
    StoppedItself,
    TimerFired,
    Unplaceable,
)
from .root import RootState, decide_root
from .state import SupervisorState

Handler = Callable[[SupervisorState, Any, list[Command]], None]


def _on_timer(s: SupervisorState, e: TimerFired, out: list[Command]) -> None:
    p, now = e.payload, e.now
    kind = p[0]
    if kind == "retry":
        failures.on_retry_timer(s, p[1], now, out)
    elif kind == "retry-timeout":
        failures.on_retry_timeout(s, p[1], p[2], p[3], now, out)
    elif kind == "start-timeout":
        lifecycle.on_start_timeout(s, p[1], p[2], now, out)
    elif kind == "stop-timeout":
        lifecycle.on_stop_timeout(s, p[1], p[2], now, out)
    elif kind == "health":
        mediation.on_health_tick(s, now, out)
    elif kind == "hold-deadline":
        mediation.on_hold_deadline(s, p[1], now, out)
    elif kind == "quiet":
        failures.on_quiet(s, p[1], now, out)
    elif kind == "release":
        lifecycle.on_release_timer(p[1], p[2], out)
    elif kind == "start-backoff":
        lifecycle.on_start_backoff(s, p[1], now, out)
    elif kind == "idle":
        children.on_idle_tick(s, now, out)
    elif kind == "passivate":
        passivation.on_tick(s, now, out)
    elif kind == "pressure":
        passivation.on_pressure_timer(s, now, out)
    else:
        raise ValueError(f"decide: unknown timer {p!r}")


def _on_exiting(s: SupervisorState, e: Exiting, out: list[Command]) -> None:
    s.finished = True


def _on_internal_error(s: SupervisorState, e: InternalError, out: list[Command]) -> None:
    """Its state cannot be trusted any more: it escalates, once, and sets nothing aside."""
    if not s.escalated:
        s.escalated = True
        out.append(Escalate(e.reason, None, s.path))


def _on_levels_reset(s: SupervisorState, e: LevelsReset, out: list[Command]) -> None:
    mediation.on_levels_reset(s, e.path, e.now, out)


_HANDLERS: dict[type, Handler] = {
    Begin: lifecycle.on_begin,
    ChildStarted: lifecycle.on_child_started,
    ChildRetired: lifecycle.on_child_retired,
    ChildExited: lifecycle.on_child_exited,
    StoppedItself: lifecycle.on_stopped_itself,
    ChildGaveUp: lifecycle.on_child_gave_up,
    RetireRequested: lifecycle.on_retire_requested,
    RecoveryRequested: lifecycle.on_recovery_requested,
    HooksRan: lifecycle.on_hooks_ran,
    LostRequestArrived: lifecycle.on_lost_request,
    HandoverDone: lifecycle.on_handover_done,
    NodeLost: lifecycle.on_node_lost,
    Unplaceable: lifecycle.on_unplaceable,
    NodesChanged: lifecycle.on_nodes_changed,
    ChildRequested: children.on_child_requested,
    ActivityReported: children.on_activity,
    ReactivateRequested: passivation.on_reactivate,
    PressureNoted: passivation.on_pressure,
    Failed: failures.on_failed,
    Recovered: failures.on_recovered,
    HealthReported: mediation.on_health_reported,
    BreakerChanged: mediation.on_breaker_changed,
    DependencyChanged: mediation.on_dependency_changed,
    IncidentHeld: mediation.on_incident_held,
    LevelsReset: _on_levels_reset,
    TimerFired: _on_timer,
    Exiting: _on_exiting,
    InternalError: _on_internal_error,
}


def decide(state: SupervisorState, event: KernelEvent) -> tuple[SupervisorState, list[Command]]:
    """The supervisor's next state and the commands to carry out, in order, for ``event``.

    Raises TypeError for an event type the kernel does not know. Once the
    supervisor has finished (retired), every event is ignored.
    """
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise TypeError(f"decide: unknown event {type(event).__name__}")
    out: list[Command] = []
    if not state.finished:
        handler(state, event, out)
    return state, out


def crash_loses_requests(state: SupervisorState, child: str, incarnation: int) -> bool:
    """Whether :func:`decide` takes the exit of ``child``'s ``incarnation`` for a crash whose
    callers hand over what it was handling (a query: nothing changes)."""
    return not state.finished and lifecycle.crash_loses_requests(state, child, incarnation)


__all__ = ["RootState", "SupervisorState", "crash_loses_requests", "decide", "decide_root"]
