"""OpenTelemetry in the actors (``start(..., tracing=True)``): trace context on messages, a
span per handled message and per call.

Imported only when a system traces (it imports ``opentelemetry``): a system that does not
never loads it, and its actors run exactly the code they run without it.

- Context travels as a W3C ``traceparent`` string beside Stalwart's own trace id:
  ``Request.context`` and ``Told.context`` (the sender's span), ``ReplyTo.context`` (the
  span handling the request, which its failure reports name). ``tracestate`` is not
  carried. Inside an actor the current span is OpenTelemetry's own (a context variable):
  set around a handler, in its coroutine's task, and around its calls' callbacks.
- Every message a user handler takes gets a span (``SERVER`` for a request, ``CONSUMER``
  for a tell), a child of the sender's; it ends when the handler does (an ``async`` one
  when its coroutine does). Calls (``self.call``, ``await self.ask``) are ``CLIENT`` spans
  that end with their answer; tells carry the current span on.
- Spans go through the TracerProvider of the process that called ``start()``. On the
  in-process base that is this process's own; an actor process of its own (forked from
  that one) ships every span it ends to it (:mod:`._span_wire`), so an exporter set up
  there sees the spans of the whole tree.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Callable
from typing import Any

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from ._calls import numbered
from ._runtime import ActorSystemMessage
from ._span_wire import Shipper
from .messages import ReplyTo, Request, Told

LOCAL = "local"  # the channel of an in-process system: this process's own provider
SCOPE = "stalwart"
EMPTY = otel_context.Context()  # no parent: a span that starts a trace
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

OnValue = Callable[[Any], None]


def traceparent(span_context: SpanContext) -> str:
    """The W3C ``traceparent`` of ``span_context`` ("" if it is not valid)."""
    if not span_context.is_valid:
        return ""
    flags = int(span_context.trace_flags)
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"


def parse_traceparent(value: str) -> SpanContext | None:
    """The (remote) span context a W3C ``traceparent`` names, or None if it is malformed."""
    found = _TRACEPARENT.fullmatch(value)
    if found is None:
        return None
    trace_id, span_id, flags = (int(part, 16) for part in found.groups())
    context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 1))
    return context if context.is_valid else None


def parent_of(value: str) -> otel_context.Context:
    """The context to start a span in: a child of ``value`` (a traceparent), or a new trace."""
    found = parse_traceparent(value) if value else None
    return EMPTY if found is None else trace.set_span_in_context(NonRecordingSpan(found), EMPTY)


def current_traceparent() -> str:
    """The traceparent of the current span ("" if none): what a call or tell made now carries.

    That is the span of the message being handled: in its handler, in its coroutine (whose
    task starts inside it) and in the callbacks of the calls it made (run inside it).
    Outside them (a hook, a timer) there is none, and the call starts a trace.
    """
    return traceparent(trace.get_current_span().get_span_context())


def failed(span: Span, error: BaseException | str) -> None:
    """Mark ``span`` as failed by ``error``."""
    if isinstance(error, BaseException):
        span.record_exception(error)
        error = f"{type(error).__name__}: {error}"
    span.set_status(Status(StatusCode.ERROR, error[:300]))


class Tracing:
    """A process's spans for one system: its tracer and the hooks the actors call."""

    def __init__(self, tracer: trace.Tracer, shipper: Shipper | None = None) -> None:
        self.tracer = tracer
        self.shipper = shipper  # an actor process of its own: ships what it ends

    # -- a span per handled message ---------------------------------------------------------
    def dispatch(
        self,
        actor: Any,
        plain: Callable[[Any, Any, int | None], bool],
        msg: Any,
        sender: Any,
        failure_id: int | None = None,
    ) -> bool:
        """``ManagedActor._sw_dispatch`` with a span around the handler (see the module doc).

        A request's parent is the caller's span; a retried message's the attempt that
        failed; a tell's the span current where it was told. A handler that waits its turn
        or is a coroutine takes the span with it (``Turn.span``), ending it when it ends.
        """
        if isinstance(msg, ActorSystemMessage):  # the actor's own timers
            return plain(msg, sender, failure_id)
        envelope = actor._sw_envelope
        outer = envelope[0] if envelope is not None else None
        request = type(sender) is ReplyTo
        if type(outer) is Request or type(outer) is Told:
            parent = outer.context
        else:
            parent = sender.context if request else ""
        name = type(msg).__name__
        span = self.tracer.start_span(
            f"handle {actor.path} {name}",
            parent_of(parent),
            SpanKind.SERVER if request else SpanKind.CONSUMER,
            {
                "stalwart.path": actor.path,
                "stalwart.message.type": name,
                "stalwart.incarnation": actor.incarnation,
                "messaging.system": "stalwart",
                "messaging.destination.name": actor.path,
                "messaging.operation.type": "process",
                **({"messaging.message.id": sender.id} if request else {}),
            },
        )
        if request:  # its failure reports name this span (the incident's link; retries' parent)
            sender = msgspec.structs.replace(sender, context=traceparent(span.get_span_context()))
        opening, actor._sw_opening = actor._sw_opening, span
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return plain(msg, sender, failure_id)
        finally:
            otel_context.detach(token)
            if actor._sw_opening is span:  # no turn took it: the handler has returned
                span.end()
            actor._sw_opening = opening

    def failed(self, actor: Any, exc: BaseException) -> None:
        """A handler raised: the span open around it says so."""
        span = actor._sw_opening
        if span is not None:
            failed(span, exc)

    def task_context(self, span: Span) -> contextvars.Context:
        """A context for a coroutine's task in which ``span`` is current."""
        context = contextvars.copy_context()
        context.run(otel_context.attach, trace.set_span_in_context(span))
        return context

    def enter(self, span: Span) -> object:
        """Make ``span`` current (a handler that waited its turn runs now); :meth:`leave` after."""
        return otel_context.attach(trace.set_span_in_context(span))

    def leave(self, token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]

    def end(self, span: Span, exc: BaseException | None, cut_short: bool = False) -> None:
        """A handler that had to wait (or a coroutine) has ended (raising ``exc``)."""
        if exc is not None:
            failed(span, exc)
        elif cut_short:
            failed(span, "cancelled: its actor stopped or restarted; the message goes on")
        span.end()

    # -- calls and tells ----------------------------------------------------------------------
    def calling(
        self,
        actor: Any,
        path: str,
        msg: Any,
        request_id: str,
        context: str,
        on_reply: OnValue | None,
        on_error: OnValue,
    ) -> tuple[str, OnValue, OnValue]:
        """A ``CLIENT`` span for a call: the context the request carries, and callbacks that
        end the span and run the given ones inside the caller's span."""
        parent = context or current_traceparent()
        name = type(msg).__name__
        span = self.tracer.start_span(
            f"call {path} {name}",
            parent_of(parent),
            SpanKind.CLIENT,
            {
                "stalwart.path": path,
                "stalwart.message.type": name,
                "messaging.system": "stalwart",
                "messaging.destination.name": path,
                "messaging.message.id": request_id,
            },
        )
        inside = parent_of(parent)

        def replied(value: Any) -> None:
            span.end()
            if on_reply is not None:
                token = otel_context.attach(inside)
                try:
                    on_reply(value)
                finally:
                    otel_context.detach(token)

        def refused(error: Any) -> None:
            failed(span, error)
            span.end()
            token = otel_context.attach(inside)
            try:
                on_error(error)
            finally:
                otel_context.detach(token)

        return traceparent(span.get_span_context()), replied, refused

    def telling(self, actor: Any, msg: Any) -> Any:
        """``msg`` to send to a path, wrapped to carry the current span (numbered later)."""
        if not numbered(type(msg)):
            return msg
        context = current_traceparent()
        return Told(msg, "", 0, 0, actor.myAddress, context) if context else msg

    def flush(self) -> None:
        """Send what waits to be shipped (an actor process about to exit)."""
        if self.shipper is not None:
            self.shipper.force_flush(500)


_BY_PROCESS: dict[tuple[str, int], Tracing] = {}


def tracing_for(channel: str) -> Tracing:
    """This process's :class:`Tracing` for a system whose spans go to ``channel``.

    ``"local"``: the process's own TracerProvider (the in-process base). A socket path:
    a provider of Stalwart's own whose spans are shipped there, to the process that
    started the system; it samples as the provider this process inherited from that one
    did. A process forked from one that had it gets its own.
    """
    pid = os.getpid()
    found = _BY_PROCESS.get((channel, pid))
    if found is None:
        for key, inherited in list(_BY_PROCESS.items()):
            if key[1] != pid:  # its parent's: never sends from here
                del _BY_PROCESS[key]
                if inherited.shipper is not None:
                    inherited.shipper.abandon()
        found = _BY_PROCESS[(channel, pid)] = _build(channel)
    return found


def _build(channel: str) -> Tracing:
    from .. import __version__

    if channel == LOCAL or not os.path.exists(channel):  # (a member on another host: its own)
        return Tracing(trace.get_tracer(SCOPE, __version__))
    inherited = trace.get_tracer_provider()
    sampler: Sampler = ParentBased(ALWAYS_ON)
    if isinstance(inherited, TracerProvider):
        sampler = inherited.sampler
    provider = TracerProvider(
        sampler=sampler, resource=Resource.get_empty(), shutdown_on_exit=False
    )
    shipper = Shipper(channel)
    provider.add_span_processor(shipper)
    return Tracing(provider.get_tracer(SCOPE, __version__), shipper)
