"""The circuit breaker's vocabulary: its states, call outcomes and the rejection error."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker


class BreakerState(StrEnum):
    """The states of a :class:`CircuitBreaker`.

    ``CLOSED``, ``OPEN`` and ``HALF_OPEN`` follow each other by the breaker's rules;
    ``FORCED_OPEN`` (reject everything), ``DISABLED`` (permit everything, record
    nothing) and ``METRICS_ONLY`` (permit and record everything, never trip) are
    left only by a manual transition.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"


class Outcome(StrEnum):
    """What a call through the breaker came to; passed to outcome listeners."""

    SUCCESS = "success"
    FAILURE = "failure"
    SLOW_SUCCESS = "slow_success"
    SLOW_FAILURE = "slow_failure"
    IGNORED = "ignored"
    REJECTED = "rejected"


class CircuitOpenError(Exception):
    """A call was rejected because the breaker is open; ``remaining_s`` says for how long.

    Raised as ``CircuitOpenError(name, state, remaining_s)``; it pickles, so it can
    cross process boundaries.
    """

    args: tuple[str, str, float]

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self.args[0]

    @property
    def state(self) -> str:
        """The breaker's state when the call was rejected."""
        return self.args[1]

    @property
    def remaining_s(self) -> float:
        """Seconds until the breaker lets a trial call through (``inf`` when forced open)."""
        return self.args[2]

    def __str__(self) -> str:
        return (
            f"circuit {self.name!r} is {self.state}: calls are rejected"
            f" for another {self.remaining_s:.3f}s"
        )


Permit = tuple[int, float]
"""What :meth:`CircuitBreaker.permit` hands out: (generation, start time on the breaker's clock)."""

StateListener = Callable[["CircuitBreaker", BreakerState, BreakerState], None]
OutcomeListener = Callable[["CircuitBreaker", Outcome, float, BaseException | None], None]
