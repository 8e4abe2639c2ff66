"""The child requests a supervisor instance took, by request id, with their answers.

A copy of a request reaches a supervisor when its crashed predecessor had taken the
original (the caller hands it to the supervisor above, which hands it on, and may send it
again itself), or when a caller reuses a request id on purpose to make a resend
recognisable. A copy is never done twice: one that comes while the original is under way
waits for its answer, and one that comes after it gets that answer again, as an actor
answers a copy from the replies it keeps. Questions (``which_children``...) change
nothing: their answers are not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

KEPT = 1024  # at least this many answers are kept (and at least the hold limit)
PENDING: Any = object()  # taken, not answered yet
MISSING: Any = object()  # not taken by this instance (or its answer forgotten)


class TakenRequests:
    """The requests under way, by id (whether each was handed over by the supervisor
    above, which hears when it is answered, and whether its answer is kept), and the
    answers of the latest ``limit`` that changed something."""

    __slots__ = ("answers", "limit", "pending")

    def __init__(self, limit: int = KEPT) -> None:
        self.pending: dict[str, tuple[bool, bool]] = {}  # id -> (handed, keep its answer)
        self.answers: OrderedDict[str, Any] = OrderedDict()
        self.limit = max(KEPT, limit)

    def answer_of(self, request_id: str) -> Any:
        """What ``request_id`` got: ``PENDING`` (under way), ``MISSING``, or the answer."""
        if request_id in self.pending:
            return PENDING
        return self.answers.get(request_id, MISSING)

    def take(self, request_id: str, handed: bool = False, keep: bool = True) -> None:
        """The request ``request_id`` is under way (``handed``: it was handed over;
        ``keep``: its answer is kept for copies)."""
        self.pending[request_id] = (handed, keep)

    def hand(self, request_id: str) -> None:
        """A handed-over copy of a request under way: say when it is answered."""
        _, keep = self.pending[request_id]
        self.pending[request_id] = (True, keep)

    def answered(self, request_id: str, value: Any) -> bool:
        """``request_id`` was answered ``value``: True if the supervisor above waits to
        hear of it (it had handed it over)."""
        taken = self.pending.pop(request_id, None)
        if taken is None:
            return False
        handed, keep = taken
        if keep:
            self.answers[request_id] = value
            while len(self.answers) > self.limit:
                self.answers.popitem(last=False)
        return handed
