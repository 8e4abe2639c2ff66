"""Recovery figures from a store: incidents first, attempts named as such.

An *incident* runs from the first failure of a fingerprint at a path to that path serving
again, or to the tree giving it up (see :mod:`stalwart.supervisors._incident_log`); the
telemetry actor writes one ``incidents`` row per incident as it goes. An *attempt* is one
recovery action (a retry, a restart...) in ``recovery_performance``: an incident that needed
three attempts is one incident. Every figure here is defined in docs/guide-telemetry.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from .._deferred import np

if TYPE_CHECKING:
    from ._store import RecoveryStore

ERROR_KINDS = ("failure", "crash", "start-failure")  # an error the tree saw (each counted)
ENDED = ("recovered", "given up")  # what the incident success rate is taken over


class Metrics(msgspec.Struct, frozen=True):
    """Recovery figures over a window (all of history when ``window_s`` is None).

    Incidents are counted by when they began, attempts and errors by when they happened.
    """

    window_s: float | None
    incidents: int
    incidents_recovered: int
    incidents_given_up: int
    incidents_open: int
    incidents_unresolved: int
    incident_success_rate: float | None
    mttr_mean_s: float | None
    mttr_p50_s: float | None
    mttr_p95_s: float | None
    mttr_p99_s: float | None
    incidents_by_level: dict[int, int]
    attempts: int
    attempts_succeeded: int
    attempts_failed: int
    attempt_success_rate: float | None
    attempt_mean_s: float | None
    attempt_p50_s: float | None
    attempt_p95_s: float | None
    attempts_by_level: dict[int, int]
    requested: int
    restarts: int
    errors: int
    errors_per_min: float
    per_actor: dict[str, dict[str, Any]]
    open_breakers: list[str]


def _percentile(values: np.ndarray[Any, Any], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _mean(values: np.ndarray[Any, Any]) -> float | None:
    return float(values.mean()) if len(values) else None


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def where(
    path: str | None = None,
    since: float | None = None,
    kinds: Sequence[str] | None = None,
    time_column: str = "time",
) -> tuple[str, list[Any]]:
    """A WHERE clause for ``path`` (and below), ``since`` and event ``kinds``.

    The paths below ``path`` are a range (``path/`` up to ``path0``, '0' following '/'), so
    an index on ``path`` serves it, and no character of a path is taken as a pattern. With
    ``since``, the time index reads the rows (``+path`` keeps the planner off the path
    index, which would read the path's whole history)."""
    clauses: list[str] = []
    params: list[Any] = []
    if path is not None:
        column = "path" if since is None else "+path"
        clauses.append(f"({column} = ? OR ({column} > ? AND {column} < ?))")
        params += [path, path + "/", path + "0"]
    if since is not None:
        clauses.append(f"{time_column} >= ?")
        params.append(since)
    if kinds:
        clauses.append(f"kind IN ({', '.join('?' for _ in kinds)})")
        params += list(kinds)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else "", params)


def compute_metrics(
    store: RecoveryStore,
    window_s: float | None = None,
    path: str | None = None,
    now: float | None = None,
    by_actor: bool = True,
) -> Metrics:
    """The figures of ``store`` over ``window_s`` (None: everything), for ``path`` and below
    (``by_actor=False``: without the figures per actor, which an alert never reads and which
    cost the most where a Pool's keys come and go: one group per key in the window)."""
    now = time.time() if now is None else now
    since = None if window_s is None else now - window_s
    # (a file of an older Stalwart, opened read-only, has no incidents: they read as none)
    legacy = int(store.db.execute("PRAGMA user_version").fetchone()[0]) < 3
    iwhere, iparams = ("WHERE 0", []) if legacy else where(path, since, time_column="started")
    table = "(SELECT NULL AS outcome, NULL AS duration_s, NULL AS level, NULL AS path)"
    table = table if legacy else "incidents"
    awhere, aparams = where(path, since)
    ewhere, eparams = where(path, since, ERROR_KINDS)
    errors = int(store.db.execute(f"SELECT count(*) FROM events {ewhere}", eparams).fetchone()[0])
    return Metrics(
        window_s=window_s,
        **incident_figures(store, table, iwhere, iparams),
        **attempt_figures(store, awhere, aparams, legacy),
        errors=errors,
        errors_per_min=errors / _minutes(store, window_s),
        per_actor=per_actor(store, awhere, aparams, table, iwhere, iparams) if by_actor else {},
        open_breakers=store.open_breakers(),
    )


def incident_figures(
    store: RecoveryStore, table: str, clause: str, params: list[Any]
) -> dict[str, Any]:
    """How many incidents ended how, the success rate over the ended, times to recover."""
    db = store.db
    outcomes: dict[str, int] = dict(
        # (GROUP BY +column: the window's index reads the rows; an index on the column
        # would spare the sort by reading every row of history instead)
        db.execute(f"SELECT outcome, count(*) FROM {table} {clause} GROUP BY +outcome", params)
    )
    recovered = f"{clause} {'AND' if clause else 'WHERE'} outcome = 'recovered'"
    mttr = np.fromiter(
        (d or 0.0 for (d,) in db.execute(f"SELECT duration_s FROM {table} {recovered}", params)),
        dtype=float,
    )
    by_level = db.execute(f"SELECT level, count(*) FROM {table} {recovered} GROUP BY level", params)
    ended = sum(outcomes.get(o, 0) for o in ENDED)
    return {
        "incidents": sum(outcomes.values()),
        "incidents_recovered": outcomes.get("recovered", 0),
        "incidents_given_up": outcomes.get("given up", 0),
        "incidents_open": outcomes.get("open", 0),
        "incidents_unresolved": outcomes.get("unresolved", 0),
        "incident_success_rate": _rate(outcomes.get("recovered", 0), ended),
        "mttr_mean_s": _mean(mttr),
        "mttr_p50_s": _percentile(mttr, 50),
        "mttr_p95_s": _percentile(mttr, 95),
        "mttr_p99_s": _percentile(mttr, 99),
        "incidents_by_level": {int(level or 0): int(n) for level, n in by_level},
    }


def attempt_figures(
    store: RecoveryStore, clause: str, params: list[Any], legacy: bool = False
) -> dict[str, Any]:
    """Attempts per level, how many worked, how long the successful ones took."""
    db = store.db
    rows = f"FROM recovery_performance {clause}"
    by_level = {
        int(level or 0): int(n)
        for level, n in db.execute(f"SELECT level, count(*) {rows} GROUP BY level", params)
    }
    attempts = sum(by_level.values())
    success = f"{rows} {'AND' if clause else 'WHERE'} success = 1"
    durations = np.fromiter(
        (d or 0.0 for (d,) in db.execute(f"SELECT duration_s {success}", params)), dtype=float
    )
    requested = "NULL" if legacy else "requested_by"  # (counts the rows where it is set)
    return {
        "attempts": attempts,
        "attempts_succeeded": len(durations),
        "attempts_failed": attempts - len(durations),
        "attempt_success_rate": _rate(len(durations), attempts),
        "attempt_mean_s": _mean(durations),
        "attempt_p50_s": _percentile(durations, 50),
        "attempt_p95_s": _percentile(durations, 95),
        "attempts_by_level": by_level,
        "requested": int(db.execute(f"SELECT count({requested}) {rows}", params).fetchone()[0]),
        "restarts": sum(n for level, n in by_level.items() if level >= 3),
    }


def _minutes(store: RecoveryStore, window_s: float | None) -> float:
    """The window in minutes; for all of history, the span recorded (at least a second)."""
    if window_s is not None:
        return window_s / 60
    # (two queries: one min() or max() each is read from the index, both at once scan)
    first = store.db.execute("SELECT min(time) FROM events").fetchone()[0]
    last = store.db.execute("SELECT max(time) FROM events").fetchone()[0]
    if first is None:
        return 1.0
    return max(float(last) - float(first), 1.0) / 60


def per_actor(
    store: RecoveryStore,
    awhere: str,
    aparams: list[Any],
    incidents: str,
    iwhere: str,
    iparams: list[Any],
) -> dict[str, dict[str, Any]]:
    """Attempts and incidents per actor path."""
    found: dict[str, dict[str, Any]] = {}

    def actor(path: str) -> dict[str, Any]:
        return found.setdefault(
            path,
            {
                "attempts": 0,
                "attempts_succeeded": 0,
                "attempt_success_rate": None,
                "incidents": 0,
                "incidents_recovered": 0,
                "incidents_given_up": 0,
                "incident_success_rate": None,
            },
        )

    for p, n, ok in store.db.execute(
        f"SELECT path, count(*), sum(success) FROM recovery_performance {awhere} GROUP BY +path",
        aparams,
    ):
        a = actor(p)
        a["attempts"], a["attempts_succeeded"] = int(n), int(ok or 0)
        a["attempt_success_rate"] = _rate(int(ok or 0), int(n))
    for p, n, ok, lost in store.db.execute(
        "SELECT path, count(*), sum(outcome = 'recovered'), sum(outcome = 'given up')"
        f" FROM {incidents} {iwhere} GROUP BY +path",
        iparams,
    ):
        a = actor(p)
        a["incidents"], a["incidents_recovered"] = int(n), int(ok or 0)
        a["incidents_given_up"] = int(lost or 0)
        a["incident_success_rate"] = _rate(int(ok or 0), int(ok or 0) + int(lost or 0))
    return found
