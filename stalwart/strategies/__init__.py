"""Recovery primitives with no actor dependency: backoff, retry, breakers, classification.

Everything here is plain Python, usable on its own (like tenacity or pybreaker)
and used by the actors for levels 1-2 of recovery and by the breaker actors.
"""

from ._backoff import (
    AnyBackoff,
    Backoff,
    Capped,
    Chain,
    Exponential,
    Fibonacci,
    Fixed,
    Jitter,
    JitterKind,
    Linear,
    Random,
    Sum,
    chain,
    schedule_from,
)
from ._breaker import BreakerState, CircuitBreaker, CircuitOpenError, Outcome
from ._classify import (
    Classifier,
    ErrorCategory,
    ErrorInfo,
    Severity,
    Verdict,
    classify,
    fingerprint_of,
    normalise_message,
    register_rule,
)
from ._retry import Attempt, Retrying, RetryState, RetryStats, retry
from ._selector import DEFAULT_CANDIDATES, AdaptiveSelector, Ranked, StrategyStats
from ._window import CountWindow, TimeWindow, WindowCounts
from ._wrappers import BatchResult, OperationTimeout, batch_with_retry, fallback, safe_call, timeout

__all__ = [
    "DEFAULT_CANDIDATES",
    "AdaptiveSelector",
    "AnyBackoff",
    "Attempt",
    "Backoff",
    "BatchResult",
    "BreakerState",
    "Capped",
    "Chain",
    "CircuitBreaker",
    "CircuitOpenError",
    "Classifier",
    "CountWindow",
    "ErrorCategory",
    "ErrorInfo",
    "Exponential",
    "Fibonacci",
    "Fixed",
    "Jitter",
    "JitterKind",
    "Linear",
    "OperationTimeout",
    "Outcome",
    "Random",
    "Ranked",
    "RetryState",
    "RetryStats",
    "Retrying",
    "Severity",
    "StrategyStats",
    "Sum",
    "TimeWindow",
    "Verdict",
    "WindowCounts",
    "batch_with_retry",
    "chain",
    "classify",
    "fallback",
    "fingerprint_of",
    "normalise_message",
    "register_rule",
    "retry",
    "safe_call",
    "schedule_from",
    "timeout",
]
