"""Testing your own trees with pytest: fixtures, a fake clock, waits on events, faults.

Installing Stalwart registers the pytest plugin (entry point ``pytest11``), which
provides two fixtures:

- ``stalwart_start(tree, base="simple", **options)``: starts a system that is shut
  down after the test; the test errors if an actor process outlived its system.
- ``stalwart_clock``: a :class:`FakeClock` for the strategies' ``clock=`` and
  ``sleep=``, which also moves the timers of in-process systems forward.

The helpers below work on any :class:`~stalwart.System`, with or without pytest.
"""

from ._clock import FakeClock
from ._systems import StartSystem, SystemsUnderTest
from ._waits import inject_fault, last_event_seq, wait_for_event, wait_until

__all__ = [
    "FakeClock",
    "StartSystem",
    "SystemsUnderTest",
    "inject_fault",
    "last_event_seq",
    "wait_for_event",
    "wait_until",
]
