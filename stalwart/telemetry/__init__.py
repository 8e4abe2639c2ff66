"""Telemetry and the recovery store: SQLite history, the learning loop, metrics, alerts, reports.

``start(tree, store="recovery.db")`` records every recovery decision of the tree
into that file (``":memory:"`` by default; ``None`` turns it off). Open the file
later with :class:`RecoveryStore`, or render it with :func:`report_text` and
:func:`write_html_report`.
"""

from typing import TYPE_CHECKING, Any

from ..actors._log_channel import LogStats
from ..supervisors._plan import dependency_graph, pools_and_breakers, quiet_periods
from ..supervisors._services import register_service
from ..supervisors.spec import Child
from ._actor import TelemetryActor
from ._alerts import DEFAULT_RULES, AlertManager, AlertRule
from ._correlator import (
    Analysis,
    Anomaly,
    Correlator,
    CorrelatorSettings,
    ErrorPattern,
    RootCause,
)
from ._correlator_actor import CorrelatorActor
from ._figures import Series, Totals
from ._insights import (
    Degradation,
    Effectiveness,
    ErrorTrend,
    Insights,
    PredictionScore,
    insights,
    score_predictions,
)
from ._metrics import Metrics
from ._report import render_html, report_text, write_html_report
from ._settings import TelemetrySettings, check_telemetry
from ._store import RecoveryStore
from .messages import (
    Alert,
    AlertsQuery,
    Attempt,
    DurableCheckpoint,
    ErrorQuery,
    ErrorsQuery,
    FlushQuery,
    HistoryQuery,
    InsightsQuery,
    LearnedQuery,
    LearnedState,
    MemoryEvent,
    MetricsQuery,
    ResolveErrorQuery,
    StoredEventsQuery,
    StoreDiagnosticsQuery,
    StorePathQuery,
    StoreQuery,
    SubscribeAlerts,
    TotalsQuery,
)

if TYPE_CHECKING:
    from ._api import ApiServer, StoreBackend, SystemBackend

_SERVED = ("ApiServer", "StoreBackend", "SystemBackend")


def __getattr__(name: str) -> Any:
    # The HTTP API (with its HTTP server and Prometheus' client) is imported when first
    # named: an actor process never serves it, and a process forks faster the less it holds.
    if name in _SERVED:
        from . import _api

        return getattr(_api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _telemetry_service(options: Any, tree: Any) -> Child | None:
    if options.store is None:
        return None
    pools, breakers = pools_and_breakers(tree)
    settings = {
        "path": options.store,
        **options.telemetry,
        "quiet_periods": quiet_periods(tree),
        "pools": pools,
        "breakers": breakers,
    }
    return Child("telemetry", TelemetryActor, checkpoint="off", options=settings)


def _correlator_service(options: Any, tree: Any) -> Child | None:
    if options.correlator is None:
        return None
    settings = {"settings": dict(options.correlator), "graph": dependency_graph(tree)}
    return Child("correlator", CorrelatorActor, checkpoint="off", options=settings)


def _check_telemetry(options: Any) -> None:
    check_telemetry(options.telemetry)


register_service("telemetry", _telemetry_service, _check_telemetry)


def _check_correlator(options: Any) -> None:
    if options.correlator is not None:
        CorrelatorSettings.of(options.correlator)


register_service("correlator", _correlator_service, _check_correlator)

__all__ = [
    "DEFAULT_RULES",
    "Alert",
    "AlertManager",
    "AlertRule",
    "AlertsQuery",
    "Analysis",
    "Anomaly",
    "ApiServer",
    "Attempt",
    "Correlator",
    "CorrelatorActor",
    "CorrelatorSettings",
    "Degradation",
    "DurableCheckpoint",
    "Effectiveness",
    "ErrorPattern",
    "ErrorQuery",
    "ErrorTrend",
    "ErrorsQuery",
    "FlushQuery",
    "HistoryQuery",
    "Insights",
    "InsightsQuery",
    "LearnedQuery",
    "LearnedState",
    "LogStats",
    "MemoryEvent",
    "Metrics",
    "MetricsQuery",
    "PredictionScore",
    "RecoveryStore",
    "ResolveErrorQuery",
    "RootCause",
    "Series",
    "StoreBackend",
    "StoreDiagnosticsQuery",
    "StorePathQuery",
    "StoreQuery",
    "StoredEventsQuery",
    "SubscribeAlerts",
    "SystemBackend",
    "TelemetryActor",
    "TelemetrySettings",
    "Totals",
    "TotalsQuery",
    "insights",
    "render_html",
    "report_text",
    "score_predictions",
    "write_html_report",
]
