"""How finished spans leave an actor process for the process that started the system.

On the multi-process bases every actor (and the root) runs in a process forked from the
one that called ``start()``. An exporter there cannot see what those processes record,
and one inherited by them would export from each (an in-memory exporter's spans would
stay in the actor's process; a ``BatchSpanProcessor``'s queue dies with a process that
exits without running ``atexit``, as forked processes do). So each of them ships the
spans it ends to the starting process over a local socket, and that one hands them to
its own TracerProvider's span processors, whatever the exporter:

- :class:`SpanReceiver` (the starting process): a Unix stream socket in a private folder
  of its own, and a thread (``stalwart-spans``) that reads it.
- :class:`Shipper` (an actor process): a ``SpanProcessor`` that sends each span as one
  record on a connection of its own, without blocking and without a thread (actors start
  none); what the socket cannot take at once waits and goes with the next span, or when
  the actor exits (at most ``PENDING_BYTES`` wait; more spans are dropped and counted).

A record is a 4-byte length and msgpack (never pickle: nothing read here runs code); it
carries the span as it ended: ids, parent, kind, times, attributes, events, links, status.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import shutil
import socket
import tempfile
import threading
import time
from typing import Any

import msgspec
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

log = logging.getLogger("stalwart.tracing")

RECORD_MAX = 1 << 20  # a span record larger than that is dropped
PENDING_BYTES = 16 << 20  # what may wait in an actor process for the socket to take it
CONNECT_S = 1.0
_FLUSH_STEP_S = 0.01
_READ = 1 << 16
_SOCKET_PATH_MAX = 104  # (macOS; Linux allows 108)


# -- the records ------------------------------------------------------------------------------
def _attributes(value: Any) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in dict(value or {}).items()}


def _ids(span_context: SpanContext) -> tuple[bytes, bytes, int]:
    return (
        span_context.trace_id.to_bytes(16, "big"),
        span_context.span_id.to_bytes(8, "big"),
        int(span_context.trace_flags),
    )


def _context(ids: Any, remote: bool) -> SpanContext:
    trace_id, span_id, flags = ids
    return SpanContext(
        int.from_bytes(trace_id, "big"),
        int.from_bytes(span_id, "big"),
        is_remote=remote,
        trace_flags=TraceFlags(flags),
    )


def encode(span: ReadableSpan) -> bytes:
    """``span`` as one record."""
    assert span.context is not None
    parent = span.parent
    scope = span.instrumentation_scope
    return msgspec.msgpack.encode(
        (
            span.name,
            _ids(span.context),
            None if parent is None else (*_ids(parent), parent.is_remote),
            span.kind.value,
            span.start_time,
            span.end_time,
            dict(span.attributes or {}),
            [(e.name, e.timestamp, dict(e.attributes or {})) for e in span.events],
            [(_ids(link.context), dict(link.attributes or {})) for link in span.links],
            span.status.status_code.value,
            span.status.description,
            (scope.name, scope.version) if scope is not None else ("stalwart", None),
        )
    )


def decode(record: bytes, resource: Any) -> ReadableSpan:
    """The span a record carries, as the starting process's ``resource`` produced it."""
    (name, ids, parent, kind, start, end, attributes, events, links, code, why, scope) = (
        msgspec.msgpack.decode(record)
    )
    return ReadableSpan(
        name,
        _context(ids, False),
        None if parent is None else _context(parent[:3], parent[3]),
        resource,
        _attributes(attributes),
        [Event(n, _attributes(a), t) for n, t, a in events],
        [Link(_context(i, True), _attributes(a)) for i, a in links],
        SpanKind(kind),
        status=Status(StatusCode(code), why),
        start_time=start,
        end_time=end,
        instrumentation_scope=InstrumentationScope(scope[0], scope[1]),
    )


# -- an actor process: sending --------------------------------------------------------------
class Shipper(SpanProcessor):
    """Sends every span that ends to the :class:`SpanReceiver` at ``address``."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock: socket.socket | None = None
        self.owner = os.getpid()  # a forked process has its own (``tracing_for``)
        self.out = bytearray()  # framed records the socket has not taken yet
        self.dropped = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self.owner != os.getpid():
            return
        record = encode(span)
        if len(record) > RECORD_MAX:
            self._drop(1, f"a span of {len(record)} bytes")
            return
        if len(self.out) > PENDING_BYTES:
            self._drop(1, "the receiving process does not keep up")
            return
        self.out += len(record).to_bytes(4, "big") + record
        self._send()

    def _connected(self) -> socket.socket | None:
        if self.sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(CONNECT_S)
                sock.connect(self.address)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                self._drop(1, f"cannot reach {self.address}: {exc}")
                self.out.clear()
                return None
            self.sock = sock
        return self.sock

    def _send(self) -> bool:
        """Send what waits, as far as the socket takes it now; True if nothing is left."""
        sock = self._connected() if self.out else self.sock
        while sock is not None and self.out:
            try:
                sent = sock.send(self.out)
            except BlockingIOError:
                return False
            except OSError as exc:  # the receiver is gone (the system stopped)
                self._drop(1, str(exc))
                self.abandon()
                return True
            del self.out[:sent]
        return not self.out

    def _drop(self, count: int, why: str) -> None:
        if not self.dropped:
            log.warning("span(s) dropped on the way to the tracing process: %s", why)
        self.dropped += count

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait (at most ``timeout_millis``) until what waits has been sent."""
        if self.owner != os.getpid():
            return True
        deadline = time.monotonic() + timeout_millis / 1000
        while not self._send():
            if time.monotonic() >= deadline:
                return False
            time.sleep(_FLUSH_STEP_S)
        return True

    def abandon(self) -> None:
        """Close the socket and forget what waits (in a forked process, its copies: the
        connection stays open for the process that made it)."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = None
        self.out.clear()

    def shutdown(self) -> None:
        self.force_flush(1000)
        self.abandon()


# -- the starting process: receiving ---------------------------------------------------------
def _private_folder() -> str:
    """A folder only this user can enter, with room for a socket's name (108 bytes at most)."""
    folder = tempfile.mkdtemp(prefix="stalwart-spans-")  # (0700)
    if len(folder) > _SOCKET_PATH_MAX - 8:  # a long TMPDIR
        os.rmdir(folder)
        folder = tempfile.mkdtemp(prefix="stalwart-spans-", dir="/tmp")
    return folder


class SpanReceiver:
    """Takes the spans the tree's processes ship and ends them in this process's provider.

    A span goes to the span processors of the global TracerProvider as it is when the span
    arrives (an SDK ``TracerProvider``; any other has no processors to give it to), with
    that provider's resource.
    """

    def __init__(self) -> None:
        self.folder = _private_folder()
        self.address = os.path.join(self.folder, "spans")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.address)
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.received = 0
        self.lost = 0  # spans no provider here could take
        self.closing = False
        self.thread = threading.Thread(target=self._run, name="stalwart-spans", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.closing:
            self._turn(0.1)

    def _turn(self, timeout: float) -> bool:
        """Read what is there (waiting at most ``timeout``); True if anything was."""
        events = self.selector.select(timeout)
        for key, _ in events:
            if key.fileobj is self.listener:
                with contextlib.suppress(BlockingIOError):
                    accepted, _ = self.listener.accept()
                    accepted.setblocking(False)
                    self.selector.register(accepted, selectors.EVENT_READ, bytearray())
                continue
            conn, buffer = key.fileobj, key.data
            assert isinstance(conn, socket.socket)
            try:
                data = conn.recv(_READ)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            buffer += data
            if not data or not self._records(buffer):  # every holder exited, or not ours
                self.selector.unregister(conn)
                conn.close()
        return bool(events)

    def _records(self, buffer: bytearray) -> bool:
        """Hand on the whole records at the start of ``buffer``; False if it holds garbage."""
        while len(buffer) >= 4:
            size = int.from_bytes(buffer[:4], "big")
            if size > RECORD_MAX:
                log.warning("a connection to the span socket sent no span record; closed")
                return False
            if len(buffer) < 4 + size:
                break
            self._emit(bytes(buffer[4 : 4 + size]))
            del buffer[: 4 + size]
        return True

    def _emit(self, record: bytes) -> None:
        provider = trace.get_tracer_provider()
        processor = getattr(provider, "_active_span_processor", None)
        if processor is None:
            if not self.lost:
                log.warning(
                    "spans from the actors' processes need an SDK TracerProvider in this"
                    " process (opentelemetry.trace.set_tracer_provider); they are dropped"
                )
            self.lost += 1
            return
        try:
            span = decode(record, getattr(provider, "resource", None))
        except Exception:  # not a record of ours
            log.exception("a malformed span record was dropped")
            return
        self.received += 1
        processor.on_end(span)

    def close(self, grace_s: float = 2.0) -> None:
        """Read what the tree's processes sent before they exited, then stop."""
        self.closing = True
        self.thread.join()
        deadline = time.monotonic() + grace_s
        while len(self.selector.get_map()) > 1 and time.monotonic() < deadline:
            self._turn(0.02)
        while self._turn(0):  # what is left unread on connections still held open
            pass
        for key in list(self.selector.get_map().values()):
            self.selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()
        shutil.rmtree(self.folder, ignore_errors=True)
