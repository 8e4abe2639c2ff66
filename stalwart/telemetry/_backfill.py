"""Running totals worked out from the rows a store kept: for a file that had none yet.

The schema 4 migration writes them into the new ``totals`` table, so an upgraded store's
counters start from its history rather than from zero; a file of an older Stalwart opened
read-only is read the same way. Totals cannot be had back for rows retention deleted
before: they start from what was kept.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ._figures import BUCKETS, LE, MTTR, SKETCH, Key, encode_labels, sketch_index

ERROR_KINDS = ("failure", "crash", "start-failure")
_OUTCOMES = {"recovered": "recovered", "given up": "given_up", "unresolved": "unresolved"}
_ATTEMPT_SECONDS = "stalwart_recovery_attempt_duration_seconds"


def _bucket_case(column: str) -> str:
    """A SQL expression giving the ``le`` of ``column``'s histogram bucket."""
    whens = " ".join(f"WHEN {column} <= {b!r} THEN '{le}'" for b, le in zip(BUCKETS[:-1], LE))
    return f"CASE {whens} ELSE '{LE[-1]}' END"


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    return list(conn.execute(sql, params))


def values_from_rows(conn: sqlite3.Connection) -> dict[Key, float]:
    """The totals the rows of a store add up to (one scan of each table)."""
    values: dict[Key, float] = {}

    def add(name: str, labels: tuple[Any, ...], amount: float) -> None:
        key = (name, tuple("" if v is None else str(v) for v in labels))
        values[key] = values.get(key, 0.0) + float(amount or 0)

    tables = _tables(conn)
    if "incidents" in tables:
        _incidents(conn, add)
    marks = ", ".join("?" for _ in ERROR_KINDS)
    for path, category, n in _rows(
        conn,
        f"SELECT path, category, count(*) FROM events WHERE kind IN ({marks})"
        " GROUP BY path, category",
        ERROR_KINDS,
    ):
        add("stalwart_errors", (path, category), n)
    for path, n in _rows(
        conn, "SELECT path, count(*) FROM events WHERE kind = 'restarted' GROUP BY path"
    ):
        add("stalwart_restarts", (path,), n)
    for path, detail in _rows(
        conn,
        "SELECT path, detail FROM events WHERE id IN"
        " (SELECT max(id) FROM events WHERE kind = 'breaker' GROUP BY path)",
    ):
        add("stalwart_breaker_state", (path, detail), 1)
    _attempts(conn, add)
    for path, n in _rows(conn, "SELECT path, count(*) FROM dead_letters GROUP BY path"):
        add("stalwart_dead_letters", (path,), n)
    for rule, severity, n in _rows(
        conn, "SELECT rule, severity, count(*) FROM alerts GROUP BY rule, severity"
    ):
        add("stalwart_alerts", (rule, severity), n)
    for tier, n, freed in _rows(
        conn,
        "SELECT tier, count(*), sum(max(coalesce(freed_bytes, 0), 0)) FROM memory_events"
        " GROUP BY tier",
    ):
        add("stalwart_memory_cleanups", (tier,), n)
        add("stalwart_memory_freed_bytes", (tier,), freed)
    return values


def _incidents(conn: sqlite3.Connection, add: Any) -> None:
    for path, n, still_open in _rows(
        conn, "SELECT path, count(*), sum(outcome = 'open') FROM incidents GROUP BY path"
    ):
        add("stalwart_incidents_opened", (path,), n)
        if still_open:
            add("stalwart_incidents_open", (path,), still_open)
    for path, level, outcome, n in _rows(
        conn,
        "SELECT path, coalesce(level, 0), outcome, count(*) FROM incidents"
        " WHERE outcome != 'open' GROUP BY path, level, outcome",
    ):
        if outcome in _OUTCOMES:
            add("stalwart_incidents", (path, level, _OUTCOMES[outcome]), n)
    for (seconds,) in _rows(
        conn, "SELECT coalesce(duration_s, 0) FROM incidents WHERE outcome = 'recovered'"
    ):
        add(f"{MTTR}_bucket", (_le(seconds),), 1)
        add(f"{MTTR}_sum", (), seconds)
        add(SKETCH, (sketch_index(seconds),), 1)


def _le(seconds: float) -> str:
    return next((le for b, le in zip(BUCKETS, LE) if seconds <= b), LE[-1])


def _attempts(conn: sqlite3.Connection, add: Any) -> None:
    case = _bucket_case("max(coalesce(duration_s, 0), 0)")
    for level, strategy, success, le, n, total in _rows(
        conn,
        f"SELECT coalesce(level, 0), coalesce(strategy, ''), success, {case} AS le, count(*),"
        " sum(max(coalesce(duration_s, 0), 0)) FROM recovery_performance"
        " GROUP BY level, strategy, success, le",
    ):
        outcome = "success" if success else "failure"
        add("stalwart_recovery_attempts", (level, strategy, outcome), n)
        add(f"{_ATTEMPT_SECONDS}_bucket", (level, outcome, le), n)
        add(f"{_ATTEMPT_SECONDS}_sum", (level, outcome), total)


def backfill(conn: sqlite3.Connection) -> None:
    """Write the totals of the rows kept into the (empty) ``totals`` table, at once."""
    rows = [(n, encode_labels(n, labels), v) for (n, labels), v in values_from_rows(conn).items()]
    conn.execute("BEGIN")
    try:
        conn.executemany("INSERT INTO totals (name, labels, value) VALUES (?, ?, ?)", rows)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
