"""Sliding windows of call outcomes for the circuit breaker.

Outcomes are small integer codes appended to a ``collections.deque``. An append
is a single atomic operation under the GIL, so the breaker's closed-state success
path records without taking a lock; the counting, done only when the breaker
must decide, reads a snapshot of the deque.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

import msgspec

OK = 0
FAILED = 1
SLOW_OK = 2
SLOW_FAILED = 3


class WindowCounts(msgspec.Struct, frozen=True):
    """Totals over the window: calls, failures, slow calls."""

    calls: int
    failures: int
    slow: int

    @property
    def failure_rate(self) -> float:
        """Failures as a percentage of calls (0 when there are none)."""
        return 100.0 * self.failures / self.calls if self.calls else 0.0

    @property
    def slow_rate(self) -> float:
        """Slow calls as a percentage of calls (0 when there are none)."""
        return 100.0 * self.slow / self.calls if self.calls else 0.0


class CountWindow(msgspec.Struct, frozen=True):
    """The last ``size`` calls."""

    size: int = 100

    def build(self, clock: Callable[[], float]) -> _Recorder:
        if self.size < 1:
            raise ValueError(f"CountWindow.size must be >= 1, got {self.size}")
        return _CountRecorder(self.size)


class TimeWindow(msgspec.Struct, frozen=True):
    """The calls of the last ``seconds`` (at most ``max_calls`` of them are kept)."""

    seconds: float = 60.0
    max_calls: int = 100_000

    def build(self, clock: Callable[[], float]) -> _Recorder:
        if self.seconds <= 0:
            raise ValueError(f"TimeWindow.seconds must be > 0, got {self.seconds}")
        return _TimeRecorder(self.seconds, self.max_calls, clock)


class _Recorder(Protocol):
    record: Callable[[int], None]

    def counts(self) -> WindowCounts: ...

    def trailing_failures(self, limit: int) -> int: ...

    def clear(self) -> None: ...


def _count(codes: list[int]) -> WindowCounts:
    failures = codes.count(FAILED) + codes.count(SLOW_FAILED)
    slow = codes.count(SLOW_OK) + codes.count(SLOW_FAILED)
    return WindowCounts(len(codes), failures, slow)


def _trailing(codes: list[int], limit: int) -> int:
    n = 0
    for code in reversed(codes):
        if code != FAILED and code != SLOW_FAILED:
            break
        n += 1
        if n >= limit:
            break
    return n


class _CountRecorder:
    def __init__(self, size: int) -> None:
        self._codes: deque[int] = deque(maxlen=size)
        self.record: Callable[[int], None] = self._codes.append

    def counts(self) -> WindowCounts:
        return _count(list(self._codes))

    def trailing_failures(self, limit: int) -> int:
        return _trailing(list(self._codes), limit)

    def clear(self) -> None:
        self._codes.clear()


class _TimeRecorder:
    def __init__(self, seconds: float, max_calls: int, clock: Callable[[], float]) -> None:
        self._seconds = seconds
        self._clock = clock
        self._entries: deque[tuple[float, int]] = deque(maxlen=max_calls)
        entries = self._entries

        def record(code: int) -> None:
            entries.append((clock(), code))

        self.record: Callable[[int], None] = record

    def _live_codes(self) -> list[int]:
        horizon = self._clock() - self._seconds
        return [code for t, code in list(self._entries) if t > horizon]

    def counts(self) -> WindowCounts:
        return _count(self._live_codes())

    def trailing_failures(self, limit: int) -> int:
        return _trailing(self._live_codes(), limit)

    def clear(self) -> None:
        self._entries.clear()
