"""The escalation ladder and restart intensity: the whole recovery policy, in one place.

A :class:`Ladder` holds the level reached for one actor and one error
fingerprint. Each failure gets the lowest level whose attempts are not used up;
after a failure-free quiet period (a success restarts the clock) the ladder is
back at level 1. Failures are counted in *rounds*: while one message's retry
at a level is under way, other messages failing the same way join that level
instead of each using an attempt, so ten requests failing together climb the
ladder as fast as one does. :class:`RestartIntensity` is OTP's restart intensity: at most
``max_restarts`` restarts within ``within_s`` seconds. :func:`decide` combines
the two exactly as a supervisor does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from .spec import LevelPolicy

MAX_LEVEL = 5


class RestartIntensity:
    """At most ``max_restarts`` restarts within any ``within_s`` seconds."""

    def __init__(
        self, max_restarts: int, within_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_restarts = max_restarts
        self.within_s = within_s
        self._clock = clock
        self._restarts: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._restarts and now - self._restarts[0] >= self.within_s:
            self._restarts.popleft()

    def try_restart(self) -> bool:
        """Count a restart and return True, or return False if it would exceed the intensity."""
        now = self._clock()
        self._prune(now)
        if len(self._restarts) >= self.max_restarts:
            return False
        self._restarts.append(now)
        return True

    def recent(self) -> int:
        """Restarts counted within the current period."""
        self._prune(self._clock())
        return len(self._restarts)


class Decision(NamedTuple):
    """The level to use for a failure, and which attempt at that level it is."""

    level: int
    attempt: int


class Ladder:
    """Escalation state for one actor and one error fingerprint."""

    def __init__(self, policy: LevelPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self.level = 0
        self.attempts = 0
        self.round = 0  # attempts used so far (a failure from an earlier round joins)
        self._last_event = float("-inf")

    def on_failure(self, minimum: int = 1, seen: int | None = None) -> Decision:
        """The decision for a new failure; ``minimum`` raises the floor (a crash starts at 3).

        ``seen`` is the :attr:`round` this message last got a decision in (0 for
        its first failure). If another message has used an attempt since, this
        failure joins the current level 1 or 2 without using one. Without
        ``seen`` every failure uses an attempt.
        """
        now = self._clock()
        if self.level and now - self._last_event >= self.policy.quiet_period_s:
            self.level, self.attempts = 0, 0
        self._last_event = now
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
        while level < MAX_LEVEL and attempts >= self.policy.budget(level):
            level, attempts = level + 1, 0
        attempts += 1
        self.level, self.attempts = level, attempts
        self.round += 1
        return Decision(level, attempts)

    def on_success(self) -> None:
        """A recovery worked: the ladder resets once a quiet period passes without failures."""
        self._last_event = self._clock()

    @property
    def current(self) -> int:
        """The level reached (0 before any failure, 1 again after a quiet period)."""
        if self.level and self._clock() - self._last_event >= self.policy.quiet_period_s:
            return 0
        return self.level


class Action(NamedTuple):
    """What a supervisor does about a failure."""

    level: int
    attempt: int
    escalate: bool  # the restart would exceed the intensity: fail to the parent instead


def decide(
    ladder: Ladder, intensity: RestartIntensity, minimum: int = 1, seen: int | None = None
) -> Action:
    """Pick the level for a failure; levels 3 and 4 must also fit the restart intensity."""
    level, attempt = ladder.on_failure(minimum, seen)
    if level in (3, 4) and not intensity.try_restart():
        return Action(level, attempt, True)
    return Action(level, attempt, False)
