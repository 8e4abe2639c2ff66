"""The root's table of the live tree: every path, its address, state and subscribers."""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from ._kernel.passivation import PASSIVATED
from ._kernel.state import forgotten_key
from ._plan import expand
from .messages import ActorStatus, Registered, StateNote, Unavailable
from .spec import Child, Supervisor

_NO_PROCESS = ("crashed", PASSIVATED)  # states whose process has gone, or is leaving


def _breaker_class() -> type:
    from ._breaker_actor import BreakerActor

    return BreakerActor


_RETIRED_KEPT = 4096
_GONE_KEPT = 4096


Looks = tuple[str, str, int, str, bool]  # kind, state, level, breaker, removed


SETTLED_STATES = ("waiting", "stopped", "passivated")  # what a start need not wait out


class Entry:
    """One path of the tree as the root knows it.

    What a summary counts of it (:meth:`looks`) is kept counted, as it changes, in the
    ``tally`` of the registry that holds it: a summary of 100,000 entries reads the
    tally, not the entries."""

    __slots__ = (
        "_breaker",
        "_level",
        "_removed",
        "_state",
        "actor_class",
        "address",
        "available",
        "breaker_health",
        "breaker_incarnation",
        "group",
        "incarnation",
        "kind",
        "last_error",
        "node",
        "owner",
        "path",
        "pid",
        "restarts",
        "tally",
    )

    def __init__(self, path: str, kind: str, group: str | None, actor_class: str) -> None:
        self.tally: Counter[Looks] | None = None  # its registry's (None: in none)
        self.path = path
        self.kind = kind
        self.group = group
        self.actor_class = actor_class
        self.address: Any = None
        self.available = False
        self.pid = 0
        self.incarnation = 0
        self._state = "starting"
        self._level = 0
        self.restarts = 0
        self.last_error = ""
        self._breaker = ""  # a breaker actor's state
        self.breaker_health: int | None = 100 if kind == "breaker" else None
        self.breaker_incarnation = 0  # the instance whose note it took last
        self.node = ""  # the cluster node it runs on
        self._removed = False  # stopped for good (until its supervisor starts it again)
        self.owner: tuple[str, int] | None = None  # added at run time by (supervisor, instance)

    def looks(self) -> Looks:
        """What a summary counts of it."""
        return (self.kind, self._state, self._level, self._breaker, self._removed)

    def set_looks(self, state: str, level: int, removed: bool) -> None:
        """Its state, level and whether it is stopped for good, counted once."""
        before = self.looks() if self.tally is not None else None
        self._state, self._level, self._removed = state, level, removed
        self._recount(before)

    def _recount(self, before: Looks | None) -> None:
        """Count it as it looks now, not as ``before`` (None: it is in no tally)."""
        if before is not None and self.tally is not None:
            _recount(self.tally, before, self.looks())

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        self.set_looks(value, self._level, self._removed)

    @property
    def level(self) -> int:
        return self._level

    @level.setter
    def level(self, value: int) -> None:
        self.set_looks(self._state, value, self._removed)

    @property
    def removed(self) -> bool:
        return self._removed

    @removed.setter
    def removed(self, value: bool) -> None:
        self.set_looks(self._state, self._level, value)

    @property
    def breaker(self) -> str:
        """A breaker actor's state ("" until it reports one)."""
        return self._breaker

    @breaker.setter
    def breaker(self, value: str) -> None:
        before = self.looks() if self.tally is not None else None
        self._breaker = value
        self._recount(before)


def _recount(tally: Counter[Looks], before: Looks, after: Looks) -> None:
    if after != before:
        _uncount(tally, before)
        tally[after] += 1


def _uncount(tally: Counter[Looks], looks: Looks) -> None:
    left = tally[looks] - 1
    if left:
        tally[looks] = left
    else:
        del tally[looks]


class PathIndex:
    """The paths held, each under its parent path: what is below a path is found without
    looking at the others (a Pool of supervisors ends its keys by the thousand). A parent
    path held by no entry is kept as a link while something is below it."""

    __slots__ = ("_below",)

    def __init__(self) -> None:
        self._below: dict[str, set[str]] = {}  # path -> the paths one level below it

    def add(self, path: str) -> None:
        while True:
            parent = path.rpartition("/")[0]
            if not parent:
                return
            kids = self._below.get(parent)
            if kids is not None:
                kids.add(path)
                return
            self._below[parent] = {path}
            path = parent  # (a new link: it hangs below its own parent too)

    def remove(self, path: str, held: Mapping[str, object]) -> None:
        """``path`` is held no more (``held``: the paths still held)."""
        while path not in self._below and path not in held:
            parent = path.rpartition("/")[0]
            kids = self._below.get(parent)
            if kids is None:
                return
            kids.discard(path)
            if kids:
                return
            del self._below[parent]
            path = parent  # (a link with nothing below it goes too)

    def under(self, top: str, skip: Callable[[str], bool] | None = None) -> list[str]:
        """Every path below ``top`` (links that are held by no entry included); with
        ``skip``, none at or below a path for which it is true."""
        found, stack = [], [top]
        while stack:
            for path in self._below.get(stack.pop(), ()):
                if skip is None or not skip(path):
                    found.append(path)
                    stack.append(path)
        return found


def _registered_first(entry: Entry) -> bool:
    """Whether ``entry`` is a registration that came before its path was planned: a
    declared child of a supervisor added at run time registers from the supervisor's
    process, and can reach the root before the plan its grandparent sent (kept as it is,
    or its path would look as if it were still starting)."""
    return bool(entry.incarnation) and not entry.removed


class Registry:
    """Paths known from the tree spec, and what the supervisors report about them."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}  # (changed only through put and drop)
        # the entries' paths, each under its parent: made when a supervisor's subtree is
        # first looked for (most trees never forget one: 100,000 actors hold none)
        self.index: PathIndex | None = None
        self.tally: Counter[Looks] = Counter()  # the entries by what a summary counts of them
        self.groups: dict[str, list[str]] = {}
        self._subscribers: dict[str, dict[str, tuple[int, Any]]] = {}
        self._subscribed_by: dict[str, set[str]] = {}  # subscriber's path -> paths it watches
        # paths that keep a spare -> their supervisor, who tells their subscribers of a crash
        self.crash_tellers: dict[str, Any] = {}
        self.unwatched: set[str] = set()  # of those, paths that lost a subscriber since told
        self.floor_forgotten = 0  # the highest incarnation of a path forgotten
        # addresses of instances that are gone -> their path's entry when they were
        self._retired: OrderedDict[str, Entry] = OrderedDict()
        self.lost_with_supervisor: set[str] = set()  # died with their supervisor mid-message?
        self.gone: OrderedDict[str, str] = OrderedDict()  # forgotten paths -> why
        self.owned: dict[str, set[str]] = {}  # supervisor -> paths added to it at run time
        self.started: dict[str, float] = {}  # path -> when its process started (this host's)

    def plan(self, tree: Supervisor, prefix: str = "") -> None:
        """Learn every path of ``tree`` (replicas and breakers expanded) before anything starts."""
        base = f"{prefix}/{tree.name}" if prefix else tree.name
        if not prefix:
            self.put(Entry(base, "supervisor", None, "Supervisor"))
        self._plan_children(base, tree.children)

    def _plan_children(
        self, base: str, children: Any, owner: tuple[str, int] | None = None
    ) -> list[str]:
        planned = []
        for slot in expand(children):
            path = f"{base}/{slot.name}"
            group = f"{base}/{slot.group}" if slot.group else None
            self.gone.pop(path, None)
            planned.append(path)
            if slot.role == "supervisor":
                self._entry(path, "supervisor", None, type(slot.spec).__name__, owner)
                assert isinstance(slot.spec, Supervisor)
                self.plan(slot.spec, base)
                continue
            assert isinstance(slot.spec, Child)
            actor = slot.spec.actor if slot.role == "actor" else _breaker_class()
            cls = f"{actor.__module__}.{actor.__qualname__}"
            self._entry(path, slot.role, group, cls, owner)
            if group:
                self.gone.pop(group, None)
                members = self.groups.setdefault(group, [])
                if path not in members:
                    members.append(path)
        return planned

    def _entry(
        self, path: str, kind: str, group: str | None, cls: str, owner: tuple[str, int] | None
    ) -> Entry:
        entry = self.entries.get(path)
        if entry is None or (owner is None and not _registered_first(entry)):
            entry = self.put(Entry(path, kind, group, cls))
        elif entry.removed:  # (one ended earlier under that name: a new child now)
            entry.set_looks("starting", entry.level, False)
        if owner is not None:
            self._own(entry, owner)
        return entry

    def put(self, entry: Entry) -> Entry:
        """Hold ``entry`` (in place of one of its path), counted in the tally."""
        self.drop(entry.path)
        self.entries[entry.path] = entry
        if self.index is not None:
            self.index.add(entry.path)
        entry.tally = self.tally
        self.tally[entry.looks()] += 1
        return entry

    def drop(self, path: str) -> Entry | None:
        """Hold ``path``'s entry no more; returns it (None: there was none)."""
        entry = self.entries.pop(path, None)
        self.started.pop(path, None)
        if entry is not None:
            if self.index is not None:
                self.index.remove(path, self.entries)
            entry.tally = None
            _uncount(self.tally, entry.looks())
        return entry

    def any_removed(self) -> bool:
        """True if some entry is stopped for good."""
        return any(looks[4] for looks in self.tally)

    def plan_child(self, supervisor: str, incarnation: int, spec: Child | Supervisor) -> None:
        """Learn the paths of ``spec``, a child instance ``incarnation`` of ``supervisor``
        added at run time (messages to them wait until they register)."""
        if supervisor not in self.entries:
            return
        # (its siblings are not planned here: what it depends on makes no path of its own)
        alone = msgspec.structs.replace(spec, depends_on=()) if spec.depends_on else spec
        self._plan_children(supervisor, (alone,), (supervisor, incarnation))

    def paths_under(self, top: str) -> list[str]:
        """``top`` and every path below it (a group: its members)."""
        if top in self.groups:
            return list(self.groups[top])
        entry = self.entries.get(top)
        if entry is None:
            return []
        if entry.kind != "supervisor":  # (an actor has nothing below it)
            return [top]
        entries, index = self.entries, self.index
        if index is None:
            index = self.index = PathIndex()
            for path in entries:
                index.add(path)
        return [top, *(p for p in index.under(top) if p in entries)]

    def forget(self, paths: Any, reason: str) -> list[str]:
        """Forget ``paths`` and every path below them; returns the paths forgotten.

        Asked for later, they are unknown, ``reason`` saying why."""
        dropped = []
        for top in paths:
            for p in self.paths_under(top):
                entry = self.drop(p)
                if entry is None:
                    continue
                dropped.append(p)
                self.floor_forgotten = max(self.floor_forgotten, entry.incarnation)
                self._unsubscribe_all(p)
                self.lost_with_supervisor.discard(p)
                if entry.owner is not None:
                    self.owned.get(entry.owner[0], set()).discard(p)
                members = self.groups.get(entry.group) if entry.group else None
                if entry.group is not None and members is not None and p in members:
                    members.remove(p)
                    if not members:
                        del self.groups[entry.group]
                        self._remember_gone(entry.group, reason)
            self.groups.pop(top, None)
            self._remember_gone(top, reason)
        return dropped

    def _remember_gone(self, path: str, reason: str) -> None:
        self.gone[path] = reason
        self.gone.move_to_end(path)
        while len(self.gone) > _GONE_KEPT:
            self.gone.popitem(last=False)

    def _own(self, entry: Entry, owner: tuple[str, int]) -> None:
        entry.owner = owner
        self.owned.setdefault(owner[0], set()).add(entry.path)

    def added_before(self, supervisor: str, incarnation: int) -> list[str]:
        """The children an instance of ``supervisor`` earlier than ``incarnation`` added."""
        found = []
        for path in sorted(self.owned.get(supervisor, ())):
            entry = self.entries.get(path)
            if entry is not None and entry.owner is not None and entry.owner[1] < incarnation:
                found.append(path)
        return found

    def unknown(self, path: str) -> str:
        """Why ``path`` is not known: "unknown actor path ..." and, if it was forgotten, why."""
        reason = self.gone.get(path)
        return f"unknown actor path {path!r}" + (f" ({path} {reason})" if reason else "")

    # -- questions -----------------------------------------------------------------------
    def knows(self, path: str) -> bool:
        return path in self.entries or path in self.groups

    def is_group(self, path: str) -> bool:
        return path in self.groups

    def known_paths(self) -> tuple[str, ...]:
        return (*self.entries, *self.groups)

    def addresses(self, path: str) -> tuple[Any, ...]:
        if path in self.groups:
            return tuple(
                e.address for e in (self.entries[m] for m in self.groups[path]) if e.available
            )
        entry = self.entries.get(path)
        return (entry.address,) if entry is not None and entry.available else ()

    def address_of(self, path: str) -> Any:
        entry = self.entries.get(path)
        return entry.address if entry is not None and entry.available else None

    def affected(self, path: str) -> list[str]:
        entry = self.entries.get(path)
        return [path, entry.group] if entry is not None and entry.group else [path]

    def added_started(self, path: str) -> bool:
        """Whether the child added at run time that ``path`` is, or is below, has registered
        (True for a path declared all the way up): its first start took the stored states of
        its subtree, and one that failed took none, whatever below it had started."""
        entries = self.entries
        while path:
            entry = entries.get(path)
            if entry is not None and entry.owner is not None:
                return bool(entry.incarnation)
            path = path.rpartition("/")[0]
        return True

    def path_of_retired(self, address: Any) -> str | None:
        """The path a gone instance at ``address`` served, if that path has not been
        forgotten since: a path started again afresh (a Pool key ended and started again,
        a deleted child added again) is another life, with none of the old one's state."""
        entry = self._retired.get(str(address))
        if entry is None or self.entries.get(entry.path) is not entry:
            return None
        return entry.path

    def stopped(self, path: str) -> bool:
        """True if the actor at ``path`` (every member, for a group) stopped for good, or a
        supervisor above it did."""
        return all(self._removed(m) for m in self.groups.get(path, [path]))

    def passive(self, path: str) -> bool:
        """True if the actor at ``path`` is passivated (or being passivated)."""
        entry = self.entries.get(path)
        return entry is not None and entry.state in ("passivating", "passivated")

    def _removed(self, path: str) -> bool:
        while path:
            entry = self.entries.get(path)
            if entry is not None and entry.removed:
                return True
            path = path.rpartition("/")[0]
        return False

    def settled(self) -> bool:
        """True when every path is registered, or stopped for good, or waiting for a node."""
        return all(
            e.available or e.state in SETTLED_STATES or self._removed(p)
            for p, e in self.entries.items()
        )

    def floors(self, under: str) -> dict[str, int]:
        """The last incarnation of every path below ``under`` that has started (one that
        never did counts as 0, so a tree's first start carries none)."""
        prefix = under + "/"
        floors = {
            p: e.incarnation
            for p, e in self.entries.items()
            if e.incarnation and p.startswith(prefix)
        }
        if self.floor_forgotten:  # (a path forgotten and started again still grows)
            floors[forgotten_key(under)] = self.floor_forgotten
        return floors

    # -- updates -------------------------------------------------------------------------
    def register(self, msg: Registered) -> None:
        entry = self.entries.get(msg.path)
        if entry is None:  # (a path a forgotten supervisor's late message names)
            parent = msg.path.rpartition("/")[0]
            group = f"{parent}/{msg.group}" if msg.group else None
            entry = self.put(Entry(msg.path, msg.kind, group, msg.actor_class))
        if entry.address is not None and entry.address != msg.address:
            self._retire_address(entry.address, entry)
        # a new incarnation subscribes again when it resolves; forget older ones
        for target in list(self._subscribed_by.get(msg.path, ())):
            old = self._subscribers.get(target, {}).get(msg.path)
            if old is not None and old[0] < msg.incarnation:
                _drop(self._subscribers, target, msg.path)
                _drop(self._subscribed_by, msg.path, target)
                self._unwatched(target)
        entry.address, entry.pid, entry.incarnation = msg.address, msg.pid, msg.incarnation
        entry.available, entry.restarts = True, msg.restarts
        entry.set_looks("running", msg.level, False)
        entry.node = msg.node
        if msg.added_by:  # (a child added at run time, known from now on)
            self._own(entry, (msg.path.rpartition("/")[0], msg.added_by))
            self.gone.pop(msg.path, None)
            if entry.group is not None:
                self.gone.pop(entry.group, None)
                members = self.groups.setdefault(entry.group, [])
                if msg.path not in members:
                    members.append(msg.path)

    def _retire_address(self, address: Any, entry: Entry) -> None:
        self._retired[str(address)] = entry
        while len(self._retired) > _RETIRED_KEPT:
            self._retired.popitem(last=False)

    def unavailable(self, msg: Unavailable) -> None:
        entry = self.entries.get(msg.path)
        if entry is None:
            return
        entry.available = False
        entry.set_looks("stopped" if msg.removed else msg.state, entry.level, msg.removed)
        if msg.state in _NO_PROCESS or msg.removed:
            entry.pid = 0  # (a pid kept would name another process once the kernel reuses it)

    def note_state(self, msg: StateNote) -> None:
        entry = self.entries.get(msg.path)
        if entry is None:
            return
        entry.restarts = msg.restarts
        entry.set_looks(msg.state, msg.level, entry.removed)
        if msg.last_error:
            entry.last_error = msg.last_error

    def note_breaker(self, path: str, state: str | None, health: int, incarnation: int = 0) -> None:
        """A breaker's state (``None``: unchanged) and health score (``incarnation``: the
        instance that said so, when it says its state)."""
        entry = self.entries.get(path)
        if entry is not None:
            entry.breaker = entry.breaker if state is None else state
            entry.breaker_health = health
            entry.breaker_incarnation = max(entry.breaker_incarnation, incarnation)

    def supervisor_addresses(self, under: str | None = None) -> list[Any]:
        """Running supervisors that hold ``under`` or anything below it (all when None)."""
        parent = under.rsplit("/", 1)[0] if under else None
        return [
            e.address
            for e in self.entries.values()
            if e.kind == "supervisor"
            and e.available
            and e.address is not None
            and (under is None or e.path in (under, parent) or e.path.startswith(under + "/"))
        ]

    def paths_of_kind(self, kind: str) -> list[str]:
        """Paths of the entries of ``kind`` (``actor``, ``supervisor``, ``breaker``)."""
        return [p for p, e in self.entries.items() if e.kind == kind]

    def on_node(self, node: str) -> list[Entry]:
        """Actors and breakers running on ``node`` now, in start (dependency) order."""
        return [
            e
            for e in self.entries.values()
            if e.node == node and e.kind != "supervisor" and e.state != "stopped"
        ]

    def all_stopped(self) -> None:
        for e in self.entries.values():
            e.available, e.pid, e.state = False, 0, "stopped"

    def subscribe(self, path: str, key: str, incarnation: int, subscriber: Any) -> bool:
        """``key`` (the subscriber's path) in its ``incarnation`` wants updates of ``path``
        (False: an older incarnation's, too late: not taken)."""
        subscribers = self._subscribers.setdefault(path, {})
        old = subscribers.get(key)
        if old is None or old[0] <= incarnation:
            subscribers[key] = (incarnation, subscriber)
            self._subscribed_by.setdefault(key, set()).add(path)
            return True
        return False

    def _unsubscribe_all(self, path: str) -> None:
        """``path`` is forgotten: the subscriptions to it, and those it made, go."""
        self.crash_tellers.pop(path, None)
        for key in self._subscribers.pop(path, {}):
            _drop(self._subscribed_by, key, path)
        for target in self._subscribed_by.pop(path, ()):
            _drop(self._subscribers, target, path)
            self._unwatched(target)

    def _unwatched(self, target: str) -> None:
        if target in self.crash_tellers:
            self.unwatched.add(target)

    def watchers(self, path: str) -> list[tuple[str, Any]]:
        """``(key, address)`` of each subscriber of ``path``."""
        return [(key, address) for key, (_, address) in self._subscribers.get(path, {}).items()]

    def subscribers(self, path: str) -> list[Any]:
        return [address for _, address in self._subscribers.get(path, {}).values()]

    def pids_under(self, path: str, node: str) -> list[tuple[int, float]]:
        """Processes of the actors below ``path`` that run on ``node`` (a pid means nothing
        on another host), each with when it started (0.0: not known)."""
        prefix = path + "/"
        return [
            (e.pid, self.started.get(p, 0.0))
            for p, e in self.entries.items()
            if p.startswith(prefix) and e.pid and e.node == node
        ]

    def drop_under(self, path: str) -> list[str]:
        """The subtree below ``path`` is gone (its supervisor crashed): returns its paths.

        What its actors were handling is sent again to their next instances
        (:meth:`take_lost`, when they register).
        """
        prefix = path + "/"
        dropped = []
        for p, e in self.entries.items():
            if p.startswith(prefix):
                self.lost_with_supervisor.add(p)  # (a supervisor too: it takes each id once)
                e.available, e.pid = False, 0
                e.set_looks("restarting", e.level, False)
                dropped.append(p)
        return dropped

    def take_lost(self, path: str) -> bool:
        """True once if ``path``'s last instance died with its supervisor."""
        if path in self.lost_with_supervisor:
            self.lost_with_supervisor.discard(path)
            return True
        return False

    def in_tree_order(self) -> list[Entry]:
        """The entries, each supervisor followed by what is below it (children added at run
        time after their declared siblings)."""
        below: dict[str, list[Entry]] = {}
        for path, entry in self.entries.items():
            below.setdefault(path.rpartition("/")[0], []).append(entry)
        ordered: list[Entry] = []
        pending = list(reversed(below.get("", [])))
        while pending:  # (no recursion: trees can be deep)
            entry = pending.pop()
            ordered.append(entry)
            pending.extend(reversed(below.get(entry.path, [])))
        if len(ordered) < len(self.entries):  # (one whose supervisor is not known: at the end)
            placed = {id(e) for e in ordered}
            ordered += [e for e in self.entries.values() if id(e) not in placed]
        return ordered

    def status(self, tree: Supervisor | None) -> tuple[ActorStatus, ...]:
        return tuple(
            ActorStatus(
                e.path,
                e.kind,
                "stopped" if self._removed(e.path) else e.state,
                e.level,
                e.restarts,
                e.last_error,
                e.pid,
                e.node,
                e.incarnation,
                e.actor_class,
                e.breaker,
                e.breaker_health,
            )
            for e in self.in_tree_order()
        )


def _drop(index: dict[str, Any], key: str, item: str) -> None:
    """Take ``item`` out of ``index[key]`` (a set or a dict); the key goes once it is empty."""
    held = index.get(key)
    if held is not None:
        if isinstance(held, set):
            held.discard(item)
        else:
            held.pop(item, None)
        if not held:
            del index[key]
