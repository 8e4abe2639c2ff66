"""In one process, a caller waiting alone for the actor thread lends it the CPU it runs on.

A ``System.ask`` on the in-process base hands its message to the actor thread and sleeps
until the answer comes back: two handovers between threads. With each thread on a CPU of
its own, each handover wakes a sleeping CPU, and the actors' work runs on caches the
other CPU filled; under one interpreter lock the two threads never run Python at once, so
the second CPU buys nothing there. So, on Linux, while a caller waits and no other does:

- the caller is confined to the CPU it is on, so its answer wakes it there;
- the actor thread, if it sleeps, is confined to it too, so the caller's message wakes it
  there. It takes its own CPUs back as soon as it wakes, before it runs anything: a thread
  an actor starts never inherits the one CPU.

The caller takes its own CPUs back when its wait ends (also when it is interrupted; if a
second interrupt cuts that short, at the start of its next wait). Where
the calls are refused (a sandbox, a CPU set taken away), a wait is as before. A process
forked from one whose system runs never lends (the actor thread is not its own).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable, Iterable

_Mask = set[int]


def _sched_getcpu() -> Callable[[], int] | None:
    if not sys.platform.startswith("linux") or not hasattr(os, "sched_setaffinity"):
        return None  # (elsewhere a thread's id is no process id for sched_setaffinity)
    try:
        getcpu = ctypes.CDLL(None, use_errno=True).sched_getcpu
    except (OSError, AttributeError):
        return None
    getcpu.restype = ctypes.c_int
    getcpu.argtypes = []
    return getcpu  # type: ignore[no-any-return]


_GETCPU = _sched_getcpu()
_FORKS = [0]  # forks of this process so far, as seen from the child


def _forked() -> None:
    _FORKS[0] += 1


if _GETCPU is not None:
    os.register_at_fork(after_in_child=_forked)


def _confine(tid: int, cpus: Iterable[int]) -> None:
    """Set thread ``tid``'s CPUs (0: the calling thread's); if the kernel refuses them
    (CPUs taken away since), every CPU it allows."""
    try:
        os.sched_setaffinity(tid, cpus)
    except OSError:
        os.sched_setaffinity(tid, range(os.cpu_count() or 1))


class SharedCpu:
    """The CPUs of one in-process system's actor thread, lent by its waiting callers."""

    def __init__(self, on: bool = True) -> None:
        self.wanted = on and _GETCPU is not None
        self.on = False  # callers may lend (from attach on, while nothing was refused)
        self.tid = 0  # the actor thread's native id
        self.forks = _FORKS[0]
        self.lock = threading.Lock()
        self.idle = False  # the actor thread sleeps, waiting for its inbox
        self.kept: _Mask | None = None  # its own CPUs, while it may be confined to a caller's
        self.owed = threading.local()  # a caller's own CPUs, until they are given back

    # -- the actor thread ---------------------------------------------------------------------
    def attach(self) -> None:
        """Called by the actor thread as it begins: callers may lend it their CPU now."""
        self.tid = threading.get_native_id()
        self.on = self.wanted

    def sleeping(self) -> None:
        """The actor thread is about to sleep until its inbox has something."""
        if self.on:
            self.idle = True

    def awake(self) -> None:
        """The actor thread woke: it takes its own CPUs back before it runs anything."""
        if not self.idle and self.kept is None:
            return  # (only this thread makes it idle; a caller confines it only when idle)
        with self.lock:
            self.idle = False
            kept, self.kept = self.kept, None
        if kept is not None:
            try:
                _confine(0, kept)
            except OSError:
                self.on = False

    # -- a waiting caller ---------------------------------------------------------------------
    def lendable(self) -> _Mask | None:
        """The calling thread's own CPUs, if it may lend one (else None): pass them to
        :meth:`lend`, then, in a ``finally`` that began before, to :meth:`take_back`."""
        if not self.on or self.forks != _FORKS[0]:
            return None
        owed = getattr(self.owed, "mine", None)
        if owed is not None:  # (an interrupt cut its last giving back short)
            self.take_back(owed)
        try:
            return os.sched_getaffinity(0)
        except OSError:
            self.on = False
            return None

    def lend(self, mine: _Mask) -> None:
        """Confine the calling thread, and the actor thread if it sleeps, to the caller's
        CPU."""
        try:
            cpu = _GETCPU() if _GETCPU is not None else -1
            if cpu < 0:
                return
            if self.idle:
                with self.lock:
                    if self.idle and self.kept is None:
                        kept = os.sched_getaffinity(self.tid)
                        if cpu in kept and len(kept) > 1:
                            self.kept = kept  # (first: it wakes to its own CPUs, whatever)
                            os.sched_setaffinity(self.tid, (cpu,))
            if len(mine) > 1:
                self.owed.mine = mine
                os.sched_setaffinity(0, (cpu,))
        except OSError:
            self.on = False

    def take_back(self, mine: _Mask) -> None:
        """The caller's wait has ended: its own CPUs again."""
        if len(mine) < 2:
            return  # (never changed)
        try:
            _confine(0, mine)
        except OSError:
            self.on = False
        self.owed.mine = None
