"""``RetryBudget``: a cap on retries shared by every caller of a service.

After Finagle's ``RetryBudget`` and Envoy's retry budgets: retries are allowed
only while they stay a small share of the calls of the last ``window_s``
seconds, plus a small floor, so a struggling dependency sees at most
``ratio`` extra load from retries instead of ``max_attempts`` times its load.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import msgspec


class BudgetStats(msgspec.Struct, frozen=True):
    """A budget's window: calls and granted retries in it, refusals so far, retries left now."""

    calls: int
    retries: int
    rejected: int
    available: float


def _count_of(counter: itertools.count[int]) -> int:
    # itertools.count is the only lock-free atomic counter in the standard library;
    # its repr is the one public way to read it ("count(42)")
    return int(repr(counter)[6:-1])


class RetryBudget:
    """Retries allowed while ``retries <= ratio * calls + min_retries_per_s * window_s``.

    Both sides count the last ``window_s`` seconds (in ``slots`` steps). Every
    call deposits with :meth:`record_call`; every retry asks :meth:`try_retry`,
    which grants it (and counts it) or refuses. Share one budget between every
    caller of a service: ``retry(budget=b)`` records its calls and, when the
    budget refuses, raises the original error at once.

    Thread-safe. Recording a call takes no lock (one clock read and one atomic
    counter step); granting a retry and moving the window take a lock.
    """

    def __init__(
        self,
        ratio: float = 0.2,
        min_retries_per_s: float = 10.0,
        window_s: float = 10.0,
        *,
        slots: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ratio < 0:
            raise ValueError(f"RetryBudget.ratio: must be >= 0, got {ratio!r}")
        if min_retries_per_s < 0:
            raise ValueError(
                f"RetryBudget.min_retries_per_s: must be >= 0, got {min_retries_per_s!r}"
            )
        if window_s <= 0:
            raise ValueError(f"RetryBudget.window_s: must be > 0, got {window_s!r}")
        if slots < 1:
            raise ValueError(f"RetryBudget.slots: must be >= 1, got {slots!r}")
        self.ratio = ratio
        self.min_retries_per_s = min_retries_per_s
        self.window_s = window_s
        self._floor = min_retries_per_s * window_s
        self._clock = clock
        self._slot_s = window_s / slots
        self._slot_end = clock() + self._slot_s
        self._index = 0
        self._calls = [0] * slots  # closed slots; the open one counts in self._current
        self._retries = [0] * slots
        self._current = itertools.count()
        self._rejected = 0
        self._lock = threading.Lock()

    def record_call(self) -> None:
        """Count one call (a first attempt) at the current time."""
        if self._clock() >= self._slot_end:
            with self._lock:
                self._advance(self._clock())
        next(self._current)

    def try_retry(self) -> bool:
        """Grant one retry and count it, or refuse (False) when the budget is spent."""
        with self._lock:
            self._advance(self._clock())
            if self._spent() + 1 <= self._allowance():
                self._retries[self._index] += 1
                return True
            self._rejected += 1
            return False

    def stats(self) -> BudgetStats:
        """The current window: calls, granted retries, refusals since creation, retries left."""
        with self._lock:
            self._advance(self._clock())
            calls = sum(self._calls) + _count_of(self._current)
            retries = self._spent()
            left = max(0.0, self.ratio * calls + self._floor - retries)
            return BudgetStats(calls, retries, self._rejected, left)

    # -- under the lock ------------------------------------------------------------
    def _allowance(self) -> float:
        return self.ratio * (sum(self._calls) + _count_of(self._current)) + self._floor

    def _spent(self) -> int:
        return sum(self._retries)

    def _advance(self, now: float) -> None:
        """Close the open slot and open fresh ones until ``now`` falls in the open slot."""
        if now < self._slot_end:
            return
        steps = int((now - self._slot_end) // self._slot_s) + 1
        # a call that read the old counter just before the swap may be lost: one call
        self._calls[self._index] = _count_of(self._current)
        size = len(self._calls)
        for _ in range(min(steps, size)):
            self._index = (self._index + 1) % size
            self._calls[self._index] = 0
            self._retries[self._index] = 0
        self._current = itertools.count()
        self._slot_end += steps * self._slot_s
