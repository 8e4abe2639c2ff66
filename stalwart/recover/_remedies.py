"""Self-healing rules: a known kind of failure runs its known remedy before the retry.

A remedy takes a :class:`Problem` and returns a :class:`RemedyAction` (what to
do before retrying) or ``None`` when it does not apply. Register your own with
``Recovery.remedy(category)``; the defaults:

- ``connection``: the ``reconnect`` hook;
- ``rate_limit``: wait what ``Retry-After`` asked (capped by ``max_wait_s``);
- ``timeout``: retry with the adapted timeout (longer than the one that ran out);
- ``resource_exhaustion``: a memory cleanup (the attached system's, or this process's);
- ``authentication``: the ``refresh_token`` hook.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..actors._memory import collect_garbage
from ..actors.errors import ServiceOff
from ..strategies import ErrorCategory, ErrorInfo
from ._context import Context


@dataclass(frozen=True)
class Problem:
    """What a remedy looks at: the error, its classification, the context, the recovery."""

    error: BaseException
    info: ErrorInfo
    context: Context
    recovery: Any  # the Recovery running it (hooks, system, learned timeouts)


@dataclass(frozen=True)
class RemedyAction:
    """Before retrying: wait ``wait_s``, run ``hook`` (blocking calls in a thread when async),
    and pass ``kwargs`` to the retried call."""

    name: str
    wait_s: float = 0.0
    hook: Callable[[], Any] | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)


Remedy = Callable[[Problem], RemedyAction | None]


def _hook(p: Problem, name: str) -> Callable[..., Any] | None:
    hook: Callable[..., Any] | None = getattr(p.context, name) or p.recovery.hooks.get(name)
    return hook


def reconnect(p: Problem) -> RemedyAction | None:
    """Connection errors: run the ``reconnect`` hook."""
    hook = _hook(p, "reconnect")
    return RemedyAction("reconnect", hook=hook) if hook else None


def honour_retry_after(p: Problem) -> RemedyAction | None:
    """Rate limits: wait what the server asked for (``Retry-After``), capped."""
    wait = p.info.retry_after_s
    if wait is None or wait <= 0:
        return None
    return RemedyAction("retry_after", wait_s=min(float(wait), p.recovery.max_wait_s))


def accepts_timeout(fn: Callable[..., Any] | None) -> bool:
    """``fn`` takes a ``timeout`` keyword."""
    if fn is None:
        return False
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "timeout" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def adapt_timeout(p: Problem) -> RemedyAction | None:
    """Timeouts: retry with the adapted timeout, when the retried call takes one."""
    if not accepts_timeout(p.context.retry):
        return None
    seconds = p.recovery.adapted_timeout(p.context)
    return RemedyAction("adapt_timeout", kwargs={"timeout": seconds}) if seconds else None


def free_memory(p: Problem) -> RemedyAction | None:
    """Memory errors: ask the attached system for a critical cleanup, else (no system, or
    one started with ``memory=None``) collect here."""
    system = p.recovery.system
    if system is None:
        return RemedyAction("memory_cleanup", hook=collect_garbage)
    reason = f"{p.context.service}: {type(p.error).__name__}"

    def cleanup() -> None:
        try:
            system.memory_cleanup(2, reason)
        except ServiceOff:  # (started with memory=None)
            collect_garbage()

    return RemedyAction("memory_cleanup", hook=cleanup)


def refresh_token(p: Problem) -> RemedyAction | None:
    """Authentication errors: run the ``refresh_token`` hook."""
    hook = _hook(p, "refresh_token")
    return RemedyAction("refresh_token", hook=hook) if hook else None


DEFAULT_REMEDIES: dict[str, Remedy] = {
    ErrorCategory.CONNECTION: reconnect,
    ErrorCategory.RATE_LIMIT: honour_retry_after,
    ErrorCategory.TIMEOUT: adapt_timeout,
    ErrorCategory.RESOURCE_EXHAUSTION: free_memory,
    ErrorCategory.AUTHENTICATION: refresh_token,
}
