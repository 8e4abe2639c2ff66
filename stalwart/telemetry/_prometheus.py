"""``GET /metrics``: the recovery figures in Prometheus' text format, read at scrape time.

Incidents first (how many, how they ended, the time to recover), then the attempts they
took, named as attempts; see docs/guide-telemetry.md for every figure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class Source(Protocol):
    """The part of the API's backend a scrape reads."""

    def metrics(self, window_s: float | None, path: str | None) -> Any: ...
    def actors(self) -> list[dict[str, Any]]: ...
    def alerts(self, active: bool | None) -> list[dict[str, Any]]: ...


def _value(v: float | None) -> float:
    return 0.0 if v is None else v


class Collector:
    """Reads the backend at scrape time."""

    def __init__(self, backend: Source) -> None:
        self.backend = backend

    def collect(self) -> Iterator[Metric]:
        m = self.backend.metrics(None, None)
        yield from incident_families(m)
        yield from attempt_families(m)
        yield CounterMetricFamily("stalwart_errors", "Errors seen by the tree", value=m.errors)
        yield GaugeMetricFamily(
            "stalwart_open_breakers", "Circuit breakers open", value=len(m.open_breakers)
        )
        actors = self.backend.actors()
        if actors:
            level = GaugeMetricFamily(
                "stalwart_actor_level", "Current recovery level", labels=["path"]
            )
            restarts = CounterMetricFamily("stalwart_actor_restarts", "Restarts", labels=["path"])
            for a in actors:
                level.add_metric([a["path"]], a["level"])
                restarts.add_metric([a["path"]], a["restarts"])
            yield level
            yield restarts
        alerts = GaugeMetricFamily(
            "stalwart_alerts_active", "Active alerts", labels=["rule", "severity"]
        )
        for a in self.backend.alerts(True):
            alerts.add_metric([a["rule"], a["severity"]], 1)
        yield alerts


def incident_families(m: Any) -> Iterator[Metric]:
    """Incidents by outcome, their success ratio, time to recover and resolving level."""
    incidents = CounterMetricFamily(
        "stalwart_incidents",
        "Incidents (a failure of a fingerprint at a path until it serves again), by outcome",
        labels=["outcome"],
    )
    for outcome, n in (
        ("recovered", m.incidents_recovered),
        ("given_up", m.incidents_given_up),
        ("open", m.incidents_open),
        ("unresolved", m.incidents_unresolved),
    ):
        incidents.add_metric([outcome], n)
    yield incidents
    yield GaugeMetricFamily(
        "stalwart_incident_success_ratio",
        "Share of ended incidents that recovered",
        value=_value(m.incident_success_rate),
    )
    mttr = GaugeMetricFamily(
        "stalwart_time_to_recover_seconds",
        "Time from an incident's first failure to its path serving again",
        labels=["quantile"],
    )
    for q, v in (("0.5", m.mttr_p50_s), ("0.95", m.mttr_p95_s), ("0.99", m.mttr_p99_s)):
        mttr.add_metric([q], _value(v))
    yield mttr
    yield _per_level(
        "stalwart_incidents_recovered_by_level",
        "Recovered incidents per level that resolved them",
        m.incidents_by_level,
    )


def _per_level(name: str, documentation: str, counts: dict[Any, int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=["level"])
    for level, n in sorted(counts.items()):
        family.add_metric([str(level)], n)
    return family


def attempt_families(m: Any) -> Iterator[Metric]:
    """Recovery attempts per level, their success ratio and durations."""
    yield _per_level(
        "stalwart_recovery_attempts", "Recovery attempts per level", m.attempts_by_level
    )
    yield GaugeMetricFamily(
        "stalwart_recovery_attempt_success_ratio",
        "Share of recovery attempts that worked",
        value=_value(m.attempt_success_rate),
    )
    seconds = GaugeMetricFamily(
        "stalwart_recovery_attempt_seconds",
        "Duration of the successful recovery attempts (backoff included)",
        labels=["quantile"],
    )
    for q, v in (("0.5", m.attempt_p50_s), ("0.95", m.attempt_p95_s)):
        seconds.add_metric([q], _value(v))
    yield seconds
    yield CounterMetricFamily(
        "stalwart_recovery_attempt_failures",
        "Recovery attempts that failed",
        value=m.attempts_failed,
    )
