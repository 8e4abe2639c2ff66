"""OpenTelemetry (``start(..., tracing=True)``): incidents and attempts as spans, one trace per
request through the tree, breaker changes and memory tiers as span events, and nothing at all
when it is off.

The spans are read with the SDK's ``InMemorySpanExporter`` behind a ``SimpleSpanProcessor``
of the provider this (pytest's) process sets up, as a user would before ``start()``: on
``multiproc`` every actor runs in a process forked from this one, and its spans reach that
exporter only if they are shipped here.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from stalwart import Breaker, Child, DownstreamError, ManagedActor, Supervisor
from stalwart.actors._span_wire import decode, encode
from stalwart.actors._tracing import Tracing, parse_traceparent, traceparent
from stalwart.supervisors import SpecError, _options
from stalwart.supervisors._spans import IncidentSpans
from stalwart.supervisors.messages import Attempt, Event, MemoryEvent
from stalwart.testing import wait_for_event, wait_until

ROOT = Path(__file__).resolve().parents[2]
_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """The exporter of this process's provider, empty (request it before ``make_system``,
    so the systems are shut down, and their last spans in, before it is emptied again)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_stalwart_test_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        provider._stalwart_test_exporter = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


# -- the actors ----------------------------------------------------------------------------------
class Get(msgspec.Struct, frozen=True):
    key: str


class Note(msgspec.Struct, frozen=True):
    key: str


class Back(ManagedActor):
    def receiveMsg_Get(self, msg: Get, sender: object) -> None:
        self.reply(sender, msg.key.upper())

    def receiveMsg_Note(self, msg: Note, sender: object) -> None:
        pass


class Front(ManagedActor):
    """Asks ``t/back`` with ``self.call`` and answers with its reply; tells it a ``Note``."""

    def receiveMsg_Get(self, msg: Get, sender: object) -> None:
        self.call("t/back", msg, on_reply=lambda value: self.reply(sender, value))

    def receiveMsg_Note(self, msg: Note, sender: object) -> None:
        self.tell("t/back", msg)
        self.reply(sender, "told")


class AsyncFront(ManagedActor):
    """Asks ``t/back`` with ``await self.ask``."""

    async def receiveMsg_Get(self, msg: Get, sender: object) -> None:
        self.reply(sender, await self.ask("t/back", msg))


class Flaky(ManagedActor):
    """Fails its first two messages, then answers."""

    def on_start(self) -> None:
        self.failures_left = 2

    def receiveMsg_Get(self, msg: Get, sender: object) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError(f"flaky {self.failures_left}")
        self.reply(sender, "ok")


class Down(ManagedActor):
    """A dependency that is down: every call is answered with a connection error."""

    def receiveMsg_Get(self, msg: Get, sender: object) -> None:
        self.reply_error(sender, ConnectionRefusedError("provider down"))


def chain(*actors: Child) -> Supervisor:
    return Supervisor("t", children=[Child("back", Back), *actors])


def named(spans: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return sorted(
        (s for s in spans.get_finished_spans() if s.name.startswith(prefix)),
        key=lambda s: s.start_time or 0,
    )


def one_trace(spans: InMemorySpanExporter, root: ReadableSpan, count: int) -> list[ReadableSpan]:
    """The spans of ``root``'s trace, once there are ``count`` of them."""
    assert root.context is not None
    trace_id = root.context.trace_id

    def found() -> list[ReadableSpan]:
        return [
            s
            for s in spans.get_finished_spans()
            if s.context is not None and s.context.trace_id == trace_id
        ]

    wait_until(lambda: len(found()) >= count, message=f"{count} spans in the trace")
    return found()


def assert_nested(chain: list[ReadableSpan]) -> None:
    """Each span is the parent of the next, in one trace."""
    for parent, child in itertools.pairwise(chain):
        assert parent.context is not None and child.parent is not None, child.name
        assert child.parent.span_id == parent.context.span_id, (parent.name, child.name)
        assert child.context is not None
        assert child.context.trace_id == parent.context.trace_id


def by_name(found: list[ReadableSpan], name: str) -> ReadableSpan:
    (span,) = [s for s in found if s.name == name]
    return span


# -- incidents ------------------------------------------------------------------------------------
def test_an_incident_with_two_attempts_is_one_span_with_two_attempt_children(
    spans, make_system, base
):
    system = make_system(Supervisor("t", children=[Child("flaky", Flaky)]), base=base, tracing=True)
    assert system.ask("t/flaky", Get("x")) == "ok"
    wait_for_event(system, "recovered", "t/flaky")
    wait_until(lambda: len(named(spans, "recovery ")) == 2, message="two attempt spans")
    attempts = sorted(named(spans, "recovery "), key=lambda s: s.end_time or 0)
    (incident,) = wait_until(lambda: named(spans, "incident "), message="the incident span")
    assert incident.name == "incident t/flaky"
    assert incident.attributes is not None and incident.context is not None
    assert incident.attributes["stalwart.incident.outcome"] == "recovered"
    assert incident.attributes["stalwart.path"] == "t/flaky"
    assert incident.parent is None
    for attempt in attempts:
        assert attempt.parent is not None and attempt.context is not None
        assert attempt.parent.span_id == incident.context.span_id
        assert attempt.context.trace_id == incident.context.trace_id
        assert attempt.attributes is not None
        assert attempt.attributes["stalwart.recovery.level"] == 1
        assert attempt.attributes["stalwart.recovery.strategy"] == "retry"
    outcomes = [a.attributes["stalwart.recovery.outcome"] for a in attempts if a.attributes]
    assert outcomes == ["failure", "success"]
    # the incident links to the handling that failed first, in the ask's trace
    (link,) = incident.links
    (ask,) = named(spans, "ask t/flaky")
    assert ask.context is not None and link.context.trace_id == ask.context.trace_id
    failed = one_trace(spans, ask, 4)  # the ask and three handlings of the message
    handlings = [s for s in failed if s.name == "handle t/flaky Get"]
    assert link.context.span_id in {s.context.span_id for s in handlings if s.context}


# -- one trace through the tree ------------------------------------------------------------------
def test_an_ask_through_an_actor_that_calls_another_is_one_trace_whose_spans_nest(
    spans, make_system, base
):
    system = make_system(chain(Child("front", Front)), base=base, tracing=True)
    assert system.ask("t/front", Get("x")) == "X"
    (ask,) = named(spans, "ask t/front")
    found = one_trace(spans, ask, 4)
    steps = [ask] + [
        by_name(found, name)
        for name in ("handle t/front Get", "call t/back Get", "handle t/back Get")
    ]
    assert_nested(steps)
    assert [s.kind for s in steps] == [
        SpanKind.CLIENT,
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.SERVER,
    ]
    assert ask.parent is None


def test_ask_async_and_an_async_handlers_ask_nest_the_same_way(spans, make_system, base):
    system = make_system(chain(Child("front", AsyncFront)), base=base, tracing=True)
    outer = trace.get_tracer("test").start_span("the caller's own span")
    with trace.use_span(outer, end_on_exit=True):
        assert asyncio.run(system.ask_async("t/front", Get("y"))) == "Y"
    found = one_trace(spans, outer, 5)
    steps = [outer] + [
        by_name(found, name)
        for name in (
            "ask t/front Get",
            "handle t/front Get",
            "call t/back Get",
            "handle t/back Get",
        )
    ]
    assert_nested(steps)


def test_a_tell_carries_the_trace_of_the_handler_that_told(spans, make_system, base):
    system = make_system(chain(Child("front", Front)), base=base, tracing=True)
    assert system.ask("t/front", Note("n")) == "told"
    (ask,) = named(spans, "ask t/front")
    found = one_trace(spans, ask, 3)
    steps = [ask, by_name(found, "handle t/front Note"), by_name(found, "handle t/back Note")]
    assert_nested(steps)
    assert steps[2].kind is SpanKind.CONSUMER
    system.tell("t/back", Note("from outside"))  # a System.tell: a PRODUCER span, its parent
    (tell,) = wait_until(lambda: named(spans, "tell t/back"), message="the tell's span")
    assert_nested([tell, by_name(one_trace(spans, tell, 2), "handle t/back Note")])


# -- span events -------------------------------------------------------------------------------
def test_breaker_changes_appear_as_span_events(spans, make_system, base):
    breaker = Breaker(failure_threshold=2, recovery_timeout=30.0)
    system = make_system(
        Supervisor("t", children=[Child("pay", Down, breaker=breaker)]), base=base, tracing=True
    )
    for _ in range(2):
        with pytest.raises(DownstreamError):
            system.ask("t/pay", Get("x"))
    wait_for_event(system, "breaker", "t/pay", where=lambda e: e.detail == "open")
    system.shutdown()  # (an incident open meanwhile ends now, with its events)
    events = [
        e
        for s in spans.get_finished_spans()
        for e in s.events
        if e.name == "stalwart.breaker" and e.attributes is not None
    ]
    assert [e.attributes["stalwart.breaker.state"] for e in events if e.attributes] == ["open"]
    assert events[0].attributes is not None and events[0].attributes["stalwart.path"] == "t/pay"


def test_a_memory_tier_appears_as_a_span_event(spans, make_system, base):
    system = make_system(chain(), base=base, tracing=True)
    system.memory_cleanup("warning", reason="a test")

    def requested():
        return [
            e
            for s in named(spans, "memory warning")
            for e in s.events
            if e.attributes is not None and e.attributes["stalwart.memory.trigger"] == "manual"
        ]

    (event,) = wait_until(requested, message="the requested tier's span event")
    assert event.name == "stalwart.memory"


def tracer() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider.get_tracer("test")), exporter


def event(kind: str, path: str, **fields: object) -> Event:
    return Event(0, time.time(), kind, path, **fields)  # type: ignore[arg-type]


def test_breaker_and_memory_events_go_on_the_incidents_they_concern():
    tracing, exporter = tracer()
    incidents = IncidentSpans(tracing)
    incidents.on_event(event("failure", "t/pay.protected", fingerprint="f1", level=1))
    incidents.on_event(event("failure", "t/other", fingerprint="f2", level=1))
    incidents.on_event(event("breaker", "t/pay", detail="open"))
    incidents.on_memory(MemoryEvent(time.time(), "critical", "threshold", 90.0))
    incidents.on_event(event("recovered", "t/pay.protected", fingerprint="f1"))
    incidents.close_all()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"incident t/pay.protected", "incident t/other"}
    pay, other = spans["incident t/pay.protected"], spans["incident t/other"]
    assert [e.name for e in pay.events] == ["stalwart.breaker", "stalwart.memory"]
    assert [e.name for e in other.events] == ["stalwart.memory"]  # (not behind that breaker)
    assert pay.attributes is not None and other.attributes is not None
    assert pay.attributes["stalwart.incident.outcome"] == "recovered"
    assert other.attributes["stalwart.incident.outcome"] == "unfinished"


def test_an_incident_ends_when_its_message_is_set_aside_or_its_path_serves_again():
    tracing, exporter = tracer()
    incidents = IncidentSpans(tracing)
    for path in ("t/a", "t/b", "t/c"):
        incidents.on_event(event("failure", path, fingerprint="f", level=1))
    incidents.on_attempt(Attempt(time.time(), "t/b", "Get", "unknown", "f", 1, "retry", False, 0.1))
    incidents.on_event(event("dead-letter", "t/a", fingerprint="f"))
    incidents.on_state("t/b", "running")
    incidents.on_event(event("escalate", "t", level=4, detail="intensity exceeded"))
    outcomes = {
        s.name: s.attributes["stalwart.incident.outcome"]
        for s in exporter.get_finished_spans()
        if s.name.startswith("incident") and s.attributes is not None
    }
    assert outcomes == {
        "incident t/a": "set-aside",
        "incident t/b": "set-aside",  # serving again, but its last attempt had failed
        "incident t/c": "given-up",
    }


EVENTS = st.tuples(
    st.sampled_from(["failure", "recovered", "dead-letter", "poison", "escalated", "breaker"]),
    st.sampled_from(["t/a", "t/b", "t/b.protected"]),
    st.sampled_from(["f1", "f2"]),
)
STEPS = st.lists(
    st.one_of(
        EVENTS,
        st.tuples(st.just("attempt"), st.sampled_from(["t/a", "t/b"]), st.sampled_from(["f1"])),
        st.tuples(st.just("running"), st.sampled_from(["t/a", "t/b"]), st.just("")),
        st.tuples(st.just("memory"), st.just(""), st.just("")),
    ),
    max_size=30,
)


@given(STEPS, st.booleans())
@settings(max_examples=200, deadline=None)
def test_every_incident_opened_ends_once_and_its_attempts_are_its_children(steps, success):
    tracing, exporter = tracer()
    incidents = IncidentSpans(tracing)
    opened = 0
    for kind, path, fingerprint in steps:
        if kind == "attempt":
            incidents.on_attempt(
                Attempt(time.time(), path, "Get", "unknown", fingerprint, 1, "retry", success, 0.01)
            )
        elif kind == "running":
            incidents.on_state(path, "running")
        elif kind == "memory":
            incidents.on_memory(MemoryEvent(time.time(), "warning", "threshold", 75.0))
        else:
            if kind == "failure" and (path, fingerprint) not in incidents.open:
                opened += 1
            detail = "open" if kind == "breaker" else "why"
            incidents.on_event(event(kind, path, fingerprint=fingerprint, detail=detail))
    incidents.close_all()
    assert incidents.open == {}
    finished = exporter.get_finished_spans()
    found = [s for s in finished if s.name.startswith("incident ")]
    assert len(found) == opened
    outcomes = {"recovered", "set-aside", "given-up", "unfinished"}
    assert all(
        s.attributes and s.attributes["stalwart.incident.outcome"] in outcomes for s in found
    )
    ids = {s.context.span_id: s for s in found if s.context}
    for attempt in (s for s in finished if s.name.startswith("recovery ")):
        assert attempt.parent is not None and attempt.parent.span_id in ids
        parent = ids[attempt.parent.span_id]
        assert attempt.attributes is not None and parent.attributes is not None
        assert (
            attempt.attributes["stalwart.fingerprint"] == parent.attributes["stalwart.fingerprint"]
        )
        assert attempt.start_time is not None and parent.start_time is not None
        assert attempt.start_time >= parent.start_time


def test_a_span_crosses_to_the_starting_process_as_it_ended():
    tracing, exporter = tracer()
    parent = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert parent is not None
    span = tracing.tracer.start_span(
        "handle t/a Get",
        trace.set_span_in_context(trace.NonRecordingSpan(parent)),
        SpanKind.SERVER,
        {"stalwart.path": "t/a", "sizes": (1, 2, 3)},
        [trace.Link(parent, {"why": "a link"})],
    )
    span.add_event("stalwart.breaker", {"stalwart.breaker.state": "open"})
    span.set_status(trace.Status(trace.StatusCode.ERROR, "it failed"))
    span.end()
    (sent,) = exporter.get_finished_spans()
    got = decode(encode(sent), sent.resource)
    for name in ("name", "context", "parent", "kind", "start_time", "end_time", "attributes"):
        assert getattr(got, name) == getattr(sent, name), name
    assert got.parent is not None and got.parent.is_remote
    assert [(e.name, e.timestamp, e.attributes) for e in got.events] == [
        (e.name, e.timestamp, e.attributes) for e in sent.events
    ]
    assert [(link.context, link.attributes) for link in got.links] == [
        (link.context, link.attributes) for link in sent.links
    ]
    assert (got.status.status_code, got.status.description) == (
        sent.status.status_code,
        sent.status.description,
    )
    assert got.instrumentation_scope == sent.instrumentation_scope


@given(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.booleans())
def test_a_traceparent_gives_back_the_context_it_was_made_of(trace_id, span_id, sampled):
    flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else trace.TraceFlags.DEFAULT)
    context = trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)
    assert parse_traceparent(traceparent(context)) == context


@given(st.text(max_size=60))
def test_any_text_is_a_traceparent_or_nothing(text):
    context = parse_traceparent(text)
    assert context is None or traceparent(context)[:52] == text[:52]  # (version and ids)


def test_the_traceparent_is_w3cs():
    value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    context = parse_traceparent(value)
    assert context is not None and context.is_remote
    assert traceparent(context) == value
    for bad in ("", "00-xyz-00f067aa0ba902b7-01", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f0-01"):
        assert parse_traceparent(bad) is None


# -- off ------------------------------------------------------------------------------------------
def test_with_tracing_off_nothing_is_recorded(spans, make_system, base):
    system = make_system(chain(Child("front", Front), Child("flaky", Flaky)), base=base)
    assert system.ask("t/front", Get("x")) == "X"
    assert system.ask("t/flaky", Get("x")) == "ok"
    system.shutdown()
    assert spans.get_finished_spans() == ()


OFF_SCRIPT = """
import sys

import msgspec

from stalwart import Child, ManagedActor, Supervisor, start


class Modules(msgspec.Struct, frozen=True):
    pass


class Probe(ManagedActor):
    def on_start(self):
        self.failed = False

    def receiveMsg_Modules(self, msg, sender):
        if not self.failed:  # (a failure and its recovery run too)
            self.failed = True
            raise RuntimeError("once")
        self.call("t/other", msg, on_reply=lambda value: self.reply(sender, value))


class Other(ManagedActor):
    def receiveMsg_Modules(self, msg, sender):
        self.reply(sender, sorted(m for m in sys.modules if m.startswith("opentelemetry")))


def loaded():
    return [m for m in sys.modules if m.startswith("opentelemetry")]


tree = Supervisor("t", children=[Child("probe", Probe), Child("other", Other)])
for base in ("simple", "multiproc"):
    with start(tree, base) as system:
        assert system.ask("t/probe", Modules()) == [], base  # (in the actor's process)
        system.tell("t/other", Modules())
assert loaded() == [], loaded()
print("no opentelemetry")
"""


def test_with_tracing_off_stalwart_imports_no_opentelemetry_module(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STALWART_STATE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(OFF_SCRIPT)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "no opentelemetry"


def test_tracing_without_the_sdk_is_refused_naming_the_option(monkeypatch):
    monkeypatch.setattr(_options, "_otel_installed", lambda: False)
    with pytest.raises(SpecError, match=r"start: tracing: needs the OpenTelemetry SDK"):
        _options.parse_options({"tracing": True})
