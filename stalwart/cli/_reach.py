"""How ``status``, ``recover``, ``chaos`` and ``send`` reach a running tree.

On the multi-process bases they attach through Thespian's admin on loopback
(``System.attach``; ``--port``, or the admin port in the note ``run`` left). On the
simple base the tree lives inside its ``stalwart run``; that process opens a control
endpoint on loopback (:class:`ControlServer`) and notes its address and a token in the
same private note. Both ways carry out the same operations (:class:`Steer`): on the
simple base they run inside ``run``, and their answers come back as JSON.
"""

from __future__ import annotations

import argparse
import hmac
import http.client
import logging
import secrets
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec

from ..actors import (
    BadMessage,
    ChildCounts,
    ChildInfo,
    RecoveryRequest,
    RecoveryResult,
    StalwartError,
    UnknownPath,
)
from ..actors.messages import ErrorReply
from ..supervisors import ActorStatus, Status, System, TreeFileError
from ..supervisors._tree_file import parse_node
from ._common import UsageError, find_run
from ._messages import actor_class, decode, message_type, shown

log = logging.getLogger("stalwart.cli")
_MAX_CALL_BYTES = 1 << 20
_ANSWER_MARGIN_S = 10.0  # how much longer than the tree's own wait a command waits for run


class Steer:
    """What the commands do to a tree, given its :class:`System` (owned or attached).

    Bad input (an unknown path, a message that does not fit) is a UsageError; what the
    tree answers with otherwise is its StalwartError.
    """

    def __init__(self, system: System) -> None:
        self.system = system

    def status(self) -> Status:
        return self.system.status()

    def recover(self, path: str, level: int, reason: str) -> RecoveryResult:
        if path not in self.system.status().by_path():
            raise UsageError(f"unknown actor path {path!r}")
        try:
            return self.system.request_recovery(RecoveryRequest(path, level, reason, by="cli"))
        except StalwartError as exc:
            raise UsageError(str(exc)) from None

    def inject(self, path: str, kind: str, nbytes: int) -> None:
        try:
            self.system.inject(path, kind, nbytes=nbytes)
        except StalwartError as exc:
            raise UsageError(str(exc)) from None

    def children(self, supervisor: str) -> ChildrenAnswer:
        """The children of ``supervisor`` and their counts."""
        try:
            infos = self.system.which_children(supervisor)
            return ChildrenAnswer(infos, self.system.count_children(supervisor))
        except (UnknownPath, BadMessage) as exc:
            raise UsageError(str(exc)) from None

    def child(self, call: ChildCall) -> str:
        """Start, terminate, restart or delete a child; the path it is about."""
        system, supervisor = self.system, call.supervisor
        try:
            if call.action == "start":
                spec: Any = call.key if call.spec is None else _spec(supervisor, call.spec)
                options = None if call.options is None else _table(call.options, "--options")
                return system.start_child(supervisor, spec, options)
            if call.action == "restart":
                return system.restart_child(supervisor, call.name)
            if call.action == "terminate":
                system.terminate_child(supervisor, call.name)
            elif call.action == "delete":
                system.delete_child(supervisor, call.name)
            else:
                raise UsageError(f"no such child action {call.action!r}")
            return f"{supervisor}/{call.name}"
        except (UnknownPath, BadMessage) as exc:
            raise UsageError(str(exc)) from None

    def send(
        self, path: str, type_name: str, json_text: str, tell: bool, timeout: float | None
    ) -> str:
        """Send the message; its reply as text (JSON if it can be), or "" for a tell."""
        actor = actor_class(self.system.status(), path)
        msg = decode(message_type(path, actor, type_name), json_text)
        try:
            if tell:
                self.system.tell(path, msg)
                return ""
            return shown(self.system.ask(path, msg, timeout))
        except (UnknownPath, BadMessage) as exc:
            raise UsageError(str(exc)) from None


# -- the control endpoint's calls and answers ------------------------------------------------
class StatusCall(msgspec.Struct, tag_field="op", tag="status", forbid_unknown_fields=True):
    pass


class RecoverCall(msgspec.Struct, tag_field="op", tag="recover", forbid_unknown_fields=True):
    path: str
    level: int
    reason: str


class InjectCall(msgspec.Struct, tag_field="op", tag="inject", forbid_unknown_fields=True):
    path: str
    kind: str
    nbytes: int = 0


class SendCall(msgspec.Struct, tag_field="op", tag="send", forbid_unknown_fields=True):
    path: str
    type: str
    json: str
    tell: bool = False
    timeout: float | None = None


class ChildrenCall(msgspec.Struct, tag_field="op", tag="children", forbid_unknown_fields=True):
    supervisor: str


class ChildCall(msgspec.Struct, tag_field="op", tag="child", forbid_unknown_fields=True):
    """``action`` (start, terminate, restart, delete) on a child of ``supervisor``: ``name``,
    or to start, ``spec`` (JSON of a tree file's table) or a Pool's ``key`` and ``options``."""

    action: str
    supervisor: str
    name: str = ""
    spec: str | None = None
    key: str | None = None
    options: str | None = None


Call = StatusCall | RecoverCall | InjectCall | SendCall | ChildrenCall | ChildCall


class ChildrenAnswer(msgspec.Struct):
    children: list[ChildInfo]
    counts: ChildCounts


def _json(text: str, what: str) -> Any:
    try:
        return msgspec.json.decode(text.encode())
    except msgspec.DecodeError as exc:
        raise UsageError(f"{what} is not JSON: {exc}") from None


def _table(text: str, what: str) -> dict[str, Any]:
    value = _json(text, what)
    if not isinstance(value, dict):
        raise UsageError(f"{what}: expected a JSON object of settings, got {text!r}")
    return value


def _spec(supervisor: str, text: str) -> Any:
    """The spec ``--spec`` describes: a table as a tree file writes it (an actor with
    "actor", a supervisor with "children", a Pool with "template")."""
    node = _table(text, "--spec")
    try:
        return parse_node("--spec", node, "spec", supervisor)
    except TreeFileError as exc:
        raise UsageError(str(exc)) from None


class StatusAnswer(msgspec.Struct):
    phase: str
    stop_reason: str
    actors: list[ActorStatus]


class Answer(msgspec.Struct):
    """A call's value, or its error: ``usage`` (bad input), or a StalwartError's name."""

    value: Any = None
    error: str = ""
    message: str = ""
    path: str = ""


def answer(steer: Steer, body: bytes) -> Answer:
    """Carry out the call in ``body`` (JSON) on ``steer``."""
    try:
        call = msgspec.json.decode(body, type=Call)
    except msgspec.DecodeError as exc:
        return Answer(error="usage", message=f"not a call of the control endpoint: {exc}")
    try:
        if isinstance(call, StatusCall):
            status = steer.status()
            return Answer(StatusAnswer(status.phase, status.stop_reason, list(status)))
        if isinstance(call, RecoverCall):
            return Answer(steer.recover(call.path, call.level, call.reason))
        if isinstance(call, InjectCall):
            steer.inject(call.path, call.kind, call.nbytes)
            return Answer()
        if isinstance(call, ChildrenCall):
            return Answer(steer.children(call.supervisor))
        if isinstance(call, ChildCall):
            return Answer(steer.child(call))
        return Answer(steer.send(call.path, call.type, call.json, call.tell, call.timeout))
    except UsageError as exc:
        return Answer(error="usage", message=str(exc))
    except StalwartError as exc:
        return Answer(error=type(exc).__name__, message=str(exc), path=exc.path)
    except Exception as exc:  # (said to the caller, and logged here)
        log.exception("control endpoint: %s failed", type(call).__name__)
        return Answer(error="StalwartError", message=f"{type(exc).__name__}: {exc}")


class ControlServer:
    """The control endpoint of a tree that ``stalwart run`` runs on the simple base.

    Loopback only; every call must carry the token (``Authorization: Bearer``), which is
    written only to the note in the private state directory. One JSON call per POST.
    It stops with :meth:`stop` (``run`` stops it before it stops the tree).
    """

    def __init__(self, system: System, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = secrets.token_urlsafe(24)
        steer, expected = Steer(system), f"Bearer {self.token}".encode()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                given = self.headers.get("Authorization", "").encode()
                length = _length(self.headers.get("Content-Length"))
                if not hmac.compare_digest(given, expected):
                    self.send_error(401, "the token of the tree's note is needed")
                elif self.path != "/" or not 0 < length <= _MAX_CALL_BYTES:
                    self.send_error(400, "one JSON call, POSTed to /")
                else:
                    data = msgspec.json.encode(answer(steer, self.rfile.read(length)))
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("control endpoint: " + fmt, *args)

        self.httpd = _Quiet((host, port), Handler)
        self.address = f"{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="stalwart-control", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


class _Quiet(ThreadingHTTPServer):
    """A caller gone mid-answer is no news: logged, not printed over the live view."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("control endpoint: a call from %s failed", client_address, exc_info=True)


def _length(header: str | None) -> int:
    """A request's Content-Length (-1 if it is not a number)."""
    try:
        return int(header or 0)
    except ValueError:
        return -1


class Remote:
    """The operations of :class:`Steer` on a tree inside another ``stalwart run``."""

    def __init__(self, note: dict[str, Any]) -> None:
        self.note = note
        host, _, port = str(note["endpoint"]).rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"the note of tree {note.get('name')!r} names no control endpoint")
        self.host, self.port = host, int(port)

    def _call(self, call: Any, timeout: float | None = 60.0) -> Any:
        name, pid = self.note.get("name"), self.note.get("pid")
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(
                "POST",
                "/",
                msgspec.json.encode(call),
                {"Authorization": f"Bearer {self.note.get('token')}"},
            )
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise UsageError(
                f"tree {name!r} (`stalwart run`, pid {pid}) does not answer at"
                f" {self.host}:{self.port}: {reason}"
            ) from None
        finally:
            connection.close()
        if response.status != 200:
            raise UsageError(
                f"tree {name!r} (`stalwart run`, pid {pid}) refused the call:"
                f" {response.status} {response.reason}"
            )
        try:
            reply = msgspec.json.decode(body, type=Answer)
        except msgspec.DecodeError:
            raise UsageError(
                f"what answers at {self.host}:{self.port} is not the control endpoint of tree"
                f" {name!r}: the note is stale"
            ) from None
        if reply.error == "usage":
            raise UsageError(reply.message)
        if reply.error:
            raise ErrorReply(reply.error, reply.message, reply.path).exception()
        return reply.value

    def status(self) -> Status:
        answer = msgspec.convert(self._call(StatusCall()), StatusAnswer)
        status = Status(answer.actors)
        status.phase, status.stop_reason = answer.phase, answer.stop_reason
        return status

    def recover(self, path: str, level: int, reason: str) -> RecoveryResult:
        value = self._call(RecoverCall(path, level, reason), timeout=90.0)
        return msgspec.convert(value, RecoveryResult)

    def inject(self, path: str, kind: str, nbytes: int) -> None:
        self._call(InjectCall(path, kind, nbytes))

    def children(self, supervisor: str) -> ChildrenAnswer:
        return msgspec.convert(self._call(ChildrenCall(supervisor)), ChildrenAnswer)

    def child(self, call: ChildCall) -> str:
        return str(self._call(call, timeout=120.0))

    def send(
        self, path: str, type_name: str, json_text: str, tell: bool, timeout: float | None
    ) -> str:
        # (without --timeout, the tree's own ask timeout ends the wait: run always answers)
        waited = None if timeout is None else timeout + _ANSWER_MARGIN_S
        return str(self._call(SendCall(path, type_name, json_text, tell, timeout), waited))


def add_target(parser: Any) -> None:
    parser.add_argument(
        "--port",
        type=int,
        help="the admin port of a tree on a multi-process base (default: the note in .stalwart/)",
    )


@contextmanager
def reach(args: argparse.Namespace, name: str | None = None) -> Iterator[Steer | Remote]:
    """The running tree: ``--port``'s, else the one noted by ``name`` (or the latest)."""
    note = None if args.port else find_run(name)
    if note is not None and note.get("admin_port") is None:
        yield Remote(note)
        return
    if note is not None and note.get("cwd") and note["cwd"] not in sys.path:
        sys.path.append(note["cwd"])  # (send imports the actors' modules, as run did)
    port = args.port or int(note["admin_port"] if note else 0)
    try:
        system = System.attach(port)
    except StalwartError as exc:
        raise UsageError(str(exc)) from None
    with system:
        yield Steer(system)
