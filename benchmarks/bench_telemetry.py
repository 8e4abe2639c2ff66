"""Recording throughput of the telemetry actor's batching, and report generation at scale.

1. Events recorded per second: a driver actor sends recovery-attempt records to
   the telemetry actor, which writes them in batches to a SQLite file, until a
   flush confirms them all; beside it, one sqlite-utils ``insert`` per event into
   the same table layout (each its own transaction, as a naive recorder would).
2. Report generation (text and HTML) over 1,000,000 recorded attempts.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time
from typing import Any

import msgspec
import sqlite_utils
from _report import Figure, Row, print_rows

from stalwart import Child, ManagedActor, Supervisor, start
from stalwart.telemetry import Attempt, RecoveryStore
from stalwart.telemetry._report import render_html, report_text
from stalwart.telemetry._rows import attempt_row

EVENTS = 20_000
PEER_EVENTS = 2_000
REPORT_ROWS = 1_000_000


class Flood(msgspec.Struct, frozen=True):
    n: int


def attempt(i: int) -> Attempt:
    return Attempt(
        time.time(),
        f"shop/w.{i % 8}",
        "Work",
        "connection",
        "fp",
        1 + i % 3,
        "retry",
        i % 5 != 0,
        0.01 * (i % 7),
    )


class Flooder(ManagedActor):
    def receiveMsg_Flood(self, msg: Flood, sender: Any) -> None:
        for i in range(msg.n):
            self.tell("_system/telemetry", attempt(i))
        self.reply(sender, msg.n)


def ours(folder: str) -> float:
    db = os.path.join(folder, "batched.db")
    tree = Supervisor("b", children=[Child("flood", Flooder)])
    with start(tree, store=db, report_path=None) as system:
        system.ask("b/flood", Flood(100), timeout=60)
        system.flush()
        started = time.perf_counter()
        system.ask("b/flood", Flood(EVENTS), timeout=300)
        system.flush()  # everything written and committed
        elapsed = time.perf_counter() - started
    with RecoveryStore(db, readonly=True) as store:
        assert len(store.recovery_history(limit=10**9)) == EVENTS + 100
    return EVENTS / elapsed


def peer(folder: str, tuned: bool) -> float:
    """One insert per event; ``tuned``: in WAL mode with synchronous=NORMAL, like our store."""
    path = os.path.join(folder, f"naive-{tuned}.db")
    RecoveryStore(path).close()  # the same tables
    conn = sqlite3.connect(path)
    if not tuned:
        conn.execute("PRAGMA journal_mode=DELETE")  # sqlite-utils' and SQLite's defaults
        conn.execute("PRAGMA synchronous=FULL")
    else:
        conn.execute("PRAGMA synchronous=NORMAL")
    db = sqlite_utils.Database(conn)
    table = db.table("recovery_performance")
    started = time.perf_counter()
    for i in range(PEER_EVENTS):
        a = attempt(i)
        table.insert({"batch_id": 0, **attempt_row(a)})
    elapsed = time.perf_counter() - started
    conn.close()
    return PEER_EVENTS / elapsed


def big_store(folder: str) -> str:
    path = os.path.join(folder, "million.db")
    store = RecoveryStore(path)
    rng = random.Random(7)
    now = time.time()
    paths = [f"shop/{name}" for name in ("db", "inventory", "api", "w.0", "w.1", "w.2")]
    chunk = 100_000
    for start_row in range(0, REPORT_ROWS, chunk):
        rows = []
        events = []
        for i in range(start_row, start_row + chunk):
            t = now - 86400 + 86400 * i / REPORT_ROWS
            ok = rng.random() < 0.85
            level = 1 + int(rng.random() * 4)
            actor = rng.choice(paths)
            rows.append(
                {
                    "time": t,
                    "path": actor,
                    "operation": "Work",
                    "category": "connection",
                    "fingerprint": "fp",
                    "level": level,
                    "strategy": "retry",
                    "success": int(ok),
                    "duration_s": rng.expovariate(10),
                }
            )
            if i % 20 == 0:
                events.append(
                    {
                        "time": t,
                        "kind": "failure" if not ok else "recovered",
                        "path": actor,
                        "level": level,
                        "strategy": "retry",
                        "category": "connection",
                        "fingerprint": "fp",
                        "detail": "ConnectionError: refused",
                        "duration_ms": 1.0,
                    }
                )
        store.write_batch({"recovery_performance": rows, "events": events})
    store.save_strategy_scores({"connection|1|retry": [850, 150, 10.0, 0.0]})
    store.close()
    return path


def run() -> None:
    with tempfile.TemporaryDirectory() as folder:
        batched = ours(folder)
        naive = peer(folder, tuned=False)
        tuned = peer(folder, tuned=True)
        rows: list[Row | Figure] = [
            Row(
                "events recorded per second",
                batched,
                "one INSERT per event (defaults)",
                naive,
                "ev/s",
                better="higher",
                goal=20.0,
            ),
            Row(
                "events recorded per second",
                batched,
                "one INSERT per event (WAL, NORMAL)",
                tuned,
                "ev/s",
                better="higher",
            ),
        ]
        path = big_store(folder)
        with RecoveryStore(path, readonly=True) as store:
            started = time.perf_counter()
            text = report_text(store)
            text_s = time.perf_counter() - started
            started = time.perf_counter()
            page = render_html(store)
            html_s = time.perf_counter() - started
        assert "Worst actors" in text and "<svg" in page
        rows.append(Figure(f"text report over {REPORT_ROWS:,} attempts", text_s, "s"))
        rows.append(
            Figure(
                f"HTML report over {REPORT_ROWS:,} attempts",
                html_s,
                "s",
                f"{len(page) // 1024} KiB page",
            )
        )
        print_rows("telemetry: recording and reports", rows)


if __name__ == "__main__":
    run()
