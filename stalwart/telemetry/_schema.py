"""The recovery store's schema and its migrations (``PRAGMA user_version`` is the version)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

SCHEMA_VERSION = 5
TOTALS_SINCE = 5  # the first schema with the running totals (``totals``)

# tables whose rows belong to a batch (they carry batch_id) and are kept by time
TIME_SERIES = (
    "recovery_performance",
    "events",
    "memory_events",
    "dead_letters",
    "alerts",
    "resource_predictions",
    "resource_exhaustions",
)


def _v1(conn: sqlite3.Connection) -> None:
    conn.executescript(
        """
        CREATE TABLE IF NOT EXISTS batches (
            id INTEGER PRIMARY KEY, time REAL NOT NULL, rows INTEGER NOT NULL,
            statements INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS recovery_performance (
            id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL, time REAL NOT NULL,
            path TEXT NOT NULL, operation TEXT, category TEXT, fingerprint TEXT,
            level INTEGER, strategy TEXT, success INTEGER NOT NULL, duration_s REAL,
            mem_delta_bytes INTEGER, cpu_delta_s REAL, stability INTEGER);
        CREATE INDEX IF NOT EXISTS recovery_performance_time ON recovery_performance(time);
        CREATE INDEX IF NOT EXISTS recovery_performance_path ON recovery_performance(path);
        CREATE TABLE IF NOT EXISTS strategy_scores (
            category TEXT NOT NULL, level INTEGER NOT NULL, strategy TEXT NOT NULL,
            successes INTEGER NOT NULL, failures INTEGER NOT NULL, total_time_s REAL NOT NULL,
            total_cost REAL NOT NULL, updated_at REAL NOT NULL,
            PRIMARY KEY (category, level, strategy));
        CREATE TABLE IF NOT EXISTS adaptive_timeouts (
            path TEXT NOT NULL, operation TEXT NOT NULL, timeout_s REAL NOT NULL,
            p95_s REAL NOT NULL, samples INTEGER NOT NULL, updated_at REAL NOT NULL,
            PRIMARY KEY (path, operation));
        CREATE TABLE IF NOT EXISTS progressive_recovery (
            path TEXT NOT NULL, fingerprint TEXT NOT NULL, category TEXT, level INTEGER NOT NULL,
            updated_at REAL NOT NULL, PRIMARY KEY (path, fingerprint));
        CREATE TABLE IF NOT EXISTS errors (
            id INTEGER PRIMARY KEY, path TEXT NOT NULL, fingerprint TEXT NOT NULL,
            category TEXT, severity INTEGER, error_type TEXT, message TEXT,
            first_seen REAL NOT NULL, last_seen REAL NOT NULL, count INTEGER NOT NULL,
            status TEXT NOT NULL, resolved_by TEXT, resolved_at REAL,
            UNIQUE (path, fingerprint));
        CREATE INDEX IF NOT EXISTS errors_status ON errors(status);
        CREATE TABLE IF NOT EXISTS alerts (
            id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL, time REAL NOT NULL,
            rule TEXT NOT NULL, scope TEXT NOT NULL, severity TEXT NOT NULL, message TEXT,
            value REAL, status TEXT NOT NULL, resolved_at REAL);
        CREATE TABLE IF NOT EXISTS memory_events (
            id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL, time REAL NOT NULL,
            tier TEXT NOT NULL, trigger TEXT NOT NULL, percent REAL, before_bytes INTEGER,
            after_bytes INTEGER, freed_bytes INTEGER, duration_s REAL, detail TEXT);
        CREATE TABLE IF NOT EXISTS checkpoints (
            path TEXT PRIMARY KEY, state BLOB, incarnation INTEGER, updated_at REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL, time REAL NOT NULL,
            kind TEXT NOT NULL, path TEXT NOT NULL, level INTEGER, strategy TEXT,
            category TEXT, fingerprint TEXT, detail TEXT, duration_ms REAL);
        CREATE INDEX IF NOT EXISTS events_time ON events(time);
        CREATE TABLE IF NOT EXISTS dead_letters (
            id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL, time REAL NOT NULL,
            path TEXT NOT NULL, message BLOB, message_repr TEXT, error TEXT, category TEXT,
            fingerprint TEXT, request_id TEXT);
        """
    )


def _v2(conn: sqlite3.Connection) -> None:
    """Resource trends: the predictions made (scored later) and the exhaustions seen."""
    conn.executescript(
        """
        CREATE TABLE IF NOT EXISTS resource_predictions (
            id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL, time REAL NOT NULL,
            key TEXT NOT NULL UNIQUE, resource TEXT NOT NULL, value REAL, limit_value REAL,
            slope REAL, confidence REAL, ttl_s REAL, deadline REAL NOT NULL, action TEXT,
            action_detail TEXT, outcome TEXT, scored_at REAL);
        CREATE TABLE IF NOT EXISTS resource_exhaustions (
            id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL, time REAL NOT NULL,
            resource TEXT NOT NULL, value REAL, limit_value REAL, predicted INTEGER NOT NULL);
        """
    )


def _v3(conn: sqlite3.Connection) -> None:
    """Incidents (one per failure of a fingerprint at a path, until it serves again), the
    recording runs, and who asked for a requested recovery."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(recovery_performance)")}
    if "requested_by" not in columns:
        conn.execute("ALTER TABLE recovery_performance ADD COLUMN requested_by TEXT")
    conn.executescript(
        """
        CREATE TABLE IF NOT EXISTS runs (
            id INTEGER PRIMARY KEY, started REAL NOT NULL, stopped REAL,
            quiet_periods TEXT);
        CREATE TABLE IF NOT EXISTS incidents (
            id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
            fingerprint TEXT NOT NULL, category TEXT, kind TEXT, error TEXT,
            started REAL NOT NULL, ended REAL, outcome TEXT NOT NULL, level INTEGER,
            strategy TEXT, duration_s REAL, failures INTEGER NOT NULL,
            attempts INTEGER NOT NULL, attempts_failed INTEGER NOT NULL,
            set_aside INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS incidents_started ON incidents(started);
        CREATE INDEX IF NOT EXISTS incidents_path ON incidents(path);
        """
    )


def _v4(conn: sqlite3.Connection) -> None:
    """A learned retry timeout keeps the longest success seen (it never goes below it)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(adaptive_timeouts)")}
    if "p95_s" in columns:
        conn.execute("ALTER TABLE adaptive_timeouts RENAME COLUMN p95_s TO longest_s")


def _v5(conn: sqlite3.Connection) -> None:
    """Running totals (counted as things happen, never deleted by retention), started from
    the rows kept, and an index for each query the API and the telemetry actor make."""
    from ._backfill import backfill

    conn.executescript(
        """
        CREATE TABLE IF NOT EXISTS totals (
            name TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL,
            PRIMARY KEY (name, labels)) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS batches_time ON batches(time);
        CREATE INDEX IF NOT EXISTS recovery_performance_unstamped
            ON recovery_performance(path, fingerprint, time)
            WHERE success = 1 AND stability IS NULL;
        CREATE INDEX IF NOT EXISTS events_path_fingerprint ON events(path, fingerprint);
        CREATE INDEX IF NOT EXISTS errors_last_seen ON errors(last_seen);
        CREATE INDEX IF NOT EXISTS errors_status_last_seen ON errors(status, last_seen);
        CREATE INDEX IF NOT EXISTS alerts_status ON alerts(status);
        CREATE INDEX IF NOT EXISTS incidents_outcome ON incidents(outcome, started);
        CREATE INDEX IF NOT EXISTS incidents_ended ON incidents(ended);
        CREATE INDEX IF NOT EXISTS memory_events_time ON memory_events(time);
        CREATE INDEX IF NOT EXISTS resource_predictions_time ON resource_predictions(time);
        CREATE INDEX IF NOT EXISTS resource_exhaustions_time ON resource_exhaustions(time);
        """
    )
    if conn.execute("SELECT count(*) FROM totals").fetchone()[0] == 0:
        backfill(conn)


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _v1,
    2: _v2,
    3: _v3,
    4: _v4,
    5: _v5,
}


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version found before."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise RuntimeError(
            f"recovery store schema version {found} is newer than this Stalwart"
            f" ({SCHEMA_VERSION}); upgrade Stalwart to open it"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[version](conn)
        conn.execute(f"PRAGMA user_version = {version}")
    return found
