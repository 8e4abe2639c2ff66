"""The recovery store: every recovery attempt, error, alert and checkpoint, in SQLite.

One file (or ``":memory:"``), WAL mode, written in batches: each batch is one
transaction and is recorded in the ``batches`` table with its row count, so a
writer killed at any instant leaves whole batches or nothing. Checkpoint states
and dead-letter messages are stored pickled: the file is trusted data, open
only files you (or your own system) wrote.
"""

from __future__ import annotations

import json
import math
import pickle
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from .._deferred import sqlite_utils
from ._figures import (
    ADD_TOTAL,
    OPEN_STATES,
    Totals,
    decode_labels,
    encode_labels,
    stored_values,
    totals_of,
)
from ._metrics import Metrics, compute_metrics, where
from ._schema import TIME_SERIES, TOTALS_SINCE, migrate

Statement = tuple[str, Sequence[Any]]


class RecoveryStore:
    """Open (or create) a recovery store and query it.

    ``readonly=True`` opens an existing file without creating or migrating it.

    Thread-safety: one store object per thread; SQLite in WAL mode lets a
    reader (a report, the HTTP API) work while the telemetry actor writes.
    """

    def __init__(self, path: str | Path = ":memory:", *, readonly: bool = False) -> None:
        self.path = str(path)
        if readonly and self.path != ":memory:" and not Path(self.path).is_file():
            raise FileNotFoundError(f"no recovery store at {self.path}")
        # read-only stores are opened normally (SQLite needs to create the WAL's -shm
        # file when no writer has it open) but are never migrated or written
        conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        conn.isolation_level = None  # explicit transactions (sqlite-utils' atomic())
        self.db = sqlite_utils.Database(conn)
        self._columns: dict[str, list[str]] = {}
        if not readonly:
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: survives a killed process
            migrate(conn)

    def close(self) -> None:
        """Close the connection."""
        self.db.conn.close()

    def __enter__(self) -> RecoveryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------
    def write_batch(
        self, rows: Mapping[str, Iterable[dict[str, Any]]], statements: Sequence[Statement] = ()
    ) -> int:
        """Insert ``rows`` (per table) and run ``statements``, all in one transaction.

        Returns the batch id. Rows of time-series tables get the batch id; the
        ``batches`` row counts them, so a reader can check every batch is whole.
        """
        prepared = {table: list(items) for table, items in rows.items() if items}
        count = sum(len(items) for items in prepared.values())
        with self.db.atomic():
            cursor = self.db.execute(
                "INSERT INTO batches (time, rows, statements) VALUES (?, ?, ?)",
                (time.time(), count, len(statements)),
            )
            batch_id = int(cursor.lastrowid or 0)
            for table, items in prepared.items():
                if table in TIME_SERIES:
                    self._insert_rows(table, items, batch_id)
                else:
                    self.db.table(table).insert_all(items)
            # (a run of the same statement, the running totals' say, is prepared once)
            for sql, run in groupby(statements, key=itemgetter(0)):
                self.db.conn.executemany(sql, [params for _, params in run])
        return batch_id

    def _insert_rows(self, table: str, items: list[dict[str, Any]], batch_id: int) -> None:
        """The hot path of recording: one prepared INSERT for the whole list."""
        columns = self._columns.get(table)
        if columns is None:
            columns = self._columns[table] = [
                c.name for c in self.db.table(table).columns if c.name not in ("id", "batch_id")
            ]
        sql = (
            f"INSERT INTO {table} (batch_id, {', '.join(columns)}) VALUES"
            f" (?, {', '.join('?' for _ in columns)})"
        )
        self.db.conn.executemany(sql, [(batch_id, *map(item.get, columns)) for item in items])

    def save_strategy_scores(self, state: Mapping[str, Sequence[float]]) -> None:
        """Store an :class:`AdaptiveSelector` state (see ``AdaptiveSelector.state``)."""
        self.write_batch({}, strategy_score_statements(state))

    def save_checkpoint(self, path: str, state: Any, incarnation: int = 0) -> None:
        """Store a durable checkpoint for ``path``."""
        self.write_batch({}, [checkpoint_statement(path, state, incarnation)])

    def resolve_error(self, error_id: int, by: str) -> bool:
        """Mark an error resolved by ``by``; False if there is no such open error."""
        with self.db.atomic():
            cursor = self.db.execute(
                "UPDATE errors SET status='resolved', resolved_by=?, resolved_at=?"
                " WHERE id=? AND status='open'",
                (by, time.time(), error_id),
            )
        return bool(cursor.rowcount)

    def rows_kept(self) -> int:
        """The rows of the time-series tables held now (what retention counts)."""
        return int(self.db.execute("SELECT coalesce(sum(rows), 0) FROM batches").fetchone()[0])

    def retain(self, max_age_s: float | None = None, max_rows: int | None = None) -> int:
        """Drop whole batches older than ``max_age_s``, or beyond the newest ``max_rows`` rows.

        Returns the number of rows deleted. Whole batches go, so every batch kept
        is still complete.
        """
        cutoff = 0
        if max_age_s is not None:
            row = self.db.execute(
                "SELECT max(id) FROM batches WHERE time < ?", (time.time() - max_age_s,)
            ).fetchone()
            cutoff = max(cutoff, (row[0] or 0) + 1)
        if max_rows is not None and self.rows_kept() > max_rows:  # (most sweeps end here)
            kept = 0
            for batch_id, rows in self.db.execute(
                "SELECT id, rows FROM batches ORDER BY id DESC"
            ).fetchall():
                kept += rows
                if kept > max_rows:
                    cutoff = max(cutoff, batch_id + 1)
                    break
        if not cutoff:
            return 0
        deleted = 0
        with self.db.atomic():
            for table in TIME_SERIES:
                deleted += self._delete_batches_before(table, cutoff)
            self.db.execute("DELETE FROM batches WHERE id < ?", (cutoff,))
            # incidents are kept as long as the rows they sum up (an open one stays)
            oldest = self.db.execute("SELECT min(time) FROM batches").fetchone()[0]
            if max_age_s is not None:
                oldest = min(oldest or math.inf, time.time() - max_age_s)
            if oldest is not None:
                self.db.execute("DELETE FROM incidents WHERE ended < ?", (oldest,))
                # and so are resolved error groups (an open one stays until resolved)
                self.db.execute(
                    "DELETE FROM errors WHERE status = 'resolved' AND last_seen < ?", (oldest,)
                )
        return deleted

    def _delete_batches_before(self, table: str, cutoff: int) -> int:
        """Delete the rows of batches before ``cutoff``. Batches are transactions, so their
        rows' ids follow the batch order: the old rows are an id range at the start, found
        without an index on ``batch_id`` (one fewer index to keep up on every insert)."""
        kept = self.db.execute(
            f"SELECT id FROM {table} WHERE batch_id >= ? ORDER BY id LIMIT 1", (cutoff,)
        ).fetchone()
        end = kept[0] if kept is not None else (1 << 63) - 1
        # (an alert still active stays: it is raised once, and read from here until resolved)
        active = " AND status != 'active'" if table == "alerts" else ""
        cursor = self.db.execute(
            f"DELETE FROM {table} WHERE id < ? AND batch_id < ?{active}", (end, cutoff)
        )
        return int(cursor.rowcount)

    # -- reading -------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of any SELECT, as dicts."""
        return list(self.db.query(sql, params))

    def integrity_ok(self) -> bool:
        """``PRAGMA integrity_check`` says ok."""
        return bool(self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def partial_batches(self) -> list[int]:
        """Ids of batches whose rows are not all there (always empty: batches are atomic).
        One scan of each table."""
        counted: dict[int, int] = {}
        for table in TIME_SERIES:
            for batch_id, n in self.db.execute(
                f"SELECT batch_id, count(*) FROM {table} GROUP BY batch_id"
            ):
                counted[batch_id] = counted.get(batch_id, 0) + n
        batches = self.db.execute("SELECT id, rows FROM batches ORDER BY id")
        return [batch_id for batch_id, rows in batches if counted.get(batch_id, 0) != rows]

    def recovery_history(
        self, path: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Recovery attempts, newest first."""
        clause, params = where(path=path, since=since)
        return self.query(
            f"SELECT * FROM recovery_performance {clause} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )

    def events(
        self,
        since: float | None = None,
        kinds: Sequence[str] | None = None,
        path: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Tree events (failures, recoveries, restarts...), oldest first."""
        clause, params = where(path=path, since=since, kinds=kinds)
        rows = self.query(
            f"SELECT * FROM events {clause} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return rows[::-1]

    def errors(
        self,
        status: str | None = None,
        path: str | None = None,
        category: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Error groups (one per actor and fingerprint), most recent first."""
        clauses, params = [], []
        for column, value in (("status", status), ("path", path), ("category", category)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self.query(
            f"SELECT * FROM errors {where} ORDER BY last_seen DESC LIMIT ?", (*params, limit)
        )

    def error(self, error_id: int) -> dict[str, Any] | None:
        """One error group, with its recent events."""
        rows = self.query("SELECT * FROM errors WHERE id = ?", (error_id,))
        if not rows:
            return None
        row = rows[0]
        row["events"] = self.query(
            "SELECT * FROM events WHERE path = ? AND fingerprint = ? ORDER BY id DESC LIMIT 50",
            (row["path"], row["fingerprint"]),
        )
        return row

    def alerts(self, active: bool | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Alerts, newest first (``active=True``: only those not resolved)."""
        where = ""
        if active is not None:
            where = "WHERE status = 'active'" if active else "WHERE status != 'active'"
        return self.query(f"SELECT * FROM alerts {where} ORDER BY id DESC LIMIT ?", (limit,))

    def strategy_scores(self) -> dict[str, list[float]]:
        """The learned selector state (``AdaptiveSelector.load_state`` takes it)."""
        return {
            f"{r['category']}|{r['level']}|{r['strategy']}": [
                r["successes"],
                r["failures"],
                r["total_time_s"],
                r["total_cost"],
            ]
            for r in self.query("SELECT * FROM strategy_scores")
        }

    def adaptive_timeouts(self) -> dict[tuple[str, str], tuple[float, float]]:
        """Learned retry timeouts per (actor path, operation), each with the longest
        success observed for it."""
        return {
            (r["path"], r["operation"]): (r["timeout_s"], r.get("longest_s", 0.0))
            for r in self.query("SELECT * FROM adaptive_timeouts")
        }

    def paths_with_records(self) -> set[str]:
        """Paths the store keeps something for, for that path alone: a durable checkpoint,
        learned timeouts or levels, an open error group."""
        return {
            row[0]
            for row in self.db.execute(
                "SELECT path FROM checkpoints UNION SELECT path FROM progressive_recovery"
                " UNION SELECT path FROM adaptive_timeouts"
                " UNION SELECT path FROM errors WHERE status = 'open'"
            )
        }

    def checkpoints(self) -> dict[str, Any]:
        """Durable checkpoints per actor path."""
        return {
            r["path"]: pickle.loads(r["state"])
            for r in self.query("SELECT path, state FROM checkpoints")
        }

    def dead_letters(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Messages set aside, newest first (``message`` unpickled)."""
        rows = self.query("SELECT * FROM dead_letters ORDER BY id DESC LIMIT ?", (limit,))
        for row in rows:
            try:
                row["message"] = pickle.loads(row["message"]) if row["message"] else None
            except Exception:  # a class that no longer exists: keep the repr only
                row["message"] = None
        return rows

    def metrics(
        self,
        window_s: float | None = None,
        path: str | None = None,
        now: float | None = None,
        by_actor: bool = True,
    ) -> Metrics:
        """Incidents, their success rate and times to recover; attempts; errors per minute
        (see :class:`Metrics`; ``by_actor=False`` leaves ``per_actor`` empty)."""
        return compute_metrics(self, window_s, path, now, by_actor)

    def totals(self) -> Totals:
        """The running totals (see :class:`Totals`): all of history, counted as things
        happened, never lowered by retention; one read of as many rows as there are series."""
        return totals_of(stored_values(self))

    def incidents(
        self,
        path: str | None = None,
        since: float | None = None,
        outcome: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Incidents (one per failure of a fingerprint at a path), newest first."""
        clause, params = where(path=path, since=since, time_column="started")
        if outcome is not None:
            clause += f" {'AND' if clause else 'WHERE'} outcome = ?"
            params.append(outcome)
        return self.query(
            f"SELECT * FROM incidents {clause} ORDER BY started DESC, id DESC LIMIT ?",
            (*params, limit),
        )

    # -- recording runs ----------------------------------------------------------------
    def start_run(self, quiet_periods: Mapping[str, float] | None = None) -> int:
        """A telemetry actor starts recording; answers the run's id. Incidents an earlier
        run left open (its recording was cut short) are unresolved: nothing follows them."""
        with self.db.atomic():
            left_open = self.db.execute(
                "SELECT path, coalesce(level, 0), count(*) FROM incidents WHERE outcome = 'open'"
                " GROUP BY path, level"
            ).fetchall()
            for path, level, n in left_open:  # (counted now: nothing else will)
                labels = encode_labels("stalwart_incidents", (path, str(level), "unresolved"))
                self.db.execute(ADD_TOTAL, ("stalwart_incidents", labels, n))
            self.db.execute("UPDATE incidents SET outcome = 'unresolved' WHERE outcome = 'open'")
            cursor = self.db.execute(
                "INSERT INTO runs (started, quiet_periods) VALUES (?, ?)",
                (time.time(), json.dumps(dict(quiet_periods or {}))),
            )
        return int(cursor.lastrowid or 0)

    def stop_run(self, run_id: int) -> None:
        """Recording of run ``run_id`` stopped (its system stopped, or its actor)."""
        with self.db.atomic():
            self.db.execute("UPDATE runs SET stopped = ? WHERE id = ?", (time.time(), run_id))

    def latest_run(self) -> dict[str, Any] | None:
        """The newest recording run (``started``, ``stopped``: None while it records)."""
        rows = self.query("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
        if not rows:
            return None
        row = rows[0]
        row["quiet_periods"] = json.loads(row["quiet_periods"] or "{}")
        return row

    def open_breakers(self) -> list[str]:
        """Paths whose breaker is open (or forced open), as last recorded: read from the
        running totals (one row per breaker and state); a file of an older Stalwart, opened
        read-only, from its latest breaker events."""
        if int(self.db.execute("PRAGMA user_version").fetchone()[0]) < TOTALS_SINCE:
            rows = self.db.execute(
                "SELECT path, detail FROM events WHERE kind = 'breaker' AND id IN"
                " (SELECT max(id) FROM events WHERE kind = 'breaker' GROUP BY path)"
            )
            return sorted(path for path, detail in rows if detail in OPEN_STATES)
        found = []
        for text, value in self.db.execute(
            "SELECT labels, value FROM totals WHERE name = 'stalwart_breaker_state'"
        ):
            labels = decode_labels("stalwart_breaker_state", text)
            if value and labels is not None and labels[1] in OPEN_STATES:
                found.append(labels[0])
        return sorted(found)


def open_store(store: str | Path | RecoveryStore | None) -> tuple[RecoveryStore | None, bool]:
    """A store from a path (opened here: owned, True) or an open store (not owned), or None."""
    if store is None or isinstance(store, RecoveryStore):
        return store, False
    return RecoveryStore(store), True


def strategy_score_statements(state: Mapping[str, Sequence[float]]) -> list[Statement]:
    now = time.time()
    statements: list[Statement] = []
    for key, (succ, fail, total_time, total_cost) in state.items():
        category, level, strategy = key.split("|")
        statements.append(
            (
                "INSERT INTO strategy_scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(category, level, strategy) DO UPDATE SET"
                " successes=excluded.successes, failures=excluded.failures,"
                " total_time_s=excluded.total_time_s,"
                " total_cost=excluded.total_cost, updated_at=excluded.updated_at",
                (
                    category,
                    int(level),
                    strategy,
                    int(succ),
                    int(fail),
                    float(total_time),
                    float(total_cost),
                    now,
                ),
            )
        )
    return statements


def checkpoint_statement(path: str, state: Any, incarnation: int) -> Statement:
    return (
        "INSERT INTO checkpoints VALUES (?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET"
        " state=excluded.state, incarnation=excluded.incarnation, updated_at=excluded.updated_at",
        (path, pickle.dumps(state), incarnation, time.time()),
    )
