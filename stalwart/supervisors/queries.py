"""Questions to a running system: one type per question, and what answers it.

``System``, the HTTP API and the recovery store share these types. The root
answers :class:`Query` types itself (or passes a :class:`ServiceQuery` on to a
system service); the telemetry actor answers :class:`StoreQuery` types from the
recovery store. A question of any other type is answered with an error.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..actors.messages import RecoveryRequest

Limit = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Window = Annotated[float, msgspec.Meta(gt=0)]


class Query(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of the questions the root answers (or passes on); an unknown type is an error."""


class InjectQuery(Query, frozen=True):
    """Inject a fault (``System.inject``): answered ``True``, or refused with an error when
    the system was not started with ``chaos=True``."""

    path: str
    kind: str
    count: Annotated[int, msgspec.Meta(ge=1)] = 1
    nbytes: Annotated[int, msgspec.Meta(ge=0)] = 0


class StatusQuery(Query, frozen=True):
    """The live tree: ``(entries, phase, stop_reason)``; ``path``: that node and what is
    below it, ``offset``/``limit``: a page of those (in tree order; None: all), answered
    ``(entries, phase, stop_reason, total)``."""

    path: str | None = None
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0
    limit: Annotated[int, msgspec.Meta(ge=0)] | None = None


class SummaryQuery(Query, frozen=True):
    """The live tree in brief (a ``StatusSummary``): counts by state and kind below
    ``path``, and the first ``limit`` entries that need a look."""

    path: str | None = None
    limit: Limit = 100


class TreeGaugesQuery(Query, frozen=True):
    """What ``GET /metrics`` reads of the live tree: a ``TreeGauges``."""


class PathsQuery(Query, frozen=True):
    """``(paths, why)``: every path the tree knows now (children started at run time
    included), and why ``path`` is unknown if it is."""

    path: str = ""


class EventsQuery(Query, frozen=True):
    """The events after number ``since``."""

    since: Annotated[int, msgspec.Meta(ge=0)] = 0


class DeadLettersQuery(Query, frozen=True):
    """The dead letters kept."""


class FinalReportQuery(Query, frozen=True):
    """The report written when the system stopped at level 5 (or None)."""


class ResetQuery(Query, frozen=True):
    """Reset the recovery ladders of ``path`` and below (every actor's when None)."""

    path: str | None = None


class IncidentsQuery(Query, frozen=True):
    """The incidents kept (closed, then open)."""


class RedeliverQuery(Query, frozen=True):
    """Send dead letter ``id`` to its actor again; answered with the actor's reply."""

    id: int
    timeout: float


class RecoverQuery(Query, frozen=True):
    """Perform a requested recovery; answered with a ``RecoveryResult``."""

    request: RecoveryRequest


class ShutdownQuery(Query, frozen=True):
    """Stop everything in order; answered with the final report (or None)."""


class ServiceQuery(Query, frozen=True):
    """Pass ``query`` on to a system service: the correlator (a ``CorrelatorQuery``) or
    the recovery store (a :class:`StoreQuery`)."""

    query: Any


class StoreQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of the questions the recovery store answers (through the telemetry actor)."""


class LearnedQuery(StoreQuery, frozen=True):
    """What a starting tree takes over: selector state, timeouts, durable checkpoints."""


class MetricsQuery(StoreQuery, frozen=True):
    """Incidents, times to recover, attempts, errors, restarts (over ``window_s``, for ``path``)."""

    window_s: Window | None = None
    path: str | None = None


class TotalsQuery(StoreQuery, frozen=True):
    """The running totals, all of history, as counted so far (a ``Totals``)."""


class ErrorsQuery(StoreQuery, frozen=True):
    """Error groups (per actor and fingerprint)."""

    status: str | None = None
    path: str | None = None
    category: str | None = None
    limit: Limit = 100


class ErrorQuery(StoreQuery, frozen=True):
    """One error group with its recent events (or None)."""

    id: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class ResolveErrorQuery(StoreQuery, frozen=True):
    """Mark error ``id`` resolved by ``by``; answers False if it was not open."""

    id: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    by: str = "operator"


class HistoryQuery(StoreQuery, frozen=True):
    """Recovery attempts, newest first."""

    path: str | None = None
    since: float | None = None
    limit: Limit = 1000


class StoredEventsQuery(StoreQuery, frozen=True):
    """Events kept in the store."""

    since: float | None = None
    kinds: tuple[str, ...] | None = None
    path: str | None = None
    limit: Limit = 1000


class AlertsQuery(StoreQuery, frozen=True):
    """Alerts raised from the thresholds (``active``: only those still active, or not);
    ``evaluate``: the rules are evaluated first, else as last evaluated (every
    ``alert_interval_s``), which writes nothing."""

    active: bool | None = None
    evaluate: bool = True


class InsightsQuery(StoreQuery, frozen=True):
    """Error-rate trends, degradation, effectiveness and recommendations."""

    window_s: Window | None = None


class StorePathQuery(StoreQuery, frozen=True):
    """The store's file."""


class StoreDiagnosticsQuery(StoreQuery, frozen=True):
    """The store's integrity and size."""


class FlushQuery(StoreQuery, frozen=True):
    """Write what the telemetry actor holds now (and evaluate the alerts)."""
