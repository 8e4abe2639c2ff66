"""The telemetry actor: records what the tree does, in batches, and learns from it.

It lives under the system supervisor (``_system/telemetry``). Everything the
tree reports arrives as messages; rows wait in memory and are written in one
transaction when ``flush_rows`` have gathered or ``flush_interval_s`` has
passed, so recording never slows recovery down. From what it records it keeps
the adaptive selector's state, the retry timeouts the supervisors learned per
(actor, operation) for the next run, the error groups and the alerts.
"""

from __future__ import annotations

import pickle
import time
from collections import defaultdict
from typing import Any

from ..actors import ManagedActor
from ..strategies import AdaptiveSelector
from ..strategies._learned_timeout import TimeoutRule
from ..supervisors._incident_log import Incident, IncidentLog
from ..supervisors._kernel.state import TREE_CANDIDATES
from ..supervisors.messages import DeadLetter, Event, PathsGone, PoolsChanged
from ._alerts import DEFAULT_RULES, AlertManager, AlertRule, alert_values
from ._insights import insights
from ._path_records import PathRecords
from ._rows import (
    attempt_row,
    error_seen_statements,
    event_row,
    forgotten_statements,
    incident_statement,
    recovered_statement,
)
from ._store import RecoveryStore, Statement, checkpoint_statement, strategy_score_statements
from ._totals import RunningTotals
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
    SubscribeAlerts,
    TotalsQuery,
)

MEMORY_RETENTION_ROWS = 200_000  # a ":memory:" store's rows kept (about 30 MiB)
FAILURE_KINDS = ("failure", "crash", "start-failure", "restart", "poison")
ERROR_KINDS = ("failure", "crash", "start-failure")  # their detail is "Type: message"


class TelemetryActor(ManagedActor):
    """Records recovery attempts, events, incidents, dead letters, checkpoints and alerts.

    Options (``Child(..., options=...)``, set by ``start(store=...)``): ``path``
    (SQLite file or ``":memory:"``), ``flush_rows``, ``flush_interval_s``,
    ``retention_age_s``, ``retention_rows``, ``stability_window_s``,
    ``timeout_percentile``, ``timeout_factor``, ``timeout_min_s``, ``timeout_max_s``,
    ``alert_window_s``, ``alert_interval_s``, ``alert_rules`` (a list of
    :class:`AlertRule`) and ``quiet_periods`` (each actor path's ``quiet_period_s``, for
    the incidents: see :class:`~stalwart.supervisors._incident_log.IncidentLog`) and
    ``pools`` (the paths of the tree's Pools: their instances are counted together),
    ``breakers`` (the paths of the tree's declared breakers: their states are totals).
    """

    def on_start(self) -> None:
        o = self.options
        self.store = RecoveryStore(o.get("path", ":memory:"))
        self.retention = retention(o)
        self.flush_rows = int(o.get("flush_rows", 500))
        self.flush_interval_s = float(o.get("flush_interval_s", 0.5))
        self.stability_window_s = float(o.get("stability_window_s", 60.0))
        rule = TimeoutRule()
        self.timeout_rule = TimeoutRule(
            float(o.get("timeout_percentile", rule.percentile)),
            float(o.get("timeout_factor", rule.factor)),
            float(o.get("timeout_min_s", rule.min_s)),
            float(o.get("timeout_max_s", rule.max_s)),
        )
        self.alert_window_s = float(o.get("alert_window_s", 300.0))
        self.alert_interval_s = float(o.get("alert_interval_s", 2.0))
        self.alerts_due = 0.0
        self.alerts = AlertManager(tuple(o.get("alert_rules") or DEFAULT_RULES))
        self.selector = AdaptiveSelector(TREE_CANDIDATES)
        self.selector.load_state(self.store.strategy_scores())
        # the supervisors learn retry timeouts as they go; kept here for the next run
        self.learned_timeouts = self.store.adaptive_timeouts()
        self.timeout_updates: dict[tuple[str, str], int] = defaultdict(int)
        # paths the store keeps something for alone (what PathsGone looks up), each with the
        # operations it has learned timeouts for
        self.with_records = PathRecords()
        for path in self.store.paths_with_records():
            self.with_records.note(path)
        for path, operation in self.learned_timeouts:
            self.with_records.note(path).add(operation)
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.statements: list[Statement] = []
        self.pending = 0
        self.scores_dirty = False
        self.timeouts_dirty: set[tuple[str, str]] = set()
        self.watch: dict[tuple[str, str], float] = {}  # recovered (path, fp) -> when
        self.memory_percent: float | None = None
        self.subscribers: list[Any] = []
        self.flushes = 0
        quiet = dict(o.get("quiet_periods") or {})
        self.incidents = IncidentLog(quiet)
        self.changed: dict[int, Incident] = {}  # incidents to write at the next flush
        self.run = self.store.start_run(quiet)
        self.totals = RunningTotals.resume(self.store, self.incidents)  # (after start_run)
        self.totals.pools = set(o.get("pools") or ())
        self.totals.breakers = frozenset(o.get("breakers") or ())
        self.after(self.flush_interval_s, "flush")

    def on_stop(self) -> None:
        self.track(self.incidents.end_all(time.time()))  # what is still open is unresolved
        self.flush()
        self.store.stop_run(self.run)
        self.store.close()

    # -- what the tree reports --------------------------------------------------------
    def receiveMsg_PoolsChanged(self, msg: PoolsChanged, sender: Any) -> None:
        """Pools were added at run time (their instances are counted together too), or
        have gone."""
        self.totals.pools.update(msg.added)
        self.totals.pools.difference_update(msg.removed)

    def receiveMsg_PathsGone(self, msg: PathsGone, sender: Any) -> None:
        """Paths were forgotten (a Pool's key ended, a child was deleted): what the store
        keeps for one of them alone goes (a key started again starts afresh, as it does in
        this run), and its open error groups are resolved as ended."""
        gone = [path for path in msg.paths if path in self.with_records]
        if msg.under:  # (a subtree deleted whole: its paths' records go, whatever they are)
            listed = set(gone)
            below = (p for top in msg.under for p in self.with_records.under(top))
            gone += [p for p in dict.fromkeys(below) if p not in listed]
        if not gone:
            return
        for path in gone:
            for key in ((path, operation) for operation in self.with_records.pop(path)):
                self.learned_timeouts.pop(key, None)
                self.timeout_updates.pop(key, None)
                self.timeouts_dirty.discard(key)
        self.statements.extend(forgotten_statements(gone, msg.reason, time.time(), msg.kept))
        for path in msg.kept:  # (its stored checkpoint is still there)
            if path in gone:
                self.with_records.note(path)
        self.maybe_flush()

    def receiveMsg_Event(self, e: Event, sender: Any) -> None:
        self.add("events", event_row(e))
        self.totals.event(e)
        if e.fingerprint and e.kind in FAILURE_KINDS:
            if e.kind in ERROR_KINDS:
                self.statements.extend(error_seen_statements(e))
                self.with_records.note(e.path)
            stable_since = self.watch.pop((e.path, e.fingerprint), None)
            if stable_since is not None:  # failed again soon after recovering
                self.statements.append(_stability(e.path, e.fingerprint, stable_since, 0))
        elif e.kind == "recovered" and e.fingerprint:
            self.statements.append(recovered_statement(e))
        elif e.kind == "reset":
            self.statements.append(
                (
                    "UPDATE progressive_recovery SET level=0, updated_at=?"
                    " WHERE path=? OR path LIKE ?",
                    (e.time, e.path, e.path + "/%"),
                )
            )
        self.track(self.incidents.feed(e))
        self.maybe_flush()

    def track(self, incidents: list[Incident]) -> None:
        for incident in incidents:
            self.changed[incident.id] = incident
        self.totals.incidents(incidents)

    def receiveMsg_Attempt(self, a: Attempt, sender: Any) -> None:
        self.add("recovery_performance", attempt_row(a))
        self.totals.attempt(a)
        if a.requested_by:  # an operator's (or a service's) request: no failure to learn from
            self.maybe_flush()
            return
        found = self.incidents.attempt(a.path, a.fingerprint, a.success, a.duration_s)
        self.track([found] if found is not None else [])
        if a.strategy in TREE_CANDIDATES.get(a.level, ()):
            self.selector.record(a.category, a.level, a.strategy, a.success, a.duration_s)
            self.scores_dirty = True
        if a.success:
            self.watch[(a.path, a.fingerprint)] = a.time
        if a.timeout_s > 0 and a.operation:
            key = (a.path, a.operation)
            self.learned_timeouts[key] = (a.timeout_s, a.longest_s)
            self.with_records.note(a.path).add(a.operation)
            self.timeout_updates[key] += 1
            self.timeouts_dirty.add(key)
        self.maybe_flush()

    def receiveMsg_DeadLetter(self, d: DeadLetter, sender: Any) -> None:
        self.totals.dead_letter(d)
        try:
            message = pickle.dumps(d.message)
        except Exception:
            message = None
        self.add(
            "dead_letters",
            {
                "time": d.time,
                "path": d.path,
                "message": message,
                "message_repr": repr(d.message)[:500],
                "error": d.error,
                "category": d.category,
                "fingerprint": d.fingerprint,
                "request_id": d.request_id,
            },
        )
        self.maybe_flush()

    def receiveMsg_DurableCheckpoint(self, c: DurableCheckpoint, sender: Any) -> None:
        self.statements.append(checkpoint_statement(c.path, c.state, c.incarnation))
        self.with_records.note(c.path)
        self.pending += 1
        self.maybe_flush()

    def receiveMsg_MemoryEvent(self, m: MemoryEvent, sender: Any) -> None:
        self.memory_percent = m.percent
        self.totals.memory(m)
        self.add(
            "memory_events",
            {
                "time": m.time,
                "tier": m.tier,
                "trigger": m.trigger,
                "percent": m.percent,
                "before_bytes": m.before_bytes,
                "after_bytes": m.after_bytes,
                "freed_bytes": m.freed_bytes,
                "duration_s": m.duration_s,
                "detail": m.detail,
            },
        )
        self.maybe_flush()

    def receiveMsg_SubscribeAlerts(self, msg: SubscribeAlerts, sender: Any) -> None:
        self.subscribers.append(sender)

    def receiveMsg_WakeupMessage(self, msg: Any, sender: Any) -> None:
        if msg.payload == "flush":
            self.flush()
            self.after(self.flush_interval_s, "flush")

    # -- questions ----------------------------------------------------------------------
    def written(self, alerts: bool = False) -> RecoveryStore:
        """The store, once what is held has been written (``alerts``: evaluated now too)."""
        if alerts:
            self.alerts_due = 0.0
        self.flush()
        return self.store

    def receiveMsg_LearnedQuery(self, q: LearnedQuery, sender: Any) -> None:
        store = self.written()
        timeouts = {f"{p}|{op}": t for (p, op), (t, _) in self.learned_timeouts.items()}
        longest = {f"{p}|{op}": s for (p, op), (_, s) in self.learned_timeouts.items()}
        self.reply(
            sender,
            LearnedState(
                self.selector.state(), timeouts, store.checkpoints(), longest, self.timeout_rule
            ),
        )

    def receiveMsg_MetricsQuery(self, q: MetricsQuery, sender: Any) -> None:
        self.reply(sender, self.written().metrics(q.window_s, q.path))

    def receiveMsg_ErrorsQuery(self, q: ErrorsQuery, sender: Any) -> None:
        self.reply(sender, self.written().errors(q.status, q.path, q.category, q.limit))

    def receiveMsg_ErrorQuery(self, q: ErrorQuery, sender: Any) -> None:
        self.reply(sender, self.written().error(q.id))

    def receiveMsg_ResolveErrorQuery(self, q: ResolveErrorQuery, sender: Any) -> None:
        self.reply(sender, self.written().resolve_error(q.id, q.by))

    def receiveMsg_HistoryQuery(self, q: HistoryQuery, sender: Any) -> None:
        self.reply(sender, self.written().recovery_history(q.path, q.since, q.limit))

    def receiveMsg_StoredEventsQuery(self, q: StoredEventsQuery, sender: Any) -> None:
        kinds = list(q.kinds) if q.kinds is not None else None
        self.reply(sender, self.written().events(q.since, kinds, q.path, q.limit))

    def receiveMsg_AlertsQuery(self, q: AlertsQuery, sender: Any) -> None:
        self.reply(
            sender, (self.written(alerts=True) if q.evaluate else self.store).alerts(q.active)
        )

    def receiveMsg_TotalsQuery(self, q: TotalsQuery, sender: Any) -> None:
        self.reply(sender, self.totals.snapshot())  # (current in memory: nothing to read)

    def receiveMsg_InsightsQuery(self, q: InsightsQuery, sender: Any) -> None:
        self.reply(sender, insights(self.written(), q.window_s))

    def receiveMsg_StorePathQuery(self, q: StorePathQuery, sender: Any) -> None:
        self.reply(sender, self.store.path)

    def receiveMsg_StoreDiagnosticsQuery(self, q: StoreDiagnosticsQuery, sender: Any) -> None:
        store = self.written()
        self.reply(
            sender,
            {
                "path": store.path,
                "integrity_ok": store.integrity_ok(),
                "partial_batches": store.partial_batches(),
                "attempts": store.db.table("recovery_performance").count,
                "rows": store.rows_kept(),
                "retention": {"age_s": self.retention[0], "rows": self.retention[1]},
            },
        )

    def receiveMsg_FlushQuery(self, q: FlushQuery, sender: Any) -> None:
        self.written(alerts=True)
        self.reply(sender, True)

    # -- batching -----------------------------------------------------------------------------
    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows[table].append(row)
        self.pending += 1

    def maybe_flush(self) -> None:
        if self.pending + len(self.statements) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        """Write what has gathered, in one transaction (plus learned state and stability)."""
        now = time.time()
        statements = self.statements
        for key, since in list(self.watch.items()):
            if now - since >= self.stability_window_s:
                del self.watch[key]
                statements.append(_stability(key[0], key[1], since, 1))
        if self.scores_dirty:
            statements.extend(strategy_score_statements(self.selector.state()))
            self.scores_dirty = False
        for key in self.timeouts_dirty:
            statements.append(self.timeout_statement(key))
        self.timeouts_dirty = set()
        for incident in self.changed.values():
            statements.append(incident_statement(incident, f"{self.run}.{incident.id}"))
        self.changed = {}
        if now >= self.alerts_due:
            self.alerts_due = now + self.alert_interval_s
            self.evaluate_alerts(now)
        statements.extend(self.totals.statements())
        if not statements and not any(self.rows.values()):
            return
        rows, self.rows = self.rows, defaultdict(list)
        self.statements, self.pending = [], 0
        self.store.write_batch(rows, statements)
        self.flushes += 1
        if self.flushes % 100 == 0:
            self.incidents.prune(now)
            if any(self.retention):
                self.store.retain(*self.retention)

    # -- learning ----------------------------------------------------------------------------
    def timeout_statement(self, key: tuple[str, str]) -> Statement:
        timeout, longest = self.learned_timeouts[key]
        return (
            "INSERT INTO adaptive_timeouts (path, operation, timeout_s, longest_s, samples,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(path, operation)"
            " DO UPDATE SET timeout_s=excluded.timeout_s, longest_s=excluded.longest_s,"
            " samples=samples + excluded.samples, updated_at=excluded.updated_at",
            (key[0], key[1], timeout, longest, self.timeout_updates.pop(key, 0), time.time()),
        )

    # -- alerts --------------------------------------------------------------------------------
    def evaluate_alerts(self, now: float) -> None:
        m = self.store.metrics(self.alert_window_s, now=now, by_actor=False)
        for alert in self.alerts.evaluate(alert_values(m, self.memory_percent), now):
            self.record_alert(alert)

    def record_alert(self, alert: Alert) -> None:
        self.totals.alert(alert)
        if alert.severity == "resolved":
            self.statements.append(
                (
                    "UPDATE alerts SET status='resolved', resolved_at=?"
                    " WHERE rule=? AND status='active'",
                    (alert.time, alert.rule),
                )
            )
        else:
            self.statements.append(
                (
                    "UPDATE alerts SET status='superseded' WHERE rule=? AND status='active'"
                    " AND time < ?",
                    (alert.rule, alert.time),
                )
            )
            self.add(
                "alerts",
                {
                    "time": alert.time,
                    "rule": alert.rule,
                    "scope": alert.scope,
                    "severity": alert.severity,
                    "message": alert.message,
                    "value": alert.value,
                    "status": "active",
                    "resolved_at": None,
                },
            )
        for subscriber in self.subscribers:
            self.send(subscriber, alert)


def _stability(path: str, fingerprint: str, since: float, stable: int) -> Statement:
    return (
        "UPDATE recovery_performance SET stability=? WHERE path=? AND fingerprint=? AND"
        " success=1 AND stability IS NULL AND time <= ?",
        (stable, path, fingerprint, since),
    )


def retention(options: dict[str, Any]) -> tuple[float | None, int | None]:
    """``retention_age_s`` and ``retention_rows`` of the telemetry ``options``. A store in
    memory keeps ``MEMORY_RETENTION_ROWS`` unless told otherwise (``0`` or ``None`` keeps
    every row): a Pool's keys come and go by the million, and each ended one leaves an
    event. A file keeps every row unless told."""
    in_memory = options.get("path", ":memory:") == ":memory:"
    rows = options.get("retention_rows", MEMORY_RETENTION_ROWS if in_memory else None)
    return options.get("retention_age_s"), rows or None


__all__ = ["AlertRule", "TelemetryActor"]
