"""The root actor: the registry of paths, the two subtrees, and level 5.

The root is the one actor every other knows. It starts the system services
(``_system``: telemetry and the other mediating actors) and then the user's
tree, holds the live registry (who runs where, in what state), resolves paths
and pushes address changes to senders, and takes the system-wide measures
when a recovery reaches level 5: it restarts the user's tree, at most
``root_max_restarts`` times within ``root_within_s``; beyond that it stops
everything in order and writes a final report. Its outward half (the
``System``'s questions) is in :mod:`._gateway`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from typing import Any

import msgspec
import psutil
from thespian.actors import Actor, ActorExitRequest, ChildActorExited, DeadEnvelope, WakeupMessage

from ..actors._timers import TICK, WAKE
from ..actors.errors import ActorStopped, SystemStopped
from ..actors.messages import (
    AddressUpdate,
    Batch,
    ErrorReply,
    Forwarded,
    RecoveryRequest,
    Reply,
    Request,
    Resolve,
    Resolved,
    Retire,
    Retired,
    RouteState,
    Started,
    Stray,
)
from ._gateway import CORRELATOR, TELEMETRY, Gateway
from ._incidents import Incidents
from ._ladder import RestartIntensity
from ._registry import Registry
from ._services import SYSTEM_NAME, system_services
from ._spawn import create_child
from .messages import (
    Attempt,
    Boot,
    BreakerNote,
    CorrelationNote,
    DeadLetterNote,
    DurableCheckpoint,
    Escalate,
    EventNote,
    GatewayAsk,
    GatewayCancel,
    GatewayQuery,
    GatewayReply,
    GatewayTell,
    KillSubtree,
    LearnedState,
    MemoryEvent,
    NodeDown,
    Nodes,
    NodesChanged,
    RecoveryDone,
    Registered,
    RootCauseFound,
    ShedLoad,
    StateNote,
    SupervisorInit,
    TelemetryQuery,
    Unavailable,
)
from .spec import Supervisor

log = logging.getLogger("stalwart.root")


class _Subtree:
    """One of the root's two children: the system services or the user's tree."""

    def __init__(self, spec: Supervisor) -> None:
        self.spec = spec
        self.address: Any = None
        self.incarnation = 0
        self.starting = False  # created, not yet reported started

    @property
    def name(self) -> str:
        return self.spec.name


class RootActor(Incidents, Gateway, Actor):  # type: ignore[misc]
    """The top of every Stalwart system (internal; users talk to it through ``System``)."""

    def __init__(self) -> None:
        super().__init__()
        self._sw_init_caller()
        self.init_gateway()
        self.init_incidents()
        self.correlator_on = False
        self.registry = Registry()
        self.tree: Supervisor | None = None
        self.options: Any = None
        self.user: _Subtree | None = None
        self.services: _Subtree | None = None
        self.telemetry_on = False
        self.learned = LearnedState()
        self.checkpoints: dict[str, Any] = {}
        self.intensity: RestartIntensity | None = None
        self.phase = "idle"  # booting, running, restarting, stopping, stopped
        self.boot_reply: tuple[Any, int] | None = None
        self.shutdown_replies: list[tuple[Any, int]] = []
        self.stop_reason = ""
        self.final = False
        self.final_report: dict[str, Any] | None = None
        self.starter_pid = 0
        self.clock_id = 0
        self.cluster_nodes: dict[str, dict[str, Any]] = {}
        self.cluster_lost: tuple[str, ...] = ()
        self.fenced: dict[str, list[Any]] = {}  # lost node -> addresses that ran there

    # -- plumbing ---------------------------------------------------------------------------
    def _sw_resolver(self) -> Any:
        return self.myAddress

    def _sw_request_resolution(self, path: str) -> None:
        self._sw_on_resolved(self._resolve(path))

    def _resolve(self, path: str) -> Resolved:
        if not self.registry.knows(path):
            return Resolved(path, (), f"unknown actor path {path!r}")
        return Resolved(path, self.registry.addresses(path))

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            return
        try:
            handler(self, msg, sender)
        except Exception:
            log.exception("root failed handling %s", type(msg).__name__)

    def on_batch(self, msg: Batch, sender: Any) -> None:
        for item in msg.items:
            self.receiveMessage(item, sender)

    @property
    def top(self) -> Any:
        """The user's tree's supervisor (for tests and the gateway)."""
        return self.user.address if self.user else None

    # -- boot ---------------------------------------------------------------------------------
    def on_boot(self, msg: Boot, sender: Any) -> None:
        self.tree, self.options = msg.tree, msg.options
        self.starter_pid, self.clock_id = msg.starter_pid, msg.clock_id
        self._sw_use_clock(msg.clock_id)
        self.events = type(self.events)(maxlen=self.options.event_limit)
        self.dead = type(self.dead)(maxlen=self.options.dead_letter_limit)
        self.intensity = RestartIntensity(
            self.options.root_max_restarts, self.options.root_within_s
        )
        self.user = _Subtree(self.tree)
        self.registry.plan(self.tree)
        services = system_services(self.options, self.tree)
        if services is not None:
            self.services = _Subtree(services)
            self.registry.plan(services)
            self.telemetry_on = self.registry.knows(TELEMETRY)
            self.correlator_on = self.registry.knows(CORRELATOR)
        settings = self.options.correlator or {}
        self.incident_quiet_s = float(settings.get("incident_quiet_s", self.incident_quiet_s))
        self.incident_max_s = float(settings.get("incident_max_s", self.incident_max_s))
        self.boot_reply = (sender, msg.id)
        self.handleDeadLetters(True)
        if self.options.base != "simple":
            self.after(1.0, (WAKE, "watchdog"))
        self.phase = "booting"
        self.start_subtree(self.services or self.user)

    def start_subtree(self, sub: _Subtree) -> None:
        sub.incarnation += 1
        sub.starting = True
        sub.address = create_child(self, _supervisor_class(), not self.clock_id)
        checkpoints = dict(self.checkpoints) if sub is self.user else {}
        self.send(
            sub.address,
            SupervisorInit(
                sub.name,
                sub.spec,
                self.myAddress,
                self.myAddress,
                sub.incarnation,
                checkpoints,
                self.clock_id,
                self.learned if sub is self.user else None,
                {
                    "store": self.options.store,
                    "nodes": self.cluster_nodes,
                    "lost": self.cluster_lost,
                },
            ),
        )
        self.after(
            self.options.start_timeout_s,
            (WAKE, "start-timeout", sub.name, sub.incarnation),
            key=("start", sub.name),
        )

    def subtree(self, path: str, incarnation: int | None = None) -> _Subtree | None:
        for sub in (self.user, self.services):
            if sub is not None and sub.name == path and incarnation in (None, sub.incarnation):
                return sub
        return None

    def on_started(self, msg: Started, sender: Any) -> None:
        sub = self.subtree(msg.path, msg.incarnation)
        if sub is None or self.phase in ("stopping", "stopped"):
            return
        self.cancel(("start", sub.name))
        sub.starting = False
        self.registry.register(
            Registered(
                msg.path,
                sub.address,
                msg.pid,
                msg.incarnation,
                "supervisor",
                actor_class="Supervisor",
                node=msg.node,
            )
        )
        self.push(msg.path)
        if sub is self.services:
            self.record("services-started", sub.name, detail=f"incarnation {sub.incarnation}")
            if self.telemetry_on and self.user is not None and self.user.address is None:
                self._sw_call(
                    TELEMETRY,
                    TelemetryQuery("learned"),
                    30.0,
                    self.on_learned,
                    lambda error: self.on_learned(None),
                )
            elif self.user is not None and self.user.address is None:
                self.start_subtree(self.user)
            return
        was, self.phase = self.phase, "running"
        self.record("tree-started", sub.name, detail=f"incarnation {sub.incarnation}")
        if was == "booting" and self.boot_reply:
            asker, ident = self.boot_reply
            self.boot_reply = None
            self.send(asker, GatewayReply(ident, ("ok", self.registry.known_paths(), os.getsid(0))))
        for rid in self.tree_waiters:
            self.finish_recovery(rid, True, "the whole tree was restarted")
        self.tree_waiters = []

    def on_learned(self, learned: LearnedState | None) -> None:
        """What the store learned in earlier runs: selector state, timeouts, durable checkpoints."""
        if learned is not None:
            self.learned = learned
            for path, state in learned.checkpoints.items():
                self.checkpoints.setdefault(path, (state, ()))
        if self.user is not None and self.user.address is None and self.phase == "booting":
            self.start_subtree(self.user)

    # -- registry updates from supervisors -------------------------------------------------
    def on_registered(self, msg: Registered, sender: Any) -> None:
        self.registry.register(msg)
        self.push(msg.path, msg.lost_inflight)
        self.incident_holds_for(msg)

    def on_stray(self, msg: Stray, sender: Any) -> None:
        """A message that reached an instance which failed to start goes to the next one."""
        self._sw_send_path(msg.path, Forwarded(msg.message, msg.sender))

    def on_unavailable(self, msg: Unavailable, sender: Any) -> None:
        self.registry.unavailable(msg)
        # after a crash, callers hand what it lost to the supervisor starting the next one
        self.push(msg.path, holder=sender if msg.lost_inflight else None)

    def on_state(self, msg: StateNote, sender: Any) -> None:
        self.registry.note_state(msg)

    def push(self, path: str, lost_inflight: bool = False, holder: Any = None) -> None:
        """Tell every subscriber of ``path`` (and of its replica group) its new addresses."""
        for p in self.registry.affected(path):
            update = AddressUpdate(
                p, self.registry.addresses(p), lost_inflight, holder if p == path else None
            )
            for subscriber in self.registry.subscribers(p):
                self.send(subscriber, update)
            if p in self._sw_routes:
                self._sw_on_address_update(update)

    def on_breaker_note(self, msg: BreakerNote, sender: Any) -> None:
        """A breaker changed state: record it and tell everyone who sends to that path."""
        self.registry.note_breaker(msg.path, msg.state)
        self.record("breaker", msg.path, detail=msg.state)
        update = RouteState(msg.path, msg.state, msg.remaining_s, msg.fails_fast)
        for subscriber in self.registry.subscribers(msg.path):
            self.send(subscriber, update)
        self._sw_on_route_state(update)

    def on_resolve(self, msg: Resolve, sender: Any) -> None:
        resolved = self._resolve(msg.path)
        if resolved.error is None:
            self.registry.subscribe(
                msg.path, msg.subscriber or str(sender), msg.incarnation, sender
            )
        self.send(sender, resolved)

    # -- level 5 ---------------------------------------------------------------------------------
    def on_escalate(self, msg: Escalate, sender: Any) -> None:
        info = msg.info
        self.record(
            "level5",
            msg.path,
            level=5,
            detail=msg.reason,
            category=info.category if info else "",
            fingerprint=info.fingerprint if info else "",
        )
        if self.services is not None and msg.path.split("/")[0] == self.services.name:
            self.restart_subtree(self.services, msg.reason)
            return
        user = self.user
        if self.phase == "restarting" and user is not None and user.starting:
            restarted = sender == user.address
            if restarted:  # the restarted tree fails before it is up: the restart did not help
                self.phase = "running"
        self.system_measures(msg.reason)

    def system_measures(self, reason: str, counted: bool = True) -> None:
        """Level 5: restart the user's tree, or stop in order once the root's intensity is spent."""
        if self.phase in ("restarting", "stopping", "stopped") or self.user is None:
            return
        assert self.intensity is not None
        if counted and not self.intensity.try_restart():
            self.stop_reason = f"level 5: {reason}"
            self.begin_stop(final=True)
            return
        self.phase = "restarting"
        self.record("restart-tree", self.user.name, level=5, detail=reason)
        self.retire_subtree(self.user)

    def restart_subtree(self, sub: _Subtree, reason: str) -> None:
        self.record("restart-services", sub.name, level=5, detail=reason)
        sub.restarting = True  # type: ignore[attr-defined]
        self.retire_subtree(sub)

    def retire_subtree(self, sub: _Subtree) -> None:
        if sub is self.services:
            self.flush_outbox()  # what the services were sent reaches them before they stop
        sub.starting = False
        if sub.address is None:
            self.subtree_down(sub)
            return
        self.send(sub.address, Retire(False))
        self.after(
            self.options.shutdown_timeout_s,
            (WAKE, "stop-timeout", sub.name, sub.incarnation),
            key=("stop", sub.name),
        )

    def on_retired(self, msg: Retired, sender: Any) -> None:
        sub = self.subtree(msg.path, msg.incarnation)
        if sub is None:
            return
        if sub is self.user:
            self.checkpoints = dict(msg.final_state or {})
        self.subtree_down(sub)

    def subtree_down(self, sub: _Subtree) -> None:
        self.cancel(("stop", sub.name))
        sub.address = None
        if getattr(sub, "restarting", False):
            sub.restarting = False  # type: ignore[attr-defined]
            self.start_subtree(sub)
        elif self.phase == "restarting" and sub is self.user:
            self.start_subtree(sub)
        elif self.phase == "stopping":
            if self.services is not None and self.services.address is not None:
                self.retire_subtree(self.services)  # services stop last
            else:
                self.stopped()

    def on_child_exited(self, msg: ChildActorExited, sender: Any) -> None:
        for sub in (self.user, self.services):
            if sub is None or sub.address is None or msg.childAddress != sub.address:
                continue
            self.record("crash", sub.name, level=5, detail=f"{sub.name}'s process exited")
            self.kill_subtree(sub.name)
            if self.phase == "stopping" or (self.phase == "restarting" and sub is self.user):
                self.subtree_down(sub)
            elif sub is self.services:
                sub.restarting = True  # type: ignore[attr-defined]
                self.subtree_down(sub)
            else:
                sub.address = None
                self.system_measures(f"{sub.name}'s process exited")
                if self.phase == "restarting":
                    self.start_subtree(sub)

    # -- stopping --------------------------------------------------------------------------------
    def begin_shutdown(self, asker: Any, ident: int) -> None:
        if self.phase == "stopped":
            self.send(asker, GatewayReply(ident, self.final_report))
            return
        self.shutdown_replies.append((asker, ident))
        if self.phase != "stopping":
            self.begin_stop(final=False)

    def begin_stop(self, final: bool) -> None:
        self.flush_outbox()
        self.phase = "stopping"
        self.final = final
        if self.user is not None and self.user.address is not None:
            self.retire_subtree(self.user)  # the user's tree first, services last
        elif self.services is not None and self.services.address is not None:
            self.retire_subtree(self.services)
        else:
            self.stopped()

    def stopped(self) -> None:
        self.phase = "stopped"
        self.registry.all_stopped()
        if self.final:
            self.write_final_report()
        for asker, ident in self.shutdown_replies:
            self.send(asker, GatewayReply(ident, self.final_report))
        self.shutdown_replies = []
        if self.boot_reply:
            asker, ident = self.boot_reply
            self.boot_reply = None
            self.send(asker, GatewayReply(ident, ("stopped", self.stop_reason)))
        for rid in list(self.recoveries):
            self.finish_recovery(rid, False, "the system stopped")
        for request_id in list(self._sw_pending):
            self._sw_finish(
                request_id,
                SystemStopped(f"the system has stopped: {self.stop_reason or 'shut down'}"),
            )

    def write_final_report(self) -> None:
        self.final_report = {
            "stopped_at": time.time(),
            "reason": self.stop_reason,
            "level": 5,
            "status": [msgspec.to_builtins(s) for s in self.registry.status(self.tree)],
            "events": [msgspec.to_builtins(e) for e in list(self.events)[-200:]],
            "dead_letters": [
                {"id": d.id, "path": d.path, "error": d.error, "message": repr(d.message)[:500]}
                for d in self.dead
            ],
        }
        path = self.options.report_path
        if path:
            try:
                with open(path, "w") as fh:
                    json.dump(self.final_report, fh, indent=2, default=repr)
                self.final_report["written_to"] = os.path.abspath(path)
            except OSError as exc:
                self.final_report["write_error"] = str(exc)

    # -- processes and timers ----------------------------------------------------------------------
    def on_kill_subtree(self, msg: KillSubtree, sender: Any) -> None:
        self.kill_subtree(msg.path)

    def kill_subtree(self, path: str) -> None:
        for pid in self.registry.pids_under(path):
            if pid and pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.registry.drop_under(path)

    def on_wakeup(self, msg: WakeupMessage, sender: Any) -> None:
        if msg.payload != TICK:
            return
        for payload in self._sw_tick():
            self.on_timer(payload)

    def on_timer(self, payload: Any) -> None:
        kind = payload[1]
        if kind == "call-timeout":
            self._sw_on_call_timeout(payload[2])
        elif kind == "incident":
            self.on_incident_timer(payload[2])
        elif kind == "flush-outbox":
            self.flush_outbox()
        elif kind == "watchdog":
            if self.starter_pid and not psutil.pid_exists(self.starter_pid):
                self.actorSystemShutdown()  # our owner is gone: leave nothing behind
                return
            self.after(1.0, payload)
        elif kind == "stop-timeout":
            sub = self.subtree(payload[2], payload[3])
            if sub is not None and sub.address is not None:
                self.record(
                    "stop-timeout",
                    sub.name,
                    detail="it did not stop in time; its processes were killed",
                )
                self.kill_subtree(sub.name)
                self.subtree_down(sub)
        elif kind == "start-timeout":
            sub = self.subtree(payload[2], payload[3])
            if sub is not None and self.phase in ("booting", "restarting"):
                self.stop_reason = f"{sub.name} did not start within start_timeout_s"
                self.phase = "running"
                self.system_measures(self.stop_reason)

    def on_reply(self, msg: Reply, sender: Any) -> None:
        self._sw_on_reply(msg)

    def on_resolved(self, msg: Resolved, sender: Any) -> None:
        self._sw_on_resolved(msg)

    def on_address_update(self, msg: AddressUpdate, sender: Any) -> None:
        self._sw_on_address_update(msg)

    # -- the cluster -----------------------------------------------------------------------
    def on_nodes_changed(self, msg: NodesChanged, sender: Any) -> None:
        """A node joined, was lost or left: tell the supervisors; move what ran on a lost one."""
        self.cluster_nodes, self.cluster_lost = dict(msg.nodes), tuple(msg.lost)
        moved = self.registry.on_node(msg.node) if msg.event != "node-joined" else []
        detail = f"{msg.node}: {msg.detail}"
        if moved:
            detail += f"; moving {', '.join(e.path for e in moved)}"
        self.record(msg.event, sender_path(msg), level=3 if moved else 0, detail=detail[:300])
        note = Nodes(self.cluster_nodes, self.cluster_lost)
        for address in self.registry.supervisor_addresses():
            self.send(address, note)
        if msg.event == "node-joined":
            for address in self.fenced.pop(msg.node, []):
                self.send(address, ActorExitRequest())  # what ran there before was replaced
            return
        by_parent: dict[str, list[str]] = {}
        for entry in moved:  # in start order, so dependencies come first
            by_parent.setdefault(entry.path.rsplit("/", 1)[0], []).append(entry.path)
            if entry.address is not None:
                self.fenced.setdefault(msg.node, []).append(entry.address)
        for parent, paths in by_parent.items():
            address = self.registry.address_of(parent)
            if address is not None:
                self.send(address, NodeDown(msg.node, tuple(paths), msg.detail, self.cluster_lost))

    def on_request(self, msg: Request, sender: Any) -> None:
        self.send(
            msg.reply_to,
            Reply(
                msg.id,
                ErrorReply.of(ActorStopped("the root takes no requests; address an actor path")),
            ),
        )


def _supervisor_class() -> type:
    from ._supervisor import SupervisorActor

    return SupervisorActor


_HANDLERS: dict[type, Any] = {
    Boot: RootActor.on_boot,
    Started: RootActor.on_started,
    Registered: RootActor.on_registered,
    Batch: RootActor.on_batch,
    Stray: RootActor.on_stray,
    Unavailable: RootActor.on_unavailable,
    StateNote: RootActor.on_state,
    Resolve: RootActor.on_resolve,
    EventNote: RootActor.on_event,
    DeadLetterNote: RootActor.on_dead_letter,
    DeadEnvelope: RootActor.on_dead_envelope,
    GatewayAsk: RootActor.on_gateway_ask,
    GatewayTell: RootActor.on_gateway_tell,
    GatewayCancel: RootActor.on_gateway_cancel,
    GatewayQuery: RootActor.on_query,
    RecoveryRequest: RootActor.on_recovery_request,
    RecoveryDone: RootActor.on_recovery_done,
    Escalate: RootActor.on_escalate,
    Retired: RootActor.on_retired,
    ChildActorExited: RootActor.on_child_exited,
    KillSubtree: RootActor.on_kill_subtree,
    WakeupMessage: RootActor.on_wakeup,
    Reply: RootActor.on_reply,
    Resolved: RootActor.on_resolved,
    AddressUpdate: RootActor.on_address_update,
    BreakerNote: RootActor.on_breaker_note,
    RootCauseFound: RootActor.on_root_cause,
    CorrelationNote: RootActor.on_correlation_note,
    Request: RootActor.on_request,
    Attempt: RootActor.to_telemetry,
    DurableCheckpoint: RootActor.to_telemetry,
    MemoryEvent: RootActor.on_memory_event,
    ShedLoad: RootActor.on_shed_load,
    NodesChanged: RootActor.on_nodes_changed,
}


def sender_path(msg: NodesChanged) -> str:
    """Events about nodes are recorded under the node monitor's path."""
    return f"{SYSTEM_NAME}/nodes"
