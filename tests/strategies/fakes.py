"""What the strategy tests share: a clock the test moves, and a call that fails."""

import pytest


class Clock:
    """A clock for ``clock=``: it reads ``now``, which only the test moves."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fail():
    raise ConnectionError("down")


def trip(breaker, n):
    """Fail ``n`` calls through ``breaker``."""
    for _ in range(n):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
