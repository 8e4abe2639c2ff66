"""What one call under a retry policy knows: its statistics, callback state and verdicts.

Each call keeps its own :class:`RetryStats`; they are published per context
(thread or asyncio task), so re-entrant and concurrent calls of one policy never
overwrite each other's.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import msgspec

from ._classify import ErrorCategory, Verdict, default_classifier

Predicate = Callable[[Any], "bool | Awaitable[bool]"]
Callback = Callable[["RetryState"], None]


class RetryStats(msgspec.Struct):
    """What happened during one call: attempts made, time slept, the last error or result."""

    attempts: int = 1
    total_delay: float = 0.0
    last_error: BaseException | None = None
    gave_up: bool = False
    last_delay: float = 0.0
    last_result: Any = None
    budget_exhausted: bool = False


class RetryState(msgspec.Struct):
    """Passed to the ``before``, ``after``, ``before_sleep`` and ``on_give_up`` callbacks.

    ``error`` or ``result`` is the outcome of attempt ``attempt`` (both ``None``
    before it ran); ``elapsed`` counts from the start of the first attempt.
    """

    attempt: int
    error: BaseException | None
    next_delay: float
    elapsed: float
    stats: RetryStats
    result: Any = None


class ResultRejected(Exception):
    """Retrying stopped while ``retry_if_result`` still rejected the result.

    ``result`` is the last result and ``attempts`` how many attempts were made.
    """

    def __init__(self, result: Any, attempts: int, name: str = "call") -> None:
        super().__init__(result, attempts, name)
        self.result = result
        self.attempts = attempts
        self.name = name

    def __str__(self) -> str:
        return (
            f"{self.name}: result {self.result!r} still rejected by retry_if_result "
            f"after {self.attempts} attempt(s)"
        )


FIRST_TRY = RetryStats()  # shared by every call that succeeds at once; never mutated
NO_CALL_YET = RetryStats(attempts=0)
FINAL = frozenset({ErrorCategory.VALIDATION, ErrorCategory.CONFIGURATION, ErrorCategory.CRASH})

# builtin types that classify() files under connection or timeout whatever their message
_BUILTIN_TRANSIENT = frozenset(
    {
        ConnectionError,
        ConnectionAbortedError,
        ConnectionRefusedError,
        ConnectionResetError,
        BrokenPipeError,
        TimeoutError,
    }
)

# The last call of each policy, per context. One module-level variable (a ContextVar per
# policy would be kept alive by every context forever), holding a dict that is copied on
# write and keyed by weak references, so forgotten policies drop out at the next copy.
LAST_CALLS: ContextVar[dict[weakref.ref[Any], RetryStats]] = ContextVar("stalwart_retry_last_calls")
NO_CALLS: dict[weakref.ref[Any], RetryStats] = {}


def publish(key: weakref.ref[Any], stats: RetryStats) -> None:
    calls = LAST_CALLS.get(NO_CALLS)
    if calls.get(key) is not stats:
        if (len(calls) + 1) % 16:
            fresh = calls.copy()
        else:  # at every 16th size, also drop the policies that are gone
            fresh = {k: v for k, v in calls.items() if k() is not None}
        fresh[key] = stats
        LAST_CALLS.set(fresh)


def is_final(exc: BaseException) -> bool:
    """True when a retry cannot help: bad input, configuration and programming errors.

    The verdict of :func:`classify` (same rules, same order, user rules first) without
    the fingerprint and origin it also computes, which would triple a retry's cost.
    """
    if type(exc) in _BUILTIN_TRANSIENT and not default_classifier._user_rules:
        return False  # what the rules below decide for these exact types, without the walk
    found = None
    for rule in default_classifier._user_rules:
        found = rule(exc)
        if found is not None:
            break
    else:
        for rule in default_classifier._builtin_rules:
            found = rule(exc)
            if found is not None:
                break
    if isinstance(found, Verdict):
        return found.category in FINAL or found.retryable is False
    return found in FINAL


def truth(answer: Any, what: str) -> bool:
    if type(answer) is bool:
        return answer
    if inspect.isawaitable(answer):
        if inspect.iscoroutine(answer):
            answer.close()
        raise TypeError(
            f"retry: {what} returned an awaitable; use an async form to await it"
            " (an async def function, call_async, or `async with attempt`)"
        )
    return bool(answer)


async def async_truth(answer: Any) -> bool:
    if inspect.isawaitable(answer):
        answer = await answer
    return bool(answer)


class StatisticsView:
    """``fn.statistics``: reads the policy's statistics for the current context when used."""

    __slots__ = ("_policy",)

    def __init__(self, policy: Any) -> None:
        self._policy = policy

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy.statistics, name)

    def __repr__(self) -> str:
        return repr(self._policy.statistics)
