"""Coalesced sends: what an actor sends to one address in one turn leaves as one envelope.

Thespian's TCP transport pays for every message (a frame, a socket write, an
acknowledgement, a turn of the receiver's loop), and it slows down as more are in
flight. So while an actor handles a message (one *turn*), what it sends waits; at
the end of the turn each address gets what was sent to it, in order: the message
alone if there is one, a :class:`~stalwart.actors.messages.Batch` if there are more
and the address is known to unpack batches (a Stalwart actor: one the message
carries a tree envelope to, or that the host knows). The receiving actor unpacks a
batch and handles each item as if it had come alone (its own order,
acknowledgement, checkpoint and recovery), so nothing about delivery changes but
the number of envelopes. A raw Thespian actor gets its messages one by one.

The tree's instructions (to a supervisor, the root, the runtime) do not wait: they
leave at once, after everything sent before them, so no destination sees the actor's
messages out of the order they were sent.

The ``System`` side bundles the same way: :func:`runs` and :func:`envelopes` serve both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from .messages import Acked, Batch, Forwarded, Reply, Request, Told

MAX_BUNDLE = 256  # messages in one envelope at most

BUNDLED: frozenset[type] = frozenset({Request, Told, Reply, Acked, Forwarded})


def envelopes(msgs: list[Any]) -> Iterator[Any]:
    """What ``msgs`` (to one address, in order) travel as: alone, or batches of at most
    ``MAX_BUNDLE``."""
    if len(msgs) == 1:
        yield msgs[0]
        return
    for at in range(0, len(msgs), MAX_BUNDLE):
        chunk = msgs[at : at + MAX_BUNDLE]
        yield chunk[0] if len(chunk) == 1 else Batch(tuple(chunk))


def runs(items: Iterable[tuple[Any, Any]]) -> list[tuple[Any, list[Any]]]:
    """(address, message) pairs as runs of consecutive messages to one address, in order."""
    out: list[tuple[Any, list[Any]]] = []
    for address, msg in items:
        if out and out[-1][0] == address:
            out[-1][1].append(msg)
        else:
            out.append((address, [msg]))
    return out


def unpacked(msg: Any) -> Iterable[Any]:
    """The messages an envelope carries (itself if it is not a batch)."""
    return msg.items if type(msg) is Batch else (msg,)


_WAITS: dict[type, bool] = {}  # message type -> waits for the end of the turn


def _waits(kind: type) -> bool:
    """The tree's envelopes and the workload's own messages wait; instructions do not."""
    waits = _WAITS.get(kind)
    if waits is None:
        module = kind.__module__
        waits = _WAITS[kind] = kind in BUNDLED or not module.startswith(("stalwart.", "thespian"))
    return waits


class Coalescing:
    """Mixin for a Stalwart actor (before the runtime's ``Actor`` in its bases): what it
    sends during a turn leaves at its end, one envelope per address.

    The host calls :meth:`_sw_gather` when a message arrives and, if that returned
    True (the outermost turn), :meth:`_sw_scatter` once it has been handled.
    """

    _sw_pile: list[tuple[Any, list[Any]]] | None = None  # in a turn: per address, in order
    _sw_bundled: ClassVar[frozenset[type]] = BUNDLED  # envelopes only Stalwart actors get

    def _sw_unpacks(self, target: Any) -> bool:
        """True if ``target`` is known to be a Stalwart actor (hosts know more of them)."""
        return False

    def send(self, target: Any, msg: Any) -> None:
        pile = self._sw_pile
        if pile is None:
            super().send(target, msg)  # type: ignore[misc]
            return
        kind = type(msg)
        if kind in self._sw_bundled or _waits(kind):
            if pile:
                last = pile[-1]
                if last[0] is target or last[0] == target:
                    last[1].append(msg)
                    return
                for address, queued in pile:
                    if address == target:
                        queued.append(msg)
                        return
            pile.append((target, [msg]))
        else:  # it leaves now, behind what waits
            if pile:
                self._sw_flush_pile()
            super().send(target, msg)  # type: ignore[misc]

    def _sw_gather(self) -> bool:
        """A message arrives: True if this starts a turn (one being handled starts none)."""
        if self._sw_pile is not None:
            return False
        self._sw_pile = []
        return True

    def _sw_scatter(self) -> None:
        """The turn is over: what waits leaves."""
        if self._sw_pile:
            self._sw_flush_pile()
        self._sw_pile = None

    def _sw_flush_pile(self) -> None:
        pile = self._sw_pile
        if not pile:
            return
        self._sw_pile = []
        post = super().send  # type: ignore[misc]
        bundled = self._sw_bundled
        for target, msgs in pile:
            if len(msgs) == 1:
                post(target, msgs[0])
            elif any(type(m) in bundled for m in msgs) or self._sw_unpacks(target):
                for envelope in envelopes(msgs):
                    post(target, envelope)
            else:  # not known to unpack batches (a raw Thespian actor): one by one
                for msg in msgs:
                    post(target, msg)
