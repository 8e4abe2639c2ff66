"""The root actor: registry of paths, gateway for the outside, and level 5.

The root is the one actor every other knows. It holds the live tree (who runs
where, in what state), resolves paths for senders and pushes address changes to
them, answers the ``System`` object's questions, keeps events and dead letters,
and takes the system-wide measures when a recovery reaches level 5: it
restarts the whole tree, at most ``root_max_restarts`` times within
``root_within_s``; beyond that it stops the tree in order and writes a final
report.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections import deque
from typing import Any

import msgspec
import psutil
from thespian.actors import Actor, ActorSystemMessage, ChildActorExited, DeadEnvelope, WakeupMessage

from ..actors._calls import Caller
from ..actors._timers import TICK, WAKE
from ..actors.errors import ActorStopped, SystemStopped, UnknownPath
from ..actors.messages import (
    AddressUpdate,
    ErrorReply,
    RecoveryRequest,
    RecoveryResult,
    Reply,
    Request,
    Resolve,
    Resolved,
    Retire,
    Retired,
    Started,
)
from ._ladder import RestartIntensity
from ._registry import Registry
from .messages import (
    Boot,
    DeadLetter,
    DeadLetterNote,
    Escalate,
    Event,
    EventNote,
    GatewayAsk,
    GatewayCancel,
    GatewayQuery,
    GatewayReply,
    GatewayTell,
    KillSubtree,
    PerformRecovery,
    RecoveryDone,
    Registered,
    StateNote,
    SupervisorInit,
    Unavailable,
)
from .spec import Supervisor

log = logging.getLogger("stalwart.root")


class RootActor(Caller, Actor):  # type: ignore[misc]
    """The top of every Stalwart system (internal; users talk to it through ``System``)."""

    def __init__(self) -> None:
        super().__init__()
        self._sw_init_caller()
        self.registry = Registry()
        self.events: deque[Event] = deque(maxlen=10_000)
        self.dead: deque[DeadLetter] = deque(maxlen=10_000)
        self._seq = 0
        self._dead_ids = 0
        self.tree: Supervisor | None = None
        self.options: Any = None
        self.top: Any = None
        self.top_incarnation = 0
        self.checkpoints: dict[str, Any] = {}
        self.intensity: RestartIntensity | None = None
        self.phase = "idle"  # booting, running, restarting, stopping, stopped
        self.boot_reply: tuple[Any, int] | None = None
        self.shutdown_replies: list[tuple[Any, int]] = []
        self.stop_reason = ""
        self.final_report: dict[str, Any] | None = None
        self.recoveries: dict[int, tuple[Any, Any, RecoveryRequest, float]] = {}
        self._recovery_ids = 0
        self.tree_waiters: list[int] = []
        self.starter_pid = 0
        self.gateway_calls: dict[int, str] = {}
        self.clock_id = 0

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

    # -- boot ---------------------------------------------------------------------------------
    def on_boot(self, msg: Boot, sender: Any) -> None:
        self.tree, self.options = msg.tree, msg.options
        self.starter_pid = msg.starter_pid
        self.clock_id = msg.clock_id
        self._sw_use_clock(msg.clock_id)
        self.events = deque(maxlen=self.options.event_limit)
        self.dead = deque(maxlen=self.options.dead_letter_limit)
        self.intensity = RestartIntensity(
            self.options.root_max_restarts, self.options.root_within_s
        )
        self.registry.plan(self.tree)
        self.boot_reply = (sender, msg.id)
        self.handleDeadLetters(True)
        if self.options.base != "simple":
            self.after(1.0, (WAKE, "watchdog"))
        self.phase = "booting"
        self.start_tree()

    def start_tree(self) -> None:
        assert self.tree is not None
        self.top_incarnation += 1
        self.top = self.createActor(_supervisor_class())
        self.send(
            self.top,
            SupervisorInit(
                self.tree.name,
                self.tree,
                self.myAddress,
                self.myAddress,
                self.top_incarnation,
                dict(self.checkpoints),
                self.clock_id,
            ),
        )
        self.after(
            self.options.start_timeout_s,
            (WAKE, "tree-start-timeout", self.top_incarnation),
            key="tree-start",
        )

    def on_started(self, msg: Started, sender: Any) -> None:
        if (
            self.tree is None
            or msg.path != self.tree.name
            or msg.incarnation != self.top_incarnation
        ):
            return
        self.cancel("tree-start")
        self.registry.register(
            Registered(
                msg.path, self.top, msg.pid, msg.incarnation, "supervisor", actor_class="Supervisor"
            )
        )
        self.push(msg.path)
        was = self.phase
        self.phase = "running"
        self.record("tree-started", self.tree.name, detail=f"incarnation {msg.incarnation}")
        if was == "booting" and self.boot_reply:
            asker, ident = self.boot_reply
            self.boot_reply = None
            self.send(asker, GatewayReply(ident, ("ok", self.registry.known_paths(), os.getsid(0))))
        for rid in self.tree_waiters:
            self.finish_recovery(rid, True, "the whole tree was restarted")
        self.tree_waiters = []

    # -- registry updates from supervisors -------------------------------------------------
    def on_registered(self, msg: Registered, sender: Any) -> None:
        self.registry.register(msg)
        self.push(msg.path, msg.lost_inflight)

    def on_unavailable(self, msg: Unavailable, sender: Any) -> None:
        self.registry.unavailable(msg)
        self.push(msg.path)

    def on_state(self, msg: StateNote, sender: Any) -> None:
        self.registry.note_state(msg)

    def push(self, path: str, lost_inflight: bool = False) -> None:
        """Tell every subscriber of ``path`` (and of its replica group) its new addresses."""
        for p in self.registry.affected(path):
            update = AddressUpdate(p, self.registry.addresses(p), lost_inflight)
            for subscriber in self.registry.subscribers(p):
                self.send(subscriber, update)
            if p in self._sw_routes:
                self._sw_on_address_update(update)

    def on_resolve(self, msg: Resolve, sender: Any) -> None:
        resolved = self._resolve(msg.path)
        if resolved.error is None:
            self.registry.subscribe(
                msg.path, msg.subscriber or str(sender), msg.incarnation, sender
            )
        self.send(sender, resolved)

    # -- events and dead letters -------------------------------------------------------------
    def record(self, kind: str, path: str, **fields: Any) -> None:
        self._seq += 1
        self.events.append(Event(self._seq, time.time(), kind, path, **fields))

    def on_event(self, msg: EventNote, sender: Any) -> None:
        self.record(
            msg.kind,
            msg.path,
            level=msg.level,
            detail=msg.detail,
            category=msg.category,
            fingerprint=msg.fingerprint,
            strategy=msg.strategy,
            duration_ms=msg.duration_ms,
        )
        if msg.state:
            self.registry.note_state(
                StateNote(msg.path, msg.state, msg.current_level, msg.restarts, msg.last_error)
            )

    def on_dead_letter(self, msg: DeadLetterNote, sender: Any) -> None:
        self._dead_ids += 1
        self.dead.append(
            DeadLetter(
                self._dead_ids,
                time.time(),
                msg.path,
                msg.message,
                msg.error,
                msg.category,
                msg.fingerprint,
                msg.reply_to,
                msg.request_id,
            )
        )
        self.record(
            "dead-letter",
            msg.path,
            detail=f"#{self._dead_ids}: {msg.error}"[:300],
            category=msg.category,
            fingerprint=msg.fingerprint,
        )

    def on_dead_envelope(self, msg: DeadEnvelope, sender: Any) -> None:
        message = msg.deadMessage
        if isinstance(message, ActorSystemMessage) or not isinstance(message, Request):
            return
        path = self.registry.path_of_retired(msg.deadAddress)
        if path is not None:
            self._sw_send_path(path, message)

    # -- the gateway ---------------------------------------------------------------------------
    def on_gateway_ask(self, msg: GatewayAsk, sender: Any) -> None:
        if self.phase in ("stopping", "stopped"):
            self.send(
                sender,
                GatewayReply(
                    msg.id,
                    ErrorReply.of(
                        SystemStopped(f"the system has stopped: {self.stop_reason or 'shut down'}")
                    ),
                ),
            )
            return
        if not self.registry.knows(msg.path):
            self.send(
                sender,
                GatewayReply(
                    msg.id, ErrorReply.of(UnknownPath(f"unknown actor path {msg.path!r}", msg.path))
                ),
            )
            return
        ident = msg.id

        def answer(value: Any) -> None:
            self.gateway_calls.pop(ident, None)
            self.send(sender, GatewayReply(ident, value))

        # no timer here: the System times the ask out itself and sends GatewayCancel
        self.gateway_calls[ident] = self._sw_call(
            msg.path, msg.message, None, answer, lambda error: answer(ErrorReply.of(error))
        )

    def on_gateway_cancel(self, msg: GatewayCancel, sender: Any) -> None:
        request_id = self.gateway_calls.pop(msg.id, None)
        if request_id is not None:
            self._sw_pending.pop(request_id, None)

    def on_gateway_tell(self, msg: GatewayTell, sender: Any) -> None:
        if self.registry.knows(msg.path) and self.phase not in ("stopping", "stopped"):
            self._sw_send_path(msg.path, msg.message)

    def on_query(self, msg: GatewayQuery, sender: Any) -> None:
        what = msg.what
        if what == "status":
            value: Any = (self.registry.status(self.tree), self.phase, self.stop_reason)
        elif what == "events":
            since = int(msg.arg or 0)
            value = tuple(e for e in self.events if e.seq > since)
        elif what == "dead_letters":
            value = tuple(self.dead)
        elif what == "final_report":
            value = self.final_report
        elif what == "redeliver":
            self.redeliver(msg, sender)
            return
        elif what == "recover":
            self.begin_recovery(msg.arg, sender, msg.id)
            return
        elif what == "shutdown":
            self.begin_shutdown(sender, msg.id)
            return
        else:
            value = ErrorReply("StalwartError", f"unknown query {what!r}")
        self.send(sender, GatewayReply(msg.id, value))

    def redeliver(self, msg: GatewayQuery, sender: Any) -> None:
        ident, timeout = msg.arg
        letter = next((d for d in self.dead if d.id == ident), None)
        if letter is None:
            self.send(
                sender,
                GatewayReply(
                    msg.id,
                    ErrorReply(
                        "StalwartError", f"no dead letter #{ident} (kept: {len(self.dead)})"
                    ),
                ),
            )
            return
        self.dead.remove(letter)
        self.record("redeliver", letter.path, detail=f"dead letter #{ident}")
        self.on_gateway_ask(GatewayAsk(msg.id, letter.path, letter.message, timeout), sender)

    # -- requested recoveries -----------------------------------------------------------------
    def on_recovery_request(self, msg: RecoveryRequest, sender: Any) -> None:
        self.begin_recovery(msg, sender, None)

    def begin_recovery(self, req: RecoveryRequest, reply_to: Any, gateway_id: int | None) -> None:
        self._recovery_ids += 1
        rid = self._recovery_ids
        self.recoveries[rid] = (reply_to, gateway_id, req, time.monotonic())
        self.record("recovery-request", req.target, level=req.level, detail=req.reason)
        assert self.tree is not None
        if self.phase in ("stopping", "stopped"):
            self.finish_recovery(rid, False, "the system has stopped")
        elif req.level == 5 or req.target == self.tree.name:
            if req.level <= 2:
                self.finish_recovery(rid, True, "a supervisor has no hooks to run")
            else:
                self.tree_waiters.append(rid)
                self.system_measures(f"requested: {req.reason or 'level 5'}", counted=False)
        elif not self.registry.knows(req.target) or self.registry.is_group(req.target):
            hint = (
                " (a replica group: name one replica)" if self.registry.is_group(req.target) else ""
            )
            self.finish_recovery(rid, False, f"unknown actor path {req.target!r}{hint}")
        else:
            parent = self.registry.address_of(req.target.rsplit("/", 1)[0])
            if parent is None:
                self.finish_recovery(rid, False, f"the supervisor of {req.target} is not running")
            else:
                self.send(parent, PerformRecovery(rid, req.target, req.level, req.reason))

    def on_recovery_done(self, msg: RecoveryDone, sender: Any) -> None:
        self.finish_recovery(msg.request_id, msg.ok, msg.detail)

    def finish_recovery(self, rid: int, ok: bool, detail: str) -> None:
        entry = self.recoveries.pop(rid, None)
        if entry is None:
            return
        reply_to, gateway_id, req, started = entry
        result = RecoveryResult(
            req.target, req.level, ok, detail, 1000 * (time.monotonic() - started)
        )
        self.record(
            "recovery-result",
            req.target,
            level=req.level,
            detail=detail,
            duration_ms=result.duration_ms,
        )
        if gateway_id is None:
            self.send(reply_to, result)
        else:
            self.send(reply_to, GatewayReply(gateway_id, result))

    # -- level 5 ---------------------------------------------------------------------------------
    def on_escalate(self, msg: Escalate, sender: Any) -> None:
        self.record(
            "level5",
            msg.path,
            level=5,
            detail=msg.reason,
            category=msg.info.category if msg.info else "",
            fingerprint=msg.info.fingerprint if msg.info else "",
        )
        self.system_measures(msg.reason)

    def system_measures(self, reason: str, counted: bool = True) -> None:
        """Level 5: restart the whole tree, or stop in order once the root's intensity is spent."""
        if self.phase in ("restarting", "stopping", "stopped"):
            return
        assert self.intensity is not None
        if counted and not self.intensity.try_restart():
            self.stop_reason = f"level 5: {reason}"
            self.begin_stop(final=True)
            return
        self.phase = "restarting"
        self.record("restart-tree", self.tree.name if self.tree else "", level=5, detail=reason)
        self.send(self.top, Retire(False))
        self.after(
            self.options.shutdown_timeout_s,
            (WAKE, "tree-stop-timeout", self.top_incarnation),
            key="tree-stop",
        )

    def on_retired(self, msg: Retired, sender: Any) -> None:
        if (
            self.tree is None
            or msg.path != self.tree.name
            or msg.incarnation != self.top_incarnation
        ):
            return
        self.checkpoints = dict(msg.final_state or {})
        self.tree_down()

    def tree_down(self) -> None:
        self.cancel("tree-stop")
        self.top = None
        if self.phase == "restarting":
            self.start_tree()
        elif self.phase == "stopping":
            self.stopped()

    def on_child_exited(self, msg: ChildActorExited, sender: Any) -> None:
        if self.top is not None and msg.childAddress == self.top:
            self.record(
                "crash",
                self.tree.name if self.tree else "",
                level=5,
                detail="the top supervisor's process exited",
            )
            if self.phase in ("restarting", "stopping"):
                self.tree_down()
            else:
                self.kill_subtree(self.tree.name if self.tree else "")
                self.top = None
                self.system_measures("the top supervisor's process exited")
                if self.phase == "restarting" and self.top is None:
                    self.start_tree()

    # -- stopping --------------------------------------------------------------------------------
    def begin_shutdown(self, asker: Any, ident: int) -> None:
        if self.phase == "stopped":
            self.send(asker, GatewayReply(ident, self.final_report))
            return
        self.shutdown_replies.append((asker, ident))
        if self.phase != "stopping":
            self.begin_stop(final=False)

    def begin_stop(self, final: bool) -> None:
        self.phase = "stopping"
        self._final = final
        if self.top is None:
            self.stopped()
            return
        self.send(self.top, Retire(False))
        self.after(
            self.options.shutdown_timeout_s,
            (WAKE, "tree-stop-timeout", self.top_incarnation),
            key="tree-stop",
        )

    def stopped(self) -> None:
        self.phase = "stopped"
        self.registry.all_stopped()
        if getattr(self, "_final", False):
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

    # -- processes ---------------------------------------------------------------------------------
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
        elif kind == "watchdog":
            if self.starter_pid and not psutil.pid_exists(self.starter_pid):
                self.actorSystemShutdown()  # our owner is gone: leave nothing behind
                return
            self.after(1.0, payload)
        elif kind == "tree-stop-timeout" and payload[2] == self.top_incarnation:
            if self.phase in ("restarting", "stopping") and self.top is not None:
                self.record(
                    "stop-timeout",
                    self.tree.name if self.tree else "",
                    detail="the tree did not stop in time; its processes were killed",
                )
                self.kill_subtree(self.tree.name if self.tree else "")
                self.tree_down()
        elif (
            kind == "tree-start-timeout"
            and payload[2] == self.top_incarnation
            and self.phase in ("booting", "restarting")
        ):
            self.stop_reason = "the tree did not start within start_timeout_s"
            self.phase = "running"
            self.system_measures(self.stop_reason)

    def on_reply(self, msg: Reply, sender: Any) -> None:
        self._sw_on_reply(msg)

    def on_resolved(self, msg: Resolved, sender: Any) -> None:
        self._sw_on_resolved(msg)

    def on_address_update(self, msg: AddressUpdate, sender: Any) -> None:
        self._sw_on_address_update(msg)

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
    Request: RootActor.on_request,
}
