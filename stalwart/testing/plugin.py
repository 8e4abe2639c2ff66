"""The pytest plugin (entry point ``pytest11``: ``stalwart``): the ``stalwart_start`` and
``stalwart_clock`` fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._clock import FakeClock
from ._systems import StartSystem, SystemsUnderTest


@pytest.fixture
def _stalwart_systems(tmp_path: Path) -> Iterator[SystemsUnderTest]:
    systems = SystemsUnderTest(tmp_path)
    yield systems
    problems = systems.close()
    if problems:
        pytest.fail(
            "actor processes were left behind by the test's systems:\n  " + "\n  ".join(problems),
            pytrace=False,
        )


@pytest.fixture
def stalwart_start(_stalwart_systems: SystemsUnderTest) -> StartSystem:
    """``stalwart_start(tree, base="simple", **options)``: start a system for this test.

    Takes what :func:`stalwart.start` takes; the system's files (checkpoints, final
    report) go to the test's ``tmp_path`` unless ``state_dir``/``report_path`` say
    otherwise. After the test every system it started is shut down, newest first,
    and the test errors if an actor process outlived its system.
    """
    return _stalwart_systems.start


@pytest.fixture
def stalwart_clock(_stalwart_systems: SystemsUnderTest) -> Iterator[FakeClock]:
    """A :class:`~stalwart.testing.FakeClock` at 0 that also drives the timers of in-process
    systems: ``advance(s)`` fires every timer due within ``s`` seconds before it returns
    (those of the systems from ``stalwart_start``; others' within moments)."""
    clock = FakeClock()
    stop = clock._drive_timers(_stalwart_systems.running)
    yield clock
    stop()
