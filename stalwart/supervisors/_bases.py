"""Thespian system bases: creating them, keeping them on loopback, and leaving nothing behind.

Thespian's TCP transport binds every socket to all interfaces and unpickles
whatever arrives, so anyone who can reach a port can run code in the process.
For single-host use Stalwart keeps those sockets on 127.0.0.1: it sets
Thespian's ``THESPIAN_BASE_IPADDR`` (the address it advertises) and, through
one small wrapper around Thespian's address class, binds to that address
instead of all interfaces. The wrapper only acts in processes started while a
Stalwart system was being created (it reads an environment variable that the
forked admin and actor processes inherit), so other Thespian users in the same
program are unaffected.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import psutil

BIND_ENV = "STALWART_BIND_HOST"
THESPIAN_BASES = {
    "simple": "simpleSystemBase",
    "multiproc": "multiprocTCPBase",
    "tcp": "multiprocTCPBase",
}
LOG_DEFS: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "root": {"level": "WARNING", "handlers": ["stderr"]},
}

_patched = False
IDLE_SOCKET_S = 2.0
INCOMING_SOCKET_S = 2.0  # incoming ones too: each costs every later message as much


def shorten_idle_sockets() -> None:
    """Close Thespian's idle TCP connections after seconds, not its default 20 minutes.

    Thespian registers every open connection with its selector on every turn of
    an actor's loop, so connections a managed actor used once (to report to its
    supervisor, to resolve a path at the root) would tax every later message.
    Closing them when idle keeps the per-message cost at raw Thespian's.
    """
    from datetime import timedelta

    from thespian.system.transport import TCPTransport

    TCPTransport.MAX_IDLE_SOCKET_PERIOD = timedelta(seconds=IDLE_SOCKET_S)
    TCPTransport.MAX_INCOMING_SOCKET_PERIOD = timedelta(seconds=INCOMING_SOCKET_S)


def confine_thespian_sockets() -> None:
    """Make Thespian bind to ``$STALWART_BIND_HOST`` (when set) instead of all interfaces."""
    global _patched
    if _patched:
        return
    from thespian.system.transport import IPBase

    original = IPBase.IPActorAddress.__init__

    def bind_to_configured_host(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        host = os.environ.get(BIND_ENV)
        if host and self.bindname[0] in ("", "0.0.0.0"):
            self.bindname = (host, self.bindname[1])

    IPBase.IPActorAddress.__init__ = bind_to_configured_host
    _patched = True


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for a while (processes forked meanwhile keep them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def bound_to(host: str | None) -> Iterator[None]:
    """While creating a system: advertise and bind ``host`` (children inherit it)."""
    if host is None:
        yield
        return
    confine_thespian_sockets()
    with environment(**{BIND_ENV: host, "THESPIAN_BASE_IPADDR": host}):
        yield


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def session_processes(sid: int) -> list[psutil.Process]:
    """Live processes of the session ``sid`` (a Thespian admin and its actors), not ours."""
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if os.getsid(proc.pid) == sid:
                found.append(proc)
        except (ProcessLookupError, PermissionError):
            continue
    return found


def sweep_session(sid: int, grace_s: float = 5.0) -> list[int]:
    """Wait for the session's processes to exit; SIGKILL what is left. Returns killed pids."""
    if sid <= 0 or sid == os.getsid(0):
        return []
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not session_processes(sid):
            return []
        time.sleep(0.05)
    killed = []
    for proc in session_processes(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGKILL)
            killed.append(proc.pid)
    psutil.wait_procs([psutil.Process(p) for p in killed if psutil.pid_exists(p)], timeout=2)
    return killed
