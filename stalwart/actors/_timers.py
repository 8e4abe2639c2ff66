"""Many cancellable timers on one Thespian wakeup at a time.

Thespian cannot cancel a ``wakeupAfter``, and its in-process base scans every
pending wakeup on every message. So an actor keeps its own heap of deadlines
and asks Thespian for a single wakeup at the earliest one, never more than
``MAX_ARM_S`` ahead: a cancelled timer costs nothing once that short wakeup has
passed, and the pending wakeups of a whole system stay few.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

WAKE = "stalwart"  # marker in wakeupAfter payloads that belong to the framework
TICK = (WAKE, "tick")
MAX_ARM_S = 0.25


class Timers:
    """Mixin for a Thespian actor: ``after(delay, payload, key)`` and ``cancel(key)``."""

    if TYPE_CHECKING:

        def wakeupAfter(self, period: Any, payload: Any = None) -> None: ...

    def _sw_init_timers(self) -> None:
        self._sw_heap: list[tuple[float, int, Hashable]] = []
        self._sw_due: dict[Hashable, tuple[int, Any]] = {}
        self._sw_seq = itertools.count()
        self._sw_armed: float | None = None

    def after(self, delay: float, payload: Any, key: Hashable | None = None) -> Hashable:
        """Deliver ``payload`` to :meth:`on_timer` in ``delay`` seconds; returns the key."""
        seq = next(self._sw_seq)
        key = seq if key is None else key
        deadline = time.monotonic() + max(0.0, delay)
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
        now = time.monotonic()
        target = min(deadline, now + MAX_ARM_S)
        if self._sw_armed is not None and self._sw_armed <= target:
            return
        self._sw_armed = target
        self.wakeupAfter(max(0.0, target - now), TICK)

    def _sw_tick(self) -> list[Any]:
        """The payloads that are due now; re-arms for the next deadline."""
        self._sw_armed = None
        now = time.monotonic()
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
