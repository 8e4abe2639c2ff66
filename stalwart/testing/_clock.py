"""A clock that moves only when a test moves it, and the in-process timers it can drive."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from ..actors._runtime import WakeupMessage
from ..actors._timers import CLOCKS, TICK, shift_timers, timer_now
from ..actors.errors import SystemStopped
from ..supervisors._system import System
from ..supervisors._transport import InProcess

_CATCH_UP_S = 10.0  # how long advance() waits for the handlers of the timers it made due


class FakeClock:
    """A clock for tests: it reads ``now``, which only :meth:`advance` and :meth:`sleep` move.

    Pass it where the strategies take a clock (``clock=clock``: ``CircuitBreaker``,
    ``retry``, ``RetryBudget``, ``AdaptiveSelector``...) and ``sleep=clock.sleep`` where
    they wait, and they run without waiting, in the order the test decides.

    A clock can also drive the timers of in-process systems (the ``stalwart_clock``
    fixture does that): then :meth:`advance` also moves those timers forward, so a
    ``self.after(3600, ...)`` in an actor, a retry delay or a call timeout fires without
    waiting. It moves timers only: what actors measure by reading the time themselves
    (restart intensity, quiet periods, the breaker actors' open time) follows real time,
    and timers of the multi-process bases run in other processes and are not moved.
    Thread-safe.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self.slept: list[float] = []
        """Every wait passed to :meth:`sleep`, in order."""
        self._drives = False
        self._systems: Callable[[], Iterable[System]] = tuple

    def __call__(self) -> float:
        return self._now

    @property
    def now(self) -> float:
        """The clock's reading, in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward.

        When it drives the in-process timers, the timers this makes due fire before it
        returns: for the systems it watches, their handlers have run by the time the next
        line of the test does (timers those handlers set in turn fire moments later).
        """
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; advance({seconds!r})")
        with self._lock:
            self._now += seconds
            if self._drives:
                shift_timers(seconds)
        if self._drives:
            for system in list(self._systems()):
                _fire_due_timers(system)

    def sleep(self, seconds: float) -> None:
        """Record a wait in :attr:`slept` and :meth:`advance` by it (for ``sleep=``)."""
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))

    def _drive_timers(self, systems: Callable[[], Iterable[System]]) -> Callable[[], None]:
        """Make :meth:`advance` move the in-process timers, firing at once the due timers
        of ``systems()``; returns the function that stops it."""
        self._systems, self._drives = systems, True

        def stop() -> None:
            with self._lock:
                self._drives = False
            self._systems = tuple

        return stop

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"


def _fire_due_timers(system: System) -> None:
    """Hand the actors of an in-process ``system`` whose timers are due their wakeup, behind
    whatever the calling thread told it, and wait until they have been handled."""
    transport = system._transport
    clock = CLOCKS.get(system._clock_id)
    if system._closed or clock is None or not isinstance(transport, InProcess):
        return
    now = timer_now()
    # a copy first: the actor thread arms and pops deadlines meanwhile
    due = [address for deadline, address in dict(clock._deadlines).values() if deadline <= now]
    if not due:
        return
    try:
        for address in due:  # a wakeup with nothing due is harmless: the actor re-arms
            transport.tell(address, WakeupMessage(0, TICK))
    except SystemStopped:  # shut down meanwhile: its timers no longer matter
        return
    transport.caught_up(_CATCH_UP_S)
