"""The root actor: the registry of paths, the two subtrees, and level 5.

The root is the one actor every other knows. It holds the live registry (who
runs where, in what state), resolves paths and pushes address changes to
senders, and starts, restarts and stops its two children, the system services
and the user's tree, as :func:`._kernel.decide_root` decides (level 5 included).
Its outward half (the ``System``'s questions) is in :mod:`._gateway`.

It fails safe: an exception while it handles a message is recorded, and the
system stops in order with a final report rather than go on with half-updated
state. A message it has no use for becomes a dead letter.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import msgspec
import psutil

from ..actors._coalesce import BUNDLED, Coalescing
from ..actors._placement import node_name
from ..actors._runtime import (
    ActorExitRequest,
    ActorSystemMessage,
    ChildActorExited,
    DeadEnvelope,
    RuntimeActor,
    WakeupMessage,
    create_child,
    kill_system_process,
    tune_own_process,
)
from ..actors._state_file import drop_state
from ..actors._timers import TICK, WAKE
from ..actors.errors import SystemStopped
from ..actors.messages import (
    Acked,
    AddressUpdate,
    Batch,
    ErrorReply,
    RecoveryRequest,
    Release,
    Reply,
    Request,
    Resolve,
    Resolved,
    Retire,
    Retired,
    SendAgain,
    Started,
    StoppedNormally,
    Stray,
    Undeliverable,
)
from ._gateway import CORRELATOR, TELEMETRY, Gateway
from ._in_order import GAP_S, InOrderLines, malformed
from ._incidents import Incidents
from ._kernel import root as rk
from ._passivation import ROOT_HANDLERS
from ._plan import pool_paths
from ._registry import Registry
from ._routing import Routing
from ._services import system_services
from ._status import Reads
from ._stored import StoredStates
from .messages import (
    Attempt,
    Boot,
    BreakerHealth,
    BreakerNote,
    ChildrenGone,
    ChildrenNow,
    ChildrenPlanned,
    CorrelationNote,
    DeadLetterNote,
    DurableCheckpoint,
    Escalate,
    EventNote,
    FloorsQuery,
    GatewayAsk,
    GatewayCancel,
    GatewayQuery,
    GatewayReply,
    GatewayTell,
    InOrder,
    KillSubtree,
    LearnedState,
    MemoryEvent,
    NodesChanged,
    RecoveryDone,
    Registered,
    RootCauseFound,
    ShedLoad,
    StateNote,
    StoredGone,
    SupervisorInit,
    Unavailable,
)
from .queries import LearnedQuery
from .spec import Supervisor

log = logging.getLogger("stalwart.root")
ROOTS: dict[int, RootActor] = {}  # in-process systems' roots, by clock id (read by System)


class RootActor(Incidents, Gateway, Routing, Coalescing, RuntimeActor):  # type: ignore[misc]
    """The top of every Stalwart system (internal; users talk to it through ``System``)."""

    _sw_bundled = BUNDLED | {GatewayReply}  # the System unpacks batches too

    def __init__(self) -> None:
        super().__init__()
        self._sw_init_caller()
        self.init_gateway()
        self.init_incidents()
        self.lock = threading.RLock()  # in-process, System reads the registry under it
        self.correlator_on = False
        self.registry = Registry()
        self.reads = Reads()  # reads of the tree kept while the registry stays as it was
        self.tree: Supervisor | None = None
        self.pools: set[str] = set()  # the paths of the Pools (not below another Pool)
        self.added_pools: set[str] = set()  # ... of those added at run time
        self.gone_pools: set[str] = set()  # the tree's own Pools deleted since
        self.options: Any = None
        self.specs: dict[str, Supervisor] = {}
        self.addresses: dict[str, Any] = {}  # subtree -> its supervisor's address
        self.retiring: set[str] = set()  # subtrees asked to stop
        self.kernel: rk.RootState | None = None
        self.telemetry_on = False
        self.learned: LearnedState | None = None
        self.checkpoints: dict[str, Any] = {}
        self.stored = StoredStates()  # durable checkpoints of paths not started in this run
        self.boot_reply: tuple[Any, int] | None = None
        self.shutdown_replies: list[tuple[Any, int]] = []
        self.final_report: dict[str, Any] | None = None
        self.starter_pid = 0
        self.state_dir = ""  # the actors' checkpoint files (multi-process bases)
        self.tracing = ""  # where the tree's spans go ("": OpenTelemetry off)
        self.clock_id = 0
        self.cluster_nodes: dict[str, dict[str, Any]] = {}
        self.cluster_lost: tuple[str, ...] = ()
        self.fenced: dict[str, list[Any]] = {}  # lost node -> addresses that ran there
        self.tree_waiting: rk.StartSubtree | None = None  # (its members are not up yet)
        self.nodes_waited = False  # the tree waits for no member any more
        self.in_order = InOrderLines()  # supervisors' numbered mail, put back in order

    @property
    def phase(self) -> str:
        return self.kernel.phase if self.kernel is not None else "idle"

    @property
    def stop_reason(self) -> str:
        return self.kernel.stop_reason if self.kernel is not None else ""

    # -- plumbing ---------------------------------------------------------------------------
    def receiveMessage(self, msg: Any, sender: Any) -> None:
        with self.lock:
            self.reads.changed()  # (the registry changes only while the root handles mail)
            handler = _HANDLERS.get(type(msg))
            if handler is None:
                self.unhandled(msg, sender)
                return
            turn = self._sw_gather()  # its envelopes leave together at the end
            try:
                handler(self, msg, sender)
            except Exception as exc:
                log.exception("root failed handling %s", type(msg).__name__)
                self.fault(f"{type(exc).__name__}: {exc} (handling {type(msg).__name__})")
            finally:
                if turn:
                    self._sw_scatter()

    def unhandled(self, msg: Any, sender: Any) -> None:
        """A message the root has no use for becomes a dead letter (runtime notices aside)."""
        if isinstance(msg, (ActorSystemMessage, ErrorReply)):
            return  # Thespian's notices; errors answering tells the gateway sent for System.tell
        # most often an actor's answer to a System.tell, which nobody waits for: kept as a
        # dead letter to inspect, but not an error of the tree (no alert, no correlation)
        path = self.tree.name if self.tree is not None else ""
        error = f"the root has no handler for {type(msg).__name__} (nobody waits for it)"
        self.dead_letter(path, msg, error, kind="unhandled")

    def fault(self, reason: str) -> None:
        if self.kernel is None or self.phase == "stopped":
            return
        try:
            self.decide(rk.RootFault(reason, now=time.monotonic()))
        except Exception:  # nothing more can be trusted: leave nothing behind
            log.exception("root failed stopping after a fault")
            self.actorSystemShutdown()

    def decide(self, event: rk.RootEvent) -> None:
        assert self.kernel is not None
        _, commands = rk.decide_root(self.kernel, event)
        for command in commands:
            _COMMANDS[type(command)](self, command)

    def on_batch(self, msg: Batch, sender: Any) -> None:
        self.handle_all(msg.items, sender)

    def handle_all(self, items: tuple[Any, ...], sender: Any) -> None:
        for item in items:
            handler = _HANDLERS.get(type(item))
            if handler is None:
                self.unhandled(item, sender)
            else:
                handler(self, item, sender)

    def on_in_order(self, msg: InOrder, sender: Any) -> None:
        """A supervisor's numbered envelope: handled once those sent before it have been."""
        wrong = malformed(msg)
        if wrong:  # (what arrives is unpickled as sent: its fields are not checked)
            path = self.tree.name if self.tree is not None else ""
            self.dead_letter(path, msg, f"a malformed InOrder envelope: {wrong}", kind="unhandled")
            return
        ready, began = self.in_order.arrive(msg, sender, time.monotonic())
        if began:  # (armed first: a handler that fails below must not leave a line held)
            self.after(GAP_S, (WAKE, "in-order", msg.origin), key=("in-order", msg.origin))
        for items, by in ready:
            self.handle_all(items, by)

    def on_in_order_timer(self, origin: str) -> None:
        ready, left = self.in_order.overdue(origin, time.monotonic())
        if left:
            self.after(left, (WAKE, "in-order", origin), key=("in-order", origin))
        elif ready:
            log.warning("%s: handling its mail without an envelope lost on the way", origin)
        for items, by in ready:
            self.handle_all(items, by)

    def release_mail_under(self, path: str) -> None:
        """The supervisor at ``path`` is gone: what it and those under it sent before they
        went, and the root still held for a missing envelope, is handled first."""
        for items, by in self.in_order.release_under(path):
            self.handle_all(items, by)

    def forget_paths(self, paths: Any, reason: str, drop_checkpoints: bool = False) -> None:
        paths = list(paths)
        for path in paths:
            self.release_mail_under(path)
        super().forget_paths(paths, reason, drop_checkpoints)

    @property
    def top(self) -> Any:
        """The user's tree's supervisor (for tests and the gateway)."""
        return self.addresses.get(rk.TREE)

    # -- boot ---------------------------------------------------------------------------------
    def on_boot(self, msg: Boot, sender: Any) -> None:
        self.tree, self.options = msg.tree, msg.options
        self.starter_pid, self.clock_id = msg.starter_pid, msg.clock_id
        self.state_dir = msg.state_dir
        self.tracing = msg.spans
        if msg.spans:  # OpenTelemetry: incidents and attempts become spans here
            from ..actors._tracing import tracing_for
            from ._spans import IncidentSpans

            self.spans = IncidentSpans(tracing_for(msg.spans))
        if msg.clock_id:
            ROOTS[msg.clock_id] = self
        self._sw_use_clock(msg.clock_id)
        self._sw_hold_limit = self.options.hold_limit
        self.events = type(self.events)(maxlen=self.options.event_limit)
        self.dead = type(self.dead)(maxlen=self.options.dead_letter_limit)
        self.kernel = rk.RootState(self.options.root_max_restarts, self.options.root_within_s)
        self.specs[rk.TREE] = self.tree
        self.pools = set(pool_paths(self.tree))
        self.registry.plan(self.tree)
        services = system_services(self.options, self.tree)
        if services is not None:
            self.specs[rk.SERVICES] = services
            self.registry.plan(services)
            self.telemetry_on = self.registry.knows(TELEMETRY)
            self.correlator_on = self.registry.knows(CORRELATOR)
        settings = self.options.correlator or {}
        self.incident_quiet_s = float(settings.get("incident_quiet_s", self.incident_quiet_s))
        self.incident_max_s = float(settings.get("incident_max_s", self.incident_max_s))
        self.boot_reply = (sender, msg.id)
        self.handleDeadLetters(True)
        if self.options.base != "simple":  # (in a process of its own)
            tune_own_process()
            self.after(1.0, (WAKE, "watchdog"))
        self.decide(rk.Boot(services=services is not None, now=time.monotonic()))

    def subtree_of(self, path: str, sender: Any = None) -> str | None:
        """Which subtree ``path`` is the top of (and, with ``sender``, only its current one)."""
        for name, spec in self.specs.items():
            if spec.name == path and (sender is None or sender == self.addresses.get(name)):
                return name
        return None

    def do_start_subtree(self, c: rk.StartSubtree) -> None:
        if c.subtree == rk.TREE and self.waits_for_nodes(c):
            return
        if c.subtree == rk.TREE and self.telemetry_on and self.learned is None:
            # what the store learned in earlier runs, before the tree's first start
            self._sw_call(
                TELEMETRY,
                LearnedQuery(),
                30.0,
                lambda value: self.on_learned(value, c),
                lambda error: self.on_learned(None, c),
            )
            return
        spec = self.specs[c.subtree]
        address = create_child(self, _supervisor_class(), not self.clock_id)
        self.addresses[c.subtree] = address
        tree = c.subtree == rk.TREE
        self.send(
            address,
            SupervisorInit(
                spec.name,
                spec,
                self.myAddress,
                self.myAddress,
                c.incarnation,
                dict(self.checkpoints) if tree else {},
                self.clock_id,
                self.learned if tree else None,
                {
                    "store": self.options.store,
                    "nodes": self.cluster_nodes,
                    "lost": self.cluster_lost,
                    "hold_limit": self.options.hold_limit,
                    "state_dir": self.state_dir,
                    "queues": os.path.join(self.options.state_dir or ".stalwart", "queues"),
                    "tracing": self.tracing if tree else "",  # (the services: no spans)
                    # (its supervisors ask for what the store kept below them)
                    "stored": bool(self.stored) if tree else False,
                },
                self.registry.floors(spec.name),
            ),
        )
        timer = (WAKE, "subtree-timeout", c.subtree, c.incarnation, "start")
        self.after(self.options.start_timeout_s, timer, key=("start", c.subtree))

    def waits_for_nodes(self, start: rk.StartSubtree) -> bool:
        """On a cluster's leader, the tree's first start waits (up to ``wait_s``) until the
        members ``start()`` saw join are up: the node monitor counts one in at its first
        heartbeat, and a child placed before then would wait for a node that is there."""
        if start.incarnation > 1 or self.nodes_waited or self.expected_nodes_up():
            return False
        if self.tree_waiting is None:
            wait_s = float((self.options.cluster or {}).get("wait_s", 30.0))
            self.after(wait_s, (WAKE, "nodes-waited"))
        self.tree_waiting = start
        return True

    def expected_nodes_up(self) -> bool:
        expected = (self.options.cluster or {}).get("expect_nodes", ())
        return set(expected) <= set(self.cluster_nodes)

    def start_waiting_tree(self, give_up: bool = False) -> None:
        """The expected members are up (or ``wait_s`` is over): the tree starts."""
        start = self.tree_waiting
        if not give_up and (start is None or not self.expected_nodes_up()):
            return
        self.tree_waiting, self.nodes_waited = None, True
        if start is None or self.kernel is None:
            return
        if self.kernel.incarnation[rk.TREE] == start.incarnation:
            self.do_start_subtree(start)

    def on_learned(self, learned: Any, start: rk.StartSubtree) -> None:
        """What the store learned in earlier runs: selector state, timeouts, durable checkpoints."""
        self.learned = learned if isinstance(learned, LearnedState) else LearnedState()
        for path, state in self.learned.checkpoints.items():
            self.checkpoints.setdefault(path, (state, ()))
        # (the declared paths take theirs as the tree starts; the others when first started)
        known = self.registry.knows
        later = {p: s for p, s in self.learned.checkpoints.items() if not known(p)}
        self.stored = StoredStates(later)
        if self.kernel is not None and self.kernel.incarnation[rk.TREE] == start.incarnation:
            self.do_start_subtree(start)

    def on_started(self, msg: Started, sender: Any) -> None:
        subtree = self.subtree_of(msg.path, sender)
        if subtree is None or self.kernel is None:
            return
        self.cancel(("start", subtree))
        self.registry.register(
            Registered(
                msg.path,
                sender,
                msg.pid,
                msg.incarnation,
                "supervisor",
                actor_class="Supervisor",
                node=msg.node,
            )
        )
        self.push(msg.path)
        self.decide(rk.SubtreeUp(subtree, msg.incarnation, now=time.monotonic()))
        self.answer_when_all_registered()

    def answer_when_all_registered(self) -> None:
        """Once the tree is up and every path in it has registered (supervisors register
        their children themselves, so those may still be on their way): the boot and the
        requested whole-tree restarts are done."""
        if self.phase != "running" or not (self.boot_reply or self.tree_waiters):
            return
        if not self.registry.settled():
            return
        if self.boot_reply:
            asker, ident = self.boot_reply
            self.boot_reply = None
            paths = self.registry.known_paths()
            self.send(asker, GatewayReply(ident, ("ok", paths, os.getsid(0))))
        for rid in self.tree_waiters:
            self.finish_recovery(rid, True, "the whole tree was restarted")
        self.tree_waiters = []

    def do_retire_subtree(self, c: rk.RetireSubtree) -> None:
        if c.subtree == rk.SERVICES:
            self.flush_outbox()  # what the services were sent reaches them before they stop
        self.cancel(("start", c.subtree))
        self.retiring.add(c.subtree)
        address = self.addresses.get(c.subtree)
        if address is not None:
            self.send(address, Retire(False))
        timer = (WAKE, "subtree-timeout", c.subtree, c.incarnation, "stop")
        self.after(self.options.shutdown_timeout_s, timer, key=("stop", c.subtree))

    def on_retired(self, msg: Retired, sender: Any) -> None:
        if msg.leaving:  # what it sent is here: it may exit (see SupervisorActor.leave)
            self.send(sender, Release())
        subtree = self.subtree_of(msg.path, sender)
        if subtree is None or self.kernel is None:
            return
        if subtree == rk.TREE:
            self.checkpoints = dict(msg.final_state or {})
        self.subtree_gone(subtree)

    def subtree_gone(self, subtree: str) -> None:
        assert self.kernel is not None
        self.cancel(("stop", subtree))
        self.addresses.pop(subtree, None)
        self.retiring.discard(subtree)
        self.decide(rk.SubtreeDown(subtree, self.kernel.incarnation[subtree], now=time.monotonic()))

    def on_stopped_normally(self, msg: StoppedNormally, sender: Any) -> None:
        """The tree's top supervisor shut itself down (``auto_shutdown``): the system stops."""
        if self.kernel is None or self.subtree_of(msg.path, sender) != rk.TREE:
            return
        reason = f"{msg.path} shut itself down (auto_shutdown: its significant children ended)"
        self.decide(rk.TreeShutDown(reason, now=time.monotonic()))

    def on_escalate(self, msg: Escalate, sender: Any) -> None:
        subtree = self.subtree_of(msg.path, sender)
        if subtree is None or self.kernel is None:
            return
        inc = self.kernel.incarnation[subtree]
        self.decide(rk.SubtreeGaveUp(subtree, inc, msg.reason, now=time.monotonic()))

    def on_child_exited(self, msg: ChildActorExited, sender: Any) -> None:
        if self.kernel is None:
            return
        for subtree, address in list(self.addresses.items()):
            if address != msg.childAddress:
                continue
            inc = self.kernel.incarnation[subtree]
            self.release_mail_under(self.specs[subtree].name)  # (what it sent comes first)
            if subtree in self.retiring:  # it stopped when asked (or was killed for not)
                self.subtree_gone(subtree)
            else:
                self.addresses.pop(subtree, None)
                reason = f"{self.specs[subtree].name}'s process exited"
                now = time.monotonic()
                self.decide(rk.SubtreeGaveUp(subtree, inc, reason, crashed=True, now=now))

    def do_kill_subtree(self, c: rk.KillSubtree) -> None:
        """Its supervisor is gone (or did not stop in time): the kernel counts it down.

        What the top supervisor had taken is not sent to the next tree's: its death is a
        level 5, counted against the root's intensity, so a request that killed it would
        stop the whole system the second time.
        """
        self.cancel(("stop", c.subtree))
        self.retiring.discard(c.subtree)
        address = self.addresses.pop(c.subtree, None)
        if address is not None:
            self.send(address, ActorExitRequest())
        self.kill_subtree(self.specs[c.subtree].name)

    def do_record(self, c: rk.Record) -> None:
        path = (
            self.specs[c.subtree].name
            if c.subtree in self.specs
            else (self.tree.name if self.tree else "")
        )
        self.record(c.kind, path, level=c.level, detail=c.detail[:300])

    def do_stopped(self, c: rk.Stopped) -> None:
        self.registry.all_stopped()
        if self.spans is not None:
            self.spans.close_all()
        if c.final:
            self.write_final_report()
            if self.state_dir:  # nothing will restart from these checkpoints any more
                drop_state(self.state_dir)
        for asker, ident in self.shutdown_replies:
            self.send(asker, GatewayReply(ident, self.final_report))
        self.shutdown_replies = []
        if self.boot_reply:
            asker, ident = self.boot_reply
            self.boot_reply = None
            self.send(asker, GatewayReply(ident, ("stopped", c.reason)))
        for rid in list(self.recoveries):
            self.finish_recovery(rid, False, "the system stopped")
        for request_id in list(self._sw_pending):
            self._sw_finish(
                request_id, SystemStopped(f"the system has stopped: {c.reason or 'shut down'}")
            )

    # -- stopping --------------------------------------------------------------------------------
    def begin_shutdown(self, asker: Any, ident: int) -> None:
        if self.phase == "stopped":
            self.send(asker, GatewayReply(ident, self.final_report))
            return
        self.shutdown_replies.append((asker, ident))
        self.flush_outbox()
        self.decide(rk.ShutdownAsked(now=time.monotonic()))

    def system_measures(self, reason: str) -> None:
        """A requested level 5: restart the whole tree (whatever the intensity says)."""
        self.decide(rk.TreeRestartAsked(reason, now=time.monotonic()))

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
            path = os.path.join(self.options.state_dir or "", path)  # (an absolute path stays)
            try:
                os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
                with open(path, "w") as fh:
                    json.dump(self.final_report, fh, indent=2, default=repr)
                self.final_report["written_to"] = os.path.abspath(path)
            except OSError as exc:
                self.final_report["write_error"] = str(exc)

    # -- processes and timers ----------------------------------------------------------------------
    def on_kill_subtree(self, msg: KillSubtree, sender: Any) -> None:
        self.kill_subtree(msg.path)

    def kill_subtree(self, path: str) -> None:
        """The supervisor at ``path`` died: its processes go, and requested recoveries it or a
        supervisor under it was performing are answered (they died with it)."""
        self.release_mail_under(path)
        self.abandon_recoveries_under(path, f"{path} died while it was being performed")
        for pid, started in self.registry.pids_under(path, node_name()):
            kill_system_process(pid, started)  # (its pid may be another process's by now)
        for dropped in self.registry.drop_under(path):
            self.push(dropped)  # senders hold what they send until the new instances run

    def on_wakeup(self, msg: WakeupMessage, sender: Any) -> None:
        if msg.payload != TICK:
            return
        for payload in self._sw_tick():
            self.on_timer(payload)

    def on_timer(self, payload: Any) -> None:
        kind = payload[1]
        if self._sw_caller_timer(kind, payload[-1]):
            pass
        elif kind == "incident":
            self.on_incident_timer(payload[2])
        elif kind == "in-order":
            self.on_in_order_timer(payload[2])
        elif kind == "nodes-waited":
            self.start_waiting_tree(give_up=True)
        elif kind == "flush-outbox":
            self.flush_outbox()
        elif kind == "watchdog":
            if self.starter_pid and not psutil.pid_exists(self.starter_pid):
                self.actorSystemShutdown()  # our owner is gone: leave nothing behind
                return
            self.after(1.0, payload)
        elif kind == "subtree-timeout":
            _, _, subtree, incarnation, stage = payload
            now = time.monotonic()
            self.decide(rk.SubtreeTimedOut(subtree, incarnation, stage, now=now))


def _supervisor_class() -> type:
    from ._supervisor import SupervisorActor

    return SupervisorActor


_HANDLERS: dict[type, Any] = {
    Boot: RootActor.on_boot,
    Started: RootActor.on_started,
    Registered: RootActor.on_registered,
    FloorsQuery: RootActor.on_floors_query,
    Batch: RootActor.on_batch,
    InOrder: RootActor.on_in_order,
    Stray: RootActor.on_stray,
    Undeliverable: RootActor.on_undeliverable,
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
    Acked: RootActor.on_acked,
    SendAgain: RootActor.on_send_again,
    BreakerNote: RootActor.on_breaker_note,
    BreakerHealth: RootActor.on_breaker_health,
    RootCauseFound: RootActor.on_root_cause,
    CorrelationNote: RootActor.on_correlation_note,
    Request: RootActor.on_request,
    Attempt: RootActor.on_attempt,
    DurableCheckpoint: RootActor.on_durable_checkpoint,
    MemoryEvent: RootActor.on_memory_event,
    ShedLoad: RootActor.on_shed_load,
    NodesChanged: RootActor.on_nodes_changed,
    StoppedNormally: RootActor.on_stopped_normally,
    ChildrenPlanned: RootActor.on_children_planned,
    ChildrenGone: RootActor.on_children_gone,
    StoredGone: RootActor.on_stored_gone,
    ChildrenNow: RootActor.on_children_now,
    **ROOT_HANDLERS,
}

_COMMANDS: dict[type, Any] = {
    rk.StartSubtree: RootActor.do_start_subtree,
    rk.RetireSubtree: RootActor.do_retire_subtree,
    rk.KillSubtree: RootActor.do_kill_subtree,
    rk.Record: RootActor.do_record,
    rk.Stopped: RootActor.do_stopped,
}
