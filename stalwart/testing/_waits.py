"""Waiting for what a tree does, and injecting faults into it."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from ..supervisors import Event, System

T = TypeVar("T")

_POLL_S = 0.01
_SHOWN = 20  # events listed when a wait fails


def wait_for_event(
    system: System,
    kind: str,
    path: str | None = None,
    timeout: float = 10.0,
    *,
    since: int = 0,
    where: Callable[[Event], bool] | None = None,
) -> Event:
    """Wait until ``system`` records an event of ``kind`` (at ``path``, if given) and return it.

    Looks at the events numbered after ``since`` (``event.seq``), oldest first, so it
    returns the first match, also one that happened before the call. ``where`` narrows
    the match further (``where=lambda e: e.level == 3``). Raises ``AssertionError``
    after ``timeout`` seconds, listing the last events seen.
    """
    deadline = time.monotonic() + timeout
    seen: deque[Event] = deque(maxlen=_SHOWN)
    after = since
    while True:
        for event in system.events(after):
            seen.append(event)
            after = max(after, event.seq)
            if (
                event.kind == kind
                and (path is None or event.path == path)
                and (where is None or where(event))
            ):
                return event
        if time.monotonic() >= deadline:
            at = f" at {path!r}" if path is not None else ""
            raise AssertionError(
                f"no {kind!r} event{at} after event #{since} within {timeout:g}s;"
                f" the last events seen:\n{_listing(seen)}"
            )
        time.sleep(_POLL_S)


def wait_until(
    condition: Callable[[], T], timeout: float = 10.0, message: str = "condition not met"
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    Raises ``AssertionError`` with ``message`` and the last value after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    value = condition()
    while not value:
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} within {timeout:g}s (last: {value!r})")
        time.sleep(_POLL_S)
        value = condition()
    return value


def last_event_seq(system: System) -> int:
    """The number of the latest event of ``system`` (0 if none): ``since=`` for later waits."""
    events = system.events()
    return events[-1].seq if events else 0


def inject_fault(
    system: System, path: str, kind: str = "raise", count: int = 1, nbytes: int = 0
) -> Event:
    """Inject a fault into the actor at ``path`` and return the ``chaos`` event recording it.

    A thin shell over :meth:`System.inject` (the system must be started with
    ``chaos=True``): ``raise`` fails the actor's next ``count`` messages, ``hang``
    blocks it in a handler, ``leak`` makes it hold ``nbytes`` more memory, ``kill``
    (multi-process bases) SIGKILLs its process. Messages sent to ``path`` after this
    returns meet the fault. Wait for the tree's answer from the returned event:
    ``wait_for_event(system, "restart", path, since=event.seq)``.
    """
    mark = last_event_seq(system)
    system.inject(path, kind, count=count, nbytes=nbytes)
    return wait_for_event(system, "chaos", path, since=mark)


def _listing(events: Any) -> str:
    lines = [
        f"  #{e.seq} {e.kind} {e.path}"
        + (f" level {e.level}" if e.level else "")
        + (f": {e.detail[:120]}" if e.detail else "")
        for e in events
    ]
    return "\n".join(lines) or "  (none)"
