"""Events and attempts as store rows: for the telemetry actor and for plain-code recovery."""

from __future__ import annotations

from collections.abc import Sequence
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
    """An error event opens (or counts again) its error group and notes its level. A group
    that ended with its path (see ``forgotten_statements``) begins again: a path started
    again is another life."""
    return [
        (
            "INSERT INTO errors (path, fingerprint, category, severity, error_type, message,"
            " first_seen, last_seen, count, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 'open')"
            " ON CONFLICT(path, fingerprint) DO UPDATE SET last_seen=excluded.last_seen,"
            f" count=CASE WHEN {_ENDED} THEN 1 ELSE count+1 END,"
            f" first_seen=CASE WHEN {_ENDED} THEN excluded.first_seen ELSE first_seen END,"
            " status='open', resolved_by=NULL, resolved_at=NULL,"
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


ENDED_BY = "ended: "  # how an error group whose path was forgotten was resolved
_ENDED = (
    f"status = 'resolved' AND substr(ifnull(resolved_by, ''), 1, {len(ENDED_BY)}) = '{ENDED_BY}'"
)


def recovered_statement(e: Event) -> Statement:
    """A recovery resolves the open error group it answered."""
    return (
        "UPDATE errors SET status='resolved', resolved_by=?, resolved_at=?"
        " WHERE path=? AND fingerprint=? AND status='open'",
        (f"recovery:{e.strategy}@level{e.level}", e.time, e.path, e.fingerprint),
    )


_PER_PATH = ("checkpoints", "progressive_recovery", "adaptive_timeouts")  # rows of a path alone


def forgotten_statements(
    paths: Sequence[str], reason: str, now: float, kept: Sequence[str] = ()
) -> list[Statement]:
    """``paths`` were forgotten (their specs went): what was kept for each alone goes, and
    its error groups end with it (retention then drops them): the open ones are resolved as
    ended, and those a recovery resolved say so too (after what resolved them), so that the
    path started again begins its own groups. A path in ``kept`` keeps its checkpoint."""
    by, keep = f"{ENDED_BY}{reason}"[:300], set(kept)
    return [
        *(
            (f"DELETE FROM {table} WHERE path = ?", (path,))
            for table in _PER_PATH
            for path in paths
            if table != "checkpoints" or path not in keep
        ),
        *(
            (
                "UPDATE errors SET resolved_by = CASE WHEN status = 'open' THEN ?"
                " ELSE ? || ' (resolved before by ' || ifnull(resolved_by, '?') || ')' END,"
                " resolved_at = CASE WHEN status = 'open' THEN ? ELSE resolved_at END,"
                f" status = 'resolved' WHERE path = ? AND NOT ({_ENDED})",
                (by, by, now, path),
            )
            for path in paths
        ),
    ]
