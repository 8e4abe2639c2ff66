"""A retry timeout learned from how long handling a message really takes.

A supervisor waits a limited time for a level 1-2 retry to answer: a retry that hangs counts
as failed. Too long a wait lets a hung handler hold a caller; too short a wait fails retries
that were about to succeed. :class:`LearnedTimeout` derives the wait from two measurements of
the same operation (a message type at one actor path):

- how long its handler took when it succeeded, as the actor timed it (the latest
  ``HANDLER_SAMPLES`` per instance, sent with a failure report), and
- how long each retry step took from the supervisor's sending it to its answer (queueing at
  the actor included; backoff excluded), for the retries that succeeded.

The timeout is a high quantile of those times multiplied by a factor, kept within
``[min_s, max_s]``, then raised to the longest success ever observed plus a margin, so it is
never below what was seen to succeed. The child's own ``retry_timeout_s`` is the only bound
above that: it is the user's explicit limit.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import msgspec

HANDLER_SAMPLES = 64  # successful handler durations an instance keeps per message type
STEP_SAMPLES = 200  # successful retry steps a supervisor keeps per operation
MARGIN = 1.25  # the timeout stays this far above the longest success observed
FRESH = 5  # samples of this run before a value learned in earlier runs stops counting


class TimeoutRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a timeout is learned: ``percentile`` of the successful durations times
    ``factor``, within ``[min_s, max_s]`` (set with ``start(telemetry={"timeout_...": ...})``)."""

    percentile: float = 99.0
    factor: float = 3.0
    min_s: float = 1.0
    max_s: float = 30.0


def quantile(values: Iterable[float], percentile: float) -> float:
    """The nearest-rank ``percentile`` of ``values`` (which must not be empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class LearnedTimeout:
    """The retry timeout of one operation, updated as its successes are observed.

    ``prior_s`` and ``longest_s`` are what earlier runs learned (from the recovery store):
    the prior holds until this run has ``FRESH`` samples of its own; the longest success
    always bounds the timeout from below.
    """

    __slots__ = ("handler_times", "longest_s", "prior_s", "rule", "steps")

    def __init__(
        self, rule: TimeoutRule, prior_s: float | None = None, longest_s: float = 0.0
    ) -> None:
        self.rule = rule
        self.prior_s = prior_s
        self.longest_s = longest_s
        self.steps: deque[float] = deque(maxlen=STEP_SAMPLES)
        self.handler_times: tuple[float, ...] = ()

    def observe_step(self, seconds: float) -> None:
        """A retry step that succeeded took ``seconds`` from sending to answer."""
        self.steps.append(seconds)
        self.longest_s = max(self.longest_s, seconds)

    def observe_handler(self, samples: Iterable[float]) -> None:
        """An instance's latest successful handler durations (they replace its last report)."""
        self.handler_times = tuple(samples)[-HANDLER_SAMPLES:]
        if self.handler_times:
            self.longest_s = max(self.longest_s, max(self.handler_times))

    @property
    def samples(self) -> int:
        """How many durations of this run the timeout is learned from."""
        return len(self.steps) + len(self.handler_times)

    def learned_s(self) -> float | None:
        """The timeout before the child's ceiling; None when nothing is known yet."""
        rule = self.rule
        values = [*self.steps, *self.handler_times]
        if values:
            high = quantile(values, rule.percentile) * rule.factor
            learned = min(rule.max_s, max(rule.min_s, high))
            if self.prior_s is not None and len(values) < FRESH:
                learned = max(learned, self.prior_s)
        elif self.prior_s is not None:
            learned = self.prior_s
        else:
            return None
        return max(learned, self.longest_s * MARGIN)

    def value(self, ceiling_s: float) -> float:
        """The timeout to wait for a retry, never above ``ceiling_s``."""
        learned = self.learned_s()
        return ceiling_s if learned is None else min(ceiling_s, learned)
