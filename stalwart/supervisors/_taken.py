"""The child requests a supervisor instance took, by request id, with their answers.

A copy of a request reaches a supervisor when its crashed predecessor had taken the
original (the caller hands it to the supervisor above, which hands it on, and may send it
again itself), or when a caller reuses a request id on purpose to make a resend
recognisable. A copy is never done twice: one that comes while the original is under way
waits for its answer, and one that comes after it gets that answer again, as an actor
answers a copy from the replies it keeps.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

KEPT = 1024  # at least this many answers are kept (and at least the hold limit)
PENDING: Any = object()  # taken, not answered yet
MISSING: Any = object()  # not taken by this instance (or forgotten)


class TakenRequests:
    """Request id -> its answer (``PENDING`` until it has one), the latest ``limit``; and
    which of them were handed over by the supervisor above (it hears when they are
    answered: one its instance dies on twice is a poison message)."""

    __slots__ = ("answers", "handed", "limit")

    def __init__(self, limit: int = KEPT) -> None:
        self.answers: OrderedDict[str, Any] = OrderedDict()
        self.handed: set[str] = set()
        self.limit = max(KEPT, limit)

    def answer_of(self, request_id: str) -> Any:
        """The answer kept for ``request_id``: ``PENDING``, ``MISSING`` or the value."""
        return self.answers.get(request_id, MISSING)

    def take(self, request_id: str, handed: bool = False) -> None:
        """The request ``request_id`` is under way (``handed``: it was handed over)."""
        self.answers[request_id] = PENDING
        if handed:
            self.handed.add(request_id)
        while len(self.answers) > self.limit:
            forgotten, _ = self.answers.popitem(last=False)
            self.handed.discard(forgotten)

    def hand(self, request_id: str) -> None:
        """A handed-over copy of a request it had taken itself: say when it is answered."""
        if request_id in self.answers:
            self.handed.add(request_id)

    def answered(self, request_id: str, value: Any) -> bool:
        """``request_id`` was answered ``value``: kept if it was taken; True if the
        supervisor above waits to hear of it (it had handed it over)."""
        if request_id not in self.answers:
            return False
        self.answers[request_id] = value
        if request_id in self.handed:
            self.handed.discard(request_id)
            return True
        return False
