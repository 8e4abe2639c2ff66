"""Simulated external services (a payment provider, a supplier API...) with injectable faults.

Their state lives in a small JSON file so that every actor process sees the same
outage, as it would with a real external service: restarting an actor does not
make the provider come back. ``fail_next("payments", 3)`` makes the next three
calls to ``payments`` fail; ``down("payments", 2.5)`` makes every call fail for
2.5 seconds (an outage).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

FAULTS = {
    "connection": lambda service: ConnectionError(f"{service}: connection reset by peer"),
    "rate_limit": lambda service: RuntimeError(f"{service}: HTTP 429 Too Many Requests"),
    "timeout": lambda service: TimeoutError(f"{service}: no answer within 2s"),
}


class Backend:
    """A handle on the simulated services; cheap to create in any process."""

    def __init__(self, path: str) -> None:
        self.path = path

    @contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        with open(self.path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            text = fh.read()
            state = json.loads(text) if text else {}
            yield state
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(state))

    def fail_next(self, service: str, times: int, kind: str = "connection") -> None:
        """Make the next ``times`` calls to ``service`` fail with a ``kind`` error."""
        with self._state() as state:
            state[service] = {"left": times, "kind": kind}

    def down(self, service: str, seconds: float, kind: str = "connection") -> None:
        """Make every call to ``service`` fail with a ``kind`` error for ``seconds``."""
        with self._state() as state:
            state[service] = {"left": 0, "until": time.time() + seconds, "kind": kind}

    def call(self, service: str) -> None:
        """One call to ``service``: raises while a fault is pending or it is down."""
        failure = None
        with self._state() as state:
            fault = state.get(service)
            if fault and fault["left"] > 0:
                fault["left"] -= 1
                failure = FAULTS[fault["kind"]](service)
            elif fault and fault.get("until", 0) > time.time():
                failure = FAULTS[fault["kind"]](service)
        if failure is not None:
            raise failure


def new_backend(folder: str) -> Backend:
    path = os.path.join(folder, "backend.json")
    with open(path, "w") as fh:
        fh.write("{}")
    return Backend(path)
