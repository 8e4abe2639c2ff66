"""``start()`` and the running :class:`System`."""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload
from uuid import UUID

import msgspec

from ..actors._asks import Asks, ReplyT
from ..actors._log_channel import LogChannel, LogStats
from ..actors._logs import in_process_logs
from ..actors._managed import redirectable
from ..actors._placement import NODE, NODE_ENV
from ..actors._runtime import ActorSystemMessage, InvalidActorAddress, environment, new_system
from ..actors._state_file import drop_state, new_state_dir, new_table
from ..actors._timers import CLOCKS, ExternalClock
from ..actors.errors import BadMessage, ServiceOff, StalwartError, SystemStopped, UnknownPath
from ..actors.messages import (
    Chaos,
    ErrorReply,
    Forwarded,
    RecoveryRequest,
    RecoveryResult,
    Told,
)
from ._bases import free_port, port_free, port_open, sweep_session
from ._children import ChildCalls
from ._gateway import MEMORY, READ_ONLY, answer_query, seal
from ._options import Base, SystemOptions, describe_options, parse_options
from ._root import ROOTS, RootActor
from ._state_dir import private_dir, state_dir
from ._transport import InProcess, MultiProcess
from .messages import (
    ActorStatus,
    AnalysisQuery,
    Attempt,
    Boot,
    DeadLetter,
    Event,
    EventNote,
    GatewayAsk,
    GatewayQuery,
    GatewayTell,
    Incident,
    MemoryCleanupRequest,
    MemoryQuery,
    StatusSummary,
    TreeGauges,
)
from .queries import (
    AlertsQuery,
    DeadLettersQuery,
    ErrorQuery,
    ErrorsQuery,
    EventsQuery,
    FinalReportQuery,
    FlushQuery,
    HistoryQuery,
    IncidentsQuery,
    InjectQuery,
    InsightsQuery,
    MetricsQuery,
    PathsQuery,
    Query,
    RecoverQuery,
    RedeliverQuery,
    ResetQuery,
    ResolveErrorQuery,
    ServiceQuery,
    ShutdownQuery,
    StatusQuery,
    StoreDiagnosticsQuery,
    SummaryQuery,
    TotalsQuery,
    TreeGaugesQuery,
)
from .spec import SpecError, Supervisor, validate_children

if TYPE_CHECKING:
    from ..actors._span_wire import SpanReceiver
    from ._spans import SystemSpans

log = logging.getLogger("stalwart.system")
_MARGIN_S = 2.0
ROOT_NAME = "stalwart-root"  # the root's global name on the multi-process bases


class Status(tuple[ActorStatus, ...]):
    """The live tree: a tuple of :class:`ActorStatus` that prints as an indented tree.

    ``total``: the number of rows in all (more than ``len`` when this is a page of them).
    """

    phase: str = "running"
    stop_reason: str = ""
    total: int = 0

    def by_path(self) -> dict[str, ActorStatus]:
        """The entries keyed by path."""
        return {s.path: s for s in self}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self.by_path()[key]
        return super().__getitem__(key)

    def __str__(self) -> str:
        lines = [f"[{self.phase}]{' ' + self.stop_reason if self.stop_reason else ''}"]
        for s in self:
            depth = s.path.count("/")
            name = s.path.rsplit("/", 1)[-1]
            extra = f" level {s.level}" if s.level else ""
            extra += f" restarts {s.restarts}" if s.restarts else ""
            extra += f" pid {s.pid}" if s.pid else ""
            extra += f" on {s.node}" if s.node else ""
            extra += f"  last error: {s.last_error}" if s.last_error else ""
            lines.append(f"{'  ' * depth}{name:<{max(1, 28 - 2 * depth)}} {s.state:<11}{extra}")
        return "\n".join(lines)


def checked(query: type[Any], **fields: Any) -> Any:
    """A query of type ``query`` with ``fields``; BadMessage names a field out of range."""
    try:
        return msgspec.convert(fields, query)
    except msgspec.ValidationError as exc:
        raise BadMessage(f"{query.__name__}: {exc}") from None


# kept as they are on the way through the check: a str passes for none of them (base64 text
# for bytes, ISO text for a datetime...), nor bytes for a str
_AS_IS = (bytes, bytearray, memoryview, datetime, date, dtime, timedelta, UUID, Decimal)


def validate_message(msg: Any) -> None:
    """Raise BadMessage naming the field if a msgspec Struct message has a wrong field, or
    the type cannot be sent (one of Thespian's own, or an instruction of Stalwart's)."""
    kind = type(msg)
    inner = msg
    while isinstance(inner, Told | Forwarded):  # (what they carry is handled as if sent alone)
        inner = inner.message
    if isinstance(inner, ActorSystemMessage):
        raise BadMessage(
            f"{type(inner).__name__} is one of Thespian's own messages: it cannot be sent to a path"
        )
    # (Chaos alone goes on: the root refuses it unless the system was started for it)
    if not redirectable(inner) and not (inner is msg and kind is Chaos):
        raise BadMessage(
            f"{type(inner).__name__} is one of Stalwart's own instructions to an actor:"
            " it cannot be sent to a path"
        )
    if not isinstance(msg, msgspec.Struct):
        return
    try:
        builtins = msgspec.to_builtins(msg, builtin_types=_AS_IS)
    except Exception:  # values msgspec cannot represent (addresses, cycles...): nothing to check
        return
    try:
        msgspec.convert(builtins, kind, builtin_types=_AS_IS)
    except msgspec.ValidationError as exc:
        raise BadMessage(f"{kind.__name__}: {exc}") from None
    except Exception:  # a type msgspec cannot check (untagged Struct unions...): not checked
        return


@contextlib.contextmanager
def collector_paused(pause: bool) -> Iterator[None]:
    """The cyclic garbage collector off while inside (if ``pause`` and it was on), then on."""
    paused = pause and gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


class System(ChildCalls):
    """A running Stalwart system; returned by :func:`start`, usable as a context manager.

    Its methods are thread-safe. On the in-process base every actor runs on one
    thread of its own (``stalwart-actors``); questions that only read the tree's
    state (:meth:`status`, :meth:`events`, :meth:`dead_letters`...) answer at once
    even while a handler runs. On the multi-process bases the actors run in their
    own processes.
    """

    def __init__(self, asys: Any, root: Any, options: SystemOptions, tree: Supervisor) -> None:
        self._asys = asys
        self._root = root
        self.options = options
        self.tree = tree
        self._ids = itertools.count(1)
        self._closed = False
        self._known: set[str] = set()
        self._known_read = 0  # how many paths the root said it knew, last it was asked
        self._sid = 0
        self._state_dir = ""  # the actors' checkpoint files, while the tree runs
        self._stopping = threading.Event()
        self._servers: list[Any] = []
        self._stuck: dict[str, Any] | None = None  # in-process: the handler stuck right now
        self._attached = False  # talking to a system another process owns
        self._clock_id = 0
        self._final_report: dict[str, Any] | None = None
        self._tracing: SystemSpans | None = None  # OpenTelemetry: spans for asks and tells
        self._spans_in: SpanReceiver | None = None  # ... and the spans of actor processes
        self._logs: LogChannel | None = None  # the actor processes' records come there
        self._logs_held = False  # holds in_process_logs (from before its actor system)
        self._transport: InProcess | MultiProcess
        if options.base == "simple":
            clock = ExternalClock()
            self._clock_id = id(clock)
            CLOCKS[self._clock_id] = clock
            self._transport = InProcess(asys, clock, options.lend_cpu)
        else:
            self._transport = MultiProcess(asys)

    # -- the conversation with the root ----------------------------------------------------------
    def _query(self, msg: Any, ident: int, timeout: float, late: str = "") -> Any:
        """Send ``msg`` to the root and wait for ``GatewayReply(ident)``."""
        if self._closed:
            raise SystemStopped("the system has been shut down")
        return self._transport.ask(self._root, msg, ident, timeout, late)

    def _gateway(self, query: Query, timeout: float = 10.0) -> Any:
        """Ask the root ``query``; on the in-process base a read-only one is read directly."""
        root = ROOTS.get(self._clock_id) if self._clock_id else None
        if root is not None and isinstance(query, READ_ONLY):
            if self._closed and not isinstance(query, FinalReportQuery):
                raise SystemStopped("the system has been shut down")
            if isinstance(self._transport, InProcess):
                self._transport.caught_up()
            with root.lock:
                return answer_query(root, query)
        ident = next(self._ids)
        return self._query(GatewayQuery(ident, query), ident, timeout)

    # -- public API -------------------------------------------------------------------------------
    @overload
    def ask(self, path: str, msg: Asks[ReplyT], timeout: float | None = None) -> ReplyT: ...
    @overload
    def ask(self, path: str, msg: Any, timeout: float | None = None) -> Any: ...
    def ask(self, path: str, msg: Any, timeout: float | None = None) -> Any:
        """Send ``msg`` to the actor at ``path`` and return its reply.

        Type checkers see the reply as ``T`` when the message's class derives from
        :class:`~stalwart.Asks` ``[T]``, as ``Any`` otherwise (nothing is checked at run
        time). Raises :class:`~stalwart.UnknownPath`, :class:`~stalwart.Timeout`,
        :class:`~stalwart.BadMessage`, or the error the tree answered with
        (:class:`~stalwart.PoisonMessageError`, :class:`~stalwart.UnknownMessage`...).
        With ``tracing=True`` the ask is a span, the parent of the spans of its handling.
        """
        return self._ask(path, msg, timeout, validate=True)

    def _ask(self, path: str, msg: Any, timeout: float | None, validate: bool) -> Any:
        """``ask``; ``validate=False`` for a request Stalwart built and checked itself."""
        if self._tracing is not None:
            with self._tracing.asking(path, msg) as context:
                timeout, ask, late = self._asking(path, msg, timeout, validate, context)
                return _answer(self._query(ask, ask.id, timeout, late))
        timeout, ask, late = self._asking(path, msg, timeout, validate)
        return _answer(self._query(ask, ask.id, timeout, late))

    def _asking(
        self, path: str, msg: Any, timeout: float | None, validate: bool = True, context: str = ""
    ) -> tuple[float, GatewayAsk, str]:
        """The checked ask for the root, its timeout, and what to say if it runs out."""
        timeout = self.options.ask_timeout_s if timeout is None else seconds(timeout)
        self._check_path(path)
        if validate:
            validate_message(msg)
        if isinstance(self._transport, MultiProcess):  # read by the root, which names its type
            msg = seal(msg)
        if self._closed:
            raise SystemStopped("the system has been shut down")
        # the deadline starts here: the time the ask takes to reach the root counts
        deadline = time.time() + timeout if timeout else 0.0
        ask = GatewayAsk(next(self._ids), path, msg, deadline, context)
        return timeout, ask, f"no reply from {path} within {timeout:g}s"

    def tell(self, path: str, msg: Any) -> None:
        """Send ``msg`` to the actor at ``path``; no reply. Held while it restarts.

        Safe from any thread, and from a coroutine (it does not wait for the tree)."""
        self._check_path(path)
        validate_message(msg)
        if isinstance(self._transport, MultiProcess):
            msg = seal(msg)
        if self._closed:
            raise SystemStopped("the system has been shut down")
        context = self._tracing.telling(path, msg) if self._tracing is not None else ""
        self._transport.tell(self._root, GatewayTell(path, msg, context))

    @overload
    async def ask_async(
        self, path: str, msg: Asks[ReplyT], timeout: float | None = None
    ) -> ReplyT: ...
    @overload
    async def ask_async(self, path: str, msg: Any, timeout: float | None = None) -> Any: ...
    async def ask_async(self, path: str, msg: Any, timeout: float | None = None) -> Any:
        """:meth:`ask` for asyncio: ``await system.ask_async(path, msg)`` from any event loop.

        Waits on the loop, not on a thread: thousands may be out at once, and those asked
        in one turn of the loop travel to the tree together. Raises what :meth:`ask`
        raises; ``timeout`` counts from the call; cancelling the awaiting task stops the
        wait. Typed like :meth:`ask`.
        """
        if self._tracing is not None:
            with self._tracing.asking(path, msg) as context:
                timeout, ask, late = self._asking(path, msg, timeout, context=context)
                reply = await self._transport.ask_async(self._root, ask, ask.id, timeout, late)
                return _answer(reply)
        timeout, ask, late = self._asking(path, msg, timeout)
        return _answer(await self._transport.ask_async(self._root, ask, ask.id, timeout, late))

    def memory(self) -> Any:
        """The memory-pressure actor's view (a ``MemoryStatus``): level, a sample taken now
        (with ``limit_from``, the limit it is measured against, and PSI), trend, recent
        cleanups. Raises ``ServiceOff`` if it is off (``start(..., memory=None)``)."""
        return self._ask_memory(MemoryQuery(), 30.0)

    def memory_cleanup(self, tier: int | str, reason: str = "") -> Any:
        """Run a memory cleanup tier now (1/"warning", 2/"critical", 3/"emergency").

        Returns its ``CleanupReport`` once every actor has answered. Raises ``ServiceOff``
        if the memory-pressure actor is off (``start(..., memory=None)``).
        """
        return self._ask_memory(MemoryCleanupRequest(tier, reason), 60.0)

    def _ask_memory(self, msg: Any, timeout: float) -> Any:
        try:
            return self.ask(MEMORY, msg, timeout=timeout)
        except UnknownPath as exc:
            if exc.path != MEMORY:
                raise
            off = "the memory-pressure actor is off (start(..., memory=None))"
            raise ServiceOff(off, MEMORY) from None

    def inject(self, path: str, kind: str, count: int = 1, nbytes: int = 0) -> None:
        """Inject a fault into the actor at ``path`` (needs ``start(..., chaos=True)``).

        The system decides, also when attached to: a system started without chaos refuses
        every kind (``StalwartError``, and a ``chaos-refused`` event).

        ``raise``: its next ``count`` messages fail; ``hang``: it blocks in a
        handler forever; ``leak``: it holds ``nbytes`` more memory. ``kill`` (the
        multi-process bases) SIGKILLs its process.
        """
        self._check_path(path)
        if kind not in ("kill", "raise", "hang", "leak"):
            raise BadMessage(f"inject: kind must be kill, raise, hang or leak, got {kind!r}")
        value = self._gateway(InjectQuery(path, kind, count, nbytes))
        if isinstance(value, ErrorReply):  # refused (not started for chaos), or not possible
            raise value.exception()

    def hung_actors(self) -> list[dict[str, Any]]:
        """In-process base: the actor stuck in a handler right now, if any (it cannot be
        interrupted there).

        Each entry names the actor's path, the handler and how long it had run
        when the watchdog saw it. Answers without waiting for the system.
        """
        stuck = self._stuck
        return [stuck] if stuck is not None else []

    def _watch_for_hangs(self) -> None:
        """In-process: report a handler that has run ``hang_report_s`` (and its return).

        The same handler call is recognised by its frame, so a busy thread going from
        one quick handler to the next is never taken for a hung one.
        """
        assert isinstance(self._transport, InProcess)
        runner = self._transport
        limit = self.options.hang_report_s
        seen: tuple[Any, float] | None = None  # the handler call running, seen since
        while not self._stopping.wait(min(1.0, limit / 4)):
            found = _running_handler(runner.thread.ident or 0)
            now = time.monotonic()
            if found is None or seen is None or found[0] is not seen[0]:
                if self._stuck is not None:
                    self._note_hang(self._stuck["path"], False, now - seen[1] if seen else 0.0)
                seen = (found[0], now) if found is not None else None
                continue
            took = now - seen[1]
            if self._stuck is not None:
                self._stuck["seconds"] = round(took, 1)
            elif took >= limit:
                _, path, handler = found
                stuck = {"path": path, "handler": handler, "seconds": round(took, 1)}
                stuck["time"] = time.time()
                self._note_hang(path, True, took, stuck)
        seen = None

    def _note_hang(
        self, path: str, hung: bool, took: float, stuck: dict[str, Any] | None = None
    ) -> None:
        """Tell the status and the log that ``path`` is stuck (or no longer is).

        ``hung_actors()`` changes only after the status has: whoever sees one sees both.
        """
        handler = (stuck or self._stuck or {}).get("handler", "a handler")
        if hung:
            detail = f"{path} has been in {handler} for {took:.1f}s"
            log.error(
                "%s: it looks hung (on the in-process base a handler cannot be interrupted;"
                " run it on base='multiproc' to have it killed and restarted)",
                detail,
            )
        else:
            detail = f"{path} returned from {handler} after about {took:.1f}s"
            log.warning("%s", detail)
        root = ROOTS.get(self._clock_id) if self._clock_id else None
        if root is not None:
            root.note_hang(path, hung, detail)
        self._stuck = stuck if hung else None

    def status(
        self, path: str | None = None, *, offset: int = 0, limit: int | None = None
    ) -> Status:
        """The live tree: every supervisor and actor with its state, level and restarts.

        ``path``: only that node and what is below it. ``offset``/``limit``: a page of
        the rows, in tree order (``Status.total`` says how many there are in all); on a
        large tree, :meth:`summary` says how it is doing without reading every row.
        """
        if path is not None:
            self._check_path(path)
        query = checked(StatusQuery, path=path, offset=offset, limit=limit)
        entries, phase, reason, *total = self._gateway(query)  # (a page says how many in all)
        status = Status(entries)
        status.phase, status.stop_reason = phase, reason
        status.total = total[0] if total else len(status)
        return status

    def summary(self, path: str | None = None, limit: int = 100) -> StatusSummary:
        """The live tree in brief: counts by state and kind (below ``path``, or all), and
        the first ``limit`` entries that are not running, are recovering or sit behind a
        breaker that is not closed. Costs one pass over the tree, whatever its size."""
        if path is not None:
            self._check_path(path)
        summary: StatusSummary = self._gateway(checked(SummaryQuery, path=path, limit=limit))
        return summary

    def _tree_gauges(self) -> TreeGauges:
        """What ``GET /metrics`` reads of the live tree (for the HTTP API's scrape; users
        read the tree with :meth:`status` and :meth:`summary`)."""
        gauges: TreeGauges = self._gateway(TreeGaugesQuery())
        return gauges

    def events(self, since: int = 0) -> list[Event]:
        """What the tree did (failures, retries, restarts...) after event number ``since``."""
        return list(self._gateway(EventsQuery(since)))

    def dead_letters(self) -> list[DeadLetter]:
        """Messages set aside because recovery could not get them handled."""
        return list(self._gateway(DeadLettersQuery()))

    def redeliver(self, dead_letter_id: int, timeout: float | None = None) -> Any:
        """Send a dead letter to its actor again and return the reply."""
        timeout = self.options.ask_timeout_s if timeout is None else seconds(timeout)
        value = self._gateway(RedeliverQuery(dead_letter_id, timeout), timeout + _MARGIN_S)
        if isinstance(value, ErrorReply):
            raise value.exception()
        return value

    def request_recovery(self, request: RecoveryRequest, timeout: float = 60.0) -> RecoveryResult:
        """Perform a recovery level's action on an actor and wait for the result."""
        if not isinstance(request, RecoveryRequest):
            raise BadMessage(f"request_recovery needs a RecoveryRequest, got {request!r}")
        result: RecoveryResult = self._gateway(RecoverQuery(request), timeout)
        return result

    def record(self, *notes: EventNote | Attempt) -> None:
        """Record events and attempts of recovery done outside the tree (``stalwart.recover``).

        They join the tree's own: :meth:`events`, the correlator and the recovery store.
        """
        for note in notes:
            if not isinstance(note, EventNote | Attempt):
                raise BadMessage(f"record takes EventNote or Attempt, got {note!r}")
        if self._closed:
            raise SystemStopped("the system has been shut down")
        for note in notes:
            self._transport.tell(self._root, note)

    # -- the recovery store -------------------------------------------------------------------
    def _service(self, query: Any, timeout: float = 30.0) -> Any:
        value = self._gateway(ServiceQuery(query), timeout)
        if isinstance(value, ErrorReply):
            raise value.exception()
        return value

    def metrics(self, window_s: float | None = None, path: str | None = None) -> Any:
        """Incidents (how many, how many recovered, their times to recover), the attempts they
        took, errors per minute, restarts: a ``Metrics`` (docs/guide-telemetry.md#metrics)."""
        return self._service(checked(MetricsQuery, window_s=window_s, path=path))

    def totals(self) -> Any:
        """The running totals: incidents, times to recover, attempts, errors, restarts over all
        of history, counted as they happened (a ``Totals``; docs/guide-telemetry.md#prometheus).
        Retention never lowers them, and asking costs the same however long the history."""
        return self._service(TotalsQuery())

    def errors(
        self,
        status: str | None = None,
        path: str | None = None,
        category: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Error groups (per actor and fingerprint) with their status."""
        query = checked(ErrorsQuery, status=status, path=path, category=category, limit=limit)
        rows: list[dict[str, Any]] = self._service(query)
        return rows

    def error(self, error_id: int) -> dict[str, Any] | None:
        """One error group with its recent events, or None."""
        row: dict[str, Any] | None = self._service(checked(ErrorQuery, id=error_id))
        return row

    def resolve_error(self, error_id: int, by: str = "operator") -> bool:
        """Mark an error resolved by ``by``; False if it is not open."""
        return bool(self._service(checked(ResolveErrorQuery, id=error_id, by=by)))

    def history(
        self, path: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Recovery attempts (newest first)."""
        query = checked(HistoryQuery, path=path, since=since, limit=limit)
        rows: list[dict[str, Any]] = self._service(query)
        return rows

    def alerts(self, active: bool | None = None, evaluate: bool = True) -> list[dict[str, Any]]:
        """Alerts raised from the thresholds (newest first); the rules are evaluated first,
        unless ``evaluate`` is False (then as last evaluated, every ``alert_interval_s``)."""
        query = checked(AlertsQuery, active=active, evaluate=evaluate)
        rows: list[dict[str, Any]] = self._service(query)
        return rows

    def insights(self, window_s: float | None = None) -> Any:
        """Error-rate trends, degradation, effectiveness and recommendations (``Insights``)."""
        return self._service(checked(InsightsQuery, window_s=window_s))

    def flush(self) -> None:
        """Make the telemetry actor write what it holds now."""
        self._service(FlushQuery())

    def correlation(self) -> Any:
        """The correlator's analysis of the recent errors (an ``Analysis``): error rate,
        dominant pattern, anomalies and root causes."""
        return self._service(AnalysisQuery())

    def incidents(self) -> list[Incident]:
        """Cascades traced to a root cause: the recent closed ones, then the open ones."""
        return list(self._gateway(IncidentsQuery()))

    def diagnostics(self) -> dict[str, Any]:
        """Check now: the live tree, its health, memory, the correlator and the recovery store."""
        status = self.status()
        result: dict[str, Any] = {
            "phase": status.phase,
            "actors": [msgspec.to_builtins(s) for s in status],
            "unhealthy": [
                s.path for s in status if s.state not in ("running", "starting", "passivated")
            ],
            "health": {
                "hung": [s.path for s in status if s.state == "hung"]
                + [h["path"] for h in self.hung_actors()],
                "open_breakers": [
                    s.path for s in status if s.breaker in ("open", "forced_open", "half_open")
                ],
                "open_incidents": [
                    msgspec.to_builtins(i) for i in self.incidents() if i.state == "open"
                ],
            },
        }
        try:
            memory = self.memory()  # sampled now
            result["memory"] = {
                "level": memory.level.name.lower(),
                "shedding": memory.shedding,
                "sample": msgspec.to_builtins(memory.sample),
                "slope_per_s": memory.slope_per_s,
            }
        except StalwartError as exc:
            result["memory"] = {"error": str(exc)}
        try:
            result["correlation"] = msgspec.to_builtins(self.correlation())
        except StalwartError as exc:
            result["correlation"] = {"error": str(exc)}
        try:
            result["store"] = self._service(StoreDiagnosticsQuery())
        except StalwartError as exc:
            result["store"] = {"error": str(exc)}
        result["logs"] = msgspec.to_builtins(self.log_stats)
        return result

    def serve_api(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        allowed_hosts: Sequence[str] = (),
    ) -> Any:
        """Serve the JSON API and ``/metrics`` from this process; returns the server.

        Binds loopback unless told otherwise. Write endpoints (and the diagnostics) need
        ``token`` (one is generated when not given: ``server.token``). Requests must name
        the server by a loopback name, ``host`` or one of ``allowed_hosts`` (in Host and
        Origin). The server stops with the system, or with ``server.stop()``.
        """
        from ..telemetry._api import ApiServer, SystemBackend

        server = ApiServer(SystemBackend(self), host, port, token, allowed_hosts)
        self._servers.append(server)
        return server

    def nodes(self) -> list[Any]:
        """The cluster's nodes as the leader sees them (``NodeStatus``; ``tcp`` base only)."""
        from ..cluster.messages import NodesQuery

        if self.options.base != "tcp" and not self._attached:
            raise StalwartError('nodes() needs a cluster: start(..., base="tcp")')
        return list(self.ask("_system/nodes", NodesQuery(), timeout=10.0))

    def reset_levels(self, path: str | None = None) -> int:
        """Reset the recovery ladders of ``path`` and below (or of every actor)."""
        if path is not None:
            self._check_path(path)
        return int(self._gateway(ResetQuery(path)))

    @property
    def stopped(self) -> bool:
        """True once the system has stopped (shut down, or stopped at level 5)."""
        if self._closed:
            return True
        return bool(self.status().phase == "stopped")

    @property
    def final_report(self) -> dict[str, Any] | None:
        """The report written when the system stopped at level 5 (else None)."""
        if self._closed:
            return self._final_report
        report: dict[str, Any] | None = self._gateway(FinalReportQuery())
        return report

    def shutdown(self) -> None:
        """Stop every actor in reverse dependency order, then the runtime; no process is left.

        In one process the cyclic garbage collector is paused while the tree stops (and
        resumes after, if it was on), as it is while the tree starts: the tree comes and
        goes by reference counts, and full collections of a heap that holds most of it
        took seconds at 100,000 actors.
        """
        for server in self._servers:
            server.stop()
        self._servers = []
        if self._closed:
            return
        with collector_paused(isinstance(self._transport, InProcess)):
            self._stop()

    def _stop(self) -> None:
        try:
            report = self._gateway(ShutdownQuery(), timeout=self.options.shutdown_timeout_s)
            self._final_report = report
        except StalwartError as exc:
            log.warning("orderly stop did not finish: %s", exc)
            root = ROOTS.get(self._clock_id)
            self._final_report = root.final_report if root is not None else None
        self._closed = True
        self._stopping.set()
        self._transport.close()
        CLOCKS.pop(self._clock_id, None)
        ROOTS.pop(self._clock_id, None)
        try:
            self._asys.shutdown()
        finally:
            killed = sweep_session(self._sid)
            if killed:
                log.warning("killed %d leftover actor process(es): %s", len(killed), killed)
            drop_state(self._state_dir)
            if self._spans_in is not None:  # what the actors' processes sent as they left
                self._spans_in.close()
                self._spans_in = None
            self._let_go_of_logs()  # (after the processes: what they logged last is in)

    def _let_go_of_logs(self) -> None:
        if self._logs is not None:
            self._logs.close()
        if self._logs_held:
            self._logs_held = False
            in_process_logs(False)

    @property
    def log_stats(self) -> LogStats:
        """What became of the records the actor processes logged (see the telemetry guide):
        how many reached this process, how many were dropped because its log handlers did
        not keep up. All zero on the in-process base, where actors log here directly."""
        return self._logs.stats if self._logs is not None else LogStats()

    @property
    def admin_port(self) -> int | None:
        """The Thespian admin's port on the multi-process bases (what ``attach`` needs)."""
        if self.options.base == "simple":
            return None
        return int(self._asys.capabilities["Admin Port"])

    @classmethod
    def attach(cls, admin_port: int, timeout: float = 10.0) -> System:
        """Talk to a system another process started on a multi-process base (loopback).

        The attached ``System`` answers ``status``, ``ask``, ``request_recovery``...
        like the owner's; :meth:`detach` lets go of it (the system keeps running),
        :meth:`shutdown` stops it. Raises ``SystemStopped`` if nothing listens there.
        """
        if not port_open("127.0.0.1", admin_port):
            raise SystemStopped(f"no Stalwart system listens on 127.0.0.1:{admin_port}")
        asys = new_system("multiproc", {"Admin Port": admin_port}, "127.0.0.1")
        root = asys.createActor(RootActor, globalName=ROOT_NAME)
        system = cls(asys, root, parse_options({"base": "multiproc"}), Supervisor("attached"))
        system._attached = True
        in_process_logs(True)
        system._logs_held = True
        try:
            status = system._gateway(StatusQuery(), timeout=timeout)
        except BaseException:
            system.detach()
            raise
        system._know(s.path for s in status[0])
        system.tree = Supervisor(next((s.path for s in status[0] if "/" not in s.path), "tree"))
        return system

    def detach(self) -> None:
        """Let go of an attached system; it keeps running (only this end is closed)."""
        if self._closed:
            return
        self._closed = True
        self._transport.close()
        self._let_go_of_logs()
        base = getattr(self._asys, "_systemBase", None)
        if base is not None:  # close our endpoint without asking the admin to shut down
            base.transport.close()
            self._asys._systemBase = None

    def __enter__(self) -> System:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._attached:
            self.detach()
        else:
            self.shutdown()

    # -- helpers -------------------------------------------------------------------------------
    def _check_path(self, path: str) -> None:
        if not isinstance(path, str):
            raise UnknownPath(f"unknown actor path {path!r}", str(path))
        if path in self._known:
            return
        why = f"unknown actor path {path!r}"
        if not self._closed:  # (a child started at run time, by an actor say)
            known, why = self._gateway(PathsQuery(path))
            self._know(known)
        if path not in self._known:
            raise UnknownPath(why, path)

    def _learn_path(self, path: str) -> None:
        """``path`` runs now (a child started here): known without asking the root. Once
        they have doubled, the known paths are read again from the root: a Pool's ended
        instances leave them (the set stays about as large as the tree)."""
        self._known.add(path)
        if len(self._known) > 2 * self._known_read + 1024:
            try:
                known, _why = self._gateway(PathsQuery(path))
            except StalwartError:  # (the child runs all the same: read them another time)
                known = self._known
            self._know(known)

    def _know(self, paths: Iterable[str]) -> None:
        """The paths the root knows, as it said (or as this System knows them)."""
        self._known = set(paths)
        self._known_read = len(self._known)

    def _spans_channel(self) -> str:
        """Where the tree's spans go: "" (not tracing), this process's provider ("local", the
        in-process base), or the socket of :attr:`_spans_in` (the actors' own processes)."""
        if self._tracing is None:
            return ""
        return self._spans_in.address if self._spans_in is not None else "local"

    def _trace(self) -> None:
        """OpenTelemetry on: spans for asks and tells, and a way in for the tree's spans."""
        from ..actors._span_wire import SpanReceiver
        from ._spans import SystemSpans

        self._tracing = SystemSpans()
        if self.options.base != "simple":
            self._spans_in = SpanReceiver()

    def _boot(self, timeout: float) -> None:
        ident = next(self._ids)
        value = self._query(
            Boot(
                ident,
                self.tree,
                self.options,
                os.getpid(),
                self._clock_id,
                self._state_dir,
                self._spans_channel(),
            ),
            ident,
            timeout,
        )
        if value[0] != "ok":
            self._closed = True
            raise SystemStopped(f"the tree could not start: {value[1]}")
        self._know(value[1])
        self._sid = value[2] if self.options.base != "simple" else 0


def seconds(timeout: Any) -> float:
    """``timeout``, checked to be a number of seconds a call can wait (BadMessage naming
    it otherwise: at 0 or less the call would fail before an answer could come, yet what
    it asked for would still be done)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise BadMessage(f"timeout: expected a number of seconds > 0, got {timeout!r:.80}")
    if not 0 < timeout < math.inf:
        raise BadMessage(f"timeout: must be a number of seconds > 0 (finite), got {timeout!r}")
    return float(timeout)


def _answer(value: Any) -> Any:
    """An ask's reply, or the error the tree answered with, raised."""
    if isinstance(value, ErrorReply):
        raise value.exception()
    return value


def _importable_elsewhere(tree: Supervisor) -> None:
    """A child that may run on another node must be importable there: a class written in
    the script that starts the system (``__main__``) is not (a process forked on this host
    inherits it, so elsewhere the other children are fine)."""
    for path, spec in tree.walk():
        actor = getattr(spec, "actor", None)
        if getattr(spec, "requires", None) and getattr(actor, "__module__", "") == "__main__":
            name = getattr(actor, "__qualname__", repr(actor))
            raise SpecError(
                path,
                "actor",
                f"{name} is defined in the script that starts the system (__main__), which"
                " the other nodes cannot import; move it to a module they can import",
            )


def start(
    tree: Supervisor,
    base: Base = "simple",
    *,
    admin_port: int | None = None,
    start_timeout_s: float = 30.0,
    shutdown_timeout_s: float = 30.0,
    ask_timeout_s: float = 5.0,
    root_max_restarts: int = 1,
    root_within_s: float = 60.0,
    state_dir: str | None = None,
    report_path: str | None = "final-report.json",
    dead_letter_limit: int = 10_000,
    event_limit: int = 10_000,
    loopback_only: bool = True,
    hang_report_s: float = 10.0,
    lend_cpu: bool = True,
    store: str | None = ":memory:",
    telemetry: dict[str, Any] = {},  # noqa: B006  (never changed: the options copy it)
    correlator: dict[str, Any] | None = {},  # noqa: B006
    memory: dict[str, Any] | None = {},  # noqa: B006
    memory_budget: str | int | None = None,
    memory_thresholds: tuple[float, float, float] = (70.0, 85.0, 95.0),
    memory_interval_s: float = 1.0,
    hold_limit: int = 10_000,
    chaos: bool = False,
    node: str | None = None,
    listen: tuple[str, int] | None = None,
    capabilities: dict[str, str | int | float | bool] = {},  # noqa: B006
    cluster: dict[str, Any] = {},  # noqa: B006
    tracing: bool = False,
) -> System:
    """Start ``tree`` and return the running :class:`System` once every child has started.

    Raises :class:`SpecError` naming the option for a bad value (or a bad tree),
    :class:`SystemStopped` if the tree cannot start. The options are also the keys of a
    tree file's ``[system]`` table (:class:`~stalwart.supervisors.SystemOptions` holds them,
    checked):

    - ``base``: ``simple`` (in-process), ``multiproc`` (a process per actor, TCP
      on loopback), ``tcp`` (multi-host; see the distribution guide).
    - ``admin_port``: the Thespian admin's port on the multi-process bases
      (default: a free port).
    - ``start_timeout_s`` / ``shutdown_timeout_s``: bounds on starting and
      stopping the whole tree.
    - ``ask_timeout_s``: default timeout of ``System.ask``.
    - ``root_max_restarts`` within ``root_within_s``: how often level 5 may
      restart the whole tree before the system stops in order.
    - ``state_dir``: the folder for every file the system writes (durable queues,
      checkpoints, the final report), created private (0700); default
      ``$STALWART_STATE_DIR`` or ``.stalwart/`` in the working directory. Another
      user's folder is refused.
    - ``report_path``: where the final report is written if the system stops at
      level 5, under ``state_dir`` if relative (``None``: not written to a file).
    - ``dead_letter_limit`` / ``event_limit``: how many are kept in memory.
    - ``loopback_only``: keep Thespian's sockets on 127.0.0.1 (see the security notes).
    - ``hang_report_s``: in-process base, report an actor whose handler has run this long
      (it cannot be interrupted there; see ``System.hung_actors()``).
    - ``lend_cpu``: in-process base, on Linux: a thread waiting alone for an answer is
      confined to its CPU until its wait ends, and the sleeping actor thread until it wakes
      there (see the concepts guide). ``False``: waits leave every thread's CPUs alone.
    - ``store``: the recovery store's SQLite file; ``":memory:"`` (the default) records
      without writing a file, in the telemetry actor's memory: what it learned, and the running
      totals ``GET /metrics`` counts from, start again from nothing if that actor is restarted
      (Prometheus takes it as a counter reset); give a file to keep them. ``None`` turns
      recording and learning off.
    - ``telemetry``: settings of the telemetry actor (``flush_rows``, ``flush_interval_s``,
      ``retention_age_s``, ``retention_rows``, ``stability_window_s``, ``timeout_factor``...).
      A store in memory keeps its newest 200,000 rows unless ``retention_rows`` says
      otherwise (``0`` or ``None``: all); a file keeps all unless told.
    - ``correlator``: settings of the correlator (see ``CorrelatorSettings``: windows,
      thresholds, ``incident_quiet_s``...); ``None`` turns it and incidents off.
    - ``memory_budget``: memory for the whole actor tree (``"512MiB"``, ``"2GB"``, bytes):
      pressure is the summed RSS of its processes against it. Without it, the cgroup
      limit if there is one (v1 or v2, its own or a parent's: the nearest to being reached),
      else the machine's memory; ``System.memory().sample.limit_from`` says which.
    - ``memory_thresholds``: warning, critical and emergency percentages.
    - ``memory_interval_s``: how often memory is sampled.
    - ``hold_limit``: how many messages may wait for one path (while its actor restarts,
      or a dependency of it is down); past that a request is answered with
      ``Overloaded`` and any other message becomes a dead letter.
    - ``chaos``: accept fault injection (``stalwart chaos``, ``System.inject``); off
      by default, for trying recovery policies before production.
    - ``memory``: further settings of the memory-pressure actor (see
      ``MemorySettings``: ``hysteresis``, ``horizon_s``, ``psi_some``...); ``None``
      turns it off.
    - ``node``: on the ``tcp`` base, this node's name in the cluster (default
      ``"leader"``); the system is then the cluster's leader, that other nodes join.
    - ``listen``: on the ``tcp`` base, the leader's ``(host, port)`` (default
      127.0.0.1 and ``admin_port`` or a free port). A host other than loopback
      also needs ``loopback_only=False``.
    - ``capabilities``: what this node offers to ``Child.requires`` (``{"zone": "a"}``).
    - ``cluster``: settings of the node monitor (see ``ClusterSettings``:
      ``expect_nodes``, ``wait_s``, ``heartbeat_s``, ``phi_threshold``, ``fence_s``...).
    - ``tracing``: OpenTelemetry spans (needs ``stalwart[otel]``): a span per incident
      with a child per recovery attempt, a span per handled message, ask, call and tell,
      with W3C trace context carried from caller to callee. They go to the TracerProvider
      of the process that calls ``start()``, also from actors in processes of their own
      (see the telemetry guide). Off by default; off, no OpenTelemetry module is loaded.
    """
    given = locals()  # (every parameter but ``tree`` is a field of SystemOptions, by name)
    if not isinstance(tree, Supervisor):
        raise SpecError("start", "tree", f"expected a Supervisor, got {tree!r}")
    validate_children(tree.name, tree.children)
    options = parse_options({name: given[name] for name in SystemOptions.__struct_fields__})
    return _start(tree, options)


# each option is described once, above, where editors show it; SystemOptions (and the
# configuration reference generated from it) takes the same words
describe_options(start.__doc__)


def _start(tree: Supervisor, opts: SystemOptions) -> System:
    """Start ``tree`` with checked options: the work of :func:`start`."""
    if opts.base == "tcp":
        _importable_elsewhere(tree)
    opts = msgspec.structs.replace(opts, state_dir=str(state_dir(opts.state_dir)))
    in_process_logs(True)  # (Thespian logs as it starts)
    logs = _log_channel(opts)
    try:
        asys = _actor_system(opts, logs)
    except BaseException:
        if logs is not None:
            logs.close()
        in_process_logs(False)
        raise
    system: System | None = None
    try:
        _wait_for_nodes(asys, opts)
        # on the multi-process bases other processes find it by name (System.attach)
        root = asys.createActor(RootActor, globalName=None if opts.base == "simple" else ROOT_NAME)
        system = System(asys, root, opts, tree)
        if opts.tracing:
            system._trace()
        system._logs, logs = logs, None
        system._logs_held = True
        # each actor keeps its checkpoint there before its answers leave: a file of its own
        # where it has a process of its own, a table in this process on the in-process base
        if opts.base == "simple":
            system._state_dir = new_table(f"{os.getpid()}-{id(system)}")
        else:
            system._state_dir = new_state_dir(
                private_dir(Path(str(opts.state_dir)) / "checkpoints")
            )
        with collector_paused(opts.base == "simple"):  # (see System.shutdown)
            system._boot(opts.start_timeout_s + _MARGIN_S)
    except BaseException:
        if system is not None:
            system._transport.close()
            drop_state(system._state_dir)
            if system._spans_in is not None:
                system._spans_in.close(grace_s=0.0)
            CLOCKS.pop(system._clock_id, None)
            ROOTS.pop(system._clock_id, None)
        _abandon(asys, opts)
        if system is not None:
            system._let_go_of_logs()
        else:
            if logs is not None:
                logs.close()
            in_process_logs(False)
        raise
    if opts.base == "simple":
        threading.Thread(
            target=system._watch_for_hangs, name="stalwart-hang-watch", daemon=True
        ).start()
    return system


def _running_handler(thread_id: int) -> tuple[Any, str, str] | None:
    """The handler call (its frame, the actor's path, the handler's name) that thread
    ``thread_id`` is running in a managed actor, if any."""
    from ..actors import ManagedActor

    frame = sys._current_frames().get(thread_id)
    found = None
    while frame is not None:  # (the locals of a frame another thread runs: only a handler's)
        if frame.f_code.co_name.startswith("receiveMsg_"):
            actor = frame.f_locals.get("self")
            if isinstance(actor, ManagedActor):
                found = (frame, actor.path, f"{type(actor).__name__}.{frame.f_code.co_name}")
        frame = frame.f_back
    return found


_PORT_TRIES = 3


def _log_channel(opts: SystemOptions) -> LogChannel | None:
    """Where the actor processes' log records come (in the private state folder)."""
    if opts.base == "simple":
        return None  # (actors log in this process)
    try:
        return LogChannel(str(opts.state_dir))
    except OSError as exc:
        log.warning("the actors' log records will not reach this process: %s", exc)
        return None


def _actor_system(opts: SystemOptions, logs: LogChannel | None) -> Any:
    if opts.base == "simple":
        return new_system("simple", {})
    host: str | None = "127.0.0.1" if opts.loopback_only else None
    port = opts.admin_port
    if opts.base == "tcp":  # the leader of a cluster: members join at (host, port)
        if opts.listen is not None:
            host, port = opts.listen[0], opts.listen[1] or port
        host = host or "127.0.0.1"
    node = {NODE_ENV: str(opts.node)} if opts.node else {}  # inherited by its admin and actors
    # a port picked here can be taken by someone else before the admin binds it: pick again
    tries = 1 if port else _PORT_TRIES
    for attempt in range(1, tries + 1):
        admin_port = port or free_port(host or "127.0.0.1")
        if not port and attempt < tries and not port_free(host or "127.0.0.1", admin_port):
            continue  # taken already: Thespian would take seconds to find out
        capabilities: dict[str, Any] = {"Admin Port": admin_port}
        if opts.base == "tcp":
            capabilities |= {
                "Convention Address.IPv4": (host, admin_port),
                NODE: opts.node,
                **opts.capabilities,
            }
        try:
            with environment(**node):
                return new_system(opts.base, capabilities, host, logs)
        except InvalidActorAddress:  # (an admin that did not answer was stopped)
            if attempt == tries:
                raise
            log.warning(
                "port %d was taken before the admin could use it, or the admin did not answer"
                " in time; trying another",
                admin_port,
            )
    raise AssertionError("unreachable")


def _wait_for_nodes(asys: Any, opts: SystemOptions) -> None:
    """On a cluster's leader: wait until the expected members have joined."""
    from ..cluster import cluster_settings
    from ..cluster._monitor import NodeWaiter, WaitForNodes

    settings = cluster_settings(opts)
    if opts.base != "tcp" or not settings.expect_nodes:
        return
    waiter = asys.createActor(NodeWaiter)
    missing = asys.ask(
        waiter, WaitForNodes(settings.expect_nodes, settings.wait_s), settings.wait_s + _MARGIN_S
    )
    if missing is None or missing:
        names = ", ".join(missing or settings.expect_nodes)
        raise SystemStopped(f"node(s) {names} did not join within {settings.wait_s:g}s")


def _abandon(asys: Any, opts: SystemOptions) -> None:
    try:
        asys.shutdown()
    except Exception:  # already broken; the sweep below is what matters
        log.debug("shutdown after a failed start raised", exc_info=True)


def known_paths(tree: Supervisor) -> Iterable[str]:
    """Every path of ``tree`` (as ``System.ask`` accepts them)."""
    yield tree.name
    for path, _ in tree.walk():
        yield path
