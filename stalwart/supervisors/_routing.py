"""The root's registry half: paths, their addresses and states, and who hears of changes.

Mixed into :class:`~stalwart.supervisors._root.RootActor`. Supervisors register
their children here; senders resolve paths here and are told of every address
change (and of breakers' state changes), so messages follow a path across restarts;
what cannot be delivered is kept as a dead letter. On a cluster, a lost node's
actors are moved from here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..actors._calls import Caller
from ..actors._placement import node_name
from ..actors._runtime import ActorExitRequest, process_started
from ..actors._state_file import drop_under
from ..actors.errors import ActorStopped
from ..actors.messages import (
    Acked,
    AddressUpdate,
    ErrorReply,
    Forwarded,
    Reply,
    Request,
    Resolve,
    Resolved,
    RouteState,
    SendAgain,
    Stray,
    Undeliverable,
)
from ._gateway import TELEMETRY
from ._kernel.passivation import PASSIVATED
from ._plan import pool_of, pool_paths
from ._registry import Registry
from ._services import SYSTEM_NAME
from ._stored import StoredStates as Stored
from .messages import (
    BreakerHealth,
    BreakerNote,
    ChildrenGone,
    ChildrenNow,
    ChildrenPlanned,
    DurableCheckpoint,
    Floors,
    FloorsQuery,
    NodeDown,
    Nodes,
    NodesChanged,
    PathsGone,
    PoolsChanged,
    Registered,
    StateNote,
    StoredDropped,
    StoredGone,
    StoredStates,
    Unavailable,
    Watchers,
)
from .spec import Supervisor

if TYPE_CHECKING:
    from ._spans import IncidentSpans


class Routing(Caller):
    """Mixin: registrations, path resolution, address pushes, and lost nodes."""

    registry: Registry
    cluster_nodes: dict[str, dict[str, Any]]
    cluster_lost: tuple[str, ...]
    fenced: dict[str, list[Any]]
    spans: IncidentSpans | None
    state_dir: str
    pools: set[str]
    added_pools: set[str]
    gone_pools: set[str]
    telemetry_on: bool
    checkpoints: dict[str, Any]  # (the root's: durable ones read from the store, and more)
    stored: Stored  # durable ones read from the store for paths not started in this run
    addresses: dict[str, Any]  # subtree -> its supervisor's address (the root made it)

    if TYPE_CHECKING:  # provided by RootActor and its other mixins

        def record(self, kind: str, path: str, context: str = "", **fields: Any) -> None: ...
        def post(self, path: str, msg: Any) -> None: ...
        def to_telemetry(self, msg: Any, sender: Any) -> None: ...
        def dead_letter(self, path: str, message: Any, error: str, *a: Any, **k: Any) -> None: ...
        def incident_holds_for(self, msg: Registered) -> None: ...
        def answer_when_all_registered(self) -> None: ...
        def start_waiting_tree(self, give_up: bool = False) -> None: ...

    def _sw_resolver(self) -> Any:
        return self.myAddress

    def _sw_request_resolution(self, path: str) -> None:
        self._sw_on_resolved(self._resolve(path))

    def _resolve(self, path: str) -> Resolved:
        if not self.registry.knows(path):
            return Resolved(path, (), self.registry.unknown(path))
        return Resolved(
            path,
            self.registry.addresses(path),
            stopped=self.registry.stopped(path),
            group=path in self.registry.groups,
            passive=self.registry.passive(path),
        )

    # -- registry updates from supervisors -------------------------------------------------
    def on_registered(self, msg: Registered, sender: Any) -> None:
        self.registry.register(msg)
        self.tell_unwatched()
        if msg.standby:  # (a new instance of its supervisor, maybe: it hears of them all)
            self.registry.crash_tellers[msg.path] = sender
            self.tell_watchers(msg.path, self.registry.watchers(msg.path), whole=True)
        else:
            self.registry.crash_tellers.pop(msg.path, None)
        if msg.added_by and self.stored:  # (its first start in this run took what the store
            # had for it and its declared children: a key whose start fails keeps all)
            known = self.registry.knows
            self.stored.drop([msg.path, *filter(known, self.stored.under(msg.path))])
        if msg.pid and msg.pid != os.getpid() and msg.node == node_name():
            # (what tells its process from one that takes its pid after it has gone)
            self.registry.started[msg.path] = process_started(msg.pid)
        orphaned = self.registry.take_lost(msg.path)  # died with its supervisor
        died = msg.died or orphaned
        self.push(msg.path, msg.lost_inflight or orphaned, orphaned=orphaned, died=died)
        if msg.path == TELEMETRY and (self.added_pools or self.gone_pools):
            # (a new instance knows the tree's Pools as declared)
            self.post(TELEMETRY, PoolsChanged(tuple(self.added_pools), tuple(self.gone_pools)))
        if msg.reactivated:  # started again for a message: not a restart
            self.record("reactivated", msg.path, detail=f"incarnation {msg.incarnation}")
        elif msg.incarnation > 1 and not msg.fresh:  # a new instance serves after another
            self.record(
                "restarted",
                msg.path,
                level=msg.level,
                detail=f"incarnation {msg.incarnation}" + (" (a spare)" if msg.spare else ""),
            )
        self.incident_holds_for(msg)
        self.answer_when_all_registered()

    # -- children added and removed at run time ----------------------------------------------
    def on_children_planned(self, msg: ChildrenPlanned, sender: Any) -> None:
        self.registry.plan_child(msg.path, msg.incarnation, msg.spec)
        if isinstance(msg.spec, Supervisor):  # (it may be or hold a Pool)
            self.note_pools(msg.path, msg.spec)

    def note_pools(self, parent: str, spec: Supervisor) -> None:
        """A supervisor added at run time below ``parent``: its Pools count their instances
        together as the tree's own do (one below another Pool's key is counted with it)."""
        added = []
        for path in (f"{parent}/{below}" for below in pool_paths(spec)):
            if path not in self.pools and pool_of(path, self.pools) is None:
                added.append(path)
                self.pools.add(path)
                self.added_pools.add(path)
                self.gone_pools.discard(path)
        if added and self.telemetry_on:
            self.post(TELEMETRY, PoolsChanged(tuple(added)))

    def on_children_gone(self, msg: ChildrenGone, sender: Any) -> None:
        self.forget_paths(msg.paths, msg.reason)

    def on_stored_gone(self, msg: StoredGone, sender: Any) -> None:
        """What an earlier run stored for a path not started in this run was deleted (the
        supervisor waits for the answer before it starts the path again)."""
        path = msg.path
        if not self.registry.knows(path):  # (else started since: a new life's, not the old)
            gone = [path, *self.stored.under(path, skip=self.registry.knows)]
            self.stored.drop(gone)
            for p in gone:
                self.checkpoints.pop(p, None)
            if self.telemetry_on:  # (rows of paths below it with no checkpoint go too)
                self.post(TELEMETRY, PathsGone(tuple(gone), msg.reason, under=(path,)))
        self.send(sender, StoredDropped(path, msg.incarnation))

    def on_children_now(self, msg: ChildrenNow, sender: Any) -> None:
        """A supervisor begins again: what an earlier instance of it added is gone."""
        added = self.registry.added_before(msg.path, msg.incarnation)
        if added:
            why = f"was added at run time to {msg.path}, which was restarted since"
            self.forget_paths(added, why, drop_checkpoints=True)
            self.answer_when_all_registered()
        if msg.stored:  # (it starts no child at run time before it has this; what is
            # below its declared children is theirs to ask for)
            states = self.stored.under(msg.path, skip=self.registry.knows)
            self.send(sender, StoredStates(msg.path, msg.incarnation, states))

    def forget_paths(self, paths: Any, reason: str, drop_checkpoints: bool = False) -> None:
        """Forget ``paths`` (and below): who sends to them hears they stopped for good."""
        gone, ran = [], []
        forgotten = dict.fromkeys(paths)  # (in order, once each)
        for path in list(paths):
            for p in self.registry.paths_under(path):
                forgotten[p] = None
                entry = self.registry.entries[p]
                entry.available, entry.removed, entry.pid = False, True, 0
                if self.stored and entry.incarnation and self.registry.added_started(p):
                    ran.append(p)
                self.push(p)
                if p in self.pools:  # (a Pool, gone with it)
                    gone.append(p)
            if drop_checkpoints and self.state_dir:
                drop_under(self.state_dir, path)
        self.registry.forget(paths, reason)
        self.tell_unwatched()
        for p in forgotten:
            self.checkpoints.pop(p, None)  # (a durable one read from the store)
        if self.stored:  # what an earlier run stored below a path that ran was its life's
            for p in ran:
                forgotten.update(dict.fromkeys(self.stored.drop_under(p)))
        if self.telemetry_on:  # what the store keeps for these paths alone goes too (one
            # that never started in this run, its first start failed, keeps its checkpoint)
            kept = tuple(p for p in forgotten if p in self.stored)
            self.post(TELEMETRY, PathsGone(tuple(forgotten), reason, kept))
        self.answer_when_all_registered()  # (what a start waited for may be gone)
        if gone:
            self.pools.difference_update(gone)
            self.gone_pools.update(p for p in gone if p not in self.added_pools)
            self.added_pools.difference_update(gone)
            if self.telemetry_on:
                self.post(TELEMETRY, PoolsChanged((), tuple(gone)))

    def on_durable_checkpoint(self, msg: DurableCheckpoint, sender: Any) -> None:
        """A durable checkpoint goes on to the store, unless its path was forgotten since (a
        late one must not bring back what went with the path)."""
        if self.registry.knows(msg.path):
            self.to_telemetry(msg, sender)

    def on_floors_query(self, msg: FloorsQuery, sender: Any) -> None:
        self.send(sender, Floors(msg.path, self.registry.floors(msg.path)))

    def on_stray(self, msg: Stray, sender: Any) -> None:
        """A message that reached an instance which failed to start, or another path's
        process, goes to ``path``'s instance now."""
        self._sw_send_path(msg.path, Forwarded(msg.message, msg.sender))

    def on_undeliverable(self, msg: Undeliverable, sender: Any) -> None:
        self.dead_letter(msg.path, msg.message, msg.error)

    def on_unavailable(self, msg: Unavailable, sender: Any) -> None:
        self.registry.unavailable(msg)
        # after a crash, callers hand what it lost to the supervisor starting the next one
        if msg.lost_inflight:
            self.push(msg.path, holder=sender, crashed=msg.incarnation)
        else:
            self.push(msg.path)
        if msg.state == PASSIVATED or msg.removed:  # (the last path a start waited for)
            self.answer_when_all_registered()

    def on_state(self, msg: StateNote, sender: Any) -> None:
        self.registry.note_state(msg)
        if self.spans is not None:
            self.spans.on_state(msg.path, msg.state)

    def push(
        self,
        path: str,
        lost_inflight: bool = False,
        holder: Any = None,
        orphaned: bool = False,
        died: bool = False,
        crashed: int = 0,
    ) -> None:
        """Tell every subscriber of ``path`` (and of its replica group) its new addresses."""
        for p in self.registry.affected(path):
            subscribers = self.registry.subscribers(p)
            if not subscribers and p not in self._sw_routes:
                continue  # (nobody to tell: a group of thousands costs nothing to start)
            update = AddressUpdate(
                p,
                self.registry.addresses(p),
                lost_inflight,
                holder if p == path else None,
                self.registry.stopped(p),
                orphaned,
                p in self.registry.groups,
                died and p == path,
                self.registry.passive(p),
                crashed if p == path else 0,
            )
            for subscriber in subscribers:
                self.send(subscriber, update)
            if p in self._sw_routes:
                self._sw_on_address_update(update)

    def on_breaker_note(self, msg: BreakerNote, sender: Any) -> None:
        """A breaker changed state (or a new instance of one says it is closed): record it
        if it is news, and tell everyone who sends to that path."""
        entry = self.registry.entries.get(msg.path)
        if entry is not None and 0 < msg.incarnation < entry.breaker_incarnation:
            return  # (a replaced instance's, late: its successor has spoken)
        before = (entry.breaker if entry is not None else "") or "closed"
        self.registry.note_breaker(msg.path, msg.state, msg.health, msg.incarnation)
        if msg.state == before:
            return  # (a new instance says it is closed, as it was taken to be)
        self.record("breaker", msg.path, detail=msg.state)
        update = RouteState(msg.path, msg.state, msg.remaining_s, msg.fails_fast)
        for subscriber in self.registry.subscribers(msg.path):
            self.send(subscriber, update)
        self._sw_on_route_state(update)

    def on_breaker_health(self, msg: BreakerHealth, sender: Any) -> None:
        self.registry.note_breaker(msg.path, None, msg.health)

    def on_resolve(self, msg: Resolve, sender: Any) -> None:
        resolved = self._resolve(msg.path)
        if resolved.error is None:
            key = msg.subscriber or str(sender)
            if self.registry.subscribe(msg.path, key, msg.incarnation, sender):
                self.tell_watchers(msg.path, [(key, sender)])
        self.send(sender, resolved)

    def tell_watchers(
        self, path: str, watchers: list[tuple[str, Any]], whole: bool = False
    ) -> None:
        """Tell the supervisor of ``path``, if it keeps a spare, who sends to it (it tells
        them of a crash itself, ahead of this actor): ``watchers`` are all of them
        (``whole``), or one that subscribed since."""
        teller = self.registry.crash_tellers.get(path)
        if teller is not None:
            self.send(teller, Watchers(path, tuple(watchers), whole))

    def tell_unwatched(self) -> None:
        """Paths that keep a spare and lost a subscriber (forgotten, or replaced by a newer
        instance of it): their supervisors hear of all those left."""
        while self.registry.unwatched:
            path = self.registry.unwatched.pop()
            self.tell_watchers(path, self.registry.watchers(path), whole=True)

    def on_reply(self, msg: Reply, sender: Any) -> None:
        self._sw_on_reply(msg)

    def on_resolved(self, msg: Resolved, sender: Any) -> None:
        self._sw_on_resolved(msg)

    def on_address_update(self, msg: AddressUpdate, sender: Any) -> None:
        self._sw_on_address_update(msg)

    def on_acked(self, msg: Acked, sender: Any) -> None:
        self._sw_on_acked(msg)

    def on_send_again(self, msg: SendAgain, sender: Any) -> None:
        self._sw_on_send_again(msg, sender)

    def on_request(self, msg: Request, sender: Any) -> None:
        error = ActorStopped("the root takes no requests; address an actor path")
        self.send(msg.reply_to, Reply(msg.id, ErrorReply.of(error)))

    # -- the cluster -----------------------------------------------------------------------
    def on_nodes_changed(self, msg: NodesChanged, sender: Any) -> None:
        """A node joined, was lost or left: tell the supervisors; move what ran on a lost one."""
        self.cluster_nodes, self.cluster_lost = dict(msg.nodes), tuple(msg.lost)
        moved = self.registry.on_node(msg.node) if msg.event != "node-joined" else []
        detail = f"{msg.node}: {msg.detail}"
        if moved:
            detail += f"; moving {', '.join(e.path for e in moved)}"
        self.record(msg.event, f"{SYSTEM_NAME}/nodes", level=3 if moved else 0, detail=detail[:300])
        note = Nodes(self.cluster_nodes, self.cluster_lost)
        told = {str(a): a for a in self.registry.supervisor_addresses()}
        for address in self.addresses.values():  # (a subtree starting again has not
            told.setdefault(str(address), address)  # registered: it was made with the old view)
        for address in told.values():
            self.send(address, note)
        if msg.event == "node-joined":
            for address in self.fenced.pop(msg.node, []):
                self.send(address, ActorExitRequest())  # what ran there before was replaced
            self.start_waiting_tree()
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
