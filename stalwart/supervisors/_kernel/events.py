"""What a supervisor hears: the kernel's events.

Every event carries ``now`` (monotonic seconds, read by the supervisor actor);
the kernel reads no clock. Children are named by their slot name (``w.1``,
``pay.protected``), instances by ``(child, incarnation)``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...actors.messages import Redelivery
from ...strategies import ErrorInfo


class KernelEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the events; ``now`` is the monotonic time it happened."""

    now: float


class Begin(KernelEvent, frozen=True):
    """The supervisor is set up: start the children (``floors``: last incarnation per path)."""

    floors: dict[str, int] = msgspec.field(default_factory=dict)


class ChildStarted(KernelEvent, frozen=True):
    """An instance finished ``on_start`` (``ok``) or failed it, handing back what it held."""

    child: str
    incarnation: int
    ok: bool
    error: ErrorInfo | None = None
    held: tuple[Redelivery, ...] = ()


class ChildRetired(KernelEvent, frozen=True):
    """An instance stopped when asked (its final state is the interpreter's to keep)."""

    child: str
    incarnation: int


class ChildExited(KernelEvent, frozen=True):
    """An instance's process is gone (it crashed, was killed, or its node was lost)."""

    child: str
    incarnation: int
    reason: str = "process exited unexpectedly"


class Failed(KernelEvent, frozen=True):
    """A handler (or hook) raised: the message, its sender and the error.

    ``deadline`` is the caller's deadline on the same clock as ``now`` (0: none).
    """

    child: str
    incarnation: int
    info: ErrorInfo
    message: Any
    sender: Any
    traceback: str = ""
    failure_id: int | None = None
    during: str = "message"
    deadline: float = 0.0
    handled_s: tuple[float, ...] = ()  # how long its handler took when it succeeded lately


class Recovered(KernelEvent, frozen=True):
    """A retried or redelivered message went through."""

    child: str
    failure_id: int


class StoppedItself(KernelEvent, frozen=True):
    """The actor stopped itself normally (``self.stop()``)."""

    child: str
    incarnation: int


class HealthReported(KernelEvent, frozen=True):
    """An instance answered a health check; ``info`` classifies a failed ``health()``."""

    child: str
    incarnation: int
    ok: bool
    info: ErrorInfo | None = None


class TimerFired(KernelEvent, frozen=True):
    """A timer the kernel set (``Timer``) is due."""

    payload: tuple[Any, ...]


class BreakerChanged(KernelEvent, frozen=True):
    """The breaker actor ``child`` changed state (closed, open, half_open, forced_open...);
    ``remaining_s``: how long it stays open."""

    child: str
    state: str
    remaining_s: float = 0.0


class DependencyChanged(KernelEvent, frozen=True):
    """A dependency of this whole subtree (``path``, above it) went down or came back."""

    path: str
    down: bool


class IncidentHeld(KernelEvent, frozen=True):
    """The root traced the failures of ``dependents`` (paths) to ``cause``: hold or resume them.

    ``probe``: retry one message held for ``cause``, as a trial of whether it is back.
    """

    cause: str
    dependents: tuple[str, ...]
    on: bool
    probe: bool = False


class RecoveryRequested(KernelEvent, frozen=True):
    """Someone asked for a recovery level's action on ``child``."""

    request_id: int
    child: str
    level: int
    reason: str = ""


class HooksRan(KernelEvent, frozen=True):
    """A requested level 1-2 recovery ran the child's hooks."""

    request_id: int
    ok: bool
    detail: str = ""


class ChildGaveUp(KernelEvent, frozen=True):
    """A child supervisor exceeded its restart intensity and gave up."""

    child: str
    reason: str
    info: ErrorInfo | None = None


class NodeLost(KernelEvent, frozen=True):
    """``children`` ran on ``node``, which is lost: they are gone like crashed processes."""

    node: str
    children: tuple[str, ...]
    reason: str = ""


class Unplaceable(KernelEvent, frozen=True):
    """No live node offers what ``child`` requires: it waits for one."""

    child: str
    incarnation: int
    reason: str


class NodesChanged(KernelEvent, frozen=True):
    """Nodes joined or returned: ``placeable`` children waiting for a node can start."""

    placeable: tuple[str, ...]


class LostRequestArrived(KernelEvent, frozen=True):
    """A caller hands over a request its crashed callee ``child`` was handling (``behind``:
    queued behind an unconfirmed message of its channel, so not to blame; ``direct``: the
    caller handed it straight to the spare now serving, and this is its note of it)."""

    child: str
    request: Any
    behind: bool = False
    direct: bool = False


class HandoverDone(KernelEvent, frozen=True):
    """Instance ``incarnation`` of ``child`` has handled the handed-over request ``request_id``."""

    child: str
    incarnation: int
    request_id: str


class LevelsReset(KernelEvent, frozen=True):
    """Reset the ladders of ``path`` and below ("" for every child)."""

    path: str = ""


class ChildRequested(KernelEvent, frozen=True):
    """A request about the children (``StartChild``, ``TerminateChild``... of
    :mod:`stalwart.actors._children`); ``asker`` is what the answer goes to."""

    request: Any
    asker: Any


class ActivityReported(KernelEvent, frozen=True):
    """An instance said how far it has got through its messages (idle checks), and how
    long ago it took the last one."""

    child: str
    incarnation: int
    activity: int
    busy: bool = False
    idle_s: float = 0.0


class ReactivateRequested(KernelEvent, frozen=True):
    """Messages wait for the passivated child at ``path``: start it again."""

    path: str


class PressureNoted(KernelEvent, frozen=True):
    """Memory is at ``level`` (1: warning and above): passivate some idle children."""

    level: int


class RetireRequested(KernelEvent, frozen=True):
    """The parent stops this supervisor: every child stops for good, in reverse order."""


class Exiting(KernelEvent, frozen=True):
    """The runtime is taking this supervisor down: it decides nothing more."""


class InternalError(KernelEvent, frozen=True):
    """Handling a message raised inside the supervisor: it gives up to its parent."""

    reason: str
