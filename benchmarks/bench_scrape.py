"""``GET /metrics`` and ``GET /api/dashboard`` with 10,000 and with 1,000,000 recorded attempts.

Each store is written straight through the store's batch writer: the rows (attempts,
events, incidents) and the running totals the telemetry actor would write with them. Each
is then served twice: as a store view (``stalwart serve --db``) and by a live system
started on the file. A figure is the median of a series of requests over loopback HTTP,
on a kept-alive connection as Prometheus keeps them.
The goal is flat and at most 5 ms: the 1M figure is shown beside the 10k one, and beside
5 ms; the peer is what a scrape did before, counting the figures from every row kept. Last,
the telemetry actor's stability verdict (an update a minute after each recovery) at 1M,
beside the same update planned through the path index alone, as it was before.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import tempfile
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from _report import Figure, Row, median, now, print_rows

from stalwart import Supervisor, start
from stalwart.supervisors._incident_log import Incident
from stalwart.telemetry import RecoveryStore
from stalwart.telemetry._api import ApiServer, StoreBackend
from stalwart.telemetry._figures import BUCKETS, GAMMA, LE, MTTR, SKETCH
from stalwart.telemetry._rows import incident_statement
from stalwart.telemetry._totals import RunningTotals

SIZES = (10_000, 1_000_000)
REQUESTS = 60
ROUNDS = 6
GOAL_MS = 5.0
PATHS = [f"shop/{name}" for name in ("db", "inventory", "api", "pay", "w.0", "w.1", "w.2")]
CHUNK = 25_000  # incidents per batch
ATTEMPT_S = "stalwart_recovery_attempt_duration_seconds"


STEPS = ((1, "retry", False), (2, "backoff", False), (2, "backoff", False), (3, "restart", True))
EVERY_S = 4.0  # one incident every 4 s (an attempt a second): more history is older history


def write_store(path: str, attempts: int) -> None:
    """``attempts`` attempts, the newest now: incidents of four attempts each (two retries and
    a backoff that fail, a restart that works), with their failure and recovery events, the
    incidents' rows, and what they add to the running totals (counted in bulk here, as the
    telemetry actor counts them one by one)."""
    rng = np.random.default_rng(7)
    count = attempts // len(STEPS)
    stamp = time.time() - count * EVERY_S
    totals = RunningTotals()
    with RecoveryStore(path) as store:
        store.db.execute("PRAGMA cache_size = -262144")  # (256 MiB: the indexes stay cached)
        for first in range(0, count, CHUNK):
            ids = np.arange(first, min(first + CHUNK, count))
            spent = rng.exponential(0.05, (len(ids), len(STEPS)))
            rows, statements = chunk_rows(stamp, ids, spent, stamped=first + CHUNK < count)
            count_chunk(totals, ids, spent)
            store.write_batch(rows, statements + totals.statements())


def chunk_rows(
    stamp: float, ids: np.ndarray[Any, Any], spent: np.ndarray[Any, Any], stamped: bool
) -> tuple[dict[str, list[dict[str, Any]]], list[Any]]:
    """A chunk's rows; ``stamped``: its successful attempts have their stability verdict
    (all but the newest chunk: the telemetry actor gives it a minute after each)."""
    attempts, events, statements = [], [], []
    for i, row in zip(ids.tolist(), spent.tolist()):
        t, where, fp = stamp + i * EVERY_S, PATHS[i % len(PATHS)], f"fp{i % 11}"
        for (level, strategy, ok), s in zip(STEPS, row):
            attempts.append(
                {
                    "time": t,
                    "path": where,
                    "operation": "Work",
                    "category": "io",
                    "fingerprint": fp,
                    "level": level,
                    "strategy": strategy,
                    "success": int(ok),
                    "duration_s": s,
                    "stability": 1 if ok and stamped else None,
                }
            )
        for kind, level in (("failure", 1), ("recovered", 3)):
            events.append(
                {
                    "time": t,
                    "kind": kind,
                    "path": where,
                    "level": level,
                    "category": "io",
                    "fingerprint": fp,
                    "detail": "OSError: down",
                }
            )
        incident = Incident(i, where, fp, t, "failure", outcome="recovered", ended=t + sum(row))
        incident.duration_s, incident.level, incident.strategy = sum(row), 3, "restart"
        incident.failures, incident.attempts, incident.attempts_failed = 3, 4, 3
        statements.append(incident_statement(incident, f"bench.{i}"))
    return {"recovery_performance": attempts, "events": events}, statements


def count_chunk(
    totals: RunningTotals, ids: np.ndarray[Any, Any], spent: np.ndarray[Any, Any]
) -> None:
    """What the running totals count for a chunk's rows (the same series, added in bulk)."""
    bounds = np.array(BUCKETS[:-1])
    for step, (level, strategy, ok) in enumerate(STEPS):
        labels = (str(level), "success" if ok else "failure")
        totals.add(("stalwart_recovery_attempts", (labels[0], strategy, labels[1])), len(ids))
        totals.add((f"{ATTEMPT_S}_sum", labels), float(spent[:, step].sum()))
        found = np.bincount(np.searchsorted(bounds, spent[:, step]), minlength=len(LE))
        for le, n in zip(LE, found.tolist()):
            totals.add((f"{ATTEMPT_S}_bucket", (*labels, le)), n)
    per_path = np.bincount(ids % len(PATHS), minlength=len(PATHS)).tolist()
    for where, n in zip(PATHS, per_path):
        totals.add(("stalwart_errors", (where, "io")), n)
        totals.add(("stalwart_incidents_opened", (where,)), n)
        totals.add(("stalwart_incidents", (where, "3", "recovered")), n)
    recovered = spent.sum(axis=1)
    found = np.bincount(np.searchsorted(bounds, recovered), minlength=len(LE))
    for le, n in zip(LE, found.tolist()):
        totals.add((f"{MTTR}_bucket", (le,)), n)
    totals.add((f"{MTTR}_sum", ()), float(recovered.sum()))
    sketch = np.ceil(np.log(np.maximum(recovered, 1e-4)) / math.log(GAMMA) - 1e-9)
    for index, n in zip(*np.unique(sketch.astype(int), return_counts=True)):
        totals.add((SKETCH, (str(index),)), int(n))


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return bytes(response.read())


def counted_from_rows(path: str) -> float:
    """The milliseconds the figures take counted from every row (what a scrape did before);
    and a check that the running totals say what the rows say."""
    with RecoveryStore(path, readonly=True) as store:
        t0 = now()
        kept = store.metrics()
        elapsed = (now() - t0) * 1000
        counted = store.totals()
    assert (counted.attempts, counted.incidents) == (kept.attempts, kept.incidents)
    assert (counted.errors, counted.incidents_recovered) == (kept.errors, kept.incidents)
    return elapsed


def stability_verdict(path: str) -> tuple[float, float]:
    """Milliseconds of the telemetry actor's stability verdict for one actor and error (the
    UPDATE it makes a minute after a recovery), as the store plans it and through the path
    index alone (as it was planned before the index of unmarked attempts), rolled back."""
    found = []
    with RecoveryStore(path) as store:
        for hint in ("", "INDEXED BY recovery_performance_path"):
            sql = (
                f"UPDATE recovery_performance {hint} SET stability = 1 WHERE path = ? AND"
                " fingerprint = ? AND success = 1 AND stability IS NULL AND time <= ?"
            )
            times = []
            for _ in range(5):
                store.db.execute("BEGIN")
                t0 = now()
                store.db.execute(sql, (PATHS[0], "fp0", time.time()))
                times.append((now() - t0) * 1000)
                store.db.execute("ROLLBACK")
            found.append(median(times))
    return found[0], found[1]


def dashboard_ready(url: str) -> float:
    """Poll the dashboard until its figures are read; the milliseconds of the first poll."""
    t0 = now()
    get(f"{url}/api/dashboard")
    first = (now() - t0) * 1000
    deadline = time.monotonic() + 60
    while json.loads(get(f"{url}/api/dashboard"))["figures"] != "ready":
        if time.monotonic() > deadline:
            raise RuntimeError("the dashboard's figures were never read")
        time.sleep(0.05)
    return first


def interleaved(urls: dict[tuple[int, str], str]) -> dict[tuple[int, str, str], float]:
    """Median milliseconds per (size, view, endpoint), over one kept-alive connection each
    (as Prometheus scrapes): rounds that take a few requests of each in turn, so the
    machine's drifts fall on all of them alike."""
    times: dict[tuple[int, str, str], list[float]] = {}
    connections = {
        key: http.client.HTTPConnection(*urlsplit(url).netloc.split(":"), timeout=60)
        for key, url in urls.items()
    }
    try:
        for _ in range(ROUNDS):
            for key, connection in connections.items():
                for endpoint in ("/metrics", "/api/dashboard"):
                    found = times.setdefault((*key, endpoint), [])
                    for _ in range(REQUESTS // ROUNDS):
                        t0 = now()
                        connection.request("GET", endpoint)
                        answer = connection.getresponse()
                        answer.read()
                        found.append((now() - t0) * 1000)
                        assert answer.status == 200, answer.status
    finally:
        for connection in connections.values():
            connection.close()
    return {key: median(values) for key, values in times.items()}


def run() -> None:
    builds: dict[int, float] = {}
    first: dict[int, float] = {}
    rows_ms: dict[int, float] = {}
    verdicts: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        urls: dict[tuple[int, str], str] = {}
        for size in SIZES:
            path = os.path.join(folder, f"{size}.db")
            t0 = now()
            write_store(path, size)
            builds[size] = now() - t0
            rows_ms[size] = counted_from_rows(path)
            verdicts[size] = stability_verdict(path)
            store_view = stack.enter_context(ApiServer(StoreBackend(path)))
            first[size] = dashboard_ready(store_view.url)
            urls[(size, "store view")] = store_view.url
            system = stack.enter_context(start(Supervisor("shop"), store=path, report_path=None))
            live = system.serve_api()
            stack.callback(live.stop)
            dashboard_ready(live.url)
            urls[(size, "live system")] = live.url
        measured = interleaved(urls)
    small, big = SIZES
    rows: list[Row | Figure] = []
    for endpoint in ("/metrics", "/api/dashboard"):
        for view in ("store view", "live system"):
            ms = measured[(big, view, endpoint)]
            name = f"GET {endpoint}, {view}, 1M attempts"
            rows.append(Row(name, ms, "10k", measured[(small, view, endpoint)], "ms", goal=1.5))
            rows.append(Row(name, ms, "goal", GOAL_MS, "ms", goal=1.0))
    rows.append(
        Row(
            "GET /metrics, store view, 1M attempts",
            measured[(big, "store view", "/metrics")],
            "from the rows",
            rows_ms[big],
            "ms",
            goal=0.01,
        )
    )
    rows.append(
        Row(
            "a stability verdict, 1M attempts",
            verdicts[big][0],
            "path index (before)",
            verdicts[big][1],
            "ms",
            goal=0.1,
        )
    )
    rows.append(
        Figure(
            "first dashboard poll of a store, 1M attempts",
            first[big],
            "ms",
            f"10k: {first[small]:.1f} ms; it folds the newest 2,000 events",
        )
    )
    rows.append(Figure("store of 1M attempts written", builds[big], "s"))
    print_rows("scrapes and the dashboard, 10k and 1M recorded attempts", rows)


if __name__ == "__main__":
    run()
