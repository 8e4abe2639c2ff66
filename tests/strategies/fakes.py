"""What the strategy tests share: a clock the test moves, and calls that fail."""

import pytest


class Clock:
    """A clock for ``clock=``: it reads ``now``, which only the test and ``sleep`` move.

    ``sleep`` (for ``sleep=``) records each wait in ``slept`` and moves the clock on.
    """

    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def fail():
    raise ConnectionError("down")


def trip(breaker, n):
    """Fail ``n`` calls through ``breaker``."""
    for _ in range(n):
        with pytest.raises(ConnectionError):
            breaker.call(fail)


class Flaky:
    """Fails ``failures`` times with ``error``, then returns ``value``."""

    def __init__(self, failures, error=None, value="ok"):
        self.failures = failures
        self.error = error or ConnectionError("refused")
        self.value = value
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return (self.value, args, kwargs)
