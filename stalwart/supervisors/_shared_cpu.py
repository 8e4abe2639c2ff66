"""In one process, a caller waiting for the actor thread lends it the CPU it runs on.

A ``System.ask`` on the in-process base hands its message to the actor thread and sleeps
until the answer comes back: two handovers between threads. With each thread on a CPU of
its own, each handover wakes a sleeping CPU, and the actors' work runs on caches the
other CPU filled; under one interpreter lock the two threads never run Python at once, so
the second CPU buys nothing there. So, on Linux, while a caller waits:

- the caller is confined to the CPU it is on, so its answer wakes it there;
- the actor thread, if it sleeps, is confined to it too, so the caller's message wakes it
  there. It takes its own CPUs back as soon as it wakes, before it runs anything: a thread
  an actor starts never inherits the one CPU.

The caller takes its own CPUs back when its wait ends, however it ends. Where the calls
are refused (another system, a sandbox), a wait is as before.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable

_Mask = set[int]


def _sched_getcpu() -> Callable[[], int] | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        getcpu = ctypes.CDLL(None, use_errno=True).sched_getcpu
    except (OSError, AttributeError):
        return None
    getcpu.restype = ctypes.c_int
    getcpu.argtypes = []
    return getcpu  # type: ignore[no-any-return]


_GETCPU = _sched_getcpu()


class SharedCpu:
    """The CPUs of one in-process system's actor thread, lent by its waiting callers."""

    def __init__(self) -> None:
        self.tid = 0  # the actor thread's native id, once it runs
        self.on = False
        self.lock = threading.Lock()
        self.idle = False  # the actor thread sleeps, waiting for its inbox
        self.kept: _Mask | None = None  # its own CPUs, while it is confined to a caller's

    def attach(self, tid: int | None) -> None:
        """The actor thread runs, as ``tid``: callers may lend it their CPU from now."""
        self.tid = tid or 0
        self.on = _GETCPU is not None and self.tid > 0

    # -- the actor thread ---------------------------------------------------------------------
    def sleeping(self) -> None:
        """The actor thread is about to sleep until its inbox has something."""
        self.idle = True

    def awake(self) -> None:
        """The actor thread woke: it takes its own CPUs back before it runs anything."""
        if not self.on and self.kept is None:
            return
        with self.lock:
            self.idle = False
            kept, self.kept = self.kept, None
        if kept is not None:
            try:
                os.sched_setaffinity(0, kept)
            except OSError:
                self.on = False

    # -- a waiting caller ---------------------------------------------------------------------
    def lend(self) -> _Mask | None:
        """Confine the calling thread, and the actor thread if it sleeps, to the caller's
        CPU; return the caller's own CPUs for :meth:`take_back` (None: nothing changed)."""
        if not self.on:
            return None
        try:
            cpu = _GETCPU() if _GETCPU is not None else -1
            if cpu < 0:
                return None
            mine = os.sched_getaffinity(0)
            if self.idle and self.lock.acquire(blocking=False):
                try:
                    if self.idle and self.kept is None:
                        kept = os.sched_getaffinity(self.tid)
                        if cpu in kept and len(kept) > 1:
                            os.sched_setaffinity(self.tid, (cpu,))
                            self.kept = kept
                finally:
                    self.lock.release()
            if len(mine) < 2:
                return None
            os.sched_setaffinity(0, (cpu,))
            return mine
        except OSError:
            self.on = False
            return None

    def take_back(self, mine: _Mask | None) -> None:
        """The caller's wait has ended: its own CPUs again."""
        if mine is not None:
            try:
                os.sched_setaffinity(0, mine)
            except OSError:
                self.on = False
