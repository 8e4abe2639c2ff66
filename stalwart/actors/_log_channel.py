"""The owner's end of a system's log records: a private Unix socket, and a thread that reads it.

Each actor process of a multi-process system connects once and sends every record
as one message (``SOCK_SEQPACKET``: whole messages, in order, buffered by the
kernel per connection, so a burst waits in the socket rather than in the actor).
The thread hands each record to ``logging.getLogger(record.name).handle`` when the
owner's levels let it through now. The socket is bound only in the filesystem, in
the system's private state folder (0700), and is itself 0600.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import selectors
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import msgspec

from ._log_records import MESSAGE_MAX, THESPIAN_LOGGER, decode, thespian_threshold
from ._logs import LogRoute, route_records

log = logging.getLogger("stalwart.logs")
_PATH_MAX = 100  # bytes of a Unix socket's path (sun_path holds 108 with its NUL)
_BACKLOG = 128  # connections waiting to be accepted (one per actor process)
_BURST = 64  # messages read from one connection before looking at the others
_DRAIN = 10_000  # at close: messages read from each connection at most
_JOIN_S = 5.0
_numbers = itertools.count(1)


class LogStats(msgspec.Struct, frozen=True):
    """What became of the records the actor processes sent this process.

    ``received``: arrived in this process (its levels and handlers then decide).
    ``dropped``: records an actor process could not send at once (this process's
    handlers were slower than the actors logged) or that would not encode; they are
    lost, never waited for.
    Both stay 0 on the in-process base, where actors log in this process directly.
    """

    received: int = 0
    dropped: int = 0


class LogChannel:
    """Receives the log records of one system's processes until :meth:`close`.

    ``folder`` must be private to this user (the socket goes there, or, if its path
    would be too long for a Unix socket, in a private temporary folder).
    """

    def __init__(self, folder: str) -> None:
        self.received = 0
        self.dropped = 0
        self._own_dir = ""
        self._closed = False
        path = os.path.join(folder, f"logs-{os.getpid()}-{next(_numbers)}.sock")
        if len(os.fsencode(path)) > _PATH_MAX:
            self._own_dir = tempfile.mkdtemp(prefix="stalwart-logs-")  # (0700)
            path = os.path.join(self._own_dir, "logs.sock")
        self.address = path
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._wake, self._waker = socket.socketpair()
        try:
            _remove_stale(path)
            self._listener.bind(path)
            os.chmod(path, 0o600)
            self._listener.listen(_BACKLOG)
            self._listener.setblocking(False)
        except OSError:
            self._release(self._listener, self._wake, self._waker)
            raise
        self._thread = threading.Thread(target=self._serve, name="stalwart-logs", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> LogStats:
        return LogStats(self.received, self.dropped)

    @contextlib.contextmanager
    def forking(self) -> Iterator[dict[str, Any]]:
        """While the system's admin is forked: it and every process it starts send their
        records here. Yields Thespian's ``logDefs`` (its logger process sends here too)."""
        level = logging.getLogger(THESPIAN_LOGGER).getEffectiveLevel()
        route = LogRoute(self.address, thespian_threshold(level))  # the owner's loggers now
        restore = route_records(route)
        try:
            yield _log_defs(route)
        finally:
            restore()

    def close(self) -> None:
        """Hand over what has arrived, stop the thread, remove the socket (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._waker.send(b"x")
        if threading.current_thread() is not self._thread:  # (a handler may stop the system)
            self._thread.join(_JOIN_S)  # (a handler stuck for longer: the thread closes later)
        self._waker.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.address)
        if self._own_dir:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    # -- the thread ------------------------------------------------------------------------
    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        selector.register(self._wake, selectors.EVENT_READ)
        conns: list[socket.socket] = []
        try:
            while True:
                for key, _ in selector.select():
                    sock: Any = key.fileobj
                    if sock is self._wake:
                        self._accept(selector, conns)
                        for conn in conns:
                            self._read(conn, _DRAIN)
                        return
                    if sock is self._listener:
                        self._accept(selector, conns)
                    elif not self._read(sock, _BURST):
                        selector.unregister(sock)
                        conns.remove(sock)
                        sock.close()
        except Exception:  # never expected; the records stop, the system goes on
            log.exception("the log channel stopped")
        finally:
            selector.close()
            self._release(self._listener, self._wake, *conns)

    def _accept(self, selector: selectors.BaseSelector, conns: list[socket.socket]) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.setblocking(False)
            selector.register(conn, selectors.EVENT_READ)
            conns.append(conn)

    def _read(self, conn: socket.socket, most: int) -> bool:
        """Hand over up to ``most`` waiting records; False once the sender has gone."""
        for _ in range(most):
            try:
                data = conn.recv(MESSAGE_MAX + 1)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if not data:
                return False
            self._deliver(data)
        return True

    def _deliver(self, data: bytes) -> None:
        record, dropped = decode(data)
        if dropped:
            self.dropped += dropped
            log.warning(
                "%d log record(s) of actor process %s dropped: this process's log handlers"
                " did not keep up",
                dropped,
                getattr(record, "process", "?"),
            )
        if record is None:
            self.dropped += 1
            return
        self.received += 1
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            try:
                logger.handle(record)
            except Exception:  # a handler's own failure is its own (handleError reports it)
                pass

    @staticmethod
    def _release(*socks: socket.socket) -> None:
        for sock in socks:
            sock.close()


def _log_defs(route: LogRoute) -> dict[str, Any]:
    """Thespian's ``logDefs``: its logger process sends what it gets along ``route``."""
    level = route.thespian_level
    handler = {
        "()": "stalwart.actors._logs.thespian_forwarder",
        "address": route.address,
        "thespian_level": level,
        "level": level,
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stalwart": handler},
        "root": {"level": level, "handlers": ["stalwart"]},
    }


def _remove_stale(path: str) -> None:
    """A socket left at ``path`` by an owner killed with this pid is no one's now."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
