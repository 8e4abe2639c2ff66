"""One ``poll`` per wait for Thespian's TCP transport, in the processes Stalwart runs actors in.

Thespian's TCP transport waits for its sockets with a selector it makes anew for every
wait. Python's default selector on Linux is epoll, so each wait creates an epoll set,
adds every socket to it, waits, and closes it: three system calls and more, several
times per message. In a process of its own that runs a Stalwart actor, a supervisor or
the root, the transport makes a :class:`OnePollSelector` instead: one ``poll`` call per
wait, nothing to create or close. What the transport sees is the same: which sockets are
ready to read or write, and a wait over a descriptor that is not open fails with
``OSError(EBADF)``, as epoll fails it (Thespian then finds the bad descriptor).

The program's own process, Thespian's admin and any raw Thespian system keep Thespian's
selector. Actors that a Stalwart actor creates itself with ``createActor`` are forked from
its process and wait the same way it does.
"""

from __future__ import annotations

import errno
import importlib
import math
import select
import selectors
import types
from typing import Any

_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class OnePollSelector:
    """The part of :class:`selectors.BaseSelector` Thespian's TCP transport uses
    (``register``, ``select``, ``close``), on one ``poll`` object."""

    __slots__ = ("_keys", "_poll")

    def __init__(self) -> None:
        self._poll = select.poll()
        self._keys: dict[int, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = _fd_of(fileobj)
        if not events or events & ~(_READ | _WRITE):
            raise ValueError(f"invalid events: {events!r}")
        if fd in self._keys:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        mask = (select.POLLIN if events & _READ else 0) | (select.POLLOUT if events & _WRITE else 0)
        self._poll.register(fd, mask)
        key = self._keys[fd] = selectors.SelectorKey(fileobj, fd, events, data)
        return key

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        wait = None if timeout is None else max(0, math.ceil(timeout * 1e3))
        ready = []
        for fd, event in self._poll.poll(wait):
            if event & select.POLLNVAL:
                raise OSError(errno.EBADF, f"file descriptor {fd} is not open")
            key = self._keys.get(fd)
            if key is None:
                continue
            # (an error or a hang-up wakes both sides, as in the standard poll selector)
            events = (_WRITE if event & ~select.POLLIN else 0) | (
                _READ if event & ~select.POLLOUT else 0
            )
            ready.append((key, events & key.events))
        return ready

    def close(self) -> None:
        self._keys.clear()


def _fd_of(fileobj: Any) -> int:
    """``fileobj``'s descriptor; ValueError, as the standard selectors raise, if it has none
    (Thespian drops a watched object that fails so)."""
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


_FOR_THESPIAN = types.SimpleNamespace(
    DefaultSelector=OnePollSelector, EVENT_READ=_READ, EVENT_WRITE=_WRITE
)


def wait_with_one_poll() -> None:
    """From now on, Thespian's TCP transport in this process waits with one ``poll`` per
    wait (call it only in a process of Stalwart's own; nothing happens without ``poll``)."""
    if not hasattr(select, "poll"):
        return
    transport = importlib.import_module("thespian.system.transport.TCPTransport")
    transport.selectors = _FOR_THESPIAN  # type: ignore[attr-defined]  # (its only way to one)
