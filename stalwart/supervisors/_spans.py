"""OpenTelemetry at the root and at the ``System``: incidents, recovery attempts, asks.

Imported only when a system traces (``start(..., tracing=True)``).

**Incidents** (the root, from the events and attempts the supervisors report). An incident
is one fingerprint failing at one path: its span starts at the first ``failure`` event of
that fingerprint there and ends when

- a failed message of it went through (``recovered``): outcome ``recovered``;
- the path serves again with nothing of it left to recover (its state is back to
  ``running``): ``recovered`` if its last attempt worked, else ``set-aside``;
- its message was given up (``poison``, ``dead-letter``): ``set-aside``;
- its supervisor gave up (``escalate``, ``escalated``): ``given-up``;
- the system stops first: ``unfinished``.

Each recovery attempt (the kernel's ``Attempt``: a level, a strategy, whether it worked)
is a child span with its own start and end. The incident links to the span of the handler
whose failure opened it. Breaker state changes, memory cleanup tiers and what else
happens at its path (a crash, a hold, an outage, a restart, a cascade traced to a root
cause...) are span events on the open incidents they concern; a breaker change or a
memory tier with no incident open gets a short span of its own, so it is never lost.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Iterator
from enum import Enum
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

from ..actors._tracing import EMPTY, SCOPE, Tracing, failed, parse_traceparent, traceparent
from ._incidents import under
from .messages import Attempt, Event, MemoryEvent

_CLOSED_KEPT = 256  # incidents remembered after they end, for attempts reported late
_ENDS_ONE = {"recovered": "recovered", "poison": "set-aside", "dead-letter": "set-aside"}
_GIVES_UP = ("escalate", "escalated")
_NOTED = frozenset(
    {
        "crash",
        "start-failure",
        "hung",
        "unhung",
        "held",
        "resumed",
        "trial",
        "outage",
        "restart",
        "dependency-down",
        "dependency-up",
        "incident",
        "incident-merged",
        "incident-resolved",
        "incident-expired",
        "shed-load",
    }
)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _text(value: Any) -> str:
    """A category as its name (an ``ErrorCategory`` travels as itself in one process)."""
    return str(value.value if isinstance(value, Enum) else value)


def _sent(path: str, name: str) -> dict[str, str]:
    """The attributes of a span for a message sent to ``path``."""
    return {
        "stalwart.path": path,
        "stalwart.message.type": name,
        "messaging.system": "stalwart",
        "messaging.destination.name": path,
    }


class _Incident:
    __slots__ = ("last_ok", "path", "span", "started")

    def __init__(self, path: str, span: Span, started: int) -> None:
        self.path = path
        self.span = span
        self.started = started
        self.last_ok = False  # how its latest attempt went


class IncidentSpans:
    """The root's spans (see the module doc); fed by the root as events and attempts come."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracer = tracing.tracer
        self.tracing = tracing
        self.open: dict[tuple[str, str], _Incident] = {}
        self.closed: OrderedDict[tuple[str, str], tuple[SpanContext, int]] = OrderedDict()

    # -- what the root hears ---------------------------------------------------------------
    def on_event(self, event: Event, context: str = "") -> None:
        kind = event.kind
        if kind == "failure":
            if event.fingerprint and (event.path, event.fingerprint) not in self.open:
                self._begin(event, context)
        elif kind in _ENDS_ONE:
            incident = self.open.get((event.path, event.fingerprint))
            if incident is not None:
                self._end((event.path, event.fingerprint), _ENDS_ONE[kind], event.time)
        elif kind in _GIVES_UP:
            for key in [k for k in self.open if under(k[0], event.path)]:
                self._end(key, "given-up", event.time, event.detail)
        elif kind == "breaker":
            self._note(
                "stalwart.breaker",
                event.path,
                event.time,
                {"stalwart.path": event.path, "stalwart.breaker.state": event.detail},
                f"breaker {event.path}",
            )
        elif kind in _NOTED:
            attributes: dict[str, str | int] = {
                "stalwart.path": event.path,
                "stalwart.detail": event.detail,
            }
            if event.level:
                attributes["stalwart.level"] = event.level
            for incident in self._concerning(event.path):
                incident.span.add_event(f"stalwart.{kind}", attributes, _ns(event.time))

    def on_state(self, path: str, state: str) -> None:
        """``path`` reports its state; back to ``running``, it has nothing left to recover."""
        if state != "running":
            return
        now = time.time()
        for key in [k for k in self.open if k[0] == path]:
            self._end(key, "recovered" if self.open[key].last_ok else "set-aside", now)

    def on_attempt(self, attempt: Attempt) -> None:
        """One recovery attempt ended: a child span of its incident."""
        key = (attempt.path, attempt.fingerprint)
        incident = self.open.get(key)
        if incident is not None:
            incident.last_ok = attempt.success
            parent, floor = incident.span.get_span_context(), incident.started
        elif key in self.closed:
            parent, floor = self.closed[key]
        else:  # (handed to another replica: its incident is its group's)
            found = [i for k, i in self.open.items() if k[1] == attempt.fingerprint]
            if not found:
                return
            found[-1].last_ok = attempt.success
            parent, floor = found[-1].span.get_span_context(), found[-1].started
        end = _ns(attempt.time)
        span = self.tracer.start_span(
            f"recovery level {attempt.level} {attempt.strategy}",
            trace.set_span_in_context(trace.NonRecordingSpan(parent), EMPTY),
            SpanKind.INTERNAL,
            {
                "stalwart.path": attempt.path,
                "stalwart.fingerprint": attempt.fingerprint,
                "stalwart.error.category": _text(attempt.category),
                "stalwart.operation": attempt.operation,
                "stalwart.recovery.level": attempt.level,
                "stalwart.recovery.strategy": attempt.strategy,
                "stalwart.recovery.outcome": "success" if attempt.success else "failure",
                "stalwart.recovery.memory_delta_bytes": attempt.mem_delta_bytes,
                "stalwart.recovery.cpu_delta_s": attempt.cpu_delta_s,
            },
            start_time=min(end, max(floor, end - _ns(attempt.duration_s))),
        )
        if not attempt.success:
            span.set_status(Status(StatusCode.ERROR, "the attempt did not recover the message"))
        span.end(end)

    def on_memory(self, msg: MemoryEvent) -> None:
        """A memory cleanup tier ran: an event on every open incident."""
        attributes = {
            "stalwart.memory.tier": msg.tier,
            "stalwart.memory.trigger": msg.trigger,
            "stalwart.memory.percent": msg.percent,
            "stalwart.memory.freed_bytes": msg.freed_bytes,
        }
        self._note("stalwart.memory", "", msg.time, attributes, f"memory {msg.tier}")

    def close_all(self, outcome: str = "unfinished") -> None:
        """The system stops: what is still open ends (and leaves this process)."""
        now = time.time()
        for key in list(self.open):
            self._end(key, outcome, now)
        self.tracing.flush()

    # -- the spans ----------------------------------------------------------------------------
    def _begin(self, event: Event, context: str) -> None:
        failing = parse_traceparent(context) if context else None
        started = _ns(event.time)
        span = self.tracer.start_span(
            f"incident {event.path}",
            EMPTY,
            SpanKind.INTERNAL,
            {
                "stalwart.path": event.path,
                "stalwart.fingerprint": event.fingerprint,
                "stalwart.error.category": _text(event.category),
                "stalwart.error": event.detail,
                "stalwart.trace": event.trace,
            },
            [Link(failing, {"stalwart.link": "the failure that opened it"})] if failing else None,
            start_time=started,
        )
        self.open[(event.path, event.fingerprint)] = _Incident(event.path, span, started)

    def _end(self, key: tuple[str, str], outcome: str, at: float, why: str = "") -> None:
        incident = self.open.pop(key)
        span = incident.span
        span.set_attribute("stalwart.incident.outcome", outcome)
        if outcome in ("set-aside", "given-up"):
            failed(span, why or f"{outcome}: the tree gave up on the failed message")
        end = max(incident.started, _ns(at))
        span.end(end)
        self.closed[key] = (span.get_span_context(), incident.started)
        self.closed.move_to_end(key)
        while len(self.closed) > _CLOSED_KEPT:
            self.closed.popitem(last=False)

    def _concerning(self, path: str) -> list[_Incident]:
        """Open incidents at ``path`` or below it (every one for the tree-wide "")."""
        return [i for i in self.open.values() if not path or under(i.path, path)]

    def _note(
        self, name: str, path: str, at: float, attributes: dict[str, Any], alone: str
    ) -> None:
        """An event on the incidents it concerns; on a short span of its own if there are none."""
        when = _ns(at)
        concerned = self._concerning(path)
        for incident in concerned:
            incident.span.add_event(name, attributes, when)
        if not concerned:
            span = self.tracer.start_span(alone, EMPTY, SpanKind.INTERNAL, start_time=when)
            span.add_event(name, attributes, when)
            span.end(when)


# -- the System's side ----------------------------------------------------------------------------
class SystemSpans:
    """Spans for what the ``System`` sends: each ask (``CLIENT``) and tell (``PRODUCER``) is a
    child of the span current in the calling thread or task."""

    def __init__(self) -> None:
        from .. import __version__

        self.tracer = trace.get_tracer(SCOPE, __version__)

    @contextlib.contextmanager
    def asking(self, path: str, msg: Any) -> Iterator[str]:
        """A span around an ask; yields the traceparent the ask carries."""
        name = type(msg).__name__
        with self.tracer.start_as_current_span(
            f"ask {path} {name}",
            kind=SpanKind.CLIENT,
            attributes=_sent(path, name),
        ) as span:
            yield traceparent(span.get_span_context())

    def telling(self, path: str, msg: Any) -> str:
        """A span for a tell (it ends as the tell leaves); its traceparent."""
        name = type(msg).__name__
        span = self.tracer.start_span(
            f"tell {path} {name}",
            kind=SpanKind.PRODUCER,
            attributes=_sent(path, name),
        )
        span.end()
        return traceparent(span.get_span_context())
