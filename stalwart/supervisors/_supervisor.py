"""The supervisor actor: interprets a :class:`~stalwart.Supervisor` spec at run time.

Starting and stopping live in :mod:`._lifecycle`, answering failures in
:mod:`._recovery`; this module wires the messages to them.
"""

from __future__ import annotations

import logging
from typing import Any

from thespian.actors import Actor, ActorExitRequest, ChildActorExited, PoisonMessage, WakeupMessage

from ..actors._placement import placeable
from ..actors._timers import TICK, Timers
from ..actors.messages import (
    Batch,
    Checkpoint,
    FailureReport,
    HealthReport,
    HooksDone,
    Init,
    LostRequest,
    Redelivery,
    Release,
    Retire,
    Retired,
    RetryOutcome,
    RunHooks,
    Started,
    StoppedNormally,
)
from ._children import DOWN, STARTING, STOPPING, UP, ChildState
from ._health import Health
from ._holding import Holding
from ._lifecycle import Lifecycle
from ._plan import expand, restart_set
from ._recovery import Recovery, crash_info
from .messages import (
    BreakerNote,
    DependencyDown,
    DurableCheckpoint,
    Escalate,
    IncidentHold,
    NodeDown,
    Nodes,
    PerformRecovery,
    ResetLevels,
    SupervisorInit,
    Unavailable,
)
from .spec import Supervisor

log = logging.getLogger("stalwart.supervisor")


class SupervisorActor(Health, Holding, Recovery, Lifecycle, Timers, Actor):  # type: ignore[misc]
    """Runs one supervisor of the tree (internal; declare trees with ``Supervisor``)."""

    def __init__(self) -> None:
        super().__init__()
        self.path = ""
        self.spec: Any = None
        self.parent: Any = None
        self.root: Any = None
        self.incarnation = 0
        self.children: dict[str, ChildState] = {}
        self.order: list[ChildState] = []
        self.escalated = False
        self.retiring = False
        self.finished = False
        self.initial = True
        self._incarnations = 0
        self.clock_id = 0
        self.settings: dict[str, Any] = {}
        self.down_dependencies: set[str] = set()
        self.incident_holds: dict[str, str] = {}
        self.health_seq = 0
        self.waiting_recoveries: list[tuple[int, str]] = []
        self.forwarders: list[Any] = []
        self.mail_held: list[Any] | None = None  # for the root, while answering a crash
        self._sw_init_timers()

    def send(self, target: Any, msg: Any) -> None:
        """Send now; while a crash is being answered, mail for the root waits for the fork
        (and goes in one envelope)."""
        if self.mail_held is not None and target == self.root:
            self.mail_held.append(msg)
        else:
            super().send(target, msg)

    def supervisor_class(self) -> type:
        return SupervisorActor

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        handler = _HANDLERS.get(type(msg))
        if handler is None or self.finished:
            return
        try:
            handler(self, msg, sender)
        except Exception as exc:
            log.exception("%s: supervisor failed handling %s", self.path, type(msg).__name__)
            self.escalate(f"{self.path}: internal error: {exc!r}", None, self.path)

    # -- set-up --------------------------------------------------------------------------------
    def on_init(self, msg: SupervisorInit, sender: Any) -> None:
        spec: Supervisor = msg.spec
        self.path, self.spec, self.parent, self.root = msg.path, spec, msg.parent, msg.root
        self.incarnation = msg.incarnation
        self.clock_id = msg.clock_id
        self.settings = dict(msg.settings)
        self._sw_use_clock(msg.clock_id)
        self.init_recovery(spec, msg.learned)
        for slot in expand(spec.children):
            policy = getattr(slot.spec, "levels", None) or spec.levels
            c = ChildState(slot, f"{self.path}/{slot.name}", policy)
            prefix = c.path + "/"
            if c.kind == "supervisor":
                c.sub_checkpoints = {
                    k: v for k, v in msg.checkpoints.items() if k.startswith(prefix)
                }
            elif c.path in msg.checkpoints:
                c.restore(msg.checkpoints[c.path])
            self.children[slot.name] = c
            self.order.append(c)
        self.start_health()
        self.reconcile()

    # -- reports to the root ------------------------------------------------------------------
    def on_settled(self) -> None:
        """Every child is up: answer the requested recoveries that waited for it."""
        waiting, self.waiting_recoveries = self.waiting_recoveries, []
        for request_id, target in waiting:
            self.recovery_done(request_id, True, f"{target} and its restart set are running")

    # -- messages from children ------------------------------------------------------------------
    def on_started_msg(self, msg: Started, sender: Any) -> None:
        self.on_started(msg)

    def on_failure_msg(self, msg: FailureReport, sender: Any) -> None:
        self.on_failure(msg)

    def on_retry_outcome_msg(self, msg: RetryOutcome, sender: Any) -> None:
        self.on_retry_outcome(msg)

    def on_checkpoint(self, msg: Checkpoint, sender: Any) -> None:
        c = self.children_by_path().get(msg.path)
        if c is None or c.incarnation != msg.incarnation:
            return
        c.checkpoint, c.has_checkpoint = msg.state, True
        if msg.last_reply is not None:
            c.remember_reply(*msg.last_reply)
        if getattr(c.spec, "durable", False):
            self.send(self.root, DurableCheckpoint(c.path, msg.state, msg.incarnation))

    def on_retired_msg(self, msg: Retired, sender: Any) -> None:
        self.on_retired(msg)

    def on_stopped_normally(self, msg: StoppedNormally, sender: Any) -> None:
        c = self.children_by_path().get(msg.path)
        if c is None or c.incarnation != msg.incarnation or c.phase != UP:
            return
        if c.spec.restart == "permanent":
            c.restart_pending = True
        else:
            c.stop_for_good = True
        c.phase = STOPPING
        self.send(self.root, Unavailable(c.path, "stopping", removed=c.stop_for_good))
        self.note("stopped", c, detail=f"{c.path} stopped itself ({c.spec.restart})")

    def on_escalate(self, msg: Escalate, sender: Any) -> None:
        if msg.level >= 5:
            self.send(self.root, msg)
        else:
            self.on_child_escalated(msg)

    def on_child_exited_msg(self, msg: ChildActorExited, sender: Any) -> None:
        # the restart comes first: what the crash tells the root can wait for the fork;
        # then that the path is down (callers hand over what it lost), then the events
        self.mail_held = []
        try:
            self.on_child_exited(msg.childAddress)
        finally:
            held, self.mail_held = self.mail_held, None
            if held:  # in one envelope: each send costs the supervisor more than its size
                held.sort(key=lambda m: not isinstance(m, Unavailable))
                self.send(self.root, Batch(tuple(held)))

    def on_lost_request(self, msg: LostRequest, sender: Any) -> None:
        """A request the crashed child was handling: to the next instance, after its Init."""
        c = self.children_by_path().get(msg.path)
        if c is None or c.kind != "actor" or c.stop_for_good:
            return  # the caller's timeout or the path's removal answers it
        if c.address is not None and c.phase in (STARTING, UP):
            self.send(c.address, msg.request)  # after the Init it was sent
        else:
            c.redeliver.append(Redelivery(msg.request, msg.request.reply_to))

    def on_hooks_done(self, msg: HooksDone, sender: Any) -> None:
        self.recovery_done(msg.request_id, msg.ok, msg.detail or f"{msg.path}: hooks ran")

    # -- messages from the parent and the root ---------------------------------------------------
    def on_retire(self, msg: Retire, sender: Any) -> None:
        self.begin_retire()

    def on_perform(self, msg: PerformRecovery, sender: Any) -> None:
        c = self.children_by_path().get(msg.target)
        if c is None:
            self.recovery_done(msg.request_id, False, f"{msg.target} is not a child of {self.path}")
            return
        self.note("requested", c, level=msg.level, detail=msg.reason)
        if msg.level <= 2:
            if c.kind == "actor" and c.phase == UP:
                self.send(c.address, RunHooks(msg.request_id, msg.level, msg.reason))
            else:
                self.recovery_done(
                    msg.request_id,
                    c.kind != "actor",
                    "a supervisor has no hooks to run"
                    if c.kind != "actor"
                    else f"{c.path} is not running",
                )
            return
        self.intensity.try_restart()  # counted, but a requested recovery is always performed
        names = (
            [c.name]
            if msg.level == 3
            else restart_set(self.spec.strategy, [o.slot for o in self.order], c.name)
        )
        for name in names:
            other = self.children[name]
            other.restarts += 1
            self.mark_restart(other)
        self.waiting_recoveries.append((msg.request_id, c.path))
        self.reconcile()

    def on_wakeup(self, msg: WakeupMessage, sender: Any) -> None:
        if msg.payload != TICK:
            return
        for payload in self._sw_tick():
            kind = payload[1]
            if kind == "retry":
                self.on_retry_timer(payload[2])
            elif kind == "start-timeout":
                self.on_start_timeout(payload[2], payload[3])
            elif kind == "stop-timeout":
                self.on_stop_timeout(payload[2], payload[3])
            elif kind == "retry-timeout":
                self.on_retry_timeout(payload[2], payload[3], payload[4])
            elif kind == "health":
                self.on_health_timer()
            elif kind == "release":
                self.send(payload[2], Release())
            elif kind == "quiet":
                c = self.children.get(payload[2])
                if c is not None and c.phase == UP:
                    self.state_note(c, "running")

    def on_reset_levels(self, msg: ResetLevels, sender: Any) -> None:
        for c in self.order:
            if not msg.path or c.path == msg.path or c.path.startswith(msg.path + "/"):
                c.ladders = {}
                if c.phase == UP:
                    self.state_note(c, "running")

    def on_exit_request(self, msg: ActorExitRequest, sender: Any) -> None:
        self.finished = True

    # -- the cluster ------------------------------------------------------------------------
    def on_nodes(self, msg: Nodes, sender: Any) -> None:
        self.settings["lost"] = tuple(msg.lost)  # placements avoid them from now on
        self.settings["nodes"] = dict(msg.nodes)

    def on_node_down(self, msg: NodeDown, sender: Any) -> None:
        """The children ``msg.paths`` ran on a lost node: recover them as crashed (level 3)."""
        self.settings["lost"] = tuple(msg.lost)
        for c in list(self.order):
            if c.path in msg.paths and c.address is not None and c.phase in (UP, STARTING):
                self.cancel(("start", c.name))
                self.on_child_exited(c.address, f"node {msg.node} lost ({msg.reason})")

    def on_poison(self, msg: PoisonMessage, sender: Any) -> None:
        """An Init came back undelivered: escalate if no live node offers what the child needs.

        (Thespian also reports the child as exited, which restarts it; without a node
        for it, that would go on until the restart intensity ran out.)
        """
        init = msg.poisonMessage
        if not isinstance(init, Init):
            return
        c = self.children_by_path().get(init.path)
        requires = dict(getattr(c.spec, "requires", {}) or {}) if c is not None else {}
        if c is None or not requires or c.phase not in (STARTING, DOWN) or self.escalated:
            return
        nodes = self.settings.get("nodes", {})
        lost = tuple(self.settings.get("lost", ()))
        if placeable(requires, nodes, lost):
            return  # a node can take it: the restart under way will find it
        reason = (
            f"{c.path}: no live node satisfies requires {requires}"
            f" (live nodes: {', '.join(sorted(nodes)) or 'none'}; lost: {', '.join(lost)})"
        )
        self.cancel(("start", c.name))
        c.phase, c.address, c.last_error, c.stop_for_good = DOWN, None, reason, True
        self.note("placement-failed", c, level=4, detail=reason, state="failed")
        self.escalate(reason, crash_info(c.path, reason), c.path)


_HANDLERS: dict[type, Any] = {
    SupervisorInit: SupervisorActor.on_init,
    Started: SupervisorActor.on_started_msg,
    FailureReport: SupervisorActor.on_failure_msg,
    RetryOutcome: SupervisorActor.on_retry_outcome_msg,
    Checkpoint: SupervisorActor.on_checkpoint,
    Retired: SupervisorActor.on_retired_msg,
    StoppedNormally: SupervisorActor.on_stopped_normally,
    Escalate: SupervisorActor.on_escalate,
    ChildActorExited: SupervisorActor.on_child_exited_msg,
    HooksDone: SupervisorActor.on_hooks_done,
    LostRequest: SupervisorActor.on_lost_request,
    Retire: SupervisorActor.on_retire,
    PerformRecovery: SupervisorActor.on_perform,
    WakeupMessage: SupervisorActor.on_wakeup,
    ActorExitRequest: SupervisorActor.on_exit_request,
    Nodes: SupervisorActor.on_nodes,
    NodeDown: SupervisorActor.on_node_down,
    PoisonMessage: SupervisorActor.on_poison,
    ResetLevels: SupervisorActor.on_reset_levels,
    BreakerNote: SupervisorActor.on_breaker_note,
    HealthReport: SupervisorActor.on_health_report,
    DependencyDown: SupervisorActor.on_dependency_down,
    IncidentHold: SupervisorActor.on_incident_hold,
}
