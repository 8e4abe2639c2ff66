"""How a ``System`` talks to its root: one thread for the in-process base, a lock for the others.

**In-process** (``simpleSystemBase``): every actor's handlers, and every timer,
run on one thread of their own, ``stalwart-actors``, whichever thread calls
``System.ask`` (a connection opened in ``on_start`` can be used in every later
handler). Callers hand their messages to that thread and wait for the reply.
Questions that only read the root's state (status, events, dead letters...) are
answered from the calling thread under the root's lock, so they answer at once
even while a handler runs for seconds. Such a read first waits (up to
``READ_WAIT_S``) until what the same thread told the system has been handled,
so a thread sees the effects of its own ``tell`` and ``record``.

**Multi-process**: the root runs in a process of its own; callers share the
Thespian endpoint under a lock, each taking it for a short listen at a time.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from typing import Any

from ..actors._runtime import WakeupMessage
from ..actors._timers import TICK, ExternalClock
from ..actors.errors import StalwartError, SystemStopped, Timeout
from .messages import GatewayCancel, GatewayReply

_LISTEN_S = 0.005  # multi-process: one listen while holding the endpoint
_FOLLOW_S = 0.01  # multi-process: how often a waiting caller checks whether to take over
_IDLE_S = 0.02  # in-process: the longest the actor thread sleeps (Thespian's own wakeups)
READ_WAIT_S = 0.05  # in-process: how long a read waits for the reader's own tells
_TIMERS_EVERY_S = 0.002  # in-process, while messages keep coming: how often timers fire
_STOP = object()


class _Waiter:
    __slots__ = ("done", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None


class InProcess:
    """Runs an in-process system on its own thread; ``ask``/``tell`` hand messages to it."""

    def __init__(self, asys: Any, clock: ExternalClock) -> None:
        self.asys = asys
        self.clock = clock
        self.root: Any = None
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.told = itertools.count(1)  # what was handed over, in order
        self.handled = 0  # how much of it the actor thread has handled
        self.progress = threading.Condition()
        self.mine = threading.local()  # per calling thread: the last it handed over
        self.waiters: dict[int, _Waiter] = {}
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="stalwart-actors", daemon=True)
        self.thread.start()

    # -- callers' side ----------------------------------------------------------------------
    def tell(self, address: Any, msg: Any) -> None:
        if self.closed:
            raise SystemStopped("the system has been shut down")
        with self.progress:  # numbered in the order they enter the inbox
            seq = next(self.told)
            self.inbox.put((seq, address, msg))
        self.mine.last = seq

    def caught_up(self, timeout: float = READ_WAIT_S) -> None:
        """Wait (at most ``timeout``) until what this thread told has been handled."""
        last = getattr(self.mine, "last", 0)
        with self.progress:
            self.progress.wait_for(lambda: self.handled >= last or self.closed, timeout)

    def ask(self, address: Any, msg: Any, ident: int, timeout: float, late: str = "") -> Any:
        if threading.current_thread() is self.thread:
            raise StalwartError(
                "System.ask from inside an actor on the in-process base would wait for the"
                " very thread that has to answer it: use self.call(path, msg, ...) instead"
            )
        waiter = self.waiters[ident] = _Waiter()
        try:
            self.tell(address, msg)
            if not waiter.done.wait(timeout):
                if not self.closed:
                    self.tell(address, GatewayCancel(ident))
                raise Timeout(late or f"the system did not answer within {timeout:g}s")
            return waiter.value
        finally:
            self.waiters.pop(ident, None)

    def close(self) -> None:
        """Stop the actor thread (after the system has stopped) and wait for it."""
        with self.progress:
            self.closed = True
            self.progress.notify_all()
        self.inbox.put(_STOP)
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=5)

    # -- the actor thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            nxt = self.clock.next_deadline()
            wait = _IDLE_S if nxt is None else min(_IDLE_S, max(0.0, nxt - time.monotonic()))
            try:
                item = self.inbox.get(timeout=wait) if wait > 0 else self.inbox.get_nowait()
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            fired = time.monotonic()
            while item is not None:
                seq, address, msg = item
                self.asys.tell(address, msg)  # runs the actors until they are idle
                with self.progress:
                    self.handled = seq
                    self.progress.notify_all()
                if time.monotonic() - fired >= _TIMERS_EVERY_S:  # busy: timers still fire
                    self._fire_timers()
                    fired = time.monotonic()
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    item = None
                if item is _STOP:
                    self.inbox.put(_STOP)
                    item = None
            self._fire_timers()
            self._collect_replies()

    def _fire_timers(self) -> None:
        while True:
            due = self.clock.pop_due(time.monotonic())
            if not due:
                return
            for address in due:
                self.asys.tell(address, WakeupMessage(0, TICK))

    def _collect_replies(self) -> None:
        reply = self.asys.listen(0.001)  # also Thespian's own due wakeups
        while reply is not None:
            if isinstance(reply, GatewayReply):
                waiter = self.waiters.get(reply.id)
                if waiter is not None:
                    waiter.value = reply.value
                    waiter.done.set()
            reply = self.asys.listen(0.001)


class MultiProcess:
    """Talks to a root in another process; callers share one Thespian endpoint.

    One waiting caller at a time listens (in short slices, holding the endpoint's
    lock) and hands every reply to the caller it is for; when its own reply has
    come it steps down and another waiting caller takes over. So many threads can
    wait at once without taking turns at long listens.
    """

    def __init__(self, asys: Any) -> None:
        self.asys = asys
        self.lock = threading.RLock()  # the endpoint (Thespian's is not thread-safe)
        self.waiting_lock = threading.Lock()
        self.waiters: dict[int, _Waiter] = {}
        self.listener: int | None = None  # the caller listening for everyone
        self.closed = False

    def tell(self, address: Any, msg: Any) -> None:
        with self.lock:
            if self.closed:
                raise SystemStopped("the system has been shut down")
            self.asys.tell(address, msg)

    def ask(self, address: Any, msg: Any, ident: int, timeout: float, late: str = "") -> Any:
        deadline = time.monotonic() + timeout
        waiter = _Waiter()
        with self.waiting_lock:
            self.waiters[ident] = waiter
        try:
            self.tell(address, msg)
            while not waiter.done.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if not self.closed:
                        self.tell(address, GatewayCancel(ident))
                    raise Timeout(late or f"the system did not answer within {timeout:g}s")
                if self._lead(ident):
                    try:
                        self._listen_until(waiter, deadline)
                    finally:
                        with self.waiting_lock:
                            self.listener = None
                else:  # another caller listens; look again when it may have stepped down
                    waiter.done.wait(min(remaining, _FOLLOW_S))
            return waiter.value
        finally:
            with self.waiting_lock:
                self.waiters.pop(ident, None)

    def _lead(self, ident: int) -> bool:
        with self.waiting_lock:
            if self.listener is None:
                self.listener = ident
                return True
            return False

    def _listen_until(self, waiter: _Waiter, deadline: float) -> None:
        while not waiter.done.is_set() and time.monotonic() < deadline:
            with self.lock:
                reply = self.asys.listen(_LISTEN_S)
            if isinstance(reply, GatewayReply):
                with self.waiting_lock:
                    other = self.waiters.get(reply.id)
                if other is not None:
                    other.value = reply.value
                    other.done.set()

    def close(self) -> None:
        self.closed = True
