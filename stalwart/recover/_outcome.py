"""What a recovery came to."""

from __future__ import annotations

from typing import Any

import msgspec


class RecoveryOutcome(msgspec.Struct, frozen=True):
    """The result of :meth:`Recovery.handle_error`.

    ``success``: the operation (or its fallback) produced ``value``.
    ``strategy`` and ``level``: what succeeded, or the last thing tried.
    ``attempts``: calls made after the original failure (retries, fallback).
    ``error``: the last error as ``"Type: message"`` when it did not succeed.
    ``remedies``: the remediation rules that ran (``reconnect``, ``retry_after``...).
    ``exception``: the last exception object when it did not succeed.
    """

    success: bool
    strategy: str
    level: int
    attempts: int
    duration_ms: float
    error: str | None = None
    value: Any = None
    category: str = ""
    fingerprint: str = ""
    remedies: tuple[str, ...] = ()
    exception: Any = None  # the last exception itself, to re-raise


def describe(exc: BaseException) -> str:
    """``"Type: message"`` of an exception, bounded."""
    return f"{type(exc).__name__}: {exc}"[:300]
