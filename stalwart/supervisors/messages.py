"""The supervisors' protocol: supervisor <-> parent, supervisor <-> root, System <-> root.

:class:`ActorStatus`, :class:`StatusSummary` and :class:`Event` are public
(``System.status()``, ``System.summary()`` and ``System.events()`` return them); the rest
is internal.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..actors.messages import MemoryLevel
from ..strategies import ErrorInfo
from ..strategies._learned_timeout import TimeoutRule


class ActorStatus(msgspec.Struct, frozen=True):
    """One node of the live tree."""

    path: str
    kind: str  # "supervisor", "actor" or "breaker"
    state: str  # starting, running, retrying, restarting, stopped, failed, hung
    level: int = 0
    restarts: int = 0
    last_error: str = ""
    pid: int = 0  # its process (0: none, or one leaving: crashed, passivated)
    node: str = ""
    incarnation: int = 0
    actor_class: str = ""
    breaker: str = ""  # the state of a breaker actor (closed, open, half_open...)
    breaker_health: int | None = None  # a breaker actor's health score, 0-100


class StatusSummary(msgspec.Struct, frozen=True):
    """The live tree in brief (``System.summary()``): what a tree of any size costs to read.

    ``counts``: entries by state; ``kinds``: by kind (supervisor, actor, breaker);
    ``unhealthy``: the first of the ``unhealthy_total`` entries that are not running, are
    recovering (a level above 0) or sit behind a breaker that is not closed, in tree order
    (a passivated actor is not one of them).
    """

    total: int
    counts: dict[str, int]
    kinds: dict[str, int]
    unhealthy: tuple[ActorStatus, ...]
    unhealthy_total: int
    phase: str = "running"
    stop_reason: str = ""


class TreeGauges(msgspec.Struct, frozen=True):
    """What ``GET /metrics`` reads of the live tree.

    ``levels``: ``(path, level)`` of each entry the tree declares, and of each entry added
    at run time (a Pool's instance, a ``start_child``'s child, what is below it) whose level
    is above 0; ``counts``: ``(kind, state, level, how many)`` over every entry;
    ``breakers``: ``(path, state)`` of each breaker that runs and is not closed.
    """

    levels: tuple[tuple[str, int], ...]
    counts: tuple[tuple[str, str, int, int], ...]
    breakers: tuple[tuple[str, str], ...] = ()


class Event(msgspec.Struct, frozen=True):
    """Something the tree did: a failure, a retry, a restart, an escalation..."""

    seq: int
    time: float
    kind: str
    path: str
    level: int = 0
    detail: str = ""
    category: str = ""
    fingerprint: str = ""
    strategy: str = ""
    duration_ms: float = 0.0
    severity: int = 0
    trace: str = ""  # the trace id of the request that failed, if it was one


class DeadLetter(msgspec.Struct, frozen=True):
    """A message set aside because recovery could not get it handled."""

    id: int
    time: float
    path: str
    message: Any
    error: str
    category: str = ""
    fingerprint: str = ""
    reply_to: Any = None
    request_id: str | None = None


# -- supervisor <-> parent / root ---------------------------------------------------------


class SupervisorInit(msgspec.Struct, frozen=True):
    path: str
    spec: Any
    parent: Any
    root: Any
    incarnation: int
    checkpoints: dict[str, Any] = msgspec.field(default_factory=dict)
    clock_id: int = 0
    learned: Any = None  # LearnedState
    settings: dict[str, Any] = msgspec.field(default_factory=dict)  # system-wide (store path)
    floors: dict[str, int] | None = None  # last incarnation per path below; None: ask the root


class InOrder(msgspec.Struct, frozen=True):
    """A supervisor's mail for the root on the multi-process bases, numbered from 1 per
    instance: the root handles each instance's envelopes in the order they were sent
    (Thespian's TCP transport can deliver a transmit it had to retry after a later one).
    ``instance`` tells instances apart (a random number each: an incarnation number can
    come again after a restart of the supervisor above)."""

    origin: str
    incarnation: int
    instance: int
    seq: int
    items: tuple[Any, ...]


class FloorsQuery(msgspec.Struct, frozen=True):
    """A restarted supervisor asks the root for the last incarnations below ``path``."""

    path: str


class Floors(msgspec.Struct, frozen=True):
    """The root's answer: the last incarnation of every path below ``path``."""

    path: str
    floors: dict[str, int]


class Escalate(msgspec.Struct, frozen=True):
    """``path`` could not be recovered below ``level``; the parent (or root) takes over."""

    path: str
    level: int
    reason: str
    info: ErrorInfo | None = None
    origin: str = ""


class Registered(msgspec.Struct, frozen=True):
    path: str
    address: Any
    pid: int
    incarnation: int
    kind: str
    group: str | None = None
    lost_inflight: bool = False
    actor_class: str = ""
    level: int = 0
    restarts: int = 0
    node: str = ""
    died: bool = False  # the instance before it died (its unconfirmed tells go again)
    added_by: int = 0  # added at run time by this instance of its supervisor (0: declared)
    reactivated: bool = False  # a passivated actor started again (not a restart)
    fresh: bool = False  # the first instance its path has had (not a restart)
    spare: bool = False  # made from a warm spare (no process created on the way)
    standby: bool = False  # it keeps a spare: its supervisor tells its callers of a crash


class Watchers(msgspec.Struct, frozen=True):
    """From the root to the supervisor of a child that keeps a spare: who sends to ``path``
    (each is sent a :class:`~stalwart.actors.messages.CrashNotice` when it crashes), as
    ``(key, address)`` pairs: all of them (``whole``), or one that subscribed since."""

    path: str
    watchers: tuple[tuple[str, Any], ...] = ()
    whole: bool = True


class Unavailable(msgspec.Struct, frozen=True):
    """``path`` has no serving instance for now (restarting) or for good (``removed``)."""

    path: str
    state: str
    removed: bool = False
    lost_inflight: bool = False
    incarnation: int = 0  # with ``lost_inflight``: the instance that crashed


class StateNote(msgspec.Struct, frozen=True):
    path: str
    state: str
    level: int
    restarts: int
    last_error: str = ""


class EventNote(msgspec.Struct, frozen=True):
    """An event; with ``state`` set it also updates the path's entry (one message, not two)."""

    kind: str
    path: str
    level: int = 0
    detail: str = ""
    category: str = ""
    fingerprint: str = ""
    strategy: str = ""
    duration_ms: float = 0.0
    state: str = ""
    current_level: int = 0
    restarts: int = 0
    last_error: str = ""
    severity: int = 0
    trace: str = ""
    context: str = ""  # OpenTelemetry: the traceparent of the handler that failed (a link)

    def event_fields(self) -> dict[str, Any]:
        """What an :class:`Event` recorded from this note carries besides kind and path."""
        return {
            "level": self.level,
            "detail": self.detail,
            "category": self.category,
            "fingerprint": self.fingerprint,
            "strategy": self.strategy,
            "duration_ms": self.duration_ms,
            "severity": self.severity,
            "trace": self.trace,
        }


class DeadLetterNote(msgspec.Struct, frozen=True):
    path: str
    message: Any
    error: str
    category: str = ""
    fingerprint: str = ""
    reply_to: Any = None
    request_id: str | None = None


class BreakerNote(msgspec.Struct, frozen=True):
    """A breaker actor changed state (to the root and to its supervisor); ``incarnation``:
    the instance's (a note of an instance replaced since is not believed)."""

    path: str
    state: str
    remaining_s: float = 0.0
    fails_fast: bool = True
    health: int = 100
    incarnation: int = 0


class BreakerHealth(msgspec.Struct, frozen=True):
    """A breaker actor's health score (0-100) changed (to the root, at most twice a second)."""

    path: str
    health: int


class DependencyDown(msgspec.Struct, frozen=True):
    """A dependency of this subtree is down (its breaker is open) or back (``down=False``)."""

    path: str
    down: bool


TIERS = {1: "warning", 2: "critical", 3: "emergency"}


class MemoryCleanupRequest(msgspec.Struct, frozen=True):
    """Run a cleanup tier now (``tier``: 1 WARNING, 2 CRITICAL, 3 EMERGENCY, or its name).

    Send it to ``_system/memory`` (``System.memory_cleanup(tier)`` does); the
    answer is a :class:`CleanupReport`.
    """

    tier: int | str
    reason: str = ""

    def __post_init__(self) -> None:
        tier = self.tier
        if isinstance(tier, str):
            names = {name: level for level, name in TIERS.items()}
            if tier.lower() not in names:
                raise ValueError(
                    f"MemoryCleanupRequest.tier: expected one of {', '.join(names)}, got {tier!r}"
                )
            msgspec.structs.force_setattr(self, "tier", names[tier.lower()])
        elif isinstance(tier, bool) or not 1 <= tier <= 3:
            raise ValueError(f"MemoryCleanupRequest.tier: expected 1, 2 or 3, got {tier!r}")

    @property
    def level(self) -> MemoryLevel:
        """The tier as a :class:`~stalwart.MemoryLevel`."""
        return MemoryLevel(int(self.tier))


class MemoryQuery(msgspec.Struct, frozen=True):
    """Ask the memory-pressure actor for its :class:`MemoryStatus`."""


class ShedLoad(msgspec.Struct, frozen=True):
    """Start (``on``) or stop shedding load: new asks and protected calls get ``Overloaded``."""

    on: bool
    reason: str = ""


class IncidentHold(msgspec.Struct, frozen=True):
    """Hold (``on``) or resume the failures of ``dependents`` while ``cause`` recovers.

    ``probe``: retry one message held for ``cause`` as a trial (whether it is back).
    """

    cause: str
    dependents: tuple[str, ...]
    on: bool
    probe: bool = False


class KillSubtree(msgspec.Struct, frozen=True):
    """Kill every process registered under ``path`` (its supervisor died)."""

    path: str


class ChildrenPlanned(msgspec.Struct, frozen=True):
    """Instance ``incarnation`` of the supervisor at ``path`` added ``spec``: the root learns
    its paths (messages to them wait until they register)."""

    path: str
    incarnation: int
    spec: Any


class PoolsChanged(msgspec.Struct, frozen=True):
    """To the telemetry actor: Pools added at run time (not below another Pool), whose
    instances it counts together, and Pools gone."""

    added: tuple[str, ...]
    removed: tuple[str, ...] = ()


class PathsGone(msgspec.Struct, frozen=True):
    """To the telemetry actor: these paths were forgotten (their specs went). What it
    keeps for one path alone (its durable checkpoint, learned timeouts and levels) goes,
    and its error groups end; a path in ``kept`` (it never started in this run: a first
    start that failed) keeps the checkpoint an earlier run stored for it."""

    paths: tuple[str, ...]
    reason: str
    kept: tuple[str, ...] = ()  # of these, never started in this run: their checkpoints stay
    under: tuple[str, ...] = ()  # what it keeps for any path below these goes too


class StoredGone(msgspec.Struct, frozen=True):
    """To the root: ``delete_child`` of a child added at run time in an earlier run and not
    started in this one. What the store kept for ``path`` and below it goes, rows too,
    unless the path has started since; the root answers ``StoredDropped``."""

    path: str
    incarnation: int  # the asking supervisor's
    reason: str


class StoredDropped(msgspec.Struct, frozen=True):
    """The root's answer to ``StoredGone``: what it kept is gone (the supervisor starts the
    path again only after this, so no one is handed it any more)."""

    path: str
    incarnation: int


class ChildrenGone(msgspec.Struct, frozen=True):
    """The specs at ``paths`` were deleted: the root forgets them and what is below them."""

    paths: tuple[str, ...]
    reason: str


class ChildrenNow(msgspec.Struct, frozen=True):
    """Instance ``incarnation`` of the supervisor at ``path`` begins with its declared
    children only: children an earlier instance added are gone. With ``stored``, it waits
    for the durable checkpoints an earlier run kept below it (``StoredStates``) before it
    starts a child at run time."""

    path: str
    incarnation: int
    stored: bool = False


class StoredStates(msgspec.Struct, frozen=True):
    """The root's answer to ``ChildrenNow(stored=True)``: the durable checkpoints an earlier
    run kept for paths below ``path`` that have not started in this run (path -> state)."""

    path: str
    incarnation: int
    states: dict[str, Any]


class PerformRecovery(msgspec.Struct, frozen=True):
    request_id: int
    target: str
    level: int
    reason: str


class RecoveryDone(msgspec.Struct, frozen=True):
    request_id: int
    ok: bool
    detail: str = ""


# -- correlator <-> root ---------------------------------------------------------------------


class RootCauseFound(msgspec.Struct, frozen=True):
    """The correlator's finding: ``path`` explains the errors of ``dependents``."""

    path: str
    dependents: tuple[str, ...]
    explained: float
    evidence: str


class CorrelationNote(msgspec.Struct, frozen=True):
    """A pattern the correlator noticed (kept as a ``correlation`` event)."""

    path: str
    detail: str


class IncidentClosed(msgspec.Struct, frozen=True):
    """The incident caused by ``cause`` is over (at wall-clock ``time``)."""

    cause: str
    time: float


class CorrelatorQuery(msgspec.Struct, frozen=True):
    """Base of the questions the correlator answers."""


class AnalysisQuery(CorrelatorQuery, frozen=True):
    """The correlator's analysis of the recent errors (an ``Analysis``)."""


class WindowQuery(CorrelatorQuery, frozen=True):
    """How much the correlator's window holds: events, added, bytes."""


class Incident(msgspec.Struct, frozen=True):
    """A cascade the correlator traced to one root cause, and how the tree handled it.

    ``state`` is ``open`` (dependents held while the cause recovers), ``resolved``
    (the cause came back and the dependents resumed), ``expired`` (the cause did
    not come back within ``incident_max_s``; the dependents' failures were let go
    through their own ladders) or ``merged`` (its cause turned out to fail because
    of another: it became part of that incident). ``restarts`` counts each dependent's restarts
    while the incident was open.
    """

    id: int
    cause: str
    dependents: tuple[str, ...]
    state: str
    opened: float
    closed: float = 0.0
    evidence: str = ""
    restarts: dict[str, int] = msgspec.field(default_factory=dict)


# -- System <-> root ------------------------------------------------------------------------


class Boot(msgspec.Struct, frozen=True):
    id: int
    tree: Any
    options: Any
    starter_pid: int
    clock_id: int = 0
    state_dir: str = ""  # where actors keep their checkpoint files ("": in memory only)
    spans: str = ""  # OpenTelemetry: where the tree's spans go ("": off; "local"; a socket)


class GatewayAsk(msgspec.Struct, frozen=True):
    """Ask ``path`` for the System; ``deadline``: when the caller stops waiting (its
    ``time.time()``, taken before the ask left it; 0: never)."""

    id: int
    path: str
    message: Any
    deadline: float
    context: str = ""  # OpenTelemetry: the traceparent of the System's ask span


class GatewayCancel(msgspec.Struct, frozen=True):
    """The System stopped waiting for ask ``id`` (it timed out)."""

    id: int


class GatewayTell(msgspec.Struct, frozen=True):
    path: str
    message: Any
    context: str = ""  # OpenTelemetry: the traceparent of the System's tell span


class GatewayQuery(msgspec.Struct, frozen=True):
    """A question of the ``System`` to the root: ``query`` is one of the types in
    :mod:`.queries`."""

    id: int
    query: Any


class GatewayReply(msgspec.Struct, frozen=True):
    id: int
    value: Any


# -- records for the telemetry service (produced by the tree, forwarded by the root) -------


class TelemetryRecord(msgspec.Struct, frozen=True):
    """Base of what the root forwards to the telemetry service as it arrives."""


class Attempt(TelemetryRecord, frozen=True):
    """One recovery attempt: which strategy ran at which level, and how it went.

    ``requested_by`` names who asked for it when it was a ``RecoveryRequest`` (the API,
    the dashboard, the memory service, ``System.request_recovery``...). ``timeout_s`` is
    the retry timeout the supervisor learned for the operation at the path by then, and
    ``longest_s`` the longest success it saw (0: none learned), kept for the next run.
    """

    time: float
    path: str
    operation: str
    category: str
    fingerprint: str
    level: int
    strategy: str
    success: bool
    duration_s: float
    mem_delta_bytes: int = 0
    cpu_delta_s: float = 0.0
    requested_by: str = ""
    timeout_s: float = 0.0
    longest_s: float = 0.0


class MemoryEvent(TelemetryRecord, frozen=True):
    """A memory cleanup that ran (or a level change): tier, trigger, bytes before and after."""

    time: float
    tier: str
    trigger: str
    percent: float
    before_bytes: int = 0
    after_bytes: int = 0
    freed_bytes: int = 0
    duration_s: float = 0.0
    detail: str = ""


class DurableCheckpoint(TelemetryRecord, frozen=True):
    """A checkpoint of a ``Child(..., durable=True)`` to keep across whole-system restarts."""

    path: str
    state: Any
    incarnation: int = 0


class LearnedState(msgspec.Struct, frozen=True):
    """What a starting tree takes over from the store."""

    selector: dict[str, list[float]] = msgspec.field(default_factory=dict)
    timeouts: dict[str, float] = msgspec.field(default_factory=dict)  # "path|operation" -> s
    checkpoints: dict[str, Any] = msgspec.field(default_factory=dict)
    longest: dict[str, float] = msgspec.field(default_factory=dict)  # longest success seen
    timeout_rule: TimeoutRule = msgspec.field(default_factory=TimeoutRule)


class ResetLevels(msgspec.Struct, frozen=True):
    """Reset the recovery ladders of ``path`` and below ("" for every actor)."""

    path: str = ""


# -- the cluster: node monitor -> root -> supervisors ------------------------------------------


class NodesChanged(msgspec.Struct, frozen=True):
    """The node monitor's news: a node joined, was lost or left; the live nodes now."""

    event: str  # node-joined, node-lost, node-left
    node: str
    detail: str
    nodes: dict[str, dict[str, Any]]  # live nodes -> capabilities
    lost: tuple[str, ...]


class Nodes(msgspec.Struct, frozen=True):
    """The root tells every supervisor which nodes are live and which were lost."""

    nodes: dict[str, dict[str, Any]]
    lost: tuple[str, ...]


class NodeDown(msgspec.Struct, frozen=True):
    """The children ``paths`` ran on ``node``, which is lost: recover them elsewhere."""

    node: str
    paths: tuple[str, ...]
    reason: str
    lost: tuple[str, ...]


class PassivateIdle(msgspec.Struct, frozen=True):
    """Memory is at ``level`` (warning or above): from the memory actor to the root, and
    on to every supervisor, which passivates some of its idle opted-in children."""

    level: int


class Reactivate(msgspec.Struct, frozen=True):
    """From the root to a supervisor: messages wait for its passivated child at ``path``."""

    path: str
