"""Running totals, counted as the tree reports: the counters, gauges and histograms of
``GET /metrics``.

The telemetry actor keeps one :class:`RunningTotals` and feeds it every event, attempt,
incident change, dead letter, memory cleanup and alert as it records them. Each flush
writes what changed since the previous one in the same transaction as the rows: counters
and histogram buckets as deltas added to the ``totals`` table, gauges as values. Retention
deletes rows, never totals, so no counter goes down; a restarted system, and a server
reading the file (``stalwart serve --db``), go on from the table. Plain-code recovery that
writes to a store (``StoreSink``) adds its deltas the same way. Not thread-safe: one owner.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..supervisors._incident_log import GIVEN_UP, OPEN, RECOVERED, UNRESOLVED, Incident
from ..supervisors._plan import pool_of
from ..supervisors.messages import Attempt, DeadLetter, Event, MemoryEvent
from ._figures import (
    ADD_TOTAL,
    BREAKER_STATES,
    BUCKETS,
    FAMILIES,
    LE,
    MTTR,
    RUN_GAUGES,
    SET_TOTAL,
    SKETCH,
    Key,
    Totals,
    bucket_of,
    encode_labels,
    sketch_index,
    stored_values,
    totals_of,
)

if TYPE_CHECKING:
    from ..supervisors._incident_log import IncidentLog
    from ._store import RecoveryStore, Statement
    from .messages import Alert

ERROR_KINDS = ("failure", "crash", "start-failure")  # (as Metrics counts errors)
OUTCOMES = {RECOVERED: "recovered", GIVEN_UP: "given_up", UNRESOLVED: "unresolved"}
_ATTEMPT_S = "stalwart_recovery_attempt_duration_seconds"
_PARTS = {f.name: (f"{f.name}_bucket", f"{f.name}_sum") for f in FAMILIES.values()}
_KEEP_KNOWN = 256  # incidents followed before the ended ones the log forgot are dropped


def _attempt_keys(a: Attempt) -> tuple[Key, Key, list[Key]]:
    """The series an attempt adds to: its count, the sum and buckets of the durations."""
    labels = (str(a.level), "success" if a.success else "failure")
    bucket, total = _PARTS[_ATTEMPT_S]
    return (
        ("stalwart_recovery_attempts", (labels[0], a.strategy, labels[1])),
        (total, labels),
        [(bucket, (*labels, le)) for le in LE],
    )


class RunningTotals:
    """Counters, gauges and histograms, current in memory, written as deltas (see above).

    ``log`` is the :class:`IncidentLog` whose incidents are fed to :meth:`incidents`, so
    those it has forgotten can be forgotten here too. ``pools``: the paths of the tree's
    Pools (and of those added at run time): what is below one is counted under ``<pool>/*``
    (a Pool's keys are often one per session: a series each would grow without end).
    ``breakers``: the paths of the declared breakers, whose states are kept (None: all).
    """

    def __init__(
        self, values: Mapping[Key, float] | None = None, log: IncidentLog | None = None
    ) -> None:
        self.values: dict[Key, float] = dict(values or {})
        self.added: dict[Key, float] = {}  # counter deltas not written yet
        self.changed: set[Key] = set()  # gauges not written yet
        self.log = log
        self.known: dict[int, str] = {}  # incidents that may change outcome -> outcome counted
        self.newest = 0  # the highest incident id fed
        self.clear_run_gauges = False
        self._snapshot: Totals | None = None  # (until a value changes)
        self._attempt_keys: dict[tuple[int, str, bool], tuple[Key, Key, list[Key]]] = {}
        self.pools: set[str] = set()  # the Pools' paths
        self.breakers: frozenset[str] | None = None  # the declared breakers' (None: all)

    def series(self, path: str) -> str:
        """The ``path`` label ``path`` is counted under."""
        pool = pool_of(path, self.pools) if self.pools else None
        return path if pool is None else pool + "/*"

    @classmethod
    def resume(cls, store: RecoveryStore, log: IncidentLog | None = None) -> RunningTotals:
        """Go on from what ``store`` holds; the gauges of the run before are cleared (its
        open incidents were made unresolved, and counted, by ``start_run``)."""
        values = {k: v for k, v in stored_values(store).items() if k[0] not in RUN_GAUGES}
        totals = cls(values, log)
        totals.clear_run_gauges = True
        return totals

    # -- counting ----------------------------------------------------------------------
    def add(self, key: Key, amount: float = 1.0) -> None:
        self._snapshot = None
        values, added = self.values, self.added
        values[key] = values.get(key, 0.0) + amount
        added[key] = added.get(key, 0.0) + amount

    def set(self, key: Key, value: float) -> None:
        if self.values.get(key) != value:
            self._snapshot = None
            self.values[key] = value
            self.changed.add(key)

    def observe(self, name: str, labels: tuple[str, ...], seconds: float) -> None:
        bucket, total = _PARTS[name]
        self.add((bucket, (*labels, bucket_of(seconds))))
        self.add((total, labels), seconds)

    # -- what the tree reports -----------------------------------------------------------
    def event(self, e: Event) -> None:
        """Errors, restarts and breaker states (incidents come through :meth:`incidents`)."""
        if e.kind in ERROR_KINDS:
            self.add(("stalwart_errors", (self.series(e.path), e.category or "")))
        elif e.kind == "restarted":
            self.add(("stalwart_restarts", (self.series(e.path),)))
        elif e.kind == "breaker" and (self.breakers is None or e.path in self.breakers):
            # (one added at run time, a Pool's one per key, is a live gauge: see tree_gauges)
            for state in {*BREAKER_STATES, e.detail}:
                self.set(("stalwart_breaker_state", (e.path, state)), float(state == e.detail))
        elif e.kind == "child-deleted":  # (at the path deleted)
            self.forget_breakers(e.path)

    def forget_breakers(self, top: str) -> None:
        """The breakers at ``top`` and below it are gone: none of their states holds now
        (a deleted breaker is neither open nor closed)."""
        if self.breakers is not None and not self.breakers:  # (the tree declares none)
            return
        below = top + "/"
        for key in [k for k in self.values if k[0] == "stalwart_breaker_state"]:
            path = key[1][0]
            if path == top or path.startswith(below):
                self.set(key, 0.0)

    def attempt(self, a: Attempt) -> None:
        """An attempt: counted, and its duration in the histogram (the hot path: the keys
        of each level, strategy and outcome are made once)."""
        keys = self._attempt_keys.get((a.level, a.strategy, a.success))
        if keys is None:
            keys = self._attempt_keys[(a.level, a.strategy, a.success)] = _attempt_keys(a)
        counted, total, buckets = keys
        seconds = max(0.0, a.duration_s)
        bucket = buckets[bisect_left(BUCKETS, seconds) if seconds == seconds else -1]
        self._snapshot = None
        values, added = self.values, self.added
        for key, amount in ((counted, 1.0), (bucket, 1.0), (total, seconds)):
            values[key] = values.get(key, 0.0) + amount
            added[key] = added.get(key, 0.0) + amount

    def dead_letter(self, d: DeadLetter) -> None:
        self.add(("stalwart_dead_letters", (self.series(d.path),)))

    def memory(self, m: MemoryEvent) -> None:
        self.add(("stalwart_memory_cleanups", (m.tier,)))
        self.add(("stalwart_memory_freed_bytes", (m.tier,)), float(max(0, m.freed_bytes)))

    def alert(self, alert: Alert) -> None:
        if alert.severity != "resolved":
            self.add(("stalwart_alerts", (alert.rule, alert.severity)))

    def incidents(self, changed: Iterable[Incident]) -> None:
        """Count what changed in these incidents since they were last fed: begun, taken up
        again, ended (by outcome; a recovered one's time to recover goes to the histogram)."""
        for incident in changed:
            before = self.known.get(incident.id)
            if (before is None and incident.id <= self.newest) or before == incident.outcome:
                continue  # (ended for good and counted, or no new outcome)
            path = (self.series(incident.path),)
            if before is None:
                self.newest = incident.id
                self.add(("stalwart_incidents_opened", path))
            opened = (incident.outcome == OPEN) - (before == OPEN)
            if opened:
                key = ("stalwart_incidents_open", path)
                self.set(key, self.values.get(key, 0.0) + opened)
            if before == GIVEN_UP:
                self.add(("stalwart_incidents_taken_up", path))
            if incident.outcome in OUTCOMES:
                level = str(incident.level)
                self.add(("stalwart_incidents", (path[0], level, OUTCOMES[incident.outcome])))
            if incident.outcome == RECOVERED:
                self.recovered(incident.duration_s or 0.0)
            if incident.outcome in (RECOVERED, UNRESOLVED) or incident.final:
                self.known.pop(incident.id, None)  # it will not change outcome again
            else:
                self.known[incident.id] = incident.outcome
        self._forget_ended()

    def recovered(self, seconds: float) -> None:
        """One time to recover: the histogram and the sketch of the percentiles."""
        self.observe(MTTR, (), seconds)
        self.add((SKETCH, (str(sketch_index(seconds)),)))

    def _forget_ended(self) -> None:
        if self.log is None or len(self.known) <= _KEEP_KNOWN:
            return
        followed = {i.id for i in (*self.log.latest.values(), *self.log.open.values())}
        if len(self.known) > 2 * len(followed):
            self.known = {i: o for i, o in self.known.items() if i in followed}

    # -- writing and reading -----------------------------------------------------------------
    def statements(self) -> list[Statement]:
        """What changed since the last call, as statements for the next batch."""
        out: list[Statement] = []
        if self.clear_run_gauges:
            marks = ", ".join("?" for _ in RUN_GAUGES)
            out.append((f"DELETE FROM totals WHERE name IN ({marks})", RUN_GAUGES))
            self.clear_run_gauges = False
        for (name, labels), delta in self.added.items():
            out.append((ADD_TOTAL, (name, encode_labels(name, labels), delta)))
        for key in self.changed:
            out.append((SET_TOTAL, (key[0], encode_labels(*key), self.values[key])))
        self.added, self.changed = {}, set()
        return out

    def snapshot(self) -> Totals:
        """The figures as they stand, unwritten changes included."""
        if self._snapshot is None:
            self._snapshot = totals_of(self.values)
        return self._snapshot
