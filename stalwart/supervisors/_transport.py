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

**asyncio** (``System.ask_async``): a coroutine's ask waits on an asyncio future, not
on a thread. In-process, the actor thread settles it. Multi-process, one thread per
system (``stalwart-async``, there while async asks are out) sends what coroutines
asked, several to an envelope, and listens for every caller's replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from ..actors._async_loop import close_actor_loop
from ..actors._coalesce import envelopes, runs, unpacked
from ..actors._in_process import _InProcessBase
from ..actors._runtime import WakeupMessage
from ..actors._timers import TICK, ExternalClock, timer_now
from ..actors.errors import StalwartError, SystemStopped, Timeout
from ._shared_cpu import SharedCpu
from .messages import GatewayCancel, GatewayReply

_LISTEN_S = 0.005  # multi-process: one listen while holding the endpoint
_FOLLOW_S = 0.01  # multi-process: how often a waiting caller checks whether to take over
_IDLE_S = 0.02  # in-process: the longest the actor thread sleeps (Thespian's own wakeups)
READ_WAIT_S = 0.05  # in-process: how long a read waits for the reader's own tells
_TIMERS_EVERY_S = 0.002  # in-process, while messages keep coming: how often timers fire
log = logging.getLogger("stalwart.system")
_WINDOW = 64  # multi-process: async asks out at the root at once (the rest wait their turn)
_PUMP_LISTEN_S = 0.001  # multi-process: the async pump's listen (new asks wait at most that)
_FOLLOW_UP_S = 0.002  # ... and at most how long, after answers, for the asks they lead to
_FOLLOW_UP_MOST = 8  # ... after this many answers at most (after 64, W = 128 went at half speed)
_STOP = object()


class _Waiter:
    """One ask's answer, settled once, by another thread (``notify``: an async ask's)."""

    __slots__ = ("_claim", "_unset", "notify", "settled", "settler", "value")

    def __init__(
        self, notify: Callable[[Any], None] | None = None, settler: _Settler | None = None
    ) -> None:
        self.settler = settler  # an async ask's: the loop's settler
        self._unset = threading.Lock()  # held until settled (lighter than an Event)
        self._unset.acquire()
        self._claim = threading.Lock()  # taken by the one answer that stands
        self.settled = False
        self.value: Any = None
        self.notify = notify  # an async ask's: settles its future on its loop

    def settle(self, value: Any) -> None:
        if not self._claim.acquire(blocking=False):
            return  # (answered already: the first answer stands)
        self.value = value
        self.settled = True
        self._unset.release()
        if self.notify is not None:
            self.notify(value)

    def wait(self, timeout: float) -> bool:
        """True once settled (False if ``timeout`` passes first)."""
        if self.settled:
            return True
        if self._unset.acquire(timeout=max(0.0, timeout)):
            self._unset.release()  # (so that every later wait passes at once)
            return True
        return False


class _Settler:
    """Settles futures of one event loop from other threads, many per wake-up of the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.due: list[tuple[asyncio.Future[Any], Any]] = []
        self.caught_up: set[threading.Event] = set()  # set once the woken coroutines ran

    def settle(self, future: asyncio.Future[Any], value: Any) -> None:
        with self.lock:
            first = not self.due
            self.due.append((future, value))
        if first:
            with contextlib.suppress(RuntimeError):  # (its loop has closed: nobody waits)
                self.loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        with self.lock:  # (held while the results schedule their tasks' next steps)
            due, self.due = self.due, []
            caught_up, self.caught_up = self.caught_up, set()
            for future, value in due:
                if not future.done():
                    future.set_result(value)
            for event in caught_up:  # (after the steps of the tasks those results woke)
                self.loop.call_soon(event.set)

    def tell_when_caught_up(self, event: threading.Event) -> None:
        """Set ``event`` once the coroutines the values settled so far wake have run on
        to their next ``await``."""
        with self.lock:
            if self.due:  # (their results are not set yet)
                self.caught_up.add(event)
                return
            try:  # (set: their tasks' next steps are scheduled already, and go first)
                self.loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # (its loop has closed: nobody waits)
                event.set()


_SETTLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Settler] = (
    weakref.WeakKeyDictionary()
)


def _future_waiter() -> tuple[asyncio.Future[Any], _Waiter]:
    """A waiter that settles an asyncio future of the running loop (from any thread)."""
    loop = asyncio.get_running_loop()
    settler = _SETTLERS.get(loop)
    if settler is None:
        settler = _SETTLERS[loop] = _Settler(loop)
    future: asyncio.Future[Any] = loop.create_future()
    return future, _Waiter(functools.partial(settler.settle, future), settler)


_CLOSED = object()  # what async asks still out get when their system closes


def _close_async_waiters(waiters: dict[int, _Waiter]) -> None:
    for waiter in list(waiters.values()):
        if waiter.notify is not None:
            waiter.settle(_CLOSED)


async def _await_reply(
    future: asyncio.Future[Any], timeout: float, late: str, cancel: Callable[[], None]
) -> Any:
    try:
        async with asyncio.timeout(timeout):
            value = await future
    except TimeoutError:
        cancel()
        raise Timeout(late or f"the system did not answer within {timeout:g}s") from None
    except asyncio.CancelledError:  # its caller stopped waiting: the tree may stop too
        cancel()
        raise
    if value is _CLOSED:
        raise SystemStopped("the system has been shut down")
    return value


class InProcess:
    """Runs an in-process system on its own thread; ``ask``/``tell`` hand messages to it."""

    def __init__(self, asys: Any, clock: ExternalClock, lend_cpu: bool = True) -> None:
        self.asys = asys
        self.clock = clock
        self.root: Any = None
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.told = itertools.count(1)  # what was handed over, in order
        self.handled = 0  # how much of it the actor thread has handled
        self.progress = threading.Condition()
        self.readers = 0  # threads waiting in caught_up (the actor thread wakes them)
        self.mine = threading.local()  # per calling thread: the last it handed over
        self.waiters: dict[int, _Waiter] = {}
        self.closed = False
        self.soon: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = {}
        base = getattr(asys, "_systemBase", None)  # (Stalwart's base takes answers directly)
        self.replies = base.replies if isinstance(base, _InProcessBase) else None
        self.thread = threading.Thread(target=self._run, name="stalwart-actors", daemon=True)
        self.cpu = SharedCpu(lend_cpu)  # (lent by a caller waiting alone)
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
        if self.handled >= last:
            return
        lent = self.cpu.lendable() if not self.waiters and not self.readers else None
        try:
            if lent is not None:
                self.cpu.lend(lent)
            with self.progress:
                self.readers += 1
                try:
                    self.progress.wait_for(lambda: self.handled >= last or self.closed, timeout)
                finally:
                    self.readers -= 1
        finally:
            if lent is not None:
                self.cpu.take_back(lent)

    def ask(self, address: Any, msg: Any, ident: int, timeout: float, late: str = "") -> Any:
        if threading.current_thread() is self.thread:
            raise StalwartError(
                "System.ask from inside an actor on the in-process base would wait for the"
                " very thread that has to answer it: use self.call(path, msg, ...) instead"
            )
        # (a caller alone lends its CPU: with others waiting, the actor thread is kept busy)
        lent = self.cpu.lendable() if not self.waiters and not self.readers else None
        waiter = self.waiters[ident] = _Waiter()
        try:
            if lent is not None:
                self.cpu.lend(lent)
            self.tell(address, msg)
            if not waiter.wait(timeout):
                if not self.closed:
                    self.tell(address, GatewayCancel(ident))
                raise Timeout(late or f"the system did not answer within {timeout:g}s")
            return waiter.value
        finally:
            self.waiters.pop(ident, None)
            if lent is not None:
                self.cpu.take_back(lent)

    async def ask_async(
        self, address: Any, msg: Any, ident: int, timeout: float, late: str = ""
    ) -> Any:
        future, waiter = _future_waiter()
        self.waiters[ident] = waiter
        try:
            self._tell_soon(address, msg)

            def cancel() -> None:
                if not self.closed:
                    self.tell(address, GatewayCancel(ident))

            return await _await_reply(future, timeout, late, cancel)
        finally:
            self.waiters.pop(ident, None)

    def _tell_soon(self, address: Any, msg: Any) -> None:
        """Tell ``msg`` once the calling coroutine's loop turn ends, with what other
        coroutines of that turn asked, in one envelope (the actor thread hands it over once)."""
        loop = asyncio.get_running_loop()
        queued = self.soon.get(loop)
        if queued is None:
            queued = self.soon[loop] = []
            loop.call_soon(self._tell_queued, loop)
        queued.append((address, msg))

    def _tell_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        queued = self.soon.pop(loop, [])
        with contextlib.suppress(SystemStopped):  # (their asks end as the system stops)
            for address, msgs in runs(queued):
                for envelope in envelopes(msgs):
                    self.tell(address, envelope)

    def close(self) -> None:
        """Stop the actor thread (after the system has stopped) and wait for it."""
        with self.progress:
            self.closed = True
            self.progress.notify_all()
        _close_async_waiters(self.waiters)
        self.inbox.put(_STOP)
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=5)

    # -- the actor thread -------------------------------------------------------------------
    def _run(self) -> None:
        self.cpu.attach()
        try:
            self._serve()
        finally:
            close_actor_loop()

    def _serve(self) -> None:
        while True:
            nxt = self.clock.next_deadline()
            wait = _IDLE_S if nxt is None else min(_IDLE_S, max(0.0, nxt - timer_now()))
            if wait > 0:
                self.cpu.sleeping()  # (a waiting caller may confine it to its CPU meanwhile)
            try:
                item = self.inbox.get(timeout=wait) if wait > 0 else self.inbox.get_nowait()
            except queue.Empty:
                item = None
            self.cpu.awake()  # (its own CPUs back before it runs anything)
            if item is _STOP:
                return
            fired = time.monotonic()
            while item is not None:
                seq, address, msg = item
                self.asys.tell(address, msg)  # runs the actors until they are idle
                with self.progress:
                    self.handled = seq
                    if self.readers:
                        self.progress.notify_all()
                if time.monotonic() - fired >= _TIMERS_EVERY_S:  # busy: timers still fire
                    self._fire_timers()
                    fired = time.monotonic()
                # (only this thread takes from the inbox: what is there stays there)
                item = None if self.inbox.empty() else self.inbox.get_nowait()
                if item is _STOP:
                    self.inbox.put(_STOP)
                    item = None
            self._fire_timers()
            self._collect_replies()

    def _fire_timers(self) -> None:
        while True:
            due = self.clock.pop_due(timer_now())
            if not due:
                return
            for address in due:
                self.asys.tell(address, WakeupMessage(0, TICK))

    def _collect_replies(self) -> None:
        got = self.replies() if self.replies is not None else None
        if got is not None:  # (no Thespian timer pending: no need to listen)
            for envelope in got:
                self._settle(envelope)
            return
        envelope = self.asys.listen(0.001)  # also Thespian's own due wakeups
        while envelope is not None:
            self._settle(envelope)
            envelope = self.asys.listen(0.001)

    def _settle(self, envelope: Any) -> None:
        for reply in unpacked(envelope):
            if isinstance(reply, GatewayReply):
                waiter = self.waiters.get(reply.id)
                if waiter is not None:
                    waiter.settle(reply.value)


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
        self.outgoing: queue.SimpleQueue[tuple[Any, Any, int]] = queue.SimpleQueue()
        self.async_out = 0  # async asks waiting for their replies
        self.in_flight: set[int] = set()  # ... of which sent to the root
        self.pump: threading.Thread | None = None
        self.caught_up = threading.Event()  # the coroutines the pump answered have run on

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
            while not waiter.settled:
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
                    waiter.wait(min(remaining, _FOLLOW_S))
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
        while not waiter.settled and time.monotonic() < deadline:
            with self.lock:
                envelope = self.asys.listen(_LISTEN_S)
            for reply in unpacked(envelope):
                if isinstance(reply, GatewayReply):
                    with self.waiting_lock:
                        other = self.waiters.get(reply.id)
                    if other is not None:
                        other.settle(reply.value)

    async def ask_async(
        self, address: Any, msg: Any, ident: int, timeout: float, late: str = ""
    ) -> Any:
        if self.closed:
            raise SystemStopped("the system has been shut down")
        future, waiter = _future_waiter()
        with self.waiting_lock:
            self.waiters[ident] = waiter
            self.async_out += 1
            self.outgoing.put((address, msg, ident))
            if self.pump is None:
                self.pump = threading.Thread(target=self._pump, name="stalwart-async", daemon=True)
                self.pump.start()

        def cancel() -> None:
            if not self.closed:
                self.outgoing.put((address, GatewayCancel(ident), 0))

        try:
            return await _await_reply(future, timeout, late, cancel)
        finally:
            with self.waiting_lock:
                self.waiters.pop(ident, None)
                self.async_out -= 1
                self.in_flight.discard(ident)

    def _pump(self) -> None:
        """Send what coroutines asked (bundled, ``_WINDOW`` at a time: Thespian's transport
        slows down with many messages in flight) and listen for replies while any wait."""
        waiting: deque[tuple[Any, Any, int]] = deque()
        try:
            while not self.closed:
                self._send_outgoing(waiting)
                with self.waiting_lock:
                    if not self.async_out and not waiting and self.outgoing.empty():
                        self.pump = None  # (decided under the lock an ask takes to start one)
                        return
                with self.lock:
                    envelope = None if self.closed else self.asys.listen(_PUMP_LISTEN_S)
                settlers, answered = self._settle(envelope)
                if settlers and answered <= _FOLLOW_UP_MOST and not waiting:
                    self._follow_up(settlers)
        except SystemStopped:
            pass
        except Exception:
            if not self.closed:  # (its endpoint goes away as the system shuts down)
                log.exception("the async pump stopped; asks still out will time out")
        with self.waiting_lock:
            self.pump = None

    def _follow_up(self, settlers: set[_Settler]) -> None:
        """A coroutine answered now often asks again at once. With nothing else out to
        listen for or to send, wait (up to ``_FOLLOW_UP_S``) until the coroutines just answered
        have run on, and send what they asked before the next listen rather than after it."""
        with self.waiting_lock:
            idle = not self.in_flight
        if idle:
            self.caught_up.clear()
            for settler in settlers:
                settler.tell_when_caught_up(self.caught_up)
            self.caught_up.wait(_FOLLOW_UP_S)

    def _settle(self, envelope: Any) -> tuple[set[_Settler], int]:
        """Hand each reply an envelope carries to its waiter; returns the settlers (event
        loops) of the async asks among them, and how many replies there were."""
        settled = []
        with self.waiting_lock:
            for reply in unpacked(envelope):
                if isinstance(reply, GatewayReply):
                    waiter = self.waiters.get(reply.id)
                    self.in_flight.discard(reply.id)
                    if waiter is not None:
                        settled.append((waiter, reply.value))
        for waiter, value in settled:
            waiter.settle(value)
        return {w.settler for w, _ in settled if w.settler is not None}, len(settled)

    def _send_outgoing(self, waiting: deque[tuple[Any, Any, int]]) -> None:
        while True:
            try:
                waiting.append(self.outgoing.get_nowait())
            except queue.Empty:
                break
        leaving: list[tuple[Any, Any]] = []
        with self.waiting_lock:
            while waiting:
                address, msg, ident = waiting[0]
                if ident:
                    if ident not in self.waiters:  # timed out before it left
                        waiting.popleft()
                        continue
                    if len(self.in_flight) >= _WINDOW:
                        break
                    self.in_flight.add(ident)
                waiting.popleft()
                leaving.append((address, msg))
        for address, msgs in runs(leaving):
            for envelope in envelopes(msgs):
                try:
                    self.tell(address, envelope)
                except SystemStopped:
                    raise
                except Exception:  # (their asks time out, as if lost on the way)
                    log.exception("could not send async asks to the root")

    def close(self) -> None:
        self.closed = True
        with self.waiting_lock:
            _close_async_waiters(self.waiters)
