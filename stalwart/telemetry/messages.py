"""What the tree tells the telemetry actor, and what can be asked of it."""

from __future__ import annotations

import msgspec

from ..supervisors.messages import (
    Attempt,
    DurableCheckpoint,
    LearnedState,
    MemoryEvent,
    TelemetryRecord,
)
from ..supervisors.queries import (
    AlertsQuery,
    ErrorQuery,
    ErrorsQuery,
    FlushQuery,
    HistoryQuery,
    InsightsQuery,
    LearnedQuery,
    MetricsQuery,
    ResolveErrorQuery,
    StoredEventsQuery,
    StoreDiagnosticsQuery,
    StorePathQuery,
    StoreQuery,
    TotalsQuery,
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


__all__ = [
    "Alert",
    "AlertsQuery",
    "Attempt",
    "DurableCheckpoint",
    "ErrorQuery",
    "ErrorsQuery",
    "FlushQuery",
    "HistoryQuery",
    "InsightsQuery",
    "LearnedQuery",
    "LearnedState",
    "MemoryEvent",
    "MetricsQuery",
    "ResolveErrorQuery",
    "StoreDiagnosticsQuery",
    "StorePathQuery",
    "StoreQuery",
    "StoredEventsQuery",
    "SubscribeAlerts",
    "TelemetryRecord",
    "TotalsQuery",
]
