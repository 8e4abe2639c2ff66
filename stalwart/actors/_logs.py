"""What actors log reaches the ``logging`` of the process that owns their system.

**In-process base.** Actors log in the owner's process: their records go to its
handlers as they are made. Each record made while an actor handles a message
carries that actor's path as ``stalwart_path``.

**Multi-process bases.** Thespian gives every process of a system a logging of its
own (its admin's records went to the owner's handlers through the ones the admin
inherited; an actor's went to a logger process, formatted there, below WARNING
dropped). Stalwart replaces it: each actor process takes the owner's loggers as
they were when the system started (their levels), without their handlers, and its
root logger gets one :class:`Forwarder`. That sends each record, as JSON, over the
owner's private Unix socket (:class:`~stalwart.actors._log_channel.LogChannel`),
whose thread hands it to ``logging.getLogger(record.name).handle``. Handlers and
formatters run only in the owner, so its configuration decides.

**Thespian's own records** (its admin's, its logger process's, its code's in any
process) are renamed ``stalwart.thespian``; those below WARNING come at DEBUG.

**Never blocking an actor.** A record the socket cannot take at once (the owner's
handlers are slower than the actor logs) is dropped and counted; the count travels
with the next record that gets through.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from ._log_records import THESPIAN_LOGGER, encode, is_thespian, relabel, thespian_threshold

ACTOR_PATH: ContextVar[str | None] = ContextVar("stalwart_actor_path", default=None)
_RETRY_S = 0.5  # a process that could not reach the owner tries again after that


# -- the actor processes' end -------------------------------------------------------------
class Forwarder(logging.Handler):
    """Sends each record to the owner's channel at ``address``, never waiting.

    A record the socket cannot take at once is dropped and counted, and the count goes
    with the next record sent. Each process connects on its own first record (one
    forked from another leaves its parent's connection alone). Thespian's records are
    renamed (:func:`relabel`) and sent from ``thespian_level`` on; with ``all_thespian``
    every record is Thespian's (its admin and logger processes).
    """

    def __init__(self, address: str, thespian_level: int, all_thespian: bool = False) -> None:
        super().__init__()
        self.address = address
        self.thespian_level = thespian_level
        self.all_thespian = all_thespian
        self.dropped = 0
        self._sock: socket.socket | None = None
        self._pid = 0
        self._retry_at = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        if self.all_thespian or is_thespian(record):
            relabel(record)
            if record.levelno < self.thespian_level:
                return
        try:
            data = encode(record, self.dropped)
        except Exception:  # (an attribute whose repr fails...): this one is lost
            data = None
        sock = self._connected()
        if data is None or sock is None:
            self.dropped += 1
            return
        try:
            sock.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
            self.dropped = 0
        except BlockingIOError:  # the owner has not kept up: this one is dropped
            self.dropped += 1
        except OSError:  # the owner has gone (or is going): try again a little later
            self.dropped += 1
            self._disconnect()

    def _connected(self) -> socket.socket | None:
        if self._pid != os.getpid():  # forked: what the parent had is the parent's
            if self._sock is not None:
                self._sock.close()  # (this process's copy of it only)
            self._sock, self._pid, self._retry_at = None, os.getpid(), 0.0
        if self._sock is None and time.monotonic() >= self._retry_at:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            except OSError:  # (out of descriptors)
                self._retry_at = time.monotonic() + _RETRY_S
                return None
            sock.setblocking(False)
            try:
                sock.connect(self.address)
            except OSError:
                sock.close()
                self._retry_at = time.monotonic() + _RETRY_S
                return None
            self._sock = sock
        return self._sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._retry_at = time.monotonic() + _RETRY_S

    def close(self) -> None:
        if self._sock is not None and self._pid == os.getpid():
            self._disconnect()
        super().close()


def thespian_forwarder(address: str, thespian_level: int) -> Forwarder:
    """The handler of Thespian's logger process (built by ``logging.config``)."""
    return Forwarder(address, thespian_level, all_thespian=True)


class LogRoute:
    """What every process of a system inherits: where records go, the owner's loggers."""

    def __init__(self, address: str, thespian_level: int) -> None:
        self.address = address
        self.thespian_level = thespian_level
        self.owner = os.getpid()
        self.root = logging.root
        self.manager = logging.Logger.manager
        self.forwarder: Forwarder | None = None  # made in the first actor process


_route: LogRoute | None = None  # set while a system is created; its processes keep it
_admin_fork = 0  # the thread creating a system: a process it forks meanwhile is its admin
_adopted = 0  # the process whose logging has been taken over


def route_records(route: LogRoute | None) -> Callable[[], None]:
    """In the creating process: the processes forked from now on send their records along
    ``route``. Returns what puts the previous route back (those processes keep theirs)."""
    global _route, _admin_fork
    saved = _route, _admin_fork
    _route, _admin_fork = route, threading.get_ident() if route else 0

    def restore() -> None:
        global _route, _admin_fork
        _route, _admin_fork = saved

    return restore


def _admin_forked() -> None:
    """In a process just forked: if it is a new system's admin, Thespian is all it runs,
    so every record it makes (before and after its logger starts) is Thespian's."""
    global _admin_fork
    route = _route
    if route is None or _admin_fork != threading.get_ident():
        return
    _admin_fork = 0  # its own forks are actors and its logger
    root = logging.RootLogger(route.thespian_level)
    root.addHandler(Forwarder(route.address, route.thespian_level, all_thespian=True))
    logging.root = logging.Logger.root = root
    logging.Logger.manager = logging.Manager(root)


os.register_at_fork(after_in_child=_admin_forked)


def adopt_actor_logging() -> None:
    """In an actor process of a system with a route: the owner's loggers, one forwarder.

    Thespian starts each actor process with a logging of its own (a new root and a new
    set of loggers); this puts back the owner's as they were when the system started
    (module-level loggers already point there), keeps their levels and drops their
    handlers, which only the owner runs. Does nothing elsewhere (the owner's process,
    the in-process base) and once per process.
    """
    global _adopted
    route, pid = _route, os.getpid()
    if route is None or pid in (route.owner, _adopted):
        return
    _adopted = pid
    if route.forwarder is None:
        route.forwarder = Forwarder(route.address, route.thespian_level)
    thespian_root = logging.root
    if thespian_root is not route.root:  # loggers made before now still report to it
        thespian_root.handlers = [route.forwarder]
        thespian_root.setLevel(route.root.level)  # (while its own loggers are the current)
    logging.root = logging.Logger.root = route.root
    logging.Logger.manager = route.manager
    for logger in list(route.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            logger.handlers = []
            logger.propagate = True  # the owner applies its own propagation
    route.root.handlers = [route.forwarder]
    route.manager._clear_cache()  # type: ignore[attr-defined]
    ACTOR_PATH.set(None)  # a forked process is no actor until it handles a message
    _add_actor_path()


# -- the actor's path on its records --------------------------------------------------------
class _WithActorPath:
    """A log record factory that adds ``stalwart_path`` while an actor handles a message."""

    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        path = ACTOR_PATH.get()
        if path:
            record.stalwart_path = path
        return record


def _add_actor_path() -> None:
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _WithActorPath):
        logging.setLogRecordFactory(_WithActorPath(factory))


def _remove_actor_path() -> None:
    factory = logging.getLogRecordFactory()
    if isinstance(factory, _WithActorPath):  # (another factory over ours stays, harmless)
        logging.setLogRecordFactory(factory.previous)


class _ToStalwartThespian(logging.Filter):
    """On the ``Thespian`` logger of the owner's process: its records go to
    ``stalwart.thespian`` instead (relabelled)."""

    def filter(self, record: logging.LogRecord) -> bool:
        relabel(record)
        target = logging.getLogger(THESPIAN_LOGGER)
        if target.isEnabledFor(record.levelno):
            target.handle(record)
        return False


_in_process_lock = threading.Lock()
_in_process_users = 0
_thespian_filter = _ToStalwartThespian()
_thespian_saved_level = logging.NOTSET


def in_process_logs(acquire: bool) -> None:
    """While a system runs in this process (``acquire``; ``False`` when it stops): records
    carry the actor's path, and Thespian's ``Thespian`` logger speaks as
    ``stalwart.thespian`` (its level that of the moment the first system started)."""
    global _in_process_users, _thespian_saved_level
    with _in_process_lock:
        thespian_logger = logging.getLogger("Thespian")
        if acquire:
            _in_process_users += 1
            if _in_process_users == 1:
                _add_actor_path()
                _thespian_saved_level = thespian_logger.level
                level = logging.getLogger(THESPIAN_LOGGER).getEffectiveLevel()
                thespian_logger.setLevel(thespian_threshold(level))
                thespian_logger.addFilter(_thespian_filter)
        elif _in_process_users > 0:
            _in_process_users -= 1
            if _in_process_users == 0:
                _remove_actor_path()
                thespian_logger.removeFilter(_thespian_filter)
                thespian_logger.setLevel(_thespian_saved_level)
