"""Per-path order and redelivery: numbered channels between a sender and a path.

Every message a sender sends to a path (a ``tell`` as :class:`Told`, a request
with its ``seq``) gets the next number of the sender's channel to that path. The
sender keeps what the path has not confirmed; the receiving actor handles each
channel in number order, holds back a message that overtook another (restarts
and redirections can reorder them), and drops one it handled already. It
confirms tells with :class:`Acked` once the checkpoint after them is kept (a
reply confirms a request and everything before it), and keeps its marks (the
next number per channel) with that checkpoint. When the path's instance dies,
the sender sends again everything unconfirmed: so a tell is handled at least
once, in order, and once only when its actor checkpoints.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

MAX_LANES = 256  # sender channels an actor keeps marks for (the least recently used go)
GAP_S = 0.3  # a message held back this long for a missing one: ask the sender again
GAP_LOOKS = 10  # asked this often in vain (the sender is gone): go on without the missing one
ACK_S = 0.02  # confirmations wait this long, to go out together
EAGER_ACK_S = 2.0  # after a restart, tells are confirmed one by one for this long
MAX_SKIPPED = 64  # numbers a lane went on without, remembered to handle if they come late


class Lane:
    """The receiver's side of one sender's channel."""

    __slots__ = (
        "early",
        "expected",
        "gap_looks",
        "gap_mark",
        "owed",
        "pending",
        "reply_to",
        "skipped",
    )

    def __init__(self, expected: int, reply_to: Any) -> None:
        self.expected = expected  # the number to handle next
        self.reply_to = reply_to  # the sender
        self.early: dict[int, tuple[Any, Any]] = {}  # held back: seq -> (message, sender)
        self.owed = False  # handled tells not yet confirmed
        self.gap_mark = 0  # ``expected`` when the gap was last looked at
        self.gap_looks = 0  # looks in a row that found no progress
        self.skipped: set[int] = set()  # numbers it went on without
        self.pending: set[int] = set()  # taken, but their handlers are not done yet

    def done(self) -> int:
        """The first number not yet handled to the end (everything before it is)."""
        return min(self.pending) if self.pending else self.expected

    def skip_to(self, seq: int) -> None:
        """Go on at ``seq`` without the numbers before it (their sender is gone)."""
        self.skipped.update(range(self.expected, seq))
        while len(self.skipped) > MAX_SKIPPED:
            self.skipped.discard(min(self.skipped))
        self.expected, self.gap_looks = seq, 0


class Lanes:
    """An actor's lanes, with the marks an earlier instance left."""

    def __init__(self) -> None:
        self.lanes: OrderedDict[str, Lane] = OrderedDict()
        self.marks: dict[str, int] = {}

    def learn(self, marks: Any) -> None:
        """Take marks from a checkpoint or a predecessor (the furthest wins)."""
        for chan, expected in marks or ():
            if expected > self.marks.get(chan, 0):
                self.marks[chan] = expected
        while len(self.marks) > MAX_LANES:  # the oldest go (their senders: at least once)
            del self.marks[next(iter(self.marks))]

    def lane(self, chan: str, base: int, reply_to: Any) -> Lane:
        lanes = self.lanes
        lane = lanes.get(chan)
        if lane is None:
            lane = lanes[chan] = Lane(max(self.marks.pop(chan, 1), base, 1), reply_to)
            if len(lanes) > MAX_LANES:
                self._forget_one()
        else:
            lanes.move_to_end(chan)
            if base > lane.expected:
                lane.expected = base
        return lane

    def _forget_one(self) -> None:
        """Keep the least recently used idle lane as a mark only (a sender long gone)."""
        for chan, lane in self.lanes.items():
            if not lane.early and not lane.owed and not lane.pending:
                del self.lanes[chan]
                self.marks[chan] = lane.expected
                break
        while len(self.marks) > MAX_LANES:  # the oldest marks go (their senders at least once)
            del self.marks[next(iter(self.marks))]

    def snapshot(self) -> tuple[tuple[str, int], ...]:
        """The marks to keep with a checkpoint."""
        marks = dict(self.marks)
        for chan, lane in self.lanes.items():
            marks[chan] = lane.done()
        return tuple(marks.items())

    def activity(self) -> tuple[int, bool]:
        """A number that grows with every message taken from a sender's channel, and
        whether one taken is still being handled (how a Pool tells an idle instance)."""
        total, busy = sum(self.marks.values()), False
        for lane in self.lanes.values():
            total += lane.expected
            busy = busy or bool(lane.pending)
        return total, busy

    def held_back(self) -> list[tuple[Any, Any]]:
        """Take every held-back message, in number order per channel."""
        out: list[tuple[Any, Any]] = []
        for lane in self.lanes.values():
            for seq in sorted(lane.early):
                out.append(lane.early[seq])
            lane.early.clear()
        return out


class Outbox:
    """The sender's side of its channel to one path: what the path has not confirmed."""

    __slots__ = ("ids", "next", "resends", "unacked")

    def __init__(self) -> None:
        self.next = 1
        self.unacked: dict[int, Any] = {}  # seq -> the Told or Request, in number order
        self.ids: dict[str, int] = {}  # request id -> its seq (while unconfirmed)
        self.resends: dict[int, int] = {}  # seq -> deaths of the path it was unconfirmed at

    def keep(self, seq: int, msg: Any, request_id: str = "") -> None:
        self.unacked[seq] = msg
        if request_id:
            self.ids[request_id] = seq

    def forget(self, request_id: str) -> None:
        """A request its caller no longer waits for: nothing keeps the base below it."""
        seq = self.ids.pop(request_id, 0)
        self.unacked.pop(seq, None)

    def number(self) -> tuple[int, int]:
        """(seq, base) for the next message."""
        seq = self.next
        self.next = seq + 1
        return seq, self.base(seq)

    def base(self, default: int | None = None) -> int:
        unacked = self.unacked
        if unacked:
            first: int = next(iter(unacked))
            return first
        return self.next if default is None else default

    def confirm(self, upto: int) -> None:
        unacked = self.unacked
        while unacked:
            first = next(iter(unacked))
            if first > upto:
                return
            msg = unacked.pop(first)
            request_id = getattr(msg, "id", None)
            if request_id is not None:
                self.ids.pop(request_id, None)
            if self.resends:
                self.resends.pop(first, None)

    def answered(self, request_id: str) -> None:
        """A request was answered: it, and everything sent before it, was handled."""
        seq = self.ids.get(request_id)
        if seq is not None:
            self.confirm(seq)
