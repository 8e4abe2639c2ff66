"""Each supervisor's mail for the root, handled in the order it was sent.

On the multi-process bases a supervisor numbers its envelopes for the root
(:class:`~stalwart.supervisors.messages.InOrder`). Thespian's TCP transport can deliver a
transmit it had to retry after a later one to the same address, so the root holds an
envelope that comes early until the ones before it arrive. The root waits at most
``GAP_S`` for a missing one (its sender may have died with it unsent): then what is held
is handled in order, and the missing envelope, if it still comes, is handled as it
arrives. When a supervisor dies, what it left waiting is handled before its death is.
Nothing is dropped.
"""

from __future__ import annotations

from typing import Any

from .messages import InOrder

GAP_S = 2.0  # how long the root waits for a missing envelope before going on without it

Ready = list[tuple[tuple[Any, ...], Any]]  # (items, sender), in the order to handle them


def malformed(msg: InOrder) -> str:
    """What is wrong with ``msg``'s fields ("": nothing), naming the field."""
    for field, kind in (("origin", str), ("incarnation", int), ("instance", int), ("seq", int)):
        value = getattr(msg, field, None)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{field} must be {kind.__name__}, got {type(value).__name__}"
    if msg.seq < 1:
        return f"seq must be 1 or more, got {msg.seq}"
    if not isinstance(msg.items, tuple):
        return f"items must be a tuple, got {type(msg.items).__name__}"
    return ""


class _Line:
    __slots__ = ("held", "incarnation", "instance", "next", "since")

    def __init__(self, incarnation: int, instance: int) -> None:
        self.incarnation, self.instance = incarnation, instance
        self.next = 1
        self.held: dict[int, tuple[tuple[Any, ...], Any]] = {}
        self.since = 0.0  # when it began holding envelopes (monotonic)


class InOrderLines:
    """The root's view of each supervisor's numbered envelopes, a line per path."""

    def __init__(self) -> None:
        self.lines: dict[str, _Line] = {}

    def arrive(self, msg: InOrder, sender: Any, now: float) -> tuple[Ready, bool]:
        """What can be handled now that ``msg`` came, and whether the line began holding
        (the caller then looks again with :meth:`overdue` after ``GAP_S``)."""
        ready: Ready = []
        line = self.lines.get(msg.origin)
        if line is not None and msg.instance != line.instance:
            if msg.incarnation < line.incarnation:  # late, from an instance gone
                return [(msg.items, sender)], False
            ready += self._release(line)  # a new instance: its predecessor's mail goes first
            line = None
        if line is None:
            line = self.lines[msg.origin] = _Line(msg.incarnation, msg.instance)
        if msg.seq < line.next:  # late: given up on
            ready.append((msg.items, sender))
            return ready, False
        if msg.seq > line.next:
            began = not line.held
            if began:
                line.since = now
            line.held[msg.seq] = (msg.items, sender)
            return ready, began
        ready.append((msg.items, sender))
        line.next += 1
        while line.next in line.held:
            ready.append(line.held.pop(line.next))
            line.next += 1
        if line.held:  # another gap further on: it gets its own wait
            line.since = now
        return ready, False

    def overdue(self, origin: str, now: float) -> tuple[Ready, float]:
        """What ``origin``'s line held for ``GAP_S`` or longer, in order (the missing
        envelopes are given up on), or nothing and how much longer to wait."""
        line = self.lines.get(origin)
        if line is None or not line.held:
            return [], 0.0
        left = line.since + GAP_S - now
        if left > 0:
            return [], left
        return self._release(line), 0.0

    def release_under(self, path: str) -> Ready:
        """The supervisor at ``path`` died or was forgotten: what the lines of it and of the
        supervisors under it held, in order; their lines go."""
        prefix = path + "/"
        ready: Ready = []
        for origin in [o for o in self.lines if o == path or o.startswith(prefix)]:
            ready += self._release(self.lines.pop(origin))
        return ready

    def _release(self, line: _Line) -> Ready:
        held = line.held
        if not held:
            return []
        ready = [held[seq] for seq in sorted(held)]
        line.next = max(held) + 1
        held.clear()
        return ready
