"""What the tree tells the telemetry actor, and what can be asked of it."""

from __future__ import annotations

import msgspec

from ..supervisors.messages import (
    Attempt,
    DurableCheckpoint,
    LearnedState,
    MemoryEvent,
    TelemetryQuery,
    TelemetryRecord,
)


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
    "insights",
    "flush",
    "path",
)


__all__ = [
    "QUERIES",
    "Alert",
    "Attempt",
    "DurableCheckpoint",
    "LearnedState",
    "MemoryEvent",
    "SubscribeAlerts",
    "TelemetryQuery",
    "TelemetryRecord",
]
