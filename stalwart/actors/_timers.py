"""Many cancellable timers per actor, on one wakeup at a time.

Thespian cannot cancel a ``wakeupAfter``, and its in-process base scans every
pending wakeup on every message. So an actor keeps its own heap of deadlines
and asks for a single wakeup at the earliest one:

- on the multi-process bases, a Thespian ``wakeupAfter`` never more than
  ``MAX_ARM_S`` ahead (a cancelled timer costs nothing once it has passed);
- on the in-process base, the deadline goes to the system's :class:`ExternalClock`,
  and the ``System`` object delivers the wakeup itself between messages, so no
  Thespian wakeup is pending at all and messages pay nothing for timers.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from ._lazy import made_on_use

WAKE = "stalwart"  # marker in wakeupAfter payloads that belong to the framework
TICK = (WAKE, "tick")
MAX_ARM_S = 0.25
_WAKE_EARLY_S = 0.001  # a Thespian wakeup this close to due counts as come


class ExternalClock:
    """The earliest deadline of each actor of one in-process system.

    Kept in a heap as well as by actor, so the actor thread finds the next deadline and
    the due ones without looking at every actor (thousands of supervisors, say, each
    with a health timer). Used from the actor thread only; others may read a copy of
    ``_deadlines``.
    """

    def __init__(self) -> None:
        self._deadlines: dict[str, tuple[float, Any]] = {}
        self._heap: list[tuple[float, str]] = []  # (deadline, actor); superseded ones skipped

    def arm(self, address: Any, deadline: float) -> None:
        key = str(address)
        current = self._deadlines.get(key)
        if current is None or deadline < current[0]:
            self._deadlines[key] = (deadline, address)
            heapq.heappush(self._heap, (deadline, key))

    def _first(self) -> tuple[float, str] | None:
        """The earliest deadline still held (superseded heap entries dropped on the way)."""
        heap, deadlines = self._heap, self._deadlines
        while heap:
            deadline, key = heap[0]
            current = deadlines.get(key)
            if current is not None and current[0] == deadline:
                return heap[0]
            heapq.heappop(heap)
        return None

    def next_deadline(self) -> float | None:
        """The earliest deadline of all, or None."""
        first = self._first()
        return first[0] if first is not None else None

    def pop_due(self, now: float) -> list[Any]:
        """Addresses whose deadline has come (forgotten here; they re-arm as needed)."""
        due = []
        while (first := self._first()) is not None and first[0] <= now:
            heapq.heappop(self._heap)
            due.append(self._deadlines.pop(first[1])[1])
        return due


CLOCKS: dict[int, ExternalClock] = {}  # in-process systems, by clock id

_shift = 0.0  # how far a test's fake clock has moved every timer forward


def timer_now() -> float:
    """The time timers go by: monotonic, plus what a test's fake clock has advanced."""
    return time.monotonic() + _shift


def shift_timers(seconds: float) -> None:
    """Move the timers' time forward by ``seconds`` (``stalwart.testing.FakeClock``): the
    timers of this process fire that much sooner. It never moves back."""
    global _shift
    _shift += max(0.0, seconds)


class Timers:
    """Mixin for a Thespian actor: ``after(delay, payload, key)`` and ``cancel(key)``.

    An actor that never sets a timer holds none of this state (it is made on first use).
    """

    _sw_heap: list[tuple[float, int, Hashable]] = made_on_use(list)
    _sw_due: dict[Hashable, tuple[int, Any]] = made_on_use(dict)
    _sw_seq: itertools.count[int] = made_on_use(itertools.count)
    _sw_wakes: list[float] = made_on_use(list)  # Thespian's: when the wakeups asked for are due
    _sw_armed: float | None = None  # in-process: the deadline its clock holds
    _sw_clock: ExternalClock | None = None

    if TYPE_CHECKING:

        def wakeupAfter(self, period: Any, payload: Any = None) -> None: ...

        @property
        def myAddress(self) -> Any: ...

    def _sw_init_timers(self) -> None:
        """(Nothing to set up: the timers' state is made when the first timer is set.)"""

    def _sw_use_clock(self, clock_id: int) -> None:
        """Take wakeups from the in-process system's clock ``clock_id`` (0: Thespian's)."""
        self._sw_clock = CLOCKS.get(clock_id) if clock_id else None

    def after(self, delay: float, payload: Any, key: Hashable | None = None) -> Hashable:
        """Fire a timer carrying ``payload`` in ``delay`` seconds; returns its key.

        In a :class:`~stalwart.ManagedActor` the payload arrives as a
        ``WakeupMessage`` (handle ``receiveMsg_WakeupMessage``). Cheaper than
        ``wakeupAfter`` and cancellable with :meth:`cancel`. A timer with the same
        ``key`` as a pending one replaces it.
        """
        seq = next(self._sw_seq)
        key = seq if key is None else key
        deadline = timer_now() + max(0.0, delay)
        self._sw_due[key] = (seq, payload)
        heapq.heappush(self._sw_heap, (deadline, seq, key))
        self._sw_arm(deadline)
        return key

    def cancel(self, key: Hashable) -> None:
        """Forget the timer ``key`` (nothing happens if it already fired)."""
        self._sw_due.pop(key, None)
        heap = self._sw_heap
        if len(heap) > 1024 and len(heap) > 4 * len(self._sw_due):
            due = self._sw_due
            self._sw_heap = [e for e in heap if e[2] in due and due[e[2]][0] == e[1]]
            heapq.heapify(self._sw_heap)

    def _sw_arm(self, deadline: float) -> None:
        clock = self._sw_clock
        if clock is not None:
            if self._sw_armed is None or deadline < self._sw_armed:
                self._sw_armed = deadline
                clock.arm(self.myAddress, deadline)
            return
        now = timer_now()
        target = min(deadline, now + MAX_ARM_S)
        wakes = self._sw_wakes
        if wakes and wakes[0] <= target:  # a wakeup asked for earlier comes in time
            return
        heapq.heappush(wakes, target)
        self.wakeupAfter(max(0.0, target - now), TICK)

    def _sw_tick(self) -> list[Any]:
        """The payloads that are due now; re-arms for the next deadline."""
        self._sw_armed = None
        now = timer_now()
        wakes = self._sw_wakes
        while wakes and wakes[0] <= now + _WAKE_EARLY_S:  # (Thespian's that came, or are due)
            heapq.heappop(wakes)
        heap, due, fired = self._sw_heap, self._sw_due, []
        while heap:
            deadline, seq, key = heap[0]
            entry = due.get(key)
            if entry is not None and entry[0] == seq:
                if deadline > now:
                    break
                del due[key]
                fired.append(entry[1])
            heapq.heappop(heap)
        if heap:
            self._sw_arm(heap[0][0])
        return fired
