"""The JSON HTTP API and the Prometheus endpoint, on loopback by default.

Thespian actors must not start threads, so the server runs in the process that
owns the ``System`` (``System.serve_api()``), or in a ``stalwart serve`` process
that reads a store file. Write endpoints need the token (``Authorization:
Bearer <token>``); a server started without one makes its own and shows it.
Bodies and query parameters are validated with msgspec: a mistake is a 400
naming the field.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any, Protocol
from urllib.parse import parse_qs, urlsplit

import msgspec
from prometheus_client import CollectorRegistry, generate_latest

from ..actors.errors import ServiceOff
from ..dashboard import PAGE_HEADERS, Snapshots, static_file
from ..supervisors._plan import quiet_periods
from ..supervisors.queries import ErrorsQuery, HistoryQuery, InsightsQuery, MetricsQuery
from ._insights import insights
from ._prometheus import Collector
from ._store import RecoveryStore

log = logging.getLogger("stalwart.api")


class Backend(Protocol):
    """What the API needs: a live system, or a store file."""

    def errors(
        self, status: str | None, path: str | None, category: str | None, limit: int
    ) -> list[dict[str, Any]]: ...
    def error(self, error_id: int) -> dict[str, Any] | None: ...
    def resolve_error(self, error_id: int, by: str) -> bool: ...
    def metrics(self, window_s: float | None, path: str | None) -> Any: ...
    def totals(self) -> Any: ...
    def history(
        self, path: str | None, since: float | None, limit: int
    ) -> list[dict[str, Any]]: ...
    def reset_levels(self, path: str | None) -> int: ...
    def diagnostics(self) -> dict[str, Any]: ...
    def tree_gauges(self) -> Any: ...
    def alerts(self, active: bool | None) -> list[dict[str, Any]]: ...
    def insights(self, window_s: float | None) -> Any: ...
    def tree(self) -> tuple[str, str, list[dict[str, Any]], dict[str, Any] | None]: ...
    def events(self, since: int) -> list[Any]: ...
    def incidents(self) -> list[dict[str, Any]]: ...
    def memory(self) -> dict[str, Any] | None: ...
    def request_recovery(self, path: str, level: int, reason: str, by: str) -> Any: ...
    def quiet_periods(self) -> dict[str, float]: ...


class ApiError(Exception):
    """An HTTP error answer: status, message and (for a 400) the field at fault."""

    allow = ""  # for 405: the methods the path takes

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


class NoSystem(ApiError):
    def __init__(self) -> None:
        super().__init__(503, "no running system is attached to this server")


# -- request shapes -------------------------------------------------------------------------


class ResolveBody(msgspec.Struct, forbid_unknown_fields=True):
    by: str = "api"


class ResetBody(msgspec.Struct, forbid_unknown_fields=True):
    path: str | None = None


class RecoverBody(msgspec.Struct, forbid_unknown_fields=True):
    path: str
    level: Annotated[int, msgspec.Meta(ge=1, le=5)]
    reason: str = "requested from the API"
    by: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "api"


class DashboardQuery(msgspec.Struct, forbid_unknown_fields=True):
    episodes: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


_FIELD = re.compile(r"`\$\.([\w.\[\]]+)`")


def _invalid(exc: msgspec.ValidationError | msgspec.DecodeError) -> ApiError:
    text = str(exc)
    match = _FIELD.search(text)
    field = match.group(1) if match else None
    if field is None and ("unknown field" in text or "missing required field" in text):
        quoted = re.search(r"`(\w+)`", text)
        field = quoted.group(1) if quoted else None
    return ApiError(400, text, field)


def parse_query(query: dict[str, list[str]], shape: type[Any]) -> Any:
    flat = {k: v[-1] for k, v in query.items()}
    try:
        return msgspec.convert(flat, shape, strict=False)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None


def parse_body(body: bytes, shape: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body or b"{}", type=shape)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _invalid(exc) from None


# -- routing ---------------------------------------------------------------------------------

Route = tuple[str, re.Pattern[str], bool, Callable[..., Any]]


class Api:
    """The endpoints, independent of the HTTP plumbing."""

    def __init__(self, backend: Backend, token: str) -> None:
        self.backend = backend
        self.token = token
        self.snapshots = Snapshots(backend)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(Collector(backend))  # type: ignore[arg-type]
        self.routes: list[Route] = [
            ("GET", re.compile(r"/api/errors"), False, self.list_errors),
            ("GET", re.compile(r"/api/errors/(\d{1,18})"), False, self.get_error),
            ("POST", re.compile(r"/api/errors/(\d{1,18})/resolve"), True, self.resolve),
            ("GET", re.compile(r"/api/recovery/metrics"), False, self.get_metrics),
            ("GET", re.compile(r"/api/recovery/history"), False, self.get_history),
            ("POST", re.compile(r"/api/recovery/reset"), True, self.reset),
            ("GET", re.compile(r"/api/diagnostics"), True, self.diagnostics),  # (a store scan)
            ("GET", re.compile(r"/api/insights"), False, self.get_insights),
            ("GET", re.compile(r"/api/dashboard"), False, self.dashboard),
            ("POST", re.compile(r"/api/recovery/request"), True, self.request_recovery),
        ]

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, token: str | None
    ) -> tuple[int, Any]:
        _, pattern, guarded, fn = self.route(method, path)
        if guarded and not self.authorised(token):
            raise ApiError(
                401, "this endpoint needs the API token (header 'Authorization: Bearer <token>')"
            )
        match = pattern.fullmatch(path)
        assert match is not None
        try:
            return 200, fn(*match.groups(), query=query, body=body)
        except ServiceOff as exc:  # (started with store=None, say): not this server's fault
            raise ApiError(503, str(exc)) from None

    def route(self, method: str, path: str) -> Route:
        """The route for ``method path``: 404 if no endpoint has the path, 405 if not the
        method (the error's ``allow`` lists those it takes)."""
        allowed = []
        for route in self.routes:
            if route[1].fullmatch(path) is None:
                continue
            if route[0] == method:
                return route
            allowed.append(route[0])
        if allowed:
            error = ApiError(405, f"{method} is not allowed on {path} (use {', '.join(allowed)})")
            error.allow = ", ".join(allowed)
            raise error
        raise ApiError(404, f"no endpoint {method} {path}")

    def authorised(self, token: str | None) -> bool:
        """True if ``token`` is the API token (any text compares safely)."""
        given = (token or "").encode("utf-8", "surrogateescape")
        return bool(token) and secrets.compare_digest(given, self.token.encode())

    def list_errors(self, *, query: Any, body: bytes) -> Any:
        q = parse_query(query, ErrorsQuery)
        return self.backend.errors(q.status, q.path, q.category, q.limit)

    def get_error(self, error_id: str, *, query: Any, body: bytes) -> Any:
        row = self.backend.error(int(error_id))
        if row is None:
            raise ApiError(404, f"no error #{error_id}")
        return row

    def resolve(self, error_id: str, *, query: Any, body: bytes) -> Any:
        b = parse_body(body, ResolveBody)
        if self.backend.error(int(error_id)) is None:
            raise ApiError(404, f"no error #{error_id}")
        if not self.backend.resolve_error(int(error_id), b.by):
            raise ApiError(409, f"error #{error_id} is already resolved")
        return {"id": int(error_id), "resolved": True, "by": b.by}

    def get_metrics(self, *, query: Any, body: bytes) -> Any:
        q = parse_query(query, MetricsQuery)
        return self.backend.metrics(q.window_s, q.path)

    def get_history(self, *, query: Any, body: bytes) -> Any:
        q = parse_query(query, HistoryQuery)
        return self.backend.history(q.path, q.since, q.limit)

    def reset(self, *, query: Any, body: bytes) -> Any:
        b = parse_body(body, ResetBody)
        return {"reset": b.path or "*", "supervisors": self.backend.reset_levels(b.path)}

    def diagnostics(self, *, query: Any, body: bytes) -> Any:
        return self.backend.diagnostics()

    def get_insights(self, *, query: Any, body: bytes) -> Any:
        q = parse_query(query, InsightsQuery)
        return self.backend.insights(q.window_s)

    def dashboard(self, *, query: Any, body: bytes) -> Any:
        q = parse_query(query, DashboardQuery)
        return self.snapshots.snapshot(q.episodes)

    def request_recovery(self, *, query: Any, body: bytes) -> Any:
        b = parse_body(body, RecoverBody)
        result = self.backend.request_recovery(b.path, b.level, b.reason, b.by)
        if not result.ok and result.detail.startswith("unknown actor path"):
            raise ApiError(400, result.detail, "path")
        return result

    def prometheus(self) -> bytes:
        return bytes(generate_latest(self.registry))


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


def encode(value: Any) -> bytes:
    """JSON of any answer (msgspec Structs, rows, numbers)."""
    return msgspec.json.encode(msgspec.to_builtins(value, enc_hook=_default))


class ApiServer:
    """Serves :class:`Api` over HTTP on ``host:port`` (port 0: any free port)."""

    def __init__(
        self,
        backend: Backend,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        allowed_hosts: Sequence[str] = (),
    ) -> None:
        self.token = token or secrets.token_urlsafe(18)
        self.api = Api(backend, self.token)
        api = self.api
        # the names a request may address this server by (a page from another site that
        # resolves its name to this address is refused: DNS rebinding)
        hosts = {*LOOPBACK_NAMES, host.strip("[]").lower(), *(h.lower() for h in allowed_hosts)}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            default_request_version = "HTTP/1.1"  # (refusals of a bad request line included)
            disable_nagle_algorithm = True  # headers and body go out without waiting for ACKs
            raw_requestline: bytes  # (read by http.server before parse_request)
            linger = False  # the connection closes after the answer: see finish()

            def _serve(self, method: str) -> None:
                target = self.path
                close = self.close_connection
                # a body left unread would be taken for the next request: unless it is read,
                # the connection closes after the answer
                self.close_connection = close or _announces_body(self.headers)
                try:
                    try:
                        url = urlsplit(target)
                    except ValueError:
                        raise ApiError(400, f"the request target {target!r} is not a URL") from None
                    malformed = _malformed(self.headers)
                    if malformed:
                        raise ApiError(400, malformed)
                    refusal = _refused_origin(self.headers, hosts, url.netloc)
                    if refusal:
                        raise ApiError(403, refusal)
                    if "Transfer-Encoding" in self.headers:
                        raise ApiError(
                            411, "Transfer-Encoding is not supported: send a Content-Length"
                        )
                    token = _token(self.headers)
                    query = parse_qs(url.query)
                    body = b""
                    if method == "POST":  # the token first, then a bounded body
                        api.route(method, url.path)
                        if not api.authorised(token):
                            raise ApiError(401, "this endpoint needs the API token")
                        length = _body_length(self.headers)
                        body = self.rfile.read(length)
                        if len(body) < length:  # the client stopped sending: not acted on
                            raise ApiError(
                                400, f"the body ended after {len(body)} of {length} bytes"
                            )
                        self.close_connection = close
                    elif method != "GET":
                        api.route(method, url.path)  # 405 with the methods it takes, or 404
                        raise ApiError(405, f"{method} is not allowed on {url.path}")
                    page = static_file(url.path) if method == "GET" else None
                    if page is not None:
                        self._send(200, page[0], page[1], PAGE_HEADERS)
                        return
                    if url.path == "/metrics" and method == "GET":
                        self._send(200, "text/plain; version=0.0.4", api.prometheus())
                        return
                    status, value = api.handle(method, url.path, query, body, token)
                    self._send(status, "application/json", encode(value))
                except ApiError as exc:
                    payload = {"error": exc.message, "status": exc.status}
                    if exc.field:
                        payload["field"] = exc.field
                    headers = {"Allow": exc.allow} if exc.allow else None
                    if exc.status in (400, 413):  # the rest of the request is not read
                        self.close_connection = True
                    data = json.dumps(payload).encode()
                    self._send(exc.status, "application/json", data, headers)
                except Exception:  # the server must keep serving; the text stays in the log
                    incident = secrets.token_hex(4)
                    log.exception("API error %s on %s %r", incident, method, target)
                    payload = {"error": "internal error (see the log)", "status": 500}
                    payload["id"] = incident
                    self._send(500, "application/json", json.dumps(payload).encode())

            def _send(
                self, status: int, content_type: str, data: bytes, headers: Any = None
            ) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                if self.close_connection:
                    self.send_header("Connection", "close")
                    self.linger = True
                self.end_headers()
                if self.command != "HEAD":  # (the length of what a GET would get, no body)
                    self.wfile.write(data)

            def parse_request(self) -> bool:
                """http.server's, without HTTP/0.9 (a request line without a version, or
                HTTP/0.x), whose answers have no status line."""
                line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
                words = line.split()
                if len(words) == 2 or (len(words) > 2 and _HTTP_0.fullmatch(words[-1])):
                    self.command, self.requestline, self.close_connection = "", line, True
                    self.request_version = self.default_request_version
                    self.send_error(400, f"HTTP/0.9 is not served (request line {line[:200]!r})")
                    return False
                return bool(super().parse_request())

            def send_error(
                self, code: int, message: str | None = None, explain: str | None = None
            ) -> None:
                """http.server's own refusals (a malformed request line or headers, a method
                no ``do_`` serves) as JSON, like the API's; none is a server error."""
                if code == 501 and self.command:  # an unknown method: as for PUT, 405 or 404
                    self._serve(self.command)
                    return
                if code == 505:  # (a version after HTTP/1.x)
                    code = 400
                text = message or self.responses[code][0]
                self.log_error("code %d, message %s", code, text)
                self.close_connection = True
                payload = {"error": f"{text}: {explain}" if explain else text, "status": code}
                self._send(code, "application/json", json.dumps(payload).encode())

            def finish(self) -> None:
                """After an answer on a connection that closes, take in (and drop) what the
                client still sends, for a moment: closed with bytes of the request unread, the
                connection is reset, and the client may lose the answer before reading it."""
                super().finish()
                if not self.linger:
                    return
                try:
                    self.connection.shutdown(socket.SHUT_WR)
                    deadline, taken = time.monotonic() + _LINGER_S, 0
                    while taken < _LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                        self.connection.settimeout(left)
                        chunk = self.connection.recv(65536)
                        if not chunk:  # the client closed its side
                            break
                        taken += len(chunk)
                except OSError:
                    pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def do_HEAD(self) -> None:  # (no body may follow a HEAD answer: not served)
                self._serve("HEAD")

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("%s - %s", self.address_string(), fmt % args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        address = self.httpd.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="stalwart-api", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The dashboard page, with the token in the fragment (which browsers do not send)."""
        return f"{self.url}/#token={self.token}"

    def stop(self) -> None:
        """Stop serving and close the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


MAX_BODY = 64 * 1024  # the largest request body read
FIRST_EVENTS = 2000  # how far back a store's first timeline read goes
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_ONCE = ("Host", "Origin", "Authorization", "X-Stalwart-Token", "Content-Length")
_DIGITS = re.compile(r"[0-9]+")
_LINGER_S = 2.0  # how long a closing connection takes in what the client still sends
_LINGER_BYTES = 4 * MAX_BODY  # and how much of it at most
_HTTP_0 = re.compile(r"HTTP/0+\.[0-9]+")  # (HTTP/0.9 and the like)


def _body_length(headers: Any) -> int:
    """The request's Content-Length, checked (400 if not a number, 413 if too large)."""
    text = headers.get("Content-Length")
    if text is None:
        return 0
    if _DIGITS.fullmatch(text.strip()) is None:  # (not str.isdigit: "²" is a digit to it)
        raise ApiError(400, f"Content-Length: expected a number of bytes, got {text!r}")
    length = int(text)
    if length > MAX_BODY:
        raise ApiError(413, f"the body is {length} bytes; at most {MAX_BODY} are read")
    return length


def _hostname(value: str) -> str:
    """The host name of a Host header or an origin's netloc (no port, no brackets)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _malformed(headers: Any) -> str:
    """Why a request's headers are ambiguous ("" if they are not): a line that is not a
    header (no colon, a bare CR) hides those after it, or one of those that may be given
    once is given more than once."""
    if headers.defects or headers.get_payload():
        return "a header line is malformed (no colon, or a bare CR): the headers are ambiguous"
    for name in _ONCE:
        if len(headers.get_all(name) or ()) > 1:
            return f"more than one {name} header"
    return ""


def _announces_body(headers: Any) -> bool:
    """True if the request says a body follows."""
    return "Transfer-Encoding" in headers or headers.get("Content-Length", "0").strip() != "0"


def _refused_origin(headers: Any, hosts: set[str], target_host: str = "") -> str:
    """Why a request's Host, Origin or the host its target names (absolute form) is refused
    ("" if none is)."""
    host = headers.get("Host")
    if host is not None and _hostname(host) not in hosts:
        return f"Host {host!r} is not one this server answers to (allowed_hosts)"
    if target_host and _hostname(target_host) not in hosts:
        return f"host {target_host!r} is not one this server answers to (allowed_hosts)"
    origin = headers.get("Origin")
    if origin is not None and origin != "null":
        try:
            name = _hostname(urlsplit(origin).netloc)
        except ValueError:  # ("http://[::1" and the like)
            name = ""
        if name not in hosts:
            return f"Origin {origin!r} is not allowed (allowed_hosts)"
    return ""


def _token(headers: Any) -> str | None:
    auth = headers.get("Authorization") or ""
    if auth.lower().startswith("bearer "):
        return str(auth[7:].strip())
    token = headers.get("X-Stalwart-Token")
    return None if token is None else str(token)


# -- backends -----------------------------------------------------------------------------------


TREE_ROWS = 1000  # the dashboard shows a tree whole up to this many rows, else the first ones
TREE_FLAGGED = 100  # ... and beyond those, up to this many of the rows that need a look


class SystemBackend:
    """Answers from a running ``System`` (which asks its telemetry actor)."""

    def __init__(self, system: Any) -> None:
        self.system = system

    def errors(
        self, status: str | None, path: str | None, category: str | None, limit: int
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.system.errors(status, path, category, limit)
        return rows

    def error(self, error_id: int) -> dict[str, Any] | None:
        row: dict[str, Any] | None = self.system.error(error_id)
        return row

    def resolve_error(self, error_id: int, by: str) -> bool:
        return bool(self.system.resolve_error(error_id, by))

    def metrics(self, window_s: float | None, path: str | None) -> Any:
        return self.system.metrics(window_s, path)

    def totals(self) -> Any:
        return self.system.totals()

    def history(self, path: str | None, since: float | None, limit: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.system.history(path, since, limit)
        return rows

    def reset_levels(self, path: str | None) -> int:
        from ..actors.errors import UnknownPath

        try:
            return int(self.system.reset_levels(path))
        except UnknownPath as exc:
            raise ApiError(400, str(exc), "path") from None

    def diagnostics(self) -> dict[str, Any]:
        result: dict[str, Any] = self.system.diagnostics()
        return result

    def tree_gauges(self) -> Any:
        return self.system._tree_gauges()

    def alerts(self, active: bool | None) -> list[dict[str, Any]]:
        # as last evaluated: a scrape or a dashboard poll reads, it does not make the actor
        # flush and evaluate the rules (which it does every alert_interval_s anyway)
        rows: list[dict[str, Any]] = self.system.alerts(active, evaluate=False)
        return rows

    def insights(self, window_s: float | None) -> Any:
        return self.system.insights(window_s)

    def tree(self) -> tuple[str, str, list[dict[str, Any]], dict[str, Any] | None]:
        """The tree's rows, whole up to ``TREE_ROWS``; past that the first ``TREE_ROWS``
        and up to ``TREE_FLAGGED`` of those that need a look; and its counts by state."""
        from ..actors.errors import StalwartError

        try:
            summary = self.system.summary(limit=TREE_FLAGGED)
            status = self.system.status(limit=TREE_ROWS)
        except StalwartError:  # shut down (the server outlived it for a moment)
            return self.system.tree.name, "stopped", [], None
        shown = list(status)
        if status.total > len(shown):
            first = {s.path for s in shown}
            shown += [s for s in summary.unhealthy if s.path not in first]
        actors = {
            "total": summary.total,
            "shown": len(shown),
            "counts": summary.counts,
            "kinds": summary.kinds,
            "unhealthy": summary.unhealthy_total,
        }
        return (
            self.system.tree.name,
            status.phase,
            [msgspec.to_builtins(s) for s in shown],
            actors,
        )

    def events(self, since: int) -> list[Any]:
        events: list[Any] = self.system.events(since)
        return events

    def incidents(self) -> list[dict[str, Any]]:
        return [msgspec.to_builtins(i) for i in self.system.incidents()]

    def memory(self) -> dict[str, Any] | None:
        from ..actors.errors import StalwartError

        try:
            status = self.system.memory()
        except StalwartError:
            return None  # the memory service is off
        sample = status.sample
        return {
            "level": status.level.name.lower(),
            "percent": sample.percent if sample else None,
            "used": sample.used if sample else None,
            "limit": sample.limit if sample else None,
            "source": sample.source if sample else "",
            "limit_from": sample.limit_from if sample else "",
            "pressure": msgspec.to_builtins(sample.pressure) if sample else None,
            "pressure_from": sample.pressure_from if sample else "",
            "notes": list(sample.notes) if sample else [],
            "shedding": status.shedding,
            "thresholds": list(self.system.options.memory_thresholds),
            "cleanups": [
                {
                    "time": c.time,
                    "tier": c.tier,
                    "trigger": c.trigger,
                    "freed_bytes": max(0, c.before_bytes - c.after_bytes),
                    "percent_before": c.percent_before,
                    "percent_after": c.percent_after,
                }
                for c in reversed(status.cleanups)
            ],
        }

    def request_recovery(self, path: str, level: int, reason: str, by: str) -> Any:
        from ..actors.messages import RecoveryRequest

        return self.system.request_recovery(RecoveryRequest(path, level, reason, by))

    def quiet_periods(self) -> dict[str, float]:
        return quiet_periods(self.system.tree)


class StoreBackend:
    """Answers from a store file (``stalwart serve --db``); no live actions without a system."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        RecoveryStore(path).close()  # create or migrate once, up front

    @property
    def store(self) -> RecoveryStore:
        store: RecoveryStore | None = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = RecoveryStore(self.path)
        return store

    def errors(
        self, status: str | None, path: str | None, category: str | None, limit: int
    ) -> list[dict[str, Any]]:
        return self.store.errors(status, path, category, limit)

    def error(self, error_id: int) -> dict[str, Any] | None:
        return self.store.error(error_id)

    def resolve_error(self, error_id: int, by: str) -> bool:
        return self.store.resolve_error(error_id, by)

    def metrics(self, window_s: float | None, path: str | None) -> Any:
        return self.store.metrics(window_s, path)

    def totals(self) -> Any:
        return self.store.totals()

    def history(self, path: str | None, since: float | None, limit: int) -> list[dict[str, Any]]:
        return self.store.recovery_history(path, since, limit)

    def reset_levels(self, path: str | None) -> int:
        raise NoSystem()

    def diagnostics(self) -> dict[str, Any]:
        store = self.store
        return {
            "store": {
                "path": self.path,
                "integrity_ok": store.integrity_ok(),
                "partial_batches": store.partial_batches(),
            },
            "system": None,
        }

    def tree_gauges(self) -> Any:
        return None  # (no live tree)

    def alerts(self, active: bool | None) -> list[dict[str, Any]]:
        return self.store.alerts(active)

    def insights(self, window_s: float | None) -> Any:
        return insights(self.store, window_s)

    def tree(self) -> tuple[str, str, list[dict[str, Any]], dict[str, Any] | None]:
        """No live tree; the phase is ``stopped`` once the recorded system stopped, else
        ``recorded`` (the file may still be written, or its writer was cut short)."""
        run = self.store.latest_run()
        return self.path, "stopped" if run and run["stopped"] else "recorded", [], None

    def events(self, since: int) -> list[Any]:
        """Events after number ``since``; a first read (``since`` 0) starts at the newest
        ``FIRST_EVENTS``: the timeline keeps the newest episodes, not the whole history."""
        if since == 0:
            newest = self.store.db.execute("SELECT max(id) FROM events").fetchone()[0] or 0
            since = max(0, newest - FIRST_EVENTS)
        rows = self.store.query(
            "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT 10000", (since,)
        )
        return [{**row, "seq": row["id"], "trace": ""} for row in rows]

    def incidents(self) -> list[dict[str, Any]]:
        return []

    def memory(self) -> dict[str, Any] | None:
        rows = self.store.query("SELECT * FROM memory_events ORDER BY id DESC LIMIT 20")
        return {
            "level": None,
            "percent": None,
            "used": None,
            "limit": None,
            "source": "",
            "limit_from": "",
            "pressure": None,
            "pressure_from": "",
            "notes": [],
            "shedding": False,
            "thresholds": [70.0, 85.0, 95.0],
            "cleanups": [
                {
                    "time": r["time"],
                    "tier": r["tier"],
                    "trigger": r["trigger"],
                    "freed_bytes": r["freed_bytes"] or 0,
                    "percent_before": r["percent"],
                    "percent_after": None,
                }
                for r in rows
            ],
        }

    def request_recovery(self, path: str, level: int, reason: str, by: str) -> Any:
        raise NoSystem()

    def quiet_periods(self) -> dict[str, float]:
        run = self.store.latest_run()
        return dict(run["quiet_periods"]) if run else {}
