"""What the tree tells the telemetry actor, and what can be asked of it."""

from __future__ import annotations

from typing import Any

import msgspec


class Attempt(msgspec.Struct, frozen=True):
    """One recovery attempt: which strategy ran at which level, and how it went."""

    time: float
    path: str
    operation: str
    category: str
    fingerprint: str
    level: int
    strategy: str
    success: bool
    duration_s: float
    mem_delta_bytes: int = 0
    cpu_delta_s: float = 0.0


class MemoryEvent(msgspec.Struct, frozen=True):
    """A memory cleanup that ran (or a level change): tier, trigger, bytes before and after."""

    time: float
    tier: str
    trigger: str
    percent: float
    before_bytes: int = 0
    after_bytes: int = 0
    freed_bytes: int = 0
    duration_s: float = 0.0
    detail: str = ""


class DurableCheckpoint(msgspec.Struct, frozen=True):
    """A checkpoint of a ``Child(..., durable=True)`` to keep across whole-system restarts."""

    path: str
    state: Any
    incarnation: int = 0


class TelemetryQuery(msgspec.Struct, frozen=True):
    """Ask the telemetry actor; ``what`` is one of :data:`QUERIES`."""

    what: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class LearnedState(msgspec.Struct, frozen=True):
    """What a starting tree takes over from the store."""

    selector: dict[str, list[float]] = msgspec.field(default_factory=dict)
    timeouts: dict[str, float] = msgspec.field(default_factory=dict)  # "path|operation" -> s
    checkpoints: dict[str, Any] = msgspec.field(default_factory=dict)


class Alert(msgspec.Struct, frozen=True):
    """An alert raised, changed or resolved."""

    rule: str
    scope: str
    severity: str  # warning, critical; "resolved" when it clears
    message: str
    value: float | None
    time: float


class SubscribeAlerts(msgspec.Struct, frozen=True):
    """Send every :class:`Alert` to the sender from now on."""


QUERIES = (
    "learned",
    "metrics",
    "errors",
    "error",
    "resolve",
    "history",
    "events",
    "alerts",
    "flush",
    "path",
)
