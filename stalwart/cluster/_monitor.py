"""The node monitor (``_system/nodes`` on the leader) and the agents it puts on each node.

Thespian tells the monitor when a node registers with the leader or leaves in
order; it notices a node that simply died only after missed re-registrations
(about 22 minutes with its defaults). So the monitor places a small agent on
every node that joins, the agent sends a heartbeat every ``heartbeat_s``, and a
phi-accrual detector per node turns silence into suspicion. Past the threshold
the node is declared lost and the root moves its actors elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from datetime import timedelta
from typing import Any

import msgspec
import psutil

from ..actors import ManagedActor
from ..actors._placement import NODE, satisfies, set_fenced
from ..actors._runtime import (
    ACTOR_PROCESS_PREFIX,
    ActorExitRequest,
    ActorSystemConventionUpdate,
    PoisonMessage,
    RuntimeActor,
    WakeupMessage,
)
from ..supervisors.messages import NodesChanged
from ._phi import PhiAccrual
from .messages import (
    ClusterSettings,
    Fenced,
    Heartbeat,
    HeartbeatAck,
    NodesQuery,
    NodeStatus,
    Watch,
)


class NodeAgent(RuntimeActor):  # type: ignore[misc]
    """Runs on one node: heartbeats to the monitor until told to stop.

    It also fences the node: when the monitor has not answered for ``fence_s``
    (the leader is unreachable, or gone), it SIGKILLs every actor process of its
    node and leaves. The leader waits longer than that before it places those
    actors elsewhere, so none runs in two places.
    """

    watch: Watch | None = None
    fenced_why = ""  # set once it has fenced its node: it stays fenced until told to leave

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict[str, Any], requirements: Any) -> bool:
        return satisfies(capabilities, requirements)

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, Watch):  # its first, or from a monitor that restarted
            first = self.watch is None
            self.watch = msg
            self.heard = self.next_beat = time.monotonic()
            if first:  # the leader (again) counts this node in: it may serve
                set_fenced(False)
                self.seq = 0
                self._tick()
        elif isinstance(msg, HeartbeatAck):
            self.heard = time.monotonic()
        elif isinstance(msg, WakeupMessage) and self.watch is not None:
            self._tick()
        elif isinstance(msg, PoisonMessage):  # the monitor is gone: so is this agent's purpose
            self.send(self.myAddress, ActorExitRequest())

    def _tick(self) -> None:
        watch = self.watch
        assert watch is not None
        now = time.monotonic()
        silence = now - self.heard
        if not self.fenced_why and watch.fence_s and silence > watch.fence_s:
            self._fence(watch, silence)
        if self.fenced_why:  # nothing runs here, and the leader hears so once it can
            stop_actor_processes()
            self.send(watch.monitor, Fenced(watch.node, self.fenced_why))
        elif now >= self.next_beat:
            self.seq += 1
            self.send(watch.monitor, Heartbeat(watch.node, self.seq))
            self.next_beat = now + watch.interval_s
        self.wakeupAfter(timedelta(seconds=watch.interval_s / 4))

    def _fence(self, watch: Watch, silence: float) -> None:
        set_fenced(True)  # no actor starts here from now on
        stopped = stop_actor_processes()
        self.fenced_why = f"no answer from the leader for {silence:.1f}s"
        print(
            f"node {watch.node}: fenced at {time.time():.3f}: {self.fenced_why}; stopped"
            f" {len(stopped)} actor processes",
            file=sys.stderr,
            flush=True,
        )


def stop_actor_processes() -> list[int]:
    """SIGKILL every actor process of this process's session (its node), with the processes
    they started, and wait for them."""
    me, session = os.getpid(), os.getsid(0)
    actors, doomed = [], []
    for proc in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error, OSError):
            name = proc.info["name"] or ""
            mine = proc.pid != me and name.startswith(ACTOR_PROCESS_PREFIX)
            if mine and os.getsid(proc.pid) == session:
                actors.append(proc)
                doomed += [proc, *proc.children(recursive=True)]
    for proc in doomed:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(doomed, timeout=1)
    return [p.pid for p in actors]


class _Node:
    def __init__(self, name: str, caps: dict[str, Any], admin: Any, detector: PhiAccrual) -> None:
        self.name, self.caps, self.admin, self.detector = name, caps, admin, detector
        self.state = "joining"
        self.agent: Any = None
        self.joined = time.time()
        self.lost_at = 0.0
        self.heartbeats = 0
        self.detail = ""


class NodeMonitor(ManagedActor):
    """Keeps the table of nodes; tells the root when one joins, is lost or leaves."""

    # on_stop stops the agents of the nodes still here; waiting for the agents of lost
    # nodes too would hold this actor's exit up until its supervisor's stop timeout
    _sw_exit_children = False

    def on_start(self) -> None:
        self.settings = ClusterSettings(**self.options["settings"])
        me = self.options["node"]
        self.me = me
        self.table: dict[str, _Node] = {}
        leader = _Node(me, dict(self.options["capabilities"]), None, self._detector())
        leader.state = "up"
        self.table[me] = leader
        for name in (self.restored_state or {}).get("lost", ()):
            node = _Node(name, {}, None, self._detector())
            node.state, node.detail = "lost", "lost before the monitor restarted"
            self.table[name] = node
        for name, (agent, admin, caps) in (self.restored_state or {}).get("agents", {}).items():
            # the agents an earlier monitor placed watch for this one now (else they would
            # hear nothing and fence their nodes)
            node = _Node(name, dict(caps), admin, self._detector())
            node.state, node.agent = "up", agent
            self.table[name] = node
            self.send(agent, self._watch(name))
        self.notifyOnSystemRegistrationChanges(True)
        self.after(self.settings.heartbeat_s / 2, "check", key="check")

    def on_stop(self) -> None:
        """The agents of the nodes still here stop (a send to a lost node's agent would hold
        this actor's own exit up while the transport tries to reach it)."""
        for node in self.table.values():
            if node.agent is not None and node.state not in ("lost", "left"):
                self.send(node.agent, ActorExitRequest())

    def snapshot(self) -> Any:
        return {
            "lost": [n.name for n in self.table.values() if n.state in ("lost", "left")],
            "agents": {
                n.name: (n.agent, n.admin, n.caps)
                for n in self.table.values()
                if n.state == "up" and n.agent is not None
            },
        }

    def _watch(self, name: str) -> Watch:
        return Watch(self.myAddress, name, self.settings.heartbeat_s, self.settings.fence_s)

    def _detector(self) -> PhiAccrual:
        s = self.settings
        return PhiAccrual(
            s.phi_threshold,
            min_std_s=s.min_std_s,
            acceptable_pause_s=s.acceptable_pause_s,
            first_interval_s=s.heartbeat_s,
        )

    # -- Thespian's convention -----------------------------------------------------------
    def receiveMsg_ActorSystemConventionUpdate(
        self, msg: ActorSystemConventionUpdate, sender: Any
    ) -> None:
        name = (msg.remoteCapabilities or {}).get(NODE)
        if not name or name == self.me:
            return  # not a Stalwart node
        node = self.table.get(name)
        if not msg.remoteAdded:
            if node is not None and node.state in ("up", "joining"):
                self._down(node, "left", "it left the cluster in order")
            return
        if (
            node is not None
            and node.state in ("up", "joining")
            and node.admin == msg.remoteAdminAddress
        ):
            return  # a repeated registration
        self._admit(name, offered(msg.remoteCapabilities), msg.remoteAdminAddress)

    def _admit(self, name: str, caps: dict[str, Any], admin: Any) -> None:
        """Count ``name`` in (again): an agent of its own watches for the leader there; the
        node is up once its first heartbeat arrives."""
        node = _Node(name, caps, admin, self._detector())
        self.table[name] = node
        node.agent = self.createActor(NodeAgent, targetActorRequirements={NODE: name})
        self.send(node.agent, self._watch(name))

    def receiveMsg_Heartbeat(self, msg: Heartbeat, sender: Any) -> None:
        node = self.table.get(msg.node)
        if node is None or sender != node.agent:
            return  # an agent of an earlier incarnation of the node
        node.heartbeats += 1
        node.detector.heartbeat(time.monotonic())
        self.send(sender, HeartbeatAck(msg.seq))  # the agent fences its node without these
        if node.state == "joining":
            node.state, node.detail = "up", ""
            self._tell_root("node-joined", node, f"joined with {_caps(node.caps)}")

    def receiveMsg_Fenced(self, msg: Fenced, sender: Any) -> None:
        node = self.table.get(msg.node)
        if node is not None and node.state in ("up", "joining") and sender == node.agent:
            self._down(node, "lost", f"it fenced itself: {msg.detail}")
        elif node is None or node.agent != sender:  # an agent no monitor watches any more
            self.send(sender, ActorExitRequest())
            if node is not None and node.state == "lost":  # reachable again (a partition
                self._admit(node.name, node.caps, node.admin)  # healed): it rejoins

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if msg.payload != "check":
            return
        now = time.monotonic()
        wait_s = self.settings.lost_after_s()  # its actors have fenced themselves by then
        for node in list(self.table.values()):
            if node.state != "up" or node.name == self.me or node.detector.available(now):
                continue
            silence, phi = node.detector.silence(now), node.detector.phi(now)
            if silence >= wait_s:
                self._down(
                    node,
                    "lost",
                    f"no heartbeat for {silence:.1f}s (phi {min(phi, 99.9):.1f}"
                    f" > {self.settings.phi_threshold:g})",
                )
        self.after(self.settings.heartbeat_s / 2, "check", key="check")

    def receiveMsg_NodesQuery(self, msg: NodesQuery, sender: Any) -> None:
        now = time.monotonic()
        self.reply(
            sender,
            tuple(
                NodeStatus(
                    n.name,
                    n.state,
                    n.caps,
                    leader=n.name == self.me,
                    joined=n.joined,
                    lost_at=n.lost_at,
                    silence_s=0.0 if n.name == self.me else n.detector.silence(now),
                    phi=0.0 if n.name == self.me else min(n.detector.phi(now), 300.0),
                    heartbeats=n.heartbeats,
                    detail=n.detail,
                )
                for n in self.table.values()
            ),
        )

    def receiveMsg_PoisonMessage(self, msg: PoisonMessage, sender: Any) -> None:
        if isinstance(msg.poisonMessage, Watch):  # its agent could not be placed or reached
            node = self.table.get(msg.poisonMessage.node)
            if node is not None and node.state == "joining":
                node.detail = "its agent could not be placed there"

    # -- news -----------------------------------------------------------------------------
    def _down(self, node: _Node, state: str, detail: str) -> None:
        node.state, node.detail, node.lost_at = state, detail, time.time()
        if node.agent is not None and state != "lost":  # (a lost one fences itself: a send
            self.send(node.agent, ActorExitRequest())  # there would be retried for seconds)
        node.agent = None
        self._tell_root(f"node-{state}", node, detail)

    def _tell_root(self, event: str, node: _Node, detail: str) -> None:
        live = {n.name: n.caps for n in self.table.values() if n.state == "up"}
        lost = tuple(n.name for n in self.table.values() if n.state in ("lost", "left"))
        self.send(self.root, NodesChanged(event, node.name, detail, live, lost))


_THESPIAN_OWN = ("Thespian ", "Python Version", "Admin Port", "Convention Address")


def offered(capabilities: dict[str, Any]) -> dict[str, Any]:
    """A node's capabilities without Thespian's own entries."""
    return {k: v for k, v in capabilities.items() if not k.startswith(_THESPIAN_OWN)}


def _caps(caps: dict[str, Any]) -> str:
    shown = {k: v for k, v in caps.items() if not k.startswith("stalwart.")}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "no capabilities"


class WaitForNodes(msgspec.Struct, frozen=True):
    """``start()`` -> :class:`NodeWaiter`: answer with the names still missing."""

    names: tuple[str, ...]
    timeout_s: float


class NodeWaiter(RuntimeActor):  # type: ignore[misc]
    """Answers once the named nodes have registered with this leader (or the time is up)."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, WaitForNodes):
            self.want, self.asker = set(msg.names), sender
            self.seen: set[str] = set()
            self.notifyOnSystemRegistrationChanges(True)
            self.wakeupAfter(timedelta(seconds=msg.timeout_s))
        elif isinstance(msg, ActorSystemConventionUpdate):
            name = str((msg.remoteCapabilities or {}).get(NODE, ""))
            if msg.remoteAdded:
                self.seen.add(name)
            else:
                self.seen.discard(name)
            if self.want <= self.seen:
                self._answer()
        elif isinstance(msg, WakeupMessage):
            self._answer()

    def _answer(self) -> None:
        if getattr(self, "asker", None) is None:
            return
        self.send(self.asker, tuple(sorted(self.want - self.seen)))
        self.asker = None
        self.notifyOnSystemRegistrationChanges(False)
        self.send(self.myAddress, ActorExitRequest())
