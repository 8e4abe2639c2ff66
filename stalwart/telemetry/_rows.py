"""Events and attempts as store rows: for the telemetry actor and for plain-code recovery."""

from __future__ import annotations

from typing import Any

from ..supervisors._incident_log import Incident
from ..supervisors.messages import Attempt, Event
from ._store import Statement

INCIDENT_COLUMNS = (
    "key",
    "path",
    "fingerprint",
    "category",
    "kind",
    "error",
    "started",
    "ended",
    "outcome",
    "level",
    "strategy",
    "duration_s",
    "failures",
    "attempts",
    "attempts_failed",
    "set_aside",
)
_INCIDENT_UPSERT = (
    f"INSERT INTO incidents ({', '.join(INCIDENT_COLUMNS)}) VALUES"
    f" ({', '.join('?' for _ in INCIDENT_COLUMNS)}) ON CONFLICT(key) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in INCIDENT_COLUMNS[7:])
)


def event_row(e: Event) -> dict[str, Any]:
    """The ``events`` row of an event."""
    return {
        "time": e.time,
        "kind": e.kind,
        "path": e.path,
        "level": e.level,
        "strategy": e.strategy,
        "category": e.category,
        "fingerprint": e.fingerprint,
        "detail": e.detail,
        "duration_ms": e.duration_ms,
    }


def attempt_row(a: Attempt) -> dict[str, Any]:
    """The ``recovery_performance`` row of an attempt."""
    return {
        "time": a.time,
        "path": a.path,
        "operation": a.operation,
        "category": a.category,
        "fingerprint": a.fingerprint,
        "level": a.level,
        "strategy": a.strategy,
        "success": int(a.success),
        "duration_s": a.duration_s,
        "mem_delta_bytes": a.mem_delta_bytes,
        "cpu_delta_s": a.cpu_delta_s,
        "stability": None,
        "requested_by": a.requested_by or None,
    }


def incident_statement(incident: Incident, key: str) -> Statement:
    """Write ``incident`` as it stands (its row is ``key``: ``<run>.<id>``)."""
    return (
        _INCIDENT_UPSERT,
        (
            key,
            incident.path,
            incident.fingerprint,
            incident.category,
            incident.kind,
            incident.error[:300],
            incident.started,
            incident.ended,
            incident.outcome,
            incident.level,
            incident.strategy,
            incident.duration_s,
            incident.failures,
            incident.attempts,
            incident.attempts_failed,
            incident.set_aside,
        ),
    )


def error_seen_statements(e: Event) -> list[Statement]:
    """An error event opens (or counts again) its error group and notes its level."""
    return [
        (
            "INSERT INTO errors (path, fingerprint, category, severity, error_type, message,"
            " first_seen, last_seen, count, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 'open')"
            " ON CONFLICT(path, fingerprint) DO UPDATE SET last_seen=excluded.last_seen,"
            " count=count+1, status='open', resolved_by=NULL, resolved_at=NULL,"
            " message=excluded.message, severity=excluded.severity",
            (
                e.path,
                e.fingerprint,
                e.category,
                e.severity or None,
                e.detail.split(":", 1)[0],
                e.detail,
                e.time,
                e.time,
            ),
        ),
        (
            "INSERT INTO progressive_recovery VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(path, fingerprint) DO UPDATE SET level=excluded.level,"
            " category=excluded.category, updated_at=excluded.updated_at",
            (e.path, e.fingerprint, e.category, e.level, e.time),
        ),
    ]


def recovered_statement(e: Event) -> Statement:
    """A recovery resolves the open error group it answered."""
    return (
        "UPDATE errors SET status='resolved', resolved_by=?, resolved_at=?"
        " WHERE path=? AND fingerprint=? AND status='open'",
        (f"recovery:{e.strategy}@level{e.level}", e.time, e.path, e.fingerprint),
    )
