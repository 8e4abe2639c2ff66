"""``GET /metrics``: the running totals in Prometheus' text format, plus the live gauges.

Counters and histograms come from the running totals (see :mod:`._totals`), counted as the
tree reported, so none goes down when retention deletes rows and a scrape costs the same
however long the history is (a system started with ``store=None`` keeps none: their
families have no sample). The live gauges (actor levels, memory level, active alerts)
are asked of the running system at scrape time. Every family is defined in
docs/guide-telemetry.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ..actors.errors import ServiceOff
from ..supervisors.messages import TreeGauges
from ._figures import FAMILIES, SERIES, Family, Series, Totals

MEMORY_LEVELS = {"normal": 0, "warning": 1, "critical": 2, "emergency": 3}


class Source(Protocol):
    """The part of the API's backend a scrape reads."""

    def totals(self) -> Totals: ...
    def tree_gauges(self) -> TreeGauges | None: ...
    def alerts(self, active: bool | None) -> list[dict[str, Any]]: ...
    def memory(self) -> dict[str, Any] | None: ...


class Collector:
    """Reads the backend at scrape time."""

    def __init__(self, backend: Source) -> None:
        self.backend = backend

    def collect(self) -> Iterator[Metric]:
        try:
            totals = self.backend.totals()
        except ServiceOff:  # started with store=None: the live families only
            totals = Totals()
        gauges = self.backend.tree_gauges()
        tree = gauges or TreeGauges((), ())
        yield from total_families(totals, None if gauges is None else live_breakers(tree))
        yield from ratio_families(totals)
        yield from live_families(self.backend, tree)


def _family_of(name: str) -> str:
    """The family of an exported sample name (``_total``, ``_bucket``... taken off)."""
    stored = name[: -len("_total")] if name.endswith("_total") else name
    return SERIES[stored][0] if stored in SERIES else ""


BREAKER_STATE = "stalwart_breaker_state"


def live_breakers(tree: TreeGauges) -> list[Series]:
    """The live tree's breakers that are not closed, each with its state."""
    return [
        Series(BREAKER_STATE, {"path": path, "state": state}, 1.0) for path, state in tree.breakers
    ]


def total_families(totals: Totals, breakers: list[Series] | None = None) -> Iterator[Metric]:
    """Every family of the running totals, each with its samples (none yet: no sample);
    a live system's ``breakers`` stand for the states the totals recorded."""
    samples: dict[str, list[Any]] = defaultdict(list)
    recorded = (
        totals.series if breakers is None else (s for s in totals.series if s.name != BREAKER_STATE)
    )
    for s in (*recorded, *(breakers or ())):
        samples[_family_of(s.name)].append(s)
    for family in FAMILIES.values():
        yield _family(family, samples[family.name])


def _family(family: Family, samples: list[Any]) -> Metric:
    if family.kind == "histogram":
        histogram = HistogramMetricFamily(family.name, family.help, labels=family.labels)
        buckets: dict[tuple[str, ...], list[tuple[str, float]]] = defaultdict(list)
        sums: dict[tuple[str, ...], float] = {}
        for s in samples:
            labels = tuple(s.labels[n] for n in family.labels)
            if s.name.endswith("_bucket"):
                buckets[labels].append((s.labels["le"], s.value))
            elif s.name.endswith("_sum"):
                sums[labels] = s.value
        for labels, counts in sorted(buckets.items()):
            histogram.add_metric(list(labels), counts, sums.get(labels, 0.0))
        return histogram
    kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
    metric = kind(family.name, family.help, labels=family.labels)
    for s in samples:
        metric.add_metric([s.labels[n] for n in family.labels], s.value)
    return metric


def ratio_families(totals: Totals) -> Iterator[Metric]:
    """The success ratios; with nothing to take them over (no incident ended, no attempt),
    the family has no sample rather than a ratio of 0."""
    for name, documentation, value in (
        (
            "stalwart_incident_success_ratio",
            "Share of ended incidents that recovered (those taken up again count by their end)",
            totals.incident_success_rate,
        ),
        (
            "stalwart_recovery_attempt_success_ratio",
            "Share of recovery attempts that worked",
            totals.attempt_success_rate,
        ),
    ):
        gauge = GaugeMetricFamily(name, documentation)
        if value is not None:
            gauge.add_metric([], value)
        yield gauge


def live_families(backend: Source, tree: TreeGauges) -> Iterator[Metric]:
    """What the running system says now: the recovery level of each entry the tree declares
    (and of each added at run time while above level 0), the entries by kind, state and
    level (``tree``), the memory level, the active alerts (a store file has no live tree:
    no levels, no entries, no memory level)."""
    level = GaugeMetricFamily("stalwart_actor_level", "Current recovery level", labels=["path"])
    for path, value in tree.levels:
        level.add_metric([path], value)
    yield level
    nodes = GaugeMetricFamily(
        "stalwart_tree_nodes",
        "Entries of the live tree by kind, state and recovery level",
        labels=["kind", "state", "level"],
    )
    for kind, state, value, count in tree.counts:
        nodes.add_metric([kind, state, str(value)], count)
    yield nodes
    memory = GaugeMetricFamily(
        "stalwart_memory_level", "Memory pressure: 0 normal, 1 warning, 2 critical, 3 emergency"
    )
    status = backend.memory()
    if status is not None and status.get("level") in MEMORY_LEVELS:
        memory.add_metric([], MEMORY_LEVELS[status["level"]])
    yield memory
    alerts = GaugeMetricFamily(
        "stalwart_alerts_active", "Active alerts", labels=["rule", "severity"]
    )
    try:
        active = backend.alerts(True)
    except ServiceOff:  # (the alerts are the telemetry actor's)
        active = []
    for a in active:
        alerts.add_metric([a["rule"], a["severity"]], 1)
    yield alerts
