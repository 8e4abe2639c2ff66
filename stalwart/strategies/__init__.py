"""Recovery primitives with no actor dependency: backoff, retry, breakers, classification.

Everything here is plain Python, usable on its own (like tenacity or pybreaker)
and used by the actors for levels 1-2 of recovery and by the breaker actors.
"""

from ._attempts import Attempt
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
from ._breaker import CircuitBreaker
from ._breaker_types import BreakerState, CircuitOpenError, Outcome
from ._budget import BudgetStats, RetryBudget
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
from ._database import (
    BulkResult,
    ConflictError,
    PoolMonitor,
    PoolStats,
    atomic_update,
    db_retry,
    ensure_connection,
    is_transient,
    safe_bulk_insert,
    transaction,
)
from ._learned_timeout import LearnedTimeout, TimeoutRule
from ._retry import Retried, Retrying, retry
from ._retry_state import ResultRejected, RetryState, RetryStats
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
    "BudgetStats",
    "BulkResult",
    "Capped",
    "Chain",
    "CircuitBreaker",
    "CircuitOpenError",
    "Classifier",
    "ConflictError",
    "CountWindow",
    "ErrorCategory",
    "ErrorInfo",
    "Exponential",
    "Fibonacci",
    "Fixed",
    "Jitter",
    "JitterKind",
    "LearnedTimeout",
    "Linear",
    "OperationTimeout",
    "Outcome",
    "PoolMonitor",
    "PoolStats",
    "Random",
    "Ranked",
    "ResultRejected",
    "Retried",
    "RetryBudget",
    "RetryState",
    "RetryStats",
    "Retrying",
    "Severity",
    "StrategyStats",
    "Sum",
    "TimeWindow",
    "TimeoutRule",
    "Verdict",
    "WindowCounts",
    "atomic_update",
    "batch_with_retry",
    "chain",
    "classify",
    "db_retry",
    "ensure_connection",
    "fallback",
    "fingerprint_of",
    "is_transient",
    "normalise_message",
    "register_rule",
    "retry",
    "safe_bulk_insert",
    "safe_call",
    "schedule_from",
    "timeout",
    "transaction",
]
