"""Ports and processes of the multi-process bases: free ports, and leaving nothing behind.

Creating Thespian systems (and keeping their sockets on loopback) is the
runtime adapter's job (:mod:`stalwart.actors._runtime`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time

import psutil


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


def port_free(host: str, port: int) -> bool:
    """True if nobody listens on ``host:port`` (as the admin binds it: reusing TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


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


class SessionWatch:
    """Tells cheaply whether a process has joined the session ``sid`` since the last look.

    Lists ``/proc`` and asks only new process ids for their session; where there is
    no ``/proc``, it never tells (callers then rely on their periodic full listing).
    """

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.seen: set[int] = set()

    def joined(self) -> bool:
        try:
            now = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        except OSError:
            return False
        new, self.seen = now - self.seen, now
        for pid in new:
            try:
                if os.getsid(pid) == self.sid:
                    return True
            except OSError:  # gone already, or not ours to ask
                continue
        return False


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
