"""Starting and stopping children: dependencies first on the way up, reverse on the way down.

The supervisor *reconciles*: after every event it compares what runs with what
should run. Children marked for restart (or for good) are stopped one at a
time, latest-started first; when none is left to stop, every child that is down
and whose dependencies are up is started. Nothing starts while a stop is under
way, so a restart set always goes fully down before it comes back up.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any

from thespian.actors import ActorExitRequest

from ..actors._placement import AVOID, NODE_ENV
from ..actors._timers import WAKE
from ..actors.messages import Init, Release, Retire, Retired, Started, Successor
from ..strategies import ErrorInfo
from ._children import DOWN, REMOVED, STARTING, STOPPING, UP, ChildState
from ._spawn import create_child
from .messages import EventNote, Registered, StateNote, SupervisorInit, Unavailable

FORWARD_GRACE_S = 2.0  # how long a replaced instance forwards late messages to its successor


class Lifecycle:
    """Mixin for the supervisor actor: the start/stop half of its job."""

    children: dict[str, ChildState]
    order: list[ChildState]
    path: str
    root: Any
    parent: Any
    incarnation: int
    clock_id: int
    settings: dict[str, Any]
    forwarders: list[Any]  # replaced instances still forwarding (addresses do not hash)
    escalated: bool
    retiring: bool
    initial: bool
    _incarnations: int

    if TYPE_CHECKING:  # provided by the actor

        def send(self, target: Any, msg: Any) -> None: ...
        def after(self, delay: float, payload: Any, key: Any = None) -> Any: ...
        def cancel(self, key: Any) -> None: ...
        def createActor(self, cls: Any, **kw: Any) -> Any: ...
        @property
        def myAddress(self) -> Any: ...
        def on_start_failed(self, c: ChildState, msg: Started) -> None: ...
        def on_settled(self) -> None: ...
        def supervisor_class(self) -> type: ...
        def mark_redelivered(self, c: ChildState) -> None: ...
        def drop_redeliveries(self, c: ChildState) -> None: ...
        def learned_for_children(self) -> Any: ...

    # -- the reconcile loop ------------------------------------------------------------
    def reconcile(self) -> None:
        if self.escalated:
            return
        if any(c.phase == STOPPING for c in self.order):
            return
        for c in reversed(self.order):
            if (c.restart_pending or c.stop_for_good) and c.phase in (UP, STARTING):
                if c.phase == UP:
                    self.stop_child(c)
                return  # a starting child is stopped once it is up
        for c in self.order:
            if c.phase == DOWN:
                c.restart_pending = False
                if c.stop_for_good:
                    c.phase = REMOVED
                    self.drop_redeliveries(c)
        if self.retiring:
            if not self.forwarders and all(
                c.phase in (DOWN, REMOVED) and c.retiring_address is None for c in self.order
            ):
                self.finish_retire()
            return
        for c in self.order:
            if c.phase == DOWN and self.dependencies_up(c):
                self.start_child(c)
        if all(c.phase in (UP, REMOVED) for c in self.order):
            if self.initial:
                self.initial = False
                self.send(
                    self.parent,
                    Started(
                        self.path,
                        self.incarnation,
                        True,
                        os.getpid(),
                        node=os.environ.get(NODE_ENV, ""),
                    ),
                )
            self.on_settled()

    def dependencies_up(self, c: ChildState) -> bool:
        return all(self.children[d].phase in (UP, REMOVED) for d in c.slot.depends_on)

    # -- starting ------------------------------------------------------------------------
    def start_child(self, c: ChildState) -> None:
        self._incarnations += 1
        c.incarnation = self._incarnations
        cls = self.supervisor_class() if c.kind == "supervisor" else c.actor_class
        requires = getattr(c.spec, "requires", None)
        if requires:  # placed by Thespian on a node that offers them, never on a lost one
            lost = tuple(self.settings.get("lost", ()))
            c.address = create_child(
                self, cls, not self.clock_id, targetActorRequirements={**requires, AVOID: lost}
            )
        else:
            c.address = create_child(self, cls, not self.clock_id)  # in-process: a clock
        c.phase = STARTING
        if c.kind == "supervisor":
            self.send(
                c.address,
                SupervisorInit(
                    c.path,
                    c.spec,
                    self.myAddress,
                    self.root,
                    c.incarnation,
                    dict(c.sub_checkpoints),
                    self.clock_id,
                    self.learned_for_children(),
                    self.settings,
                ),
            )
        else:
            self.mark_redelivered(c)
            spec = c.spec
            self.send(
                c.address,
                Init(
                    c.path,
                    self.myAddress,
                    self.root,
                    c.incarnation,
                    c.checkpoint if c.has_checkpoint else None,
                    tuple(c.redeliver),
                    tuple(c.replies.items()),
                    c.actor_options(self.settings),
                    getattr(spec, "checkpoint", "message"),
                    os.getpid(),
                    self.clock_id,
                ),
            )
            c.redeliver = []
        self.after(
            c.spec.start_timeout_s,
            (WAKE, "start-timeout", c.name, c.incarnation),
            key=("start", c.name),
        )

    def on_started(self, msg: Started) -> None:
        c = self.children_by_path().get(msg.path)
        if c is None or c.incarnation != msg.incarnation or c.phase != STARTING:
            return
        self.cancel(("start", c.name))
        if not msg.ok:
            # it sends what still reaches it on to the root (callers may have its address)
            # and leaves once that has stopped
            self.send(c.address, Release())
            self.forwarders.append(c.address)
            c.phase, c.address = DOWN, None
            self.on_start_failed(c, msg)
            self.reconcile()
            return
        c.phase, c.pid, c.node = UP, msg.pid, msg.node
        self.send(
            self.root,
            Registered(
                c.path,
                c.address,
                msg.pid,
                c.incarnation,
                c.kind,
                c.slot.group,
                c.lost_inflight,
                _class_name(c),
                c.level,
                c.restarts,
                msg.node,
            ),
        )
        c.lost_inflight = False
        if c.retiring_address is not None:
            self.send(c.retiring_address, Successor(c.address))
            # it forwards stragglers for a grace period, then it is released
            self.forwarders.append(c.retiring_address)
            self.after(FORWARD_GRACE_S, (WAKE, "release", c.retiring_address))
            c.retiring_address = None
        self.reconcile()

    def on_start_timeout(self, name: str, incarnation: int) -> None:
        c = self.children.get(name)
        if c is None or c.incarnation != incarnation or c.phase != STARTING:
            return
        from ..strategies import classify

        err = TimeoutError(f"{c.path} did not finish starting within {c.spec.start_timeout_s:g}s")
        self.on_started(Started(c.path, c.incarnation, False, 0, classify(err), str(err)))

    # -- stopping ------------------------------------------------------------------------
    def stop_child(self, c: ChildState) -> None:
        forward = c.restart_pending and c.kind == "actor" and not c.stop_for_good
        c.phase = STOPPING
        self.send(
            self.root,
            Unavailable(c.path, "restarting" if forward else "stopping", removed=c.stop_for_good),
        )
        self.send(c.address, Retire(forward))
        self.after(
            c.spec.shutdown_s, (WAKE, "stop-timeout", c.name, c.incarnation), key=("stop", c.name)
        )

    def on_retired(self, msg: Retired) -> None:
        c = self.children_by_path().get(msg.path)
        if c is None or c.incarnation != msg.incarnation:
            return
        if c.kind == "supervisor":
            c.sub_checkpoints = dict(msg.final_state or {})
        elif msg.has_state and c.keep_final_state:
            c.checkpoint, c.has_checkpoint = msg.final_state, True
        c.keep_final_state = True
        if c.phase != STOPPING:
            return
        if c.restart_pending and c.kind == "actor" and not c.stop_for_good:
            c.retiring_address = c.address  # it forwards to its successor, then exits
            self.child_down(c)
        # otherwise it is down once its process has exited (ChildActorExited)

    def on_stop_timeout(self, name: str, incarnation: int) -> None:
        c = self.children.get(name)
        if c is None or c.incarnation != incarnation or c.phase != STOPPING:
            return
        self.note(
            "stop-timeout", c, detail=f"{c.path} did not stop within {c.spec.shutdown_s:g}s; killed"
        )
        self.kill(c)
        self.child_down(c)

    def kill(self, c: ChildState) -> None:
        if c.address is not None:
            self.send(c.address, ActorExitRequest())
        if c.pid and c.pid != os.getpid() and c.node == os.environ.get(NODE_ENV, ""):
            try:
                os.kill(c.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def child_down(self, c: ChildState) -> None:
        self.cancel(("stop", c.name))
        c.phase, c.address, c.pid = DOWN, None, 0
        self.reconcile()

    # -- retiring this supervisor ---------------------------------------------------------
    def begin_retire(self) -> None:
        self.retiring = True
        self.escalated = False
        for c in self.order:
            c.stop_for_good = True
            if c.retiring_address is not None:  # retired, its successor never came
                self.send(c.retiring_address, Release())
        for address in self.forwarders:
            self.send(address, Release())
        self.reconcile()

    def finish_retire(self) -> None:
        table: dict[str, Any] = {}
        for c in self.order:
            if c.kind == "supervisor":
                table.update(c.sub_checkpoints)
            elif c.has_checkpoint:
                table[c.path] = c.table_entry()
        self.send(self.parent, Retired(self.path, self.incarnation, table, True))
        # not recursive: the children are gone already
        self.send(self.myAddress, ActorExitRequest(recursive=False))
        self.retiring = False
        self.finished = True

    # -- reports to the root ----------------------------------------------------------------
    def note(
        self,
        kind: str,
        c: ChildState | None,
        *,
        level: int = 0,
        detail: str = "",
        info: ErrorInfo | None = None,
        strategy: str = "",
        duration_ms: float = 0.0,
        state: str = "",
        trace: str = "",
    ) -> None:
        """Tell the root what happened (and, with ``state``, the child's new state)."""
        self.send(
            self.root,
            EventNote(
                kind,
                c.path if c is not None else self.path,
                level,
                detail,
                info.category if info else "",
                info.fingerprint if info else "",
                strategy,
                duration_ms,
                state,
                c.level if c is not None else 0,
                c.restarts if c is not None else 0,
                c.last_error if c is not None else "",
                int(info.severity) if info else 0,
                trace,
            ),
        )

    def state_note(self, c: ChildState, label: str) -> None:
        self.send(self.root, StateNote(c.path, label, c.level, c.restarts, c.last_error))

    # -- helpers -------------------------------------------------------------------------
    def children_by_path(self) -> dict[str, ChildState]:
        return {c.path: c for c in self.order}

    def recovery_done(self, request_id: int, ok: bool, detail: str) -> None:
        from .messages import RecoveryDone

        self.send(self.root, RecoveryDone(request_id, ok, detail))


def _class_name(c: ChildState) -> str:
    if c.kind == "supervisor":
        return "Supervisor"
    cls = c.actor_class
    return f"{cls.__module__}.{cls.__qualname__}"


def monotonic() -> float:
    return time.monotonic()
