"""Recovery for code outside actors: request handlers, scripts, database code.

``Recovery.handle_error(exc, context)`` (async; ``handle_error_sync`` for
threads) classifies the error, runs the levels that make sense outside a tree
(1 retry, 2 backoff with the remedy as adjustment or the fallback, 3 reset the
component, 4-5 ask an attached system) with the strategy the adaptive selector
picks at each, records every attempt, and returns a :class:`RecoveryOutcome`.
``Recovery.protect`` does the same as a decorator. Remedies for known kinds of
failure are registered rules (see :mod:`stalwart.recover._remedies`).
"""

from ._context import Context
from ._outcome import RecoveryOutcome
from ._recovery import Recovery
from ._remedies import DEFAULT_REMEDIES, Problem, Remedy, RemedyAction

__all__ = [
    "DEFAULT_REMEDIES",
    "Context",
    "Problem",
    "Recovery",
    "RecoveryOutcome",
    "Remedy",
    "RemedyAction",
]
