"""The escalation ladder, restart intensity and the kinds of failure: the recovery policy's parts.

Everything here is pure: time comes in as ``now`` (monotonic seconds), nothing
reads a clock. The kernel (:mod:`._kernel`) combines these pieces into every
decision a supervisor makes.

- :class:`RestartIntensity` is OTP's restart intensity, exactly: a restart is
  allowed while the restarts within the last ``within_s`` seconds (the window's
  start included), this one counted, are at most ``max_restarts``.
- :class:`Ladder` holds the level reached for one actor and one error
  fingerprint. A failure gets the lowest level whose attempts are not used up;
  level 4 is the top and repeats (only restart intensity escalates beyond a
  supervisor); a failure-free quiet period sends the ladder back to level 1.
  Failures are counted in *rounds*: while one message's retry at level 1 or 2
  is under way, other messages failing the same way join that level instead of
  each using an attempt.
- :func:`failure_kind` sorts failures into the three the policy treats apart:
  bad input, outages (the cause is outside the actor) and faults.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import NamedTuple

from ..strategies import ErrorCategory, ErrorInfo
from .spec import LevelPolicy

TOP_LEVEL = 4  # the highest rung a ladder reaches; level 5 is the root's, by intensity only


class FailureKind(StrEnum):
    """How the policy treats a failure."""

    INPUT = "input"  # retrying cannot fix it (bad input, configuration): answered at once
    OUTAGE = "outage"  # something the actor depends on is failing: restarts rarely help
    FAULT = "fault"  # something in the actor: retries, then restarts, escalating


OUTAGE_CATEGORIES = frozenset(
    {
        ErrorCategory.CONNECTION,
        ErrorCategory.TIMEOUT,
        ErrorCategory.RATE_LIMIT,
        ErrorCategory.DEPENDENCY,
        ErrorCategory.DATABASE,
    }
)


def failure_kind(info: ErrorInfo) -> FailureKind:
    """Input if retrying cannot help; an outage if the cause is outside the actor; else a fault."""
    if not info.retryable:
        return FailureKind.INPUT
    if info.category in OUTAGE_CATEGORIES:
        return FailureKind.OUTAGE
    return FailureKind.FAULT


class RestartIntensity:
    """At most ``max_restarts`` restarts within any ``within_s`` seconds (OTP's rule).

    :meth:`add` counts a restart at ``now`` and answers whether it is allowed:
    the restarts at or after ``now - within_s``, this one included, must number
    at most ``max_restarts``. With ``max_restarts=0`` every restart exceeds it.
    """

    def __init__(self, max_restarts: int, within_s: float) -> None:
        self.max_restarts = max_restarts
        self.within_s = within_s
        self._restarts: deque[float] = deque()

    def _prune(self, now: float) -> None:
        threshold = now - self.within_s
        while self._restarts and self._restarts[0] < threshold:
            self._restarts.popleft()

    def add(self, now: float) -> bool:
        """Count a restart at ``now``; False if that exceeds the intensity (give up)."""
        self._prune(now)
        self._restarts.append(now)
        return len(self._restarts) <= self.max_restarts

    def room(self, now: float) -> bool:
        """True if a restart at ``now`` would be within the intensity (nothing is counted)."""
        self._prune(now)
        return len(self._restarts) < self.max_restarts


class Decision(NamedTuple):
    """The level for a failure, and which attempt at that level it is."""

    level: int
    attempt: int


class Ladder:
    """Escalation state for one actor and one error fingerprint.

    ``restarts`` counts the level-3/4 decisions of the current episode (since the
    ladder last went quiet); ``outage`` is set once restarting has been found not
    to help against an outage, and holds until the quiet period passes.
    """

    def __init__(self, policy: LevelPolicy) -> None:
        self.policy = policy
        self.level = 0
        self.attempts = 0
        self.round = 0  # attempts used so far (a failure from an earlier round joins)
        self.restarts = 0
        self.outage = False
        self.last_event = float("-inf")

    def _expire(self, now: float) -> None:
        if self.level and now - self.last_event >= self.policy.quiet_period_s:
            self.level, self.attempts, self.restarts, self.outage = 0, 0, 0, False

    def on_failure(
        self,
        now: float,
        minimum: int = 1,
        seen: int | None = None,
        restarts_allowed: int | None = None,
    ) -> Decision | None:
        """The decision for a new failure at ``now``; ``minimum`` raises the floor (crash: 3).

        ``seen`` is the :attr:`round` this message last got a decision in (0 for its
        first failure): if another message has used an attempt since, this failure
        joins the current level 1 or 2 without using one. Without ``seen`` every
        failure uses an attempt. ``restarts_allowed`` caps the level-3/4 decisions
        of this episode: past it, None is returned (and nothing changes).
        """
        self._expire(now)
        self.last_event = now
        if (
            seen is not None
            and seen < self.round
            and self.level in (1, 2)
            and self.level >= minimum
        ):
            return Decision(self.level, self.attempts)
        level, attempts = (self.level, self.attempts) if self.level else (1, 0)
        if level < minimum:
            level, attempts = minimum, 0
        while level < TOP_LEVEL and attempts >= self.policy.budget(level):
            level, attempts = level + 1, 0
        if level >= 3 and restarts_allowed is not None and self.restarts >= restarts_allowed:
            return None  # no restart left for this outage (the caller enters outage mode)
        attempts += 1
        self.level, self.attempts = level, attempts
        self.round += 1
        if level >= 3:
            self.restarts += 1
        return Decision(level, attempts)

    def in_outage(self, now: float) -> bool:
        """True while restarting has been found not to help (until a quiet period passes)."""
        self._expire(now)
        return self.outage

    def enter_outage(self, now: float) -> None:
        """Restarting did not help against this failure: stop restarting for it."""
        self._expire(now)
        self.last_event = now
        self.outage = True
        self.level = max(self.level, 2)

    def end_outage(self) -> None:
        """What failed is back (a message went through, or the actor started)."""
        self.outage = False

    def on_success(self, now: float) -> None:
        """A recovery worked: the ladder resets once a quiet period passes without failures."""
        self._expire(now)
        if self.level:
            self.last_event = now

    def current(self, now: float) -> int:
        """The level reached (0 before any failure, and again after a quiet period)."""
        self._expire(now)
        return self.level
