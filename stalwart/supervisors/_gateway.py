"""The root's outward half: the ``System``'s questions, requested recoveries, the event log.

Mixed into :class:`~stalwart.supervisors._root.RootActor`. Each question is one
type from :mod:`.queries`; :func:`answer_query` answers the ones that only read
the root's state, so that on the in-process base ``System`` can answer them
directly (under the root's lock) while an actor's handler runs for seconds.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec

from ..actors._calls import Caller, numbered
from ..actors._children import CHILD_REQUESTS, not_a_supervisor
from ..actors._coalesce import unpacked
from ..actors._managed import redirectable
from ..actors._placement import NODE_ENV
from ..actors._runtime import DeadEnvelope, kill_system_process
from ..actors._timers import WAKE
from ..actors.errors import (
    ActorStopped,
    BadMessage,
    Overloaded,
    ServiceOff,
    StalwartError,
    SystemStopped,
    UnknownMessage,
    UnknownPath,
)
from ..actors.messages import Batch, Chaos, ErrorReply, RecoveryRequest, RecoveryResult, Told
from ..supervisors.queries import (
    DeadLettersQuery,
    EventsQuery,
    FinalReportQuery,
    IncidentsQuery,
    InjectQuery,
    PathsQuery,
    RecoverQuery,
    RedeliverQuery,
    ResetQuery,
    ServiceQuery,
    ShutdownQuery,
    StatusQuery,
    StoreQuery,
    SummaryQuery,
    TreeGaugesQuery,
)
from ._registry import SETTLED_STATES, Registry
from ._status import Reads, status_page, summarize, tree_gauges
from .messages import (
    Attempt,
    CorrelatorQuery,
    DeadLetter,
    DeadLetterNote,
    Event,
    EventNote,
    GatewayAsk,
    GatewayCancel,
    GatewayQuery,
    GatewayReply,
    GatewayTell,
    MemoryEvent,
    PerformRecovery,
    RecoveryDone,
    ResetLevels,
    ShedLoad,
    StateNote,
)
from .spec import Supervisor

if TYPE_CHECKING:
    from ._spans import IncidentSpans

TELEMETRY = "_system/telemetry"
CORRELATOR = "_system/correlator"
MEMORY = "_system/memory"
_BATCH_S = 0.02  # how long events for the services may wait to go out together
_BATCH_MAX = 256
SYSTEM_PREFIX = "_system/"
READ_ONLY = (
    StatusQuery,
    SummaryQuery,
    EventsQuery,
    DeadLettersQuery,
    FinalReportQuery,
    IncidentsQuery,
    PathsQuery,
    TreeGaugesQuery,
)


class Sealed(msgspec.Struct, frozen=True):
    """A message the ``System`` pickled itself (multi-process bases), opened by the root.

    The runtime drops an envelope its receiver cannot unpickle without a word (an ask
    would time out); opened here, such a message is refused naming its type.
    """

    kind: str  # the message's type, module.qualname
    data: bytes


def seal(msg: Any) -> Sealed:
    """``msg`` pickled for the root; BadMessage naming the type if it cannot be."""
    kind = f"{type(msg).__module__}.{type(msg).__qualname__}"
    try:
        return Sealed(kind, pickle.dumps(msg))
    except Exception as exc:  # a class defined in a function, a lock, a failing __reduce__...
        where = _unpicklable_part(msg)
        raise BadMessage(
            f"{kind}{f' ({where})' if where else ''} cannot be sent to another process"
            f" ({type(exc).__name__}: {exc}): messages must pickle, and their types be"
            " importable by module and name"
        ) from None


def _unpicklable_part(msg: Any) -> str:
    """The first field of ``msg`` (a Struct) that does not pickle, and in a table the first
    such entry: ``options['on_done']``; "" if none is found alone."""
    for name in getattr(msg, "__struct_fields__", ()):
        value = getattr(msg, name)
        if _pickles(value):
            continue
        if isinstance(value, dict):
            for key, item in value.items():
                if not _pickles(item):
                    return f"{name}[{key!r}]"
        return str(name)
    return ""


def _pickles(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


def unseal(msg: Any) -> Any:
    """The message a :class:`Sealed` holds (anything else as it is); BadMessage naming the
    type if this process cannot unpickle it."""
    if type(msg) is not Sealed:
        return msg
    try:
        return pickle.loads(msg.data)
    except Exception as exc:  # its module or class is missing here, a failing __reduce__...
        raise BadMessage(
            f"{msg.kind} cannot be read by the actors' processes ({type(exc).__name__}: {exc}):"
            " its type must be importable there by module and name"
        ) from None


class Gateway(Caller):
    """Mixin: the event log, dead letters, the ``System``'s questions, requested recoveries."""

    registry: Registry
    reads: Reads
    tree: Supervisor | None
    final_report: dict[str, Any] | None
    telemetry_on: bool
    options: Any

    if TYPE_CHECKING:  # provided by RootActor

        @property
        def phase(self) -> str: ...
        @property
        def stop_reason(self) -> str: ...
        def system_measures(self, reason: str) -> None: ...
        def begin_shutdown(self, asker: Any, ident: int) -> None: ...
        def correlate(self, event: Event) -> None: ...
        def incidents(self) -> tuple[Any, ...]: ...
        def answer_when_all_registered(self) -> None: ...

        correlator_on: bool
        lock: threading.RLock

    def init_gateway(self) -> None:
        self.events: deque[Event] = deque(maxlen=10_000)
        self.dead: deque[DeadLetter] = deque(maxlen=10_000)
        self._seq = 0
        self._dead_ids = 0
        self.recoveries: dict[int, tuple[Any, Any, RecoveryRequest, float]] = {}
        self._recovery_ids = 0
        self.tree_waiters: list[int] = []
        self.gateway_calls: dict[int, str] = {}
        self.shedding = ""  # why new work is refused (memory emergency), or "" if it is not
        self.outbox: dict[str, list[Any]] = {}  # batched messages for system services
        self.outbox_due = False
        self.before_hang: dict[str, str] = {}  # in-process: hung path -> its state before
        self.spans: IncidentSpans | None = None  # OpenTelemetry, when the system traces

    # -- events and dead letters ------------------------------------------------------------
    def record(self, kind: str, path: str, context: str = "", **fields: Any) -> None:
        """Keep an event, and pass it on to telemetry, the correlator and the spans.

        ``context``: the traceparent of the handler whose failure it reports (tracing)."""
        self._seq += 1
        event = Event(self._seq, time.time(), kind, path, **fields)
        self.events.append(event)
        if self.telemetry_on:
            self.post(TELEMETRY, event)
        self.correlate(event)
        if self.spans is not None:
            self.spans.on_event(event, context)

    def note_hang(self, path: str, hung: bool, detail: str) -> None:
        """In-process: the watchdog thread saw ``path`` stuck in a handler (or leave it).

        The actors cannot run meanwhile, so this runs on the watchdog's thread, under
        :attr:`lock`: the status says ``hung`` and an event is kept (the event stays out of
        telemetry and the correlator, which live on the stuck thread).
        """
        with self.lock:
            self.reads.changed()
            entry = self.registry.entries.get(path)
            if entry is not None:
                if hung:
                    self.before_hang[path] = entry.state
                    entry.state = "hung"
                elif entry.state == "hung":
                    entry.state = self.before_hang.pop(path, "running")
            self._seq += 1
            kind = "hung" if hung else "recovered"
            self.events.append(Event(self._seq, time.time(), kind, path, level=3, detail=detail))

    def post(self, path: str, msg: Any) -> None:
        """Send ``msg`` to a system service soon, batched with others (off the hot path).

        Recording must not slow recovery: on the in-process base every message
        to telemetry or the correlator would otherwise be handled before the
        redelivered message that recovery is waiting for.
        """
        box = self.outbox.setdefault(path, [])
        box.append(msg)
        if len(box) >= _BATCH_MAX:
            self.flush_outbox()
        elif not self.outbox_due:
            self.outbox_due = True
            self.after(_BATCH_S, (WAKE, "flush-outbox"), key="flush-outbox")

    def flush_outbox(self) -> None:
        """Send what ``post`` gathered (before anything that must come after it)."""
        self.outbox_due = False
        self.cancel("flush-outbox")
        outbox, self.outbox = self.outbox, {}
        for path, items in outbox.items():
            self._sw_send_path(path, items[0] if len(items) == 1 else Batch(tuple(items)))

    def on_event(self, msg: EventNote, sender: Any) -> None:
        self.record(msg.kind, msg.path, msg.context, **msg.event_fields())
        if msg.state:
            self.registry.note_state(
                StateNote(msg.path, msg.state, msg.current_level, msg.restarts, msg.last_error)
            )
            if msg.state in SETTLED_STATES:  # (waiting for a node, or for a dependency)
                self.answer_when_all_registered()

    def on_dead_letter(self, msg: DeadLetterNote, sender: Any) -> None:
        self.dead_letter(
            msg.path,
            msg.message,
            msg.error,
            msg.category,
            msg.fingerprint,
            msg.reply_to,
            msg.request_id,
        )

    def dead_letter(
        self,
        path: str,
        message: Any,
        error: str,
        category: str = "",
        fingerprint: str = "",
        reply_to: Any = None,
        request_id: str | None = None,
        kind: str = "dead-letter",
    ) -> None:
        """Keep ``message`` as a dead letter (inspectable, re-sendable) and record the event
        (``kind``: ``dead-letter`` for what the tree gave up on)."""
        self._dead_ids += 1
        letter = DeadLetter(
            self._dead_ids,
            time.time(),
            path,
            message,
            error,
            category,
            fingerprint,
            reply_to,
            request_id,
        )
        self.dead.append(letter)
        if self.telemetry_on:
            self.post(TELEMETRY, letter)
        self.record(
            kind,
            path,
            detail=f"#{self._dead_ids}: {error}"[:300],
            category=category,
            fingerprint=fingerprint,
        )

    def to_telemetry(self, msg: Any, sender: Any) -> None:
        """Attempts, durable checkpoints and memory events go on to the telemetry actor."""
        if self.telemetry_on:
            self.post(TELEMETRY, msg)

    def on_attempt(self, msg: Attempt, sender: Any) -> None:
        """A recovery attempt ended: a span of its incident (tracing), a row in the store."""
        if self.spans is not None:
            self.spans.on_attempt(msg)
        self.to_telemetry(msg, sender)

    def on_memory_event(self, msg: MemoryEvent, sender: Any) -> None:
        """A memory cleanup ran: an event, and a row for the recovery store."""
        freed = msg.freed_bytes / 2**20
        said = f"freed {freed:.1f} MiB" if freed >= 0 else f"freed none (grew {-freed:.1f} MiB)"
        self.record(
            "memory",
            MEMORY,
            detail=f"{msg.tier} cleanup ({msg.trigger}) at {msg.percent:.1f}%: {said}",
            strategy=msg.tier,
            duration_ms=msg.duration_s * 1000,
        )
        if self.spans is not None:
            self.spans.on_memory(msg)
        self.to_telemetry(msg, sender)

    def on_shed_load(self, msg: ShedLoad, sender: Any) -> None:
        """Start or stop refusing new work: asks from outside and protected calls."""
        self.shedding = msg.reason if msg.on else ""
        self.record("shed-load", MEMORY, detail=f"{'on' if msg.on else 'off'}: {msg.reason}")
        for path in self.registry.paths_of_kind("breaker"):
            self._sw_send_path(path, msg)

    def on_dead_envelope(self, msg: DeadEnvelope, sender: Any) -> None:
        """What reached an instance that is gone goes to its path's new one (each message
        of a batch that may, in order)."""
        messages = [m for m in unpacked(msg.deadMessage) if redirectable(m)]
        if not messages:
            return
        path = self.registry.path_of_retired(msg.deadAddress)
        if path is not None:
            for message in messages:
                self._sw_send_path(path, message)

    # -- asks and tells from the System ---------------------------------------------------------
    def refusal(self, path: str) -> StalwartError | None:
        """Why an ask or tell to ``path`` cannot go ahead now, or None."""
        if self.phase in ("stopping", "stopped"):
            return SystemStopped(f"the system has stopped: {self.stop_reason or 'shut down'}")
        if not self.registry.knows(path):
            return UnknownPath(self.registry.unknown(path), path)
        if self.registry.stopped(path):
            return ActorStopped(f"{path} has stopped for good", path)
        if self.shedding and not path.startswith(SYSTEM_PREFIX):
            return Overloaded.shedding(path, self.shedding)
        return None

    def not_for(self, path: str, message: Any) -> StalwartError | None:
        """Why ``message`` cannot go to ``path`` (a supervisor takes only the requests about
        its children, and only a supervisor takes those), or None."""
        entry = self.registry.entries.get(path)
        if type(message) in CHILD_REQUESTS:
            if entry is None or entry.kind == "supervisor":
                return None
            return not_a_supervisor(path, entry.kind)
        if entry is not None and entry.kind == "supervisor":
            name = type(message).__name__
            return UnknownMessage(
                f"{path} is a supervisor: it has no handler for message type {name!r}"
                " (send messages to the actors under it)",
                path,
            )
        return None

    def on_gateway_ask(self, msg: GatewayAsk, sender: Any) -> None:
        try:
            message = unseal(msg.message)
            refused = self.refusal(msg.path) or self.not_for(msg.path, message)
        except BadMessage as exc:
            refused = exc
        if refused is not None:
            self.send(sender, GatewayReply(msg.id, ErrorReply.of(refused)))
            return
        self.gateway_call(
            msg.id, sender, msg.path, message, deadline=msg.deadline, context=msg.context
        )

    def gateway_call(
        self,
        ident: int,
        asker: Any,
        path: str,
        message: Any,
        timeout: float | None = None,
        deadline: float = 0.0,
        context: str = "",
    ) -> None:
        """Call ``path`` for the System; the answer goes back as ``GatewayReply(ident)``.

        ``context``: the traceparent of the System's span for the ask (tracing)."""

        def answer(value: Any) -> None:
            self.gateway_calls.pop(ident, None)
            self.send(asker, GatewayReply(ident, value))

        self.flush_outbox()  # a question to a service comes after what was sent to it
        # without a timeout here the System times the ask out itself and sends GatewayCancel
        self.gateway_calls[ident] = self._sw_call(
            path,
            message,
            timeout,
            answer,
            lambda error: answer(ErrorReply.of(error)),
            deadline=deadline,
            context=context,
        )

    def on_gateway_cancel(self, msg: GatewayCancel, sender: Any) -> None:
        request_id = self.gateway_calls.pop(msg.id, None)
        if request_id is not None:
            self._sw_cancel(request_id)

    def on_gateway_tell(self, msg: GatewayTell, sender: Any) -> None:
        try:
            message = unseal(msg.message)
        except BadMessage as exc:  # a tell has no one to answer: it is kept as a dead letter
            self.dead_letter(msg.path, msg.message, str(exc))
            return
        if isinstance(message, Chaos) and not self.options.chaos:
            self.record("chaos-refused", msg.path, detail="start(..., chaos=True) allows it")
            return
        refused = self.refusal(msg.path) or self.not_for(msg.path, message)
        if refused is not None:
            self.dead_letter(msg.path, message, str(refused))
            return
        if isinstance(message, Chaos):
            self.record("chaos", msg.path, detail=f"{message.kind} injected")
        elif msg.context and numbered(type(message)):  # (tracing) it carries the tell's span
            message = Told(message, "", 0, 0, self.myAddress, msg.context)
        self._sw_send_path(msg.path, message)

    # -- questions ----------------------------------------------------------------------------
    def on_query(self, msg: GatewayQuery, sender: Any) -> None:
        query = msg.query
        if isinstance(query, READ_ONLY):
            value: Any = answer_query(self, query)
        elif isinstance(query, ResetQuery):
            value = self.reset_levels(query.path)
        elif isinstance(query, ServiceQuery):
            self.service_query(msg.id, sender, query.query)
            return
        elif isinstance(query, RedeliverQuery):
            self.redeliver(msg.id, query, sender)
            return
        elif isinstance(query, RecoverQuery):
            self.begin_recovery(query.request, sender, msg.id)
            return
        elif isinstance(query, InjectQuery):
            value = self.inject_fault(query)
        elif isinstance(query, ShutdownQuery):
            self.begin_shutdown(sender, msg.id)
            return
        else:
            value = ErrorReply.of(BadMessage(f"unknown query type {type(query).__name__}"))
        self.send(sender, GatewayReply(msg.id, value))

    def inject_fault(self, query: InjectQuery) -> Any:
        """Inject a fault, if this system was started for it: ``True``, or why not."""
        path, kind = query.path, query.kind
        if not self.options.chaos:
            self.record("chaos-refused", path, detail=f"{kind}: start(..., chaos=True) allows it")
            return ErrorReply.of(
                StalwartError(
                    f"{kind} not injected into {path}: fault injection is off in this system"
                    " (start it with chaos=True, or stalwart run --chaos)"
                )
            )
        refused = self.refusal(path)
        if refused is not None:
            return ErrorReply.of(refused)
        if kind == "kill":
            entry = self.registry.entries[path]
            if self.options.base == "simple":
                return ErrorReply.of(
                    StalwartError(f"{path}: no process of its own to kill on the in-process base")
                )
            if entry.pid <= 0 or entry.pid == os.getpid() or not entry.available:
                return ErrorReply.of(StalwartError(f"{path}: no running process to kill now"))
            if entry.node and entry.node != os.environ.get(NODE_ENV, ""):
                return ErrorReply.of(
                    StalwartError(f"{path} runs on node {entry.node}: kill it from there")
                )
            if not kill_system_process(entry.pid, self.registry.started.get(path, 0.0)):
                return ErrorReply.of(StalwartError(f"{path}: no running process to kill now"))
        else:
            try:
                fault = Chaos(kind, query.count, query.nbytes)
            except ValueError as exc:
                return ErrorReply.of(BadMessage(str(exc)))
            self._sw_send_path(path, fault)
        self.record("chaos", path, detail=f"{kind} injected")
        return True

    def service_query(self, ident: int, asker: Any, query: Any) -> None:
        if isinstance(query, CorrelatorQuery):
            path, on, off = CORRELATOR, self.correlator_on, "the correlator is off"
            off += " (start(..., correlator=None))"
        elif isinstance(query, StoreQuery):
            path, on, off = TELEMETRY, self.telemetry_on, "telemetry is off"
            off += " (start(..., store=None))"
        else:
            error = BadMessage(f"no service answers {type(query).__name__}")
            self.send(asker, GatewayReply(ident, ErrorReply.of(error)))
            return
        if not on:
            self.send(asker, GatewayReply(ident, ErrorReply.of(ServiceOff(off))))
            return
        self.gateway_call(ident, asker, path, query, 30.0)

    def redeliver(self, ident: int, query: RedeliverQuery, sender: Any) -> None:
        letter = next((d for d in self.dead if d.id == query.id), None)
        if letter is None:
            text = f"no dead letter #{query.id} (kept: {len(self.dead)})"
            self.send(sender, GatewayReply(ident, ErrorReply("StalwartError", text)))
            return
        refused = self.refusal(letter.path)
        if refused is not None:  # the letter stays where it is, to be sent again later
            self.send(sender, GatewayReply(ident, ErrorReply.of(refused)))
            return
        self.dead.remove(letter)
        self.record("redeliver", letter.path, detail=f"dead letter #{query.id}")
        deadline = time.time() + query.timeout if query.timeout else 0.0
        self.on_gateway_ask(GatewayAsk(ident, letter.path, letter.message, deadline), sender)

    def reset_levels(self, path: str | None) -> int:
        """Reset the ladders of ``path`` (and below), or of every actor.

        Returns how many supervisors were told.
        """
        supervisors = self.registry.supervisor_addresses(path or None)
        for address in supervisors:
            self.send(address, ResetLevels(path or ""))
        self.record(
            "reset", path or (self.tree.name if self.tree else ""), detail="recovery levels reset"
        )
        return len(supervisors)

    # -- requested recoveries --------------------------------------------------------------------
    def on_recovery_request(self, msg: RecoveryRequest, sender: Any) -> None:
        self.begin_recovery(msg, sender, None)

    def begin_recovery(self, req: RecoveryRequest, reply_to: Any, gateway_id: int | None) -> None:
        self._recovery_ids += 1
        rid = self._recovery_ids
        self.recoveries[rid] = (reply_to, gateway_id, req, time.monotonic())
        who = requester(req, gateway_id)
        self.record(
            "recovery-request", req.target, level=req.level, detail=f"{req.reason} (by {who})"
        )
        assert self.tree is not None
        group_hint = (
            " (a replica group: name one replica)" if self.registry.is_group(req.target) else ""
        )
        if self.phase in ("stopping", "stopped"):
            self.finish_recovery(rid, False, "the system has stopped")
        elif req.level == 5 or req.target == self.tree.name:
            if req.level <= 2:
                self.finish_recovery(rid, True, "a supervisor has no hooks to run")
            else:
                self.tree_waiters.append(rid)
                self.system_measures(f"requested: {req.reason or 'level 5'}")
        elif not self.registry.knows(req.target) or group_hint:
            self.finish_recovery(rid, False, f"unknown actor path {req.target!r}{group_hint}")
        else:
            parent = self.registry.address_of(req.target.rsplit("/", 1)[0])
            if parent is None:
                self.finish_recovery(rid, False, f"the supervisor of {req.target} is not running")
            else:
                self.send(parent, PerformRecovery(rid, req.target, req.level, req.reason))

    def abandon_recoveries_under(self, path: str, why: str) -> None:
        """Answer the requested recoveries of actors under ``path`` (not of ``path`` itself,
        which its own supervisor performs) as failed: ``why``."""
        for rid, (_, _, req, _) in list(self.recoveries.items()):
            if req.target.startswith(path + "/"):
                self.finish_recovery(rid, False, why)

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
        who = requester(req, gateway_id)
        self.record(
            "recovery-result",
            req.target,
            level=req.level,
            detail=f"{'ok' if ok else 'failed'}: {detail} (by {who})",
            duration_ms=result.duration_ms,
        )
        # recorded like the tree's own attempts, with who asked
        attempt = Attempt(
            time.time(),
            req.target,
            "RecoveryRequest",
            "requested",
            "",
            req.level,
            "requested",
            ok,
            result.duration_ms / 1000,
            requested_by=who,
        )
        self.to_telemetry(attempt, None)
        if gateway_id is None:
            self.send(reply_to, result)
        else:
            self.send(reply_to, GatewayReply(gateway_id, result))


def requester(req: RecoveryRequest, gateway_id: int | None) -> str:
    """Who asked for ``req``: its ``by``, else ``system`` (``System.request_recovery``) or
    ``actor`` (an actor sent it to the root)."""
    return req.by or ("system" if gateway_id is not None else "actor")


def answer_query(root: Any, query: Any) -> Any:
    """The answer to a question that only reads the root's state (see :data:`READ_ONLY`)."""
    if isinstance(query, SummaryQuery):
        reg, phase, reason = root.registry, root.phase, root.stop_reason
        return root.reads.get(query, lambda: summarize(reg, query.path, query.limit, phase, reason))
    if isinstance(query, StatusQuery):
        if query.path is None and not query.offset and query.limit is None:  # (all of it,
            return (root.registry.status(root.tree), root.phase, root.stop_reason)  # as ever)
        reg = root.registry
        rows, total = root.reads.get(
            query, lambda: status_page(reg, query.path, query.offset, query.limit)
        )
        return (rows, root.phase, root.stop_reason, total)
    if isinstance(query, EventsQuery):
        return tuple(e for e in root.events if e.seq > query.since)
    if isinstance(query, DeadLettersQuery):
        return tuple(root.dead)
    if isinstance(query, FinalReportQuery):
        return root.final_report
    if isinstance(query, IncidentsQuery):
        return root.incidents()
    if isinstance(query, PathsQuery):
        return (root.registry.known_paths(), root.registry.unknown(query.path))
    if isinstance(query, TreeGaugesQuery):
        reg = root.registry
        return root.reads.get(query, lambda: tree_gauges(reg))
    raise TypeError(f"not a read-only query: {type(query).__name__}")
