"""The root's decisions: booting, level 5, and stopping in order.

The root has two children: the system services (``services``, started first and
stopped last) and the user's tree (``tree``). When the tree's top supervisor gives
up (its restart intensity was exceeded, all the way up), that is **level 5**: the
root restarts the whole tree, at most ``root_max_restarts`` times within
``root_within_s`` (OTP's rule again); past that it stops everything in order and
writes a final report. The services restart on their own. A fault in the root
itself stops the system in order with a final report: the root never goes on with
half-updated state.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .._ladder import RestartIntensity

SERVICES, TREE = "services", "tree"


class RootEvent(msgspec.Struct, frozen=True, kw_only=True):
    now: float


class Boot(RootEvent, frozen=True):
    """Start: the services (if any), then the tree."""

    services: bool


class SubtreeUp(RootEvent, frozen=True):
    subtree: str
    incarnation: int


class SubtreeDown(RootEvent, frozen=True):
    """The subtree's supervisor retired or is gone (after it was asked to stop, or killed)."""

    subtree: str
    incarnation: int


class SubtreeGaveUp(RootEvent, frozen=True):
    """The subtree's top supervisor exceeded its restart intensity (or its process died)."""

    subtree: str
    incarnation: int
    reason: str
    crashed: bool = False


class SubtreeTimedOut(RootEvent, frozen=True):
    """The subtree did not start (``stage="start"``) or stop (``"stop"``) in time."""

    subtree: str
    incarnation: int
    stage: str


class TreeRestartAsked(RootEvent, frozen=True):
    """A requested level 5 (``RecoveryRequest``): performed whatever the intensity says."""

    reason: str


class ShutdownAsked(RootEvent, frozen=True):
    pass


class TreeShutDown(RootEvent, frozen=True):
    """The tree's top supervisor stopped itself (``auto_shutdown``): the system stops in order."""

    reason: str


class RootFault(RootEvent, frozen=True):
    """The root itself failed handling a message."""

    reason: str


class RootCommand(msgspec.Struct, frozen=True):
    pass


class StartSubtree(RootCommand, frozen=True):
    subtree: str
    incarnation: int


class RetireSubtree(RootCommand, frozen=True):
    subtree: str
    incarnation: int


class KillSubtree(RootCommand, frozen=True):
    """Kill the subtree's processes (its supervisor is gone or did not stop in time)."""

    subtree: str


class Record(RootCommand, frozen=True):
    kind: str
    subtree: str
    level: int = 0
    detail: str = ""


class Stopped(RootCommand, frozen=True):
    """Everything has stopped; ``final``: at level 5 or after a root fault (write the report)."""

    final: bool
    reason: str


class RootState:
    """The root's phase (idle, booting, running, restarting, stopping, stopped) and intensity."""

    def __init__(self, max_restarts: int, within_s: float) -> None:
        self.intensity = RestartIntensity(max_restarts, within_s)
        self.phase = "idle"
        self.final = False
        self.stop_reason = ""
        self.services = False
        self.incarnation = {SERVICES: 0, TREE: 0}
        self.running = {SERVICES: False, TREE: False}  # its supervisor exists
        self.starting = {SERVICES: False, TREE: False}
        self.again: set[str] = set()  # to start again once down


def decide_root(state: RootState, event: RootEvent) -> tuple[RootState, list[RootCommand]]:
    """The root's next state and commands for ``event`` (the state is updated in place)."""
    out: list[RootCommand] = []
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise TypeError(f"decide_root: unknown event {type(event).__name__}")
    if state.phase != "stopped":
        handler(state, event, out)
    return state, out


def _start(s: RootState, subtree: str, out: list[RootCommand]) -> None:
    s.incarnation[subtree] += 1
    s.running[subtree] = s.starting[subtree] = True
    out.append(StartSubtree(subtree, s.incarnation[subtree]))


def _retire(s: RootState, subtree: str, out: list[RootCommand]) -> None:
    s.starting[subtree] = False
    if s.running[subtree]:
        out.append(RetireSubtree(subtree, s.incarnation[subtree]))
    else:
        _down(s, subtree, out)


def _down(s: RootState, subtree: str, out: list[RootCommand]) -> None:
    s.running[subtree] = s.starting[subtree] = False
    if subtree in s.again and s.phase != "stopping":
        s.again.discard(subtree)
        _start(s, subtree, out)
    elif s.phase == "stopping":
        if s.services and s.running[SERVICES]:
            _retire(s, SERVICES, out)  # the services stop last
        elif not any(s.running.values()):
            s.phase = "stopped"
            out.append(Stopped(s.final, s.stop_reason))


def _on_boot(s: RootState, e: Boot, out: list[RootCommand]) -> None:
    s.services, s.phase = e.services, "booting"
    _start(s, SERVICES if e.services else TREE, out)


def _on_up(s: RootState, e: SubtreeUp, out: list[RootCommand]) -> None:
    if e.incarnation != s.incarnation[e.subtree] or s.phase == "stopping":
        return
    s.starting[e.subtree] = False
    if e.subtree == SERVICES:
        out.append(Record("services-started", SERVICES, detail=f"incarnation {e.incarnation}"))
        if not s.running[TREE]:
            _start(s, TREE, out)
        return
    s.phase = "running"
    out.append(Record("tree-started", TREE, detail=f"incarnation {e.incarnation}"))


def _on_down(s: RootState, e: SubtreeDown, out: list[RootCommand]) -> None:
    if e.incarnation == s.incarnation[e.subtree]:
        _down(s, e.subtree, out)


def _on_gave_up(s: RootState, e: SubtreeGaveUp, out: list[RootCommand]) -> None:
    if e.incarnation != s.incarnation[e.subtree] or s.phase == "stopping":
        return
    if e.crashed:
        out.append(Record("crash", e.subtree, 5, e.reason))
        out.append(KillSubtree(e.subtree))
        s.running[e.subtree] = False
    else:
        out.append(Record("level5", e.subtree, 5, e.reason))
    if e.subtree == SERVICES:
        out.append(Record("restart-services", SERVICES, 5, e.reason))
        s.again.add(SERVICES)
        _retire(s, SERVICES, out)
        return
    if s.phase == "restarting" and s.starting[TREE]:
        s.phase = "running"  # the restarted tree failed before it was up: that restart failed
    _level5(s, e.reason, True, e.now, out)


def _level5(s: RootState, reason: str, counted: bool, now: float, out: list[RootCommand]) -> None:
    """Restart the user's tree, or stop in order once the root's intensity is spent."""
    if s.phase in ("restarting", "stopping"):
        return
    if counted and not s.intensity.add(now):
        s.stop_reason = f"level 5: {reason}"
        _stop(s, True, out)
        return
    s.phase = "restarting"
    out.append(Record("restart-tree", TREE, 5, reason))
    s.again.add(TREE)
    _retire(s, TREE, out)


def _on_timed_out(s: RootState, e: SubtreeTimedOut, out: list[RootCommand]) -> None:
    if e.incarnation != s.incarnation[e.subtree]:
        return
    if e.stage == "stop":
        if s.running[e.subtree]:
            out.append(Record("stop-timeout", e.subtree, 0, "it did not stop in time; killed"))
            out.append(KillSubtree(e.subtree))
            _down(s, e.subtree, out)
        return
    if not s.starting[e.subtree] or s.phase not in ("booting", "restarting"):
        return
    s.stop_reason = f"{e.subtree} did not start within start_timeout_s"
    s.phase = "running"
    _level5(s, s.stop_reason, True, e.now, out)


def _on_tree_restart(s: RootState, e: TreeRestartAsked, out: list[RootCommand]) -> None:
    _level5(s, e.reason, False, e.now, out)


def _on_shutdown(s: RootState, e: ShutdownAsked, out: list[RootCommand]) -> None:
    if s.phase != "stopping":
        _stop(s, False, out)


def _on_tree_shut_down(s: RootState, e: TreeShutDown, out: list[RootCommand]) -> None:
    if s.phase in ("stopping", "restarting"):
        return
    out.append(Record("auto-shutdown", TREE, 0, e.reason))
    s.stop_reason = e.reason
    _stop(s, False, out)


def _on_fault(s: RootState, e: RootFault, out: list[RootCommand]) -> None:
    out.append(Record("root-fault", "", 5, e.reason))
    s.stop_reason = f"the root failed: {e.reason}"
    s.phase = "idle"  # whatever it was doing, it stops now
    _stop(s, True, out)


def _stop(s: RootState, final: bool, out: list[RootCommand]) -> None:
    s.phase, s.final = "stopping", final or s.final
    s.again.clear()
    if s.running[TREE]:
        _retire(s, TREE, out)  # the user's tree first, services last
    elif s.services and s.running[SERVICES]:
        _retire(s, SERVICES, out)
    else:
        s.phase = "stopped"
        out.append(Stopped(s.final, s.stop_reason))


_HANDLERS: dict[type, Any] = {
    Boot: _on_boot,
    SubtreeUp: _on_up,
    SubtreeDown: _on_down,
    SubtreeGaveUp: _on_gave_up,
    SubtreeTimedOut: _on_timed_out,
    TreeRestartAsked: _on_tree_restart,
    ShutdownAsked: _on_shutdown,
    TreeShutDown: _on_tree_shut_down,
    RootFault: _on_fault,
}
