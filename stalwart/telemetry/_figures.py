"""Running totals as figures: what ``GET /metrics`` exports and the dashboard's headline reads.

The totals are counted as the tree reports (see :mod:`._totals`) and kept in the store's
``totals`` table, one row per series: ``name``, ``labels`` (a JSON object) and ``value``.
Counters and histograms only ever grow; retention never touches them. This module names
every family, turns stored values into :class:`Totals`, and reads them from a store.
Every family is defined in docs/guide-telemetry.md.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from ._schema import TOTALS_SINCE

if TYPE_CHECKING:
    from ._store import RecoveryStore

Key = tuple[str, tuple[str, ...]]  # (stored series name, its label values in family order)

# durations, in seconds (the upper bound of each histogram bucket)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, math.inf)
LE: tuple[str, ...] = tuple("+Inf" if b == math.inf else repr(b) for b in BUCKETS)
# the times to recover also go into a log-scale sketch (bucket i holds (GAMMA^(i-1), GAMMA^i]),
# so whole-history percentiles are read within 2 % without keeping every duration
SKETCH = "stalwart_recovery_duration_sketch"
GAMMA = 1.02
_SKETCH_FLOOR_S = 1e-4  # shorter times share the first bucket
MTTR = "stalwart_recovery_duration_seconds"
BREAKER_STATES = ("closed", "open", "half_open", "forced_open", "disabled", "metrics_only")
OPEN_STATES = ("open", "forced_open")


@dataclass(frozen=True)
class Family:
    """One exported metric family: its name (a counter's without ``_total``), type, labels."""

    name: str
    kind: str  # counter, gauge, histogram
    labels: tuple[str, ...]
    help: str


FAMILIES = {
    f.name: f
    for f in (
        Family(
            "stalwart_incidents",
            "counter",
            ("path", "level", "outcome"),
            "Incidents as they ended, by path, level that answered (or highest reached), outcome",
        ),
        Family("stalwart_incidents_opened", "counter", ("path",), "Incidents begun"),
        Family(
            "stalwart_incidents_taken_up",
            "counter",
            ("path",),
            "Given-up incidents taken up again (the same error came back within quiet_period_s)",
        ),
        Family("stalwart_incidents_open", "gauge", ("path",), "Incidents open now"),
        Family(MTTR, "histogram", (), "Time to recover: an incident's first failure to serving"),
        Family(
            "stalwart_recovery_attempts",
            "counter",
            ("level", "strategy", "outcome"),
            "Recovery attempts (retries, backoffs, restarts, requested recoveries)",
        ),
        Family(
            "stalwart_recovery_attempt_duration_seconds",
            "histogram",
            ("level", "outcome"),
            "Duration of recovery attempts, each from its decision to its outcome",
        ),
        Family("stalwart_errors", "counter", ("path", "category"), "Errors the tree saw"),
        Family("stalwart_restarts", "counter", ("path",), "New instances started after a failure"),
        Family("stalwart_dead_letters", "counter", ("path",), "Messages set aside"),
        Family("stalwart_alerts", "counter", ("rule", "severity"), "Alerts raised"),
        Family("stalwart_memory_cleanups", "counter", ("tier",), "Memory cleanups run"),
        Family("stalwart_memory_freed_bytes", "counter", ("tier",), "Bytes memory cleanups freed"),
        Family(
            "stalwart_breaker_state",
            "gauge",
            ("path", "state"),
            "1 for the state each circuit breaker that is not closed is in",
        ),
    )
}
ADD_TOTAL = (  # a counter's (or bucket's) delta
    "INSERT INTO totals (name, labels, value) VALUES (?, ?, ?)"
    " ON CONFLICT(name, labels) DO UPDATE SET value = value + excluded.value"
)
SET_TOTAL = (  # a gauge's value
    "INSERT INTO totals (name, labels, value) VALUES (?, ?, ?)"
    " ON CONFLICT(name, labels) DO UPDATE SET value = excluded.value"
)
RUN_GAUGES = ("stalwart_incidents_open", "stalwart_breaker_state")  # cleared when a run starts


def _series_labels() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Stored series name -> (family name, label names)."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {SKETCH: (SKETCH, ("i",))}
    for f in FAMILIES.values():
        if f.kind == "histogram":
            found[f"{f.name}_bucket"] = (f.name, (*f.labels, "le"))
            found[f"{f.name}_sum"] = (f.name, f.labels)  # (the count is the buckets' sum)
        else:
            found[f.name] = (f.name, f.labels)
    return found


SERIES = _series_labels()


def encode_labels(name: str, values: tuple[str, ...]) -> str:
    """The ``labels`` column of a series: a JSON object, in the family's label order."""
    names = SERIES[name][1]
    return json.dumps(dict(zip(names, values)), ensure_ascii=False, separators=(",", ":"))


_DECODED: dict[tuple[str, str], tuple[str, ...] | None] = {}  # (the same at every read)


def decode_labels(name: str, text: str) -> tuple[str, ...] | None:
    """The label values of a stored series (None for a series this version does not know)."""
    found = _DECODED.get((name, text), ())
    if found != ():
        return found
    if name in SERIES:
        given = json.loads(text)
        found = tuple(str(given.get(n, "")) for n in SERIES[name][1])
    else:
        found = None
    if len(_DECODED) > 100_000:
        _DECODED.clear()
    _DECODED[(name, text)] = found
    return found


def bucket_of(value: float) -> str:
    """The ``le`` of the histogram bucket ``value`` falls in."""
    return LE[bisect_left(BUCKETS, value)] if value == value else LE[-1]  # (NaN: +Inf)


def sketch_index(value: float) -> int:
    """The sketch bucket of a duration: the smallest i with value <= GAMMA^i."""
    return math.ceil(math.log(max(value, _SKETCH_FLOOR_S)) / math.log(GAMMA) - 1e-9)


def sketch_quantile(counts: Mapping[int, float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of what a sketch holds: the upper bound of the
    bucket that rank falls in, so at most 2 % above the exact value, never below it."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank, seen = max(1.0, math.ceil(q * total - 1e-9)), 0.0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return float(GAMMA**index)
    return float(GAMMA ** max(counts))


class Series(msgspec.Struct, frozen=True):
    """One sample as ``GET /metrics`` shows it (histogram buckets cumulative, with ``le``)."""

    name: str
    labels: dict[str, str]
    value: float


class Totals(msgspec.Struct, frozen=True):
    """Figures from the running totals: all of history, counted as things happened.

    Unlike :class:`Metrics`, which reads the rows the store keeps, these never go down when
    retention deletes rows, and reading them costs the same however long the history is.
    ``incidents_given_up`` leaves out those taken up again; the time-to-recover percentiles
    come from a log-scale sketch (at most 2 % above the exact value). ``series`` holds every
    sample of the totals, as ``GET /metrics`` exports them.
    """

    incidents: int = 0
    incidents_recovered: int = 0
    incidents_given_up: int = 0
    incidents_open: int = 0
    incidents_unresolved: int = 0
    incident_success_rate: float | None = None
    mttr_mean_s: float | None = None
    mttr_p50_s: float | None = None
    mttr_p95_s: float | None = None
    mttr_p99_s: float | None = None
    attempts: int = 0
    attempts_succeeded: int = 0
    attempts_failed: int = 0
    attempt_success_rate: float | None = None
    errors: int = 0
    restarts: int = 0
    dead_letters: int = 0
    open_breakers: list[str] = msgspec.field(default_factory=list)
    series: list[Series] = msgspec.field(default_factory=list)


def _rate(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def totals_of(values: Mapping[Key, float]) -> Totals:
    """The figures of stored totals (counters by family name, buckets one by one)."""
    by: dict[str, float] = defaultdict(float)  # family sums, and some by one label
    sketch: dict[int, float] = {}
    breakers: list[str] = []
    for (name, labels), value in values.items():
        by[name] += value
        if name in ("stalwart_incidents", "stalwart_recovery_attempts"):
            by[f"{name}:{labels[2]}"] += value
        elif name == SKETCH:
            sketch[int(labels[0])] = value
        elif name == "stalwart_breaker_state" and value and labels[1] in OPEN_STATES:
            breakers.append(labels[0])
    recovered = int(by["stalwart_incidents:recovered"])
    given_up = int(by["stalwart_incidents:given_up"] - by["stalwart_incidents_taken_up"])
    attempts = int(by["stalwart_recovery_attempts"])
    succeeded = int(by["stalwart_recovery_attempts:success"])
    count = by[f"{MTTR}_bucket"]
    return Totals(
        incidents=int(by["stalwart_incidents_opened"]),
        incidents_recovered=recovered,
        incidents_given_up=given_up,
        incidents_open=int(by["stalwart_incidents_open"]),
        incidents_unresolved=int(by["stalwart_incidents:unresolved"]),
        incident_success_rate=_rate(recovered, recovered + given_up),
        mttr_mean_s=by[f"{MTTR}_sum"] / count if count else None,
        mttr_p50_s=sketch_quantile(sketch, 0.50),
        mttr_p95_s=sketch_quantile(sketch, 0.95),
        mttr_p99_s=sketch_quantile(sketch, 0.99),
        attempts=attempts,
        attempts_succeeded=succeeded,
        attempts_failed=attempts - succeeded,
        attempt_success_rate=_rate(succeeded, attempts),
        errors=int(by["stalwart_errors"]),
        restarts=int(by["stalwart_restarts"]),
        dead_letters=int(by["stalwart_dead_letters"]),
        open_breakers=sorted(set(breakers)),
        series=list(exported(values)),
    )


def exported(values: Mapping[Key, float]) -> Iterable[Series]:
    """The samples of stored totals, as exported: counters as ``<name>_total``, histogram
    buckets added up (every bucket, ``+Inf`` included)."""
    histograms: dict[Key, list[float]] = {}
    for (name, labels), value in sorted(values.items()):
        family_name, names = SERIES[name]
        family = FAMILIES.get(family_name)
        if family is None:  # (the sketch)
            continue
        if name.endswith("_bucket") and family.kind == "histogram":
            counts = histograms.setdefault((family.name, labels[:-1]), [0.0] * len(LE))
            counts[LE.index(labels[-1])] += value
            continue
        shown = f"{name}_total" if family.kind == "counter" else name
        yield Series(shown, dict(zip(names, labels)), value)
    for (name, labels), counts in sorted(histograms.items()):
        names = FAMILIES[name].labels
        running = 0.0
        for le, n in zip(LE, counts):
            running += n
            yield Series(f"{name}_bucket", {**dict(zip(names, labels)), "le": le}, running)
        yield Series(f"{name}_count", dict(zip(names, labels)), running)


def stored_values(store: RecoveryStore) -> dict[Key, float]:
    """The totals a store holds (one read of the ``totals`` table: as many rows as series).

    A file of an older Stalwart, opened read-only, has no such table: its totals are
    worked out from the rows it kept (a scan), as a migration would."""
    if int(store.db.execute("PRAGMA user_version").fetchone()[0]) < TOTALS_SINCE:
        from ._backfill import values_from_rows

        return values_from_rows(store.db.conn)
    found: dict[Key, float] = {}
    for name, text, value in store.db.execute("SELECT name, labels, value FROM totals"):
        labels = decode_labels(name, text)
        if labels is not None:
            found[(name, labels)] = float(value)
    return found
