"""The recovery store on real SQLite files."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from stalwart.telemetry import RecoveryStore
from stalwart.telemetry._schema import SCHEMA_VERSION


def attempt(path="a/b", level=1, success=True, duration=0.1, t=None, **extra):
    row = {
        "time": t or time.time(),
        "path": path,
        "operation": "Work",
        "category": "connection",
        "fingerprint": "fp1",
        "level": level,
        "strategy": "retry",
        "success": int(success),
        "duration_s": duration,
        "mem_delta_bytes": 0,
        "cpu_delta_s": 0.0,
        "stability": None,
    }
    row.update(extra)
    return row


def test_a_new_file_gets_the_schema_in_wal_mode(tmp_path):
    path = tmp_path / "r.db"
    with RecoveryStore(path) as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = set(store.db.table_names())
    assert {
        "recovery_performance",
        "strategy_scores",
        "adaptive_timeouts",
        "progressive_recovery",
        "errors",
        "alerts",
        "memory_events",
        "checkpoints",
    } <= tables
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_file_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "r.db"
    RecoveryStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this Stalwart"):
        RecoveryStore(path)


def test_a_batch_is_written_whole_or_not_at_all(tmp_path):
    store = RecoveryStore(tmp_path / "r.db")
    store.write_batch({"recovery_performance": [attempt(), attempt()]})
    with pytest.raises(sqlite3.IntegrityError):
        store.write_batch({"recovery_performance": [attempt(), attempt(path=None)]})
    assert len(store.recovery_history()) == 2
    assert store.partial_batches() == []


def test_attempt_figures_over_a_window(tmp_path):
    store = RecoveryStore(tmp_path / "r.db")
    now = time.time()
    rows = [attempt(success=True, duration=d, t=now - 10) for d in (0.1, 0.2, 0.3, 0.4)]
    rows += [attempt(level=3, success=False, duration=1.0, t=now - 10)]
    rows += [attempt(path="a/old", success=False, t=now - 3600)]
    store.write_batch({"recovery_performance": rows})
    m = store.metrics(window_s=60, now=now)
    assert (m.attempts, m.attempts_succeeded, m.attempts_failed) == (5, 4, 1)
    assert m.attempt_success_rate == pytest.approx(0.8)
    assert m.attempt_mean_s == pytest.approx(0.25)
    assert m.attempt_p50_s == pytest.approx(0.25) and m.attempt_p95_s == pytest.approx(0.385)
    assert m.attempts_by_level == {1: 4, 3: 1} and m.restarts == 1
    assert m.incidents == 0 and m.incident_success_rate is None  # (attempt rows only)
    assert store.metrics(now=now).attempts == 6
    assert store.metrics(window_s=60, path="a/old", now=now).attempts == 0


def test_retention_drops_whole_old_batches(tmp_path):
    store = RecoveryStore(tmp_path / "r.db")
    for _ in range(5):
        store.write_batch({"recovery_performance": [attempt() for _ in range(10)]})
    deleted = store.retain(max_rows=25)
    assert deleted == 30
    assert len(store.recovery_history()) == 20
    assert store.partial_batches() == []


def test_errors_can_be_resolved_once(tmp_path):
    store = RecoveryStore(tmp_path / "r.db")
    store.write_batch(
        {},
        [
            (
                "INSERT INTO errors (path, fingerprint, first_seen, last_seen, count, status)"
                " VALUES ('a/b', 'fp', 1, 1, 1, 'open')",
                (),
            )
        ],
    )
    [error] = store.errors(status="open")
    assert store.resolve_error(error["id"], "alice")
    assert not store.resolve_error(error["id"], "bob")
    assert store.error(error["id"])["resolved_by"] == "alice"
    assert store.error(9999) is None


def test_checkpoints_and_scores_round_trip(tmp_path):
    path = tmp_path / "r.db"
    with RecoveryStore(path) as store:
        store.save_checkpoint("shop/db", {"stock": {"A1": 3}}, incarnation=2)
        store.save_strategy_scores({"connection|1|retry": [3, 1, 0.5, 0.0]})
    with RecoveryStore(path) as store:
        assert store.checkpoints() == {"shop/db": {"stock": {"A1": 3}}}
        assert store.strategy_scores() == {"connection|1|retry": [3, 1, 0.5, 0.0]}


def test_a_writer_killed_mid_stream_leaves_whole_batches_and_a_sound_file(tmp_path):
    path = tmp_path / "killed.db"
    script = tmp_path / "writer.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from stalwart.telemetry import RecoveryStore
        store = RecoveryStore({str(path)!r})
        print("ready", flush=True)
        n = 0
        while True:
            n += 1
            rows = [{{"time": time.time(), "path": f"a/{{i}}", "operation": "op",
                     "category": "c", "fingerprint": "f", "level": 1, "strategy": "s",
                     "success": 1, "duration_s": 0.01, "detail": "x" * 200}}
                    for i in range(2000)]
            for r in rows:
                r.pop("detail")
            print(f"writing {{n}}", flush=True)
            store.write_batch({{"recovery_performance": rows}})
    """)
    )
    writer = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    while (line := writer.stdout.readline().strip()) != "writing 3":  # two batches committed,
        assert line.startswith("writing "), line  # and the third one under way
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    with RecoveryStore(path) as store:
        assert store.integrity_ok()
        batches = store.query("SELECT id, rows FROM batches")
        assert len(batches) >= 2
        assert {b["rows"] for b in batches} == {2000}
        assert store.partial_batches() == []
        assert len(store.recovery_history(limit=10**7)) == 2000 * len(batches)
