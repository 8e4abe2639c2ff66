"""The kernel's state: what a supervisor knows about its children and the failed messages.

Runtime facts (addresses, process ids, checkpoints) are not here: they are the
supervisor actor's. The kernel owns everything a decision depends on.
"""

from __future__ import annotations

import heapq
import itertools
import random
from types import MappingProxyType
from typing import Any, cast

from ...actors._lazy import made_on_use
from ...actors.messages import Redelivery
from ...strategies import AdaptiveSelector, ErrorInfo
from ...strategies._learned_timeout import LearnedTimeout, TimeoutRule
from .._ladder import FailureKind, Ladder, RestartIntensity, failure_kind
from .._plan import Slot, expand
from .._pool import Pool
from ..spec import Child, LevelPolicy, Supervisor

DOWN, STARTING, UP, STOPPING, REMOVED = "down", "starting", "up", "stopping", "removed"
# the ladders of a child that never failed: read-only and empty (read at every start)
_NO_LADDERS: dict[str, Ladder] = cast("dict[str, Ladder]", MappingProxyType({}))

TREE_CANDIDATES: dict[int, tuple[str, ...]] = {
    1: ("retry",),
    2: ("backoff", "adjust", "fallback"),
    3: ("restart", "reassign"),
    4: ("restart_subtree",),
}


class FailedMessage:
    """A message that failed, followed through the levels until handled or set aside.

    A failure without a message (a failed health check, a hook) is followed the same way.
    """

    def __init__(
        self, ident: int, child: str, message: Any, sender: Any, info: ErrorInfo, now: float
    ) -> None:
        self.id = ident
        self.child = child
        self.message = message
        self.sender = sender
        self.info = info
        self.traceback = ""
        self.first_time = now
        self.deadline = 0.0  # the caller's, on the kernel's clock (0: none)
        self.level = 0
        self.attempt = 0
        self.retries = 0  # retries this message got in place
        self.round = 0  # the ladder's round when this message last got a decision
        self.strategy = ""
        self.level_started = now
        self.last_delay = 0.0
        self.sent_at = 0.0  # when its latest retry went to the instance (0: not yet)
        self.took = 0.0  # how long its latest retry ran before it failed
        self.waits_s = 0.0  # how long its latest retry may take before it counts as failed
        self.tried: dict[int, list[str]] = {}
        self.fresh: tuple[str, int] | None = None  # (child, incarnation) it was redelivered to
        self.assigned_to = child
        self.health = False  # a failed health check, judged by the next one
        self.held_for = ""  # the dependency it waits for, while held


def _without(children: dict[str, ChildRecord], name: str) -> dict[str, ChildRecord]:
    """``children`` without ``name``; a new dict once none is left (a dict emptied keeps
    its size, and reading it costs what it held: all of a Pool's instances stopping at once
    would leave a dict as large as the Pool to read through after every exit)."""
    children.pop(name, None)
    return children if children else {}


class PhaseIndex:
    """A supervisor's children by phase; those up or starting that are marked to stop (for
    a restart or for good), and those down that are; those down that may start (not
    waiting for a node, an outage or a message); and those in line, down and may start or
    starting, in start order: what reconciling looks at, so that it costs what changed,
    not the number of children (a hundred thousand passivated ones, say)."""

    def __init__(self) -> None:
        self.by_phase: dict[str, dict[str, ChildRecord]] = {
            phase: {} for phase in (DOWN, STARTING, UP, STOPPING, REMOVED)
        }
        self.marked: dict[str, ChildRecord] = {}
        self.marked_down: dict[str, ChildRecord] = {}  # down, and to restart or to stop
        self.ready: dict[str, ChildRecord] = {}  # down, and not waiting
        self._latest: list[tuple[int, int, ChildRecord]] = []  # the marked, latest first
        self._line: list[tuple[int, int, ChildRecord]] = []  # in line: a heap, first first
        self._pushed = itertools.count()

    def mark(self, record: ChildRecord) -> None:
        if self.marked.get(record.name) is not record:
            heapq.heappush(self._latest, (-record.seq, next(self._pushed), record))
        self.marked[record.name] = record

    def unmark(self, record: ChildRecord) -> None:
        self.marked = _without(self.marked, record.name)
        if not self.marked:
            self._latest.clear()  # (what it holds is stale)

    def mark_down(self, record: ChildRecord, marked: bool) -> None:
        if marked:
            self.marked_down[record.name] = record
        else:
            self.marked_down = _without(self.marked_down, record.name)

    def placed(self, record: ChildRecord, was_in_line: bool) -> None:
        """``record``'s phase or what it waits for has changed: where it belongs now."""
        if record.phase == DOWN and not record.waiting:
            self.ready[record.name] = record
        elif self.ready.get(record.name) is record:
            self.ready = _without(self.ready, record.name)
        if in_line(record):
            if not was_in_line:
                record.queued += 1  # (its own count: its entries before this one are stale)
                heapq.heappush(self._line, (record.seq, record.queued, record))
        elif was_in_line:
            record.queued += 1
            if self._line and not self.ready and not self.by_phase[STARTING]:
                self._line = []  # (none is in line: all it holds is stale)

    def next_in_line(self, taken: list[tuple[int, int, ChildRecord]]) -> ChildRecord | None:
        """The first in start order of the children in line that are not in ``taken`` yet
        (None: no other); it is added to ``taken``, which ``put_back`` returns to the line.
        An entry no longer true (the child has left the line since) is dropped."""
        line = self._line
        while line:
            entry = heapq.heappop(line)
            record = entry[2]
            if record.queued == entry[1] and in_line(record):
                taken.append(entry)
                return record
        return None

    def put_back(self, taken: list[tuple[int, int, ChildRecord]]) -> None:
        for entry in taken:
            heapq.heappush(self._line, entry)

    def leave(self, phase: str, name: str) -> None:
        """Take child ``name`` out of ``phase``."""
        self.by_phase[phase] = _without(self.by_phase[phase], name)

    def latest_marked(self) -> ChildRecord:
        """The latest-started of the marked children (there is one): what the heap holds
        that is no longer marked is dropped as it comes up."""
        latest, marked = self._latest, self.marked
        while marked.get(latest[0][2].name) is not latest[0][2]:
            heapq.heappop(latest)
        return latest[0][2]

    def drop(self, record: ChildRecord) -> None:
        self.leave(record.phase, record.name)
        record.queued += 1  # (what the line holds of it is stale)
        if self.ready.get(record.name) is record:
            self.ready = _without(self.ready, record.name)
        if self.marked.get(record.name) is record:
            self.unmark(record)
        if self.marked_down.get(record.name) is record:
            self.mark_down(record, False)


def in_line(record: ChildRecord) -> bool:
    """Starting, or down and may start (not waiting for a node, an outage or a message)."""
    return record.phase == STARTING or (record.phase == DOWN and not record.waiting)


def forgotten_key(path: str) -> str:
    """Where a floors table holds the floor of every path forgotten below ``path`` (no
    child is named "": this is no path)."""
    return path + "/"


class ChildRecord:
    """One slot's state inside its supervisor (``seq``: its place in start order)."""

    def __init__(
        self,
        slot: Slot,
        path: str,
        policy: LevelPolicy,
        index: PhaseIndex | None = None,
        seq: int = 0,
    ) -> None:
        self.slot = slot
        self.name = slot.name
        self.path = path
        self.kind = "supervisor" if slot.role == "supervisor" else "actor"
        self.role = slot.role  # actor, supervisor or breaker
        self.policy = policy
        self.seq = seq
        self._index = index if index is not None else PhaseIndex()
        self._phase = DOWN
        self._index.by_phase[DOWN][self.name] = self
        self.queued = 0  # its latest entry in the line of children to start
        self._index.placed(self, False)
        self._restart_pending = False
        self._stop_for_good = False
        self.incarnation = 0
        self.fresh = False  # its latest start was its path's first: not a restart

    @property
    def phase(self) -> str:
        """down, starting, up, stopping or removed (stopped for good)."""
        return self._phase

    @phase.setter
    def phase(self, value: str) -> None:
        old = self._phase
        if old != value:
            was_in_line = in_line(self)
            self._index.leave(old, self.name)
            self._index.by_phase[value][self.name] = self
            self._phase = value
            self._index.placed(self, was_in_line)
            self._mark()

    @property
    def waiting(self) -> str:
        """Why it is down and not started yet (a node, an outage, passivated; "": it may)."""
        return self._waiting

    @waiting.setter
    def waiting(self, value: str) -> None:
        if value != self._waiting:
            was_in_line = in_line(self)
            self._waiting = value
            self._index.placed(self, was_in_line)

    @property
    def restart_pending(self) -> bool:
        """It goes down and comes back (a restart under way)."""
        return self._restart_pending

    @restart_pending.setter
    def restart_pending(self, value: bool) -> None:
        self._restart_pending = value
        self._mark()

    @property
    def stop_for_good(self) -> bool:
        """It goes down and stays down."""
        return self._stop_for_good

    @stop_for_good.setter
    def stop_for_good(self, value: bool) -> None:
        self._stop_for_good = value
        self._mark()

    def _mark(self) -> None:
        """Keep the indexes of children marked (to restart or to stop): those up or
        starting, to be stopped, and those down."""
        marked = self._restart_pending or self._stop_for_good
        if marked and self._phase in (UP, STARTING):
            self._index.mark(self)
        elif self._index.marked.get(self.name) is self:
            self._index.unmark(self)
        if marked and self._phase == DOWN:
            self._index.mark_down(self, True)
        elif self._index.marked_down.get(self.name) is self:
            self._index.mark_down(self, False)

    @property
    def spec(self) -> Child | Supervisor:
        return self.slot.spec

    @property
    def spec_name(self) -> str:
        """The name of its spec (a replica's, ``w`` for ``w.1``; a breaker's protected actor's)."""
        return self.slot.spec.name

    @property
    def restart(self) -> str:
        """Its restart type: permanent, transient or temporary."""
        return self.slot.spec.restart

    @property
    def fallback(self) -> Any:
        """The declared fallback reply, or None."""
        return getattr(self.slot.spec, "fallback", None)

    def kind_of(self, info: ErrorInfo) -> FailureKind:
        """How this child's policy treats a failure (an outage is a fault under OTP's)."""
        kind = failure_kind(info)
        if kind is FailureKind.OUTAGE and self.policy.outages_as_faults:
            return FailureKind.FAULT
        return kind

    def ladder(self, fingerprint: str) -> Ladder:
        ladder = self.ladders.get(fingerprint)
        if ladder is None:
            if self.ladders is _NO_LADDERS:
                self.ladders = {}
            ladder = self.ladders[fingerprint] = Ladder(self.policy)
        return ladder

    def level(self, now: float) -> int:
        """The highest level reached across this child's error fingerprints."""
        return max((ladder.current(now) for ladder in self.ladders.values()), default=0)

    def in_outage(self, now: float) -> bool:
        return any(ladder.in_outage(now) for ladder in self.ladders.values())

    # Defaults a record holds only once they change, and containers made on first use: a
    # supervisor of thousands of children keeps little for each child that just runs (and
    # a record keeps under 30 attributes of its own, as CPython shares their names then).
    trust_final_state = True  # keep the state it reports as it stops
    handed: list[str] = made_on_use(list)  # requests handed to this instance after a crash
    handed_direct: list[str] = made_on_use(list)  # of those, the ones callers handed it (in
    # an order unknown here)
    done_direct: list[str] = made_on_use(list)  # handled before their callers' notes came
    poisoned: list[str] = made_on_use(list)  # requests two instances in a row died handling
    # children started and stopped at run time (see .children)
    dynamic = False  # added by start_child: a restart of its supervisor forgets it
    stopped_by_us = False  # its last end was its supervisor's doing, not its own
    forget = ""  # why its spec goes once it is down ("": the spec is kept)
    activity: int | None = None  # a Pool's idle check: the last activity reported
    active_at = 0.0  # when that activity last changed (or it started)
    retiring = 0  # incarnation of a replaced instance still forwarding (0: none)
    _waiting = ""  # (see waiting)
    start_failures = 0  # consecutive starts that failed against an outage
    start_outage = ""  # the fingerprint of the outage that keeps it from starting
    breaker_state = ""
    breaker_until = 0.0  # while open: when it may let a trial through
    held: list[FailedMessage] = made_on_use(list)
    retired_at = 0  # the incarnation whose Retired came last (its final state)
    exited_early = 0  # the incarnation whose exit came before its Retired
    holding = False  # it waits for a dependency (its held messages may be out on trial)
    redeliver: list[Redelivery] = made_on_use(list)
    health_pending = False
    health_missed = 0
    hung_reported = False
    hung_killed = False
    health_failure: int | None = None  # the open failure record of its health
    ladders: dict[str, Ladder] = _NO_LADDERS  # (a dict of its own from its first failure)
    restarts = 0
    last_error = ""
    lost_inflight = False
    died = False  # its last instance's process died (crash, kill, hang, lost node)
    # passivation (see .passivation): only children that opted in set these
    up_at = 0.0  # when its instance came up
    idle_s = 0.0  # seconds without a message, as last reported (0: it was handling one)
    idle_busy = False  # it was handling a message then
    idle_seen = 0  # the pressure round of that report
    idle_at = 0.0  # when that report came (its idle seconds were measured about then)
    passivating = False  # it stops to be passivated
    reactivating = False  # it starts again from passivation
    reactivated_at = 0.0  # when it last did
    last_passivation = ""  # why it was passivated


class SupervisorState:
    """Everything a supervisor's decisions depend on.

    ``can_kill``: its children run in processes of their own (a hung one can be killed).
    ``hold_limit``: how many messages may wait for one child (held or to redeliver).
    """

    def __init__(
        self,
        path: str,
        spec: Supervisor,
        *,
        can_kill: bool = False,
        hold_limit: int = 10_000,
        seed: int | None = None,
    ) -> None:
        self.path = path
        self.spec = spec
        self.can_kill = can_kill
        self.hold_limit = hold_limit
        self.intensity = RestartIntensity(spec.max_restarts, spec.within_s)
        self.selector = AdaptiveSelector(TREE_CANDIDATES, seed=seed)
        self.timeout_rule = TimeoutRule()
        self.timeouts: dict[str, LearnedTimeout] = {}  # "path|operation" -> its retry timeout
        self.timeout_keys: dict[str, list[str]] = {}  # path -> its keys in timeouts
        self.rng = random.Random(seed)
        self.children: dict[str, ChildRecord] = {}
        self.order: list[ChildRecord] = []
        self.by_path: dict[str, ChildRecord] = {}
        self.by_spec: dict[str, list[ChildRecord]] = {}  # spec name -> its slots, in order
        self.index = PhaseIndex()
        self.next_seq = 0
        for slot in expand(spec.children):
            self.add_slot(slot)
        self.pool = spec if isinstance(spec, Pool) else None
        self.starters: dict[str, tuple[Any, bool]] = {}  # spec name -> (who waits, keep spec)
        self.stoppers: dict[str, list[Any]] = {}  # spec name -> who waits for it to stop
        self.failures: dict[int, FailedMessage] = {}
        self.next_failure = 0
        self.floors: dict[str, int] = {}  # last incarnation of each path (the system's lifetime)
        self.floor_forgotten = 0  # the highest of the paths forgotten (a Pool's ended keys)
        # (a floors table carries it under forgotten_key(path): to a child supervisor, and
        # from the root to a restarted one)
        self.escalated = False
        self.retiring = False
        self.finished = False
        self.reported_started = False
        self.lingering: set[tuple[str, int]] = set()  # old instances not yet gone
        self.down_dependencies: set[str] = set()  # paths above this supervisor that are down
        self.incident_holds: dict[str, str] = {}  # child path -> the root cause it waits for
        self.health_seq = 0
        self.waiting_recoveries: list[tuple[int, str]] = []
        self.passivation_every = 0.0  # the idle checks of children that opted in (0: none)
        self.pressure_round = 0  # memory pressure rounds so far
        self.pressure_waiting: set[str] = set()  # the round's answers still to come

    def learn_timeouts(
        self, rule: TimeoutRule, timeouts: dict[str, float], longest: dict[str, float]
    ) -> None:
        """Take over the retry timeouts learned before (by earlier runs, or by the parent
        for this subtree), and how to go on learning them."""
        self.timeout_rule = rule
        for key, seconds in timeouts.items():
            self._keep_timeout(key, LearnedTimeout(rule, seconds, longest.get(key, 0.0)))

    def timeout_of(self, path: str, operation: str) -> LearnedTimeout:
        """The learned retry timeout of ``operation`` at ``path`` (created empty)."""
        key = f"{path}|{operation}"
        found = self.timeouts.get(key)
        if found is None:
            found = self._keep_timeout(key, LearnedTimeout(self.timeout_rule))
        return found

    def _keep_timeout(self, key: str, learned: LearnedTimeout) -> LearnedTimeout:
        if key not in self.timeouts:
            self.timeout_keys.setdefault(key.rpartition("|")[0], []).append(key)
        self.timeouts[key] = learned
        return learned

    def _forget_timeouts(self, record: ChildRecord) -> None:
        """The timeouts learned at ``record``'s path (and below a supervisor's) go with it:
        a Pool's key started again learns afresh."""
        paths = [record.path]
        if record.kind == "supervisor":
            below = record.path + "/"
            paths += [p for p in self.timeout_keys if p.startswith(below)]
        for path in paths:
            for key in self.timeout_keys.pop(path, ()):
                self.timeouts.pop(key, None)

    def subtree_timeouts(self, prefix: str) -> tuple[dict[str, float], dict[str, float]]:
        """The timeouts learned for paths under ``prefix``, and their longest successes."""
        timeouts: dict[str, float] = {}
        longest: dict[str, float] = {}
        for key, learned in self.timeouts.items():
            value = learned.learned_s()
            if key.startswith(prefix) and value is not None:
                timeouts[key], longest[key] = value, learned.longest_s
        return timeouts, longest

    def add_slot(self, slot: Slot, dynamic: bool = False) -> ChildRecord:
        """A record for ``slot``, last in start order."""
        policy = getattr(slot.spec, "levels", None) or self.spec.levels
        self.next_seq += 1
        path = f"{self.path}/{slot.name}"
        record = ChildRecord(slot, path, policy, self.index, self.next_seq)
        record.dynamic = dynamic
        self.children[slot.name] = record
        self.order.append(record)
        self.by_path[record.path] = record
        self.by_spec.setdefault(slot.spec.name, []).append(record)
        return record

    def remove(self, record: ChildRecord) -> None:
        """Forget ``record`` (its spec was deleted); what waited for it was answered already."""
        if self.children.get(record.name) is not record:
            return
        del self.children[record.name]
        self.by_path.pop(record.path, None)
        # (its floor goes, into the one of every path forgotten: a Pool whose keys come and
        # go keeps nothing per key, and a key started again still gets a higher incarnation;
        # a supervisor's takes those of the paths below it)
        gone = [record.path]
        if record.kind == "supervisor":
            below = record.path + "/"
            gone += [p for p in self.floors if p.startswith(below)]
        for path in gone:
            self.floor_forgotten = max(self.floor_forgotten, self.floors.pop(path, 0))
        if self.timeout_keys:
            self._forget_timeouts(record)
        self.index.drop(record)
        self.order.remove(record)
        kept = self.by_spec.get(record.spec_name, [])
        if record in kept:
            kept.remove(record)
        if not kept:
            self.by_spec.pop(record.spec_name, None)
        if self.failures:
            for ident in [i for i, f in self.failures.items() if f.child == record.name]:
                del self.failures[ident]

    def new_failure(
        self, child: str, message: Any, sender: Any, info: ErrorInfo, now: float
    ) -> FailedMessage:
        self.next_failure += 1
        record = FailedMessage(self.next_failure, child, message, sender, info, now)
        self.failures[record.id] = record
        return record
