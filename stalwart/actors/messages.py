"""The message protocol of managed actors.

Public messages come first; the rest are the tree's own protocol between an
actor and its supervisor. All are frozen msgspec Structs (they pickle, so they
cross process boundaries on the multi-process bases).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import msgspec

from ..strategies import ErrorInfo
from .errors import ERROR_TYPES, BreakerOpen, StalwartError


class RecoveryLevel(IntEnum):
    """The five progressive recovery levels."""

    BASIC = 1
    ENHANCED = 2
    COMPONENT = 3
    SYSTEM = 4
    CRITICAL = 5


class Chaos(msgspec.Struct, frozen=True):
    """Fault injection (``stalwart chaos``; needs ``start(..., chaos=True)``).

    ``raise``: the actor's next ``count`` messages fail (a transient fault the
    ladder recovers); ``hang``: its handler never returns (hang detection);
    ``leak``: it keeps ``nbytes`` more of memory it never frees.
    """

    kind: str
    count: int = 1
    nbytes: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("raise", "hang", "leak"):
            raise ValueError(f"Chaos.kind: expected raise, hang or leak, got {self.kind!r}")


class InjectedFault(RuntimeError):
    """The failure ``Chaos("raise")`` injects."""


class Batch(msgspec.Struct, frozen=True):
    """Several messages for one actor in one envelope; each is handled in order as if sent alone."""

    items: tuple[Any, ...]


class MemoryLevel(IntEnum):
    """How short of memory the tree is; each level above NORMAL has its cleanup tier."""

    NORMAL = 0
    WARNING = 1  # standard cleanup: hooks run, caches drop old entries
    CRITICAL = 2  # aggressive: caches shrink to their floor, gc and malloc_trim everywhere
    EMERGENCY = 3  # shed load, restart the largest restartable actors


class MemoryPressure(msgspec.Struct, frozen=True):
    """Internal: the memory-pressure actor asks an actor to free what it can."""

    id: int
    level: int
    collect: bool = False  # run gc.collect() (and malloc_trim on glibc) in its process


class MemoryFreed(msgspec.Struct, frozen=True):
    """Internal: what an actor freed (``caches`` and ``hook`` as they reported it)."""

    id: int
    path: str
    pid: int
    caches: int = 0
    hook: int = 0
    rss_before: int = 0
    rss_after: int = 0
    error: str = ""


class RecoveryRequest(msgspec.Struct, frozen=True):
    """Ask the tree to perform a recovery level's action on ``target`` (an actor path).

    Level 1 runs the actor's ``on_retry`` hook, 2 its ``on_adjust`` and
    ``on_retry`` hooks, 3 restarts it, 4 restarts its subtree per its
    supervisor's strategy, 5 takes the system-wide measures. Answered with a
    :class:`RecoveryResult`. ``by`` says who asks (``"api"``, ``"dashboard"``, ``"cli"``,
    ``"memory"``...): the recovery store records it with the attempt.
    """

    target: str
    level: int
    reason: str = ""
    by: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.level, int) or not 1 <= self.level <= 5:
            raise ValueError(f"RecoveryRequest.level: expected 1..5, got {self.level!r}")
        if not isinstance(self.target, str) or not self.target:
            raise ValueError(f"RecoveryRequest.target: expected an actor path, got {self.target!r}")


class RecoveryResult(msgspec.Struct, frozen=True):
    """The answer to a :class:`RecoveryRequest`."""

    target: str
    level: int
    ok: bool
    detail: str = ""
    duration_ms: float = 0.0


class ErrorReply(msgspec.Struct, frozen=True):
    """An error sent in place of a reply; :meth:`exception` turns it back into an exception."""

    error: str
    message: str
    path: str = ""
    remaining_s: float = 0.0  # for BreakerOpen

    def exception(self) -> StalwartError:
        """The matching :class:`StalwartError` subclass instance."""
        cls = ERROR_TYPES.get(self.error, StalwartError)
        if cls is BreakerOpen:
            return BreakerOpen(self.message, self.path, self.remaining_s)
        return cls(self.message, self.path)

    @classmethod
    def of(cls, exc: StalwartError) -> ErrorReply:
        """The reply carrying ``exc``."""
        remaining = exc.remaining_s if isinstance(exc, BreakerOpen) else 0.0
        return cls(type(exc).__name__, str(exc), exc.path, remaining)


class Failure(msgspec.Struct, frozen=True):
    """A failure as the ``on_retry``/``on_adjust`` hooks see it."""

    path: str
    info: ErrorInfo
    message: Any
    level: int
    attempt: int
    strategy: str
    traceback: str = ""


# -- the tree's own protocol (actor <-> supervisor, caller <-> resolver) ----------------


class Redelivery(msgspec.Struct, frozen=True):
    """A message to hand to a fresh instance, with the failure it belongs to."""

    message: Any
    sender: Any
    failure_id: int | None = None


class Init(msgspec.Struct, frozen=True):
    """First message to a new actor instance: who it is and what to restore."""

    path: str
    supervisor: Any
    root: Any
    incarnation: int
    restored_state: Any = None
    redeliver: tuple[Redelivery, ...] = ()
    replies: tuple[tuple[str, Any], ...] = ()
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    checkpoint: str | float = "message"
    supervisor_pid: int = 0
    clock_id: int = 0
    hold_limit: int = 10_000
    state_dir: str = ""  # checkpoint to a file there before replying ("": to the supervisor)
    restored_from: int = -1  # the incarnation that left ``restored_state`` (-1: none)
    restored_final: bool = False  # ``restored_state`` is what it reported as it stopped
    durable: bool = False  # its checkpoints go to the supervisor too (for the store)
    retry_from_checkpoint: bool = False  # level 1-2 retries start from the last checkpoint
    marks: tuple[tuple[str, int], ...] = ()  # per sender channel, the next number to handle
    node: str = ""  # the supervisor's cluster node ("" outside a cluster)
    tracing: str = ""  # where its spans go ("": OpenTelemetry off; see stalwart.actors._tracing)
    fresh: bool = False  # the first instance its path has had (no one sent to another before)
    logger_path: str = ""  # whose logger ``self.log`` is ("": its own path's)
    takes_over: int = 0  # a spare taking over at once from the crashed incarnation (0: none)


class Placed(msgspec.Struct, frozen=True):
    """An instance on another node than its supervisor's has its ``Init``: may it start?

    A partition can hold up the request to create it until its supervisor has given
    it up and placed a successor elsewhere; so it starts only once its supervisor
    answers :class:`Proceed` (and is stopped if it was replaced meanwhile).
    """

    path: str
    incarnation: int
    pid: int
    node: str = ""


class Proceed(msgspec.Struct, frozen=True):
    """To a placed instance: it is still the one its supervisor wants; it may start."""


class Standby(msgspec.Struct, frozen=True):
    """To a new instance kept as a warm spare of ``path``: get ready, answer, and wait for
    the ``Init`` that makes it the path's instance."""

    path: str
    supervisor_pid: int = 0
    writable: bool = False  # make the pages it alone maps writable (a takeover waits on it)


class StandbyReady(msgspec.Struct, frozen=True):
    """A spare's answer to ``Standby``: it is ready, in process ``pid``."""

    path: str
    pid: int


class Started(msgspec.Struct, frozen=True):
    """An instance finished (or failed) ``on_start``; on failure it hands back what it held."""

    path: str
    incarnation: int
    ok: bool
    pid: int
    error: ErrorInfo | None = None
    traceback: str = ""
    held: tuple[Redelivery, ...] = ()
    node: str = ""  # the cluster node it runs on ("" outside a cluster)


class FailureReport(msgspec.Struct, frozen=True):
    """A handler (or hook) raised: the supervisor decides what happens to the message."""

    path: str
    incarnation: int
    info: ErrorInfo
    message: Any
    sender: Any
    traceback: str = ""
    failure_id: int | None = None
    during: str = "message"
    handled_s: tuple[float, ...] = ()  # the latest successful handlings of its message type


class Retry(msgspec.Struct, frozen=True):
    """Handle ``message`` again (levels 1-2, or a reassignment at level 3)."""

    failure_id: int
    message: Any
    sender: Any
    level: int
    attempt: int
    strategy: str
    info: ErrorInfo
    traceback: str = ""


class GaveUp(msgspec.Struct, frozen=True):
    """The supervisor set request ``request_id`` aside with ``error``: whoever else waits for
    it gets that error, and the id may be handled afresh if it comes again."""

    request_id: str
    error: Any  # an ErrorReply


class RetryOutcome(msgspec.Struct, frozen=True):
    """A retried or redelivered message was handled."""

    path: str
    failure_id: int
    ok: bool


class Checkpoint(msgspec.Struct, frozen=True):
    """State to restore after a restart; ``last_reply`` lets a replayed request be answered.

    ``replies`` are the answers (address, ``Reply``) the handler gave: the supervisor
    sends them on once it holds the state they reflect.
    """

    path: str
    incarnation: int
    state: Any
    last_reply: tuple[str, Any] | None = None
    replies: tuple[tuple[Any, Any], ...] = ()
    acks: tuple[tuple[Any, Any], ...] = ()  # (sender, Acked): the tells this state reflects
    marks: tuple[tuple[str, int], ...] = ()  # how far it handled each sender's channel


class Retire(msgspec.Struct, frozen=True):
    """Stop: run ``on_stop``, report the final state; forward later messages if ``forward``.

    ``passivate``: it is passivated; what reaches it later goes to the root (as
    :class:`Stray`), which holds it for the next instance."""

    forward: bool = True
    passivate: bool = False


class Retired(msgspec.Struct, frozen=True):
    """The instance stopped; ``final_state`` is its last snapshot (or checkpoint table)."""

    path: str
    incarnation: int
    final_state: Any = None
    has_state: bool = False
    marks: tuple[tuple[str, int], ...] = ()  # how far it handled each sender's channel
    replies: tuple[tuple[Any, Any], ...] = ()  # answers of the handler that stopped it
    leaving: bool = False  # it stops for good: it exits once its supervisor has this
    acks: tuple[tuple[Any, Any], ...] = ()  # confirmations that wait for its final state
    floor: int = 0  # a supervisor's: the highest incarnation below it (or forgotten there)


class Successor(msgspec.Struct, frozen=True):
    """The new instance's address, for a retired instance to forward to."""

    address: Any


class Release(msgspec.Struct, frozen=True):
    """A retired instance may exit now (what it still holds is answered with ActorStopped)."""


class Forwarded(msgspec.Struct, frozen=True):
    """A message forwarded by a retired instance, with its original sender."""

    message: Any
    sender: Any


class Stray(msgspec.Struct, frozen=True):
    """To the root: a message for ``path`` reached an instance that failed to start, or a
    process that is not ``path``'s (at a port a dead instance of ``path`` had)."""

    path: str
    message: Any
    sender: Any


class StoppedNormally(msgspec.Struct, frozen=True):
    """The actor stopped itself (``self.stop()``): not a failure."""

    path: str
    incarnation: int


class RunHooks(msgspec.Struct, frozen=True):
    """Run the recovery hooks without a failed message (a requested level 1 or 2)."""

    request_id: int
    level: int
    reason: str


class HooksDone(msgspec.Struct, frozen=True):
    """Answer to :class:`RunHooks`."""

    request_id: int
    path: str
    ok: bool
    detail: str = ""


class HealthCheck(msgspec.Struct, frozen=True):
    """Are you alive (and well)? Answered by every managed actor with :class:`HealthReport`."""

    seq: int


class HealthReport(msgspec.Struct, frozen=True):
    """Answer to :class:`HealthCheck`; ``info`` classifies what a failed ``health()`` said."""

    path: str
    incarnation: int
    seq: int
    ok: bool
    detail: str = ""
    info: ErrorInfo | None = None


class Request(msgspec.Struct, frozen=True):
    """A message that expects a reply (``call``/``ask``).

    ``trace`` is the id of the request that started the chain of calls this one
    belongs to (its own id if it started one): failures carry it, so the
    correlator can tie an error in one service to the error that caused it.
    ``deadline`` is when the caller stops waiting (``time.time()``; 0: never): the
    tree answers before it rather than keep the request waiting past it.
    ``context``: with OpenTelemetry on, the W3C ``traceparent`` of the caller's span, which
    the span of its handling is a child of ("" when off). ``to``: the path a numbered
    request is for (a process that is not that path's hands it back to the root).
    """

    id: str
    message: Any
    reply_to: Any
    trace: str = ""
    deadline: float = 0.0
    chan: str = ""  # the sender's channel to the path ("": not in order with others)
    seq: int = 0  # its number on that channel
    base: int = 0  # the sender's lowest number the path has not confirmed
    context: str = ""
    to: str = ""  # the path it is numbered for ("": not numbered)


class Told(msgspec.Struct, frozen=True):
    """A message sent to a path with ``tell``, numbered on its sender's channel to it.

    The receiving actor handles a channel's messages in the order of ``seq``
    (holding back those that overtook others), drops one it handled already, and
    confirms them with :class:`Acked`; the sender sends again what was not
    confirmed when the path's instance died. ``context``: as :attr:`Request.context`.
    A ``Told`` with ``seq`` 0 is not numbered yet: a tell wrapped where it was made, to
    keep that moment's trace context, numbered when it leaves. ``to``: as
    :attr:`Request.to`.
    """

    message: Any
    chan: str
    seq: int
    base: int  # every number below it was confirmed
    reply_to: Any  # the sender (acknowledgements go there)
    context: str = ""
    to: str = ""  # the path it is numbered for


class Acked(msgspec.Struct, frozen=True):
    """To a sender: ``path`` handled (and checkpointed) its messages up to ``upto``."""

    path: str
    chan: str
    upto: int


class SendAgain(msgspec.Struct, frozen=True):
    """To a sender: ``path`` misses message ``expected`` of ``chan``; send what is unconfirmed."""

    path: str
    chan: str
    expected: int


class Resync(msgspec.Struct, frozen=True):
    """To a receiver: every message of ``chan`` below ``base`` was confirmed (skip to it)."""

    chan: str
    base: int


class Reply(msgspec.Struct, frozen=True):
    """The reply to a :class:`Request` (``value`` may be an :class:`ErrorReply`).

    ``alone``: it confirms this request only, not what its sender sent before (an earlier
    message is still under way in an actor that handles several at once)."""

    id: str
    value: Any
    alone: bool = False


class ReplyTo(msgspec.Struct, frozen=True):
    """The ``sender`` a handler sees for a request; answer it with ``self.reply``.

    ``deadline``: when the caller stops waiting (``time.time()``; 0: never).
    ``context``: with OpenTelemetry on, the W3C ``traceparent`` of the span handling the
    request (a failure report names it); "" when off.
    """

    address: Any
    id: str
    trace: str = ""
    deadline: float = 0.0
    context: str = ""


class Resolve(msgspec.Struct, frozen=True):
    """Ask the registry for a path's addresses (and subscribe ``subscriber`` to changes)."""

    path: str
    subscriber: str = ""
    incarnation: int = 0


class Resolved(msgspec.Struct, frozen=True):
    """A path's current addresses (empty while restarting), or an error.

    ``stopped``: its actor stopped for good (messages to it are not held).
    ``passive``: its actor is passivated: a sender holding messages for it sends
    :class:`Wake` once.
    """

    path: str
    addresses: tuple[Any, ...] = ()
    error: str | None = None
    stopped: bool = False
    group: bool = False  # a replica group: messages go round its members, in no order
    passive: bool = False


class AddressUpdate(msgspec.Struct, frozen=True):
    """A path's addresses changed; ``lost_inflight`` if the old instance died mid-message.

    ``holder`` (when its instance has just crashed) is the supervisor starting the next
    one: requests the crash lost go to it at once, as :class:`LostRequest`.
    """

    path: str
    addresses: tuple[Any, ...] = ()
    lost_inflight: bool = False
    holder: Any = None
    stopped: bool = False
    orphaned: bool = False  # its last instance died with its supervisor (and what it held)
    group: bool = False
    died: bool = False  # its last instance's process died: tells it did not confirm go again
    passive: bool = False  # passivated: who holds messages for it sends Wake
    crashed: int = 0  # with ``holder``: the incarnation that crashed (told once per crash)


class Wake(msgspec.Struct, frozen=True):
    """To the root: messages wait for the passivated actor at ``path``; start it again."""

    path: str


class Undeliverable(msgspec.Struct, frozen=True):
    """To the root: ``message`` could not go to ``path`` (``error`` says why); a dead letter."""

    path: str
    message: Any
    error: str


class Handover(msgspec.Struct, frozen=True):
    """To an instance: a request its predecessor was handling when it died; handle it, then
    say so with :class:`HandoverDone` (an instance that dies on it too has found a poison).

    ``crashed``: handed by the caller itself, straight to the spare its supervisor named
    when incarnation ``crashed`` died (see :class:`CrashNotice`); only an instance that took
    over from that incarnation handles it (the supervisor hands it on otherwise).
    """

    request: Any
    crashed: int = 0


class HandoverDone(msgspec.Struct, frozen=True):
    """To the supervisor: the handed-over request ``request_id`` has been handled."""

    path: str
    incarnation: int
    request_id: str


class LostRequest(msgspec.Struct, frozen=True):
    """To a supervisor: a request its crashed child was handling, for the next instance.

    ``behind``: it was queued behind an unconfirmed message of its channel when the child
    died, so that death, and one before the next instance reaches it, is not its doing.
    """

    path: str
    request: Any
    behind: bool = False
    direct: int = 0  # handed straight to the spare after incarnation ``direct`` died: a note


class CrashNotice(msgspec.Struct, frozen=True):
    """From the supervisor of a child that keeps a spare, to those who send to it, as soon
    as incarnation ``incarnation`` of ``path`` has crashed (the root's
    :class:`AddressUpdate` follows): what it was handling goes to ``holder`` at once, or
    (what was not handed over before) straight to the ``spare`` that is to take over."""

    path: str
    incarnation: int
    holder: Any
    spare: Any = None


class RouteState(msgspec.Struct, frozen=True):
    """A breaker in front of ``path`` changed state (pushed to those who send to it).

    While ``state`` is open and ``fails_fast``, callers answer their own calls with
    ``CircuitOpenError`` for ``remaining_s`` without sending anything.
    """

    path: str
    state: str
    remaining_s: float = 0.0
    fails_fast: bool = True


class QueuedForLater(msgspec.Struct, frozen=True):
    """The reply while a breaker queues requests: yours is stored as ``id`` and will be replayed."""

    path: str
    id: int
