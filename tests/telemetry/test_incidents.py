"""Incidents are the unit: every figure checked against a scenario whose answer is known.

Store-level tests write known rows and compare each figure with the value worked out by
hand; the others run real trees and check the figures against what the scenario must give.
"""

import re
import sqlite3
import time

import msgspec
import numpy as np
import pytest

from stalwart import Child, LevelPolicy, RecoveryRequest, StalwartError, Supervisor
from stalwart.strategies import Fixed
from stalwart.supervisors._incident_log import Incident
from stalwart.supervisors._kernel.state import TREE_CANDIDATES
from stalwart.telemetry import RecoveryStore, report_text
from stalwart.telemetry._rows import incident_statement
from stalwart.telemetry._schema import MIGRATIONS
from stalwart.testing import wait_for_event
from tests.support import FAST, Work, Worker, wait_for
from tests.telemetry.test_api import call

BASIC_S, BACKOFF_S = 0.02, 0.05  # the wait before the level-1 retry, and the level-2 backoff
TWO_ATTEMPTS = LevelPolicy(
    basic_attempts=1,
    basic_delay_s=BASIC_S,
    enhanced_attempts=1,
    backoff=Fixed(BACKOFF_S),
    quiet_period_s=60.0,
)


def incident(key, started, outcome, duration=None, level=0, path="s/w", fingerprint="f"):
    ended = None if duration is None else started + duration
    row = Incident(1, path, fingerprint, started, "failure", outcome=outcome, ended=ended)
    row.duration_s, row.level, row.failures = duration, level, 1
    return incident_statement(row, key)


# -- the figures, from known rows -----------------------------------------------------------


def test_incident_figures_from_known_rows(tmp_path):
    now = time.time()
    t = now - 10
    rows = [
        incident("1", t, "recovered", 1.0, level=1),
        incident("2", t, "recovered", 2.0, level=2),
        incident("3", t, "recovered", 3.0, level=2),
        incident("4", t, "recovered", 4.0, level=3, path="s/db"),
        incident("5", t, "given up", 0.5, level=3, path="s/db"),
        incident("6", t, "open"),
        incident("7", t, "unresolved"),
        incident("old", now - 3600, "recovered", 100.0, level=1),  # outside the window
    ]
    with RecoveryStore(tmp_path / "r.db") as store:
        store.write_batch({}, rows)
        m = store.metrics(window_s=60, now=now)
        assert (m.incidents, m.incidents_recovered, m.incidents_given_up) == (7, 4, 1)
        assert (m.incidents_open, m.incidents_unresolved) == (1, 1)
        assert m.incident_success_rate == 4 / 5  # over the incidents that ended
        assert m.mttr_mean_s == 2.5 and m.mttr_p50_s == 2.5
        assert m.mttr_p95_s == pytest.approx(np.percentile([1, 2, 3, 4], 95))  # 3.85
        assert m.mttr_p99_s == pytest.approx(3.97)
        assert m.incidents_by_level == {1: 1, 2: 2, 3: 1}
        db = m.per_actor["s/db"]
        assert (db["incidents"], db["incidents_recovered"], db["incident_success_rate"]) == (
            2,
            1,
            0.5,
        )
        # an alert reads the same figures without the ones per actor (one group per key)
        brief = store.metrics(window_s=60, now=now, by_actor=False)
        assert brief.per_actor == {} and m.per_actor
        assert msgspec.structs.replace(brief, per_actor=m.per_actor) == m
        assert store.metrics(now=now).incidents_recovered == 5  # all of history
        assert store.metrics(window_s=60, path="s/db", now=now).incidents == 2
        assert [r["key"] for r in store.incidents(outcome="given up")] == ["5"]


def test_errors_per_minute_are_taken_over_the_window(tmp_path):
    t0 = time.time() - 5
    events = [
        {"time": t0 + dt, "kind": kind, "path": "s/w", "detail": ""}
        for dt, kind in [(0, "failure"), (0.5, "retry"), (0.5, "failure"), (1.0, "failure")]
    ]
    with RecoveryStore(tmp_path / "r.db") as store:
        store.write_batch({"events": events})
        assert store.metrics().errors == 3
        assert store.metrics().errors_per_min == 180.0  # 3 errors over the 1 s recorded
        assert store.metrics(window_s=60).errors_per_min == 3.0  # 3 errors in a minute


def test_attempt_figures_stay_named_as_attempts(tmp_path):
    now = time.time()
    rows = [
        {"time": now, "path": "s/w", "level": 1, "strategy": "retry", "success": 0},
        {"time": now, "path": "s/w", "level": 2, "strategy": "backoff", "success": 1},
        {
            "time": now,
            "path": "s/w",
            "level": 3,
            "strategy": "requested",
            "success": 1,
            "requested_by": "alice",
        },
    ]
    for row in rows:
        row["duration_s"] = 0.1
    with RecoveryStore(tmp_path / "r.db") as store:
        store.write_batch({"recovery_performance": rows})
        m = store.metrics(now=now)
    assert (m.attempts, m.attempts_succeeded, m.attempts_failed) == (3, 2, 1)
    assert m.attempt_success_rate == 2 / 3 and m.attempts_by_level == {1: 1, 2: 1, 3: 1}
    assert (m.requested, m.restarts) == (1, 1)


def test_a_file_of_the_previous_schema_is_read_then_brought_up_to_date(tmp_path):
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    for version in (1, 2):
        MIGRATIONS[version](conn)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO recovery_performance (batch_id, time, path, level, success, duration_s)"
        " VALUES (1, ?, 's/w', 1, 1, 0.1)",
        (time.time(),),
    )
    conn.commit()
    conn.close()
    with RecoveryStore(path, readonly=True) as store:  # (as `stalwart report` reads it)
        m = store.metrics()
        assert (m.attempts, m.incidents, m.requested) == (1, 0, 0)
    with RecoveryStore(path) as store:
        assert store.metrics().attempts == 1 and store.incidents() == []
        assert "requested_by" in {c.name for c in store.db.table("recovery_performance").columns}


# -- a real tree: three incidents that each needed two attempts -----------------------------


def recovered_three_times(make_system, base, db, **options):
    tree = Supervisor(
        "s", children=[Child(name, Worker, levels=TWO_ATTEMPTS) for name in ("a", "b", "c")]
    )
    system = make_system(tree, base=base, store=str(db), **options)
    for name in ("a", "b", "c"):  # fails at level 1, works at level 2
        assert system.ask(f"s/{name}", Work(1, fail_times=2), timeout=10).attempts == 3

    def recorded():
        system.flush()
        m = system.metrics()
        return m.incidents_recovered == 3 and m.attempts == 6 and m

    return system, wait_for(recorded)


def test_three_incidents_of_two_attempts_each(make_system, base, tmp_path):
    db = tmp_path / "r.db"
    _system, m = recovered_three_times(make_system, base, db)
    assert (m.incidents, m.incidents_recovered, m.incident_success_rate) == (3, 3, 1.0)
    assert (m.attempts, m.attempts_succeeded, m.attempt_success_rate) == (6, 3, 0.5)
    assert m.incidents_by_level == {2: 3} and m.attempts_by_level == {1: 3, 2: 3}
    with RecoveryStore(db, readonly=True) as store:
        for name in ("a", "b", "c"):
            [row] = store.incidents(path=f"s/{name}")
            spent = 0.0
            for a in sorted(store.recovery_history(path=f"s/{name}"), key=lambda r: r["id"]):
                spent += a["duration_s"]
            # from the first failure to serving again: both attempts, their waits included
            assert row["duration_s"] >= spent >= BASIC_S + BACKOFF_S
            # (level 2's strategy is the selector's pick: backoff, or now and then adjust)
            assert (row["outcome"], row["level"]) == ("recovered", 2)
            assert row["strategy"] in TREE_CANDIDATES[2]
            assert (row["attempts"], row["attempts_failed"], row["failures"]) == (2, 1, 2)
    assert m.mttr_p50_s >= BASIC_S + BACKOFF_S


def test_the_report_api_alerts_and_dashboard_use_the_incident_figures(make_system, tmp_path):
    db = tmp_path / "r.db"
    system, _ = recovered_three_times(make_system, "simple", db)
    # half the attempts failed, which the old per-attempt rate called critical; every
    # incident recovered, which is what the operator needs to know
    assert [a for a in system.alerts(active=True) if a["rule"] == "success_rate"] == []
    server = system.serve_api(token="t0k")
    status, metrics = call(f"{server.url}/api/recovery/metrics")
    assert status == 200 and metrics["incident_success_rate"] == 1.0
    assert metrics["attempt_success_rate"] == 0.5
    snap = wait_for(
        lambda: (s := call(f"{server.url}/api/dashboard")[1])["figures"] == "ready" and s
    )
    headline = snap["headline"]
    assert (headline["incidents"], headline["incident_success_rate"]) == (3, 1.0)
    assert headline["attempt_success_rate"] == 0.5
    assert headline["mttr_p50_s"] >= BASIC_S + BACKOFF_S
    with RecoveryStore(db, readonly=True) as store:
        text = report_text(store)
    figures = text.splitlines()[3]  # the incidents' line: 3 incidents, 3 recovered, 100.0%
    assert figures.split()[:5] == ["3", "3", "0", "0", "100.0%"]
    assert "Incidents recovered at: level 2: 3" in text
    # the learned strategy and the effectiveness table count the same attempts
    lines = text.splitlines()
    section = lines.index("Learned strategy per category (its attempts in the window)")
    row = next(ln for ln in lines[section:] if " level 2  " in ln)
    learned = re.match(r"\s+unknown\s+level 2  (\w+)\s+(\S+)\s.*\((\d+) attempts\)", row)
    assert learned, row
    strategy, rate, attempts = learned.groups()
    effective = next(line for line in lines if line.startswith(f"  level 2  {strategy} "))
    assert f" {attempts} attempts" in effective and rate in effective
    used = [ln for ln in lines if ln.startswith("  level 2  ") and " attempts " in ln]
    assert sum(int(ln.split()[3]) for ln in used) == 3  # one level-2 attempt per incident


def test_a_given_up_incident_raises_the_success_rate_alert(make_system):
    system = make_system(
        Supervisor("s", children=[Child("w", Worker, levels=FAST)]),
        telemetry={"alert_window_s": 60},
    )
    with pytest.raises(StalwartError):
        system.ask("s/w", Work(1, fail_times=-1), timeout=10)  # set aside as poison
    wait_for_event(system, "dead-letter", "s/w")
    [alert] = wait_for(
        lambda: [a for a in system.alerts(active=True) if a["rule"] == "success_rate"]
    )
    assert alert["severity"] == "critical" and alert["value"] == 0.0


def test_a_recovery_request_is_recorded_with_who_asked(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker)]))
    assert system.request_recovery(RecoveryRequest("s/w", 3, "checking", by="alice")).ok
    assert system.request_recovery(RecoveryRequest("s/w", 1, "hooks")).ok
    server = system.serve_api(token="t0k")
    body = {"path": "s/w", "level": 3, "by": "dashboard"}
    status, result = call(f"{server.url}/api/recovery/request", "POST", body, token="t0k")
    assert status == 200 and result["ok"]

    def requested():
        system.flush()
        rows = [r for r in system.history(path="s/w") if r["strategy"] == "requested"]
        return len(rows) == 3 and rows

    rows = wait_for(requested)
    assert sorted((r["requested_by"], r["level"], r["success"]) for r in rows) == [
        ("alice", 3, 1),
        ("dashboard", 3, 1),
        ("system", 1, 1),
    ]
    assert all(r["operation"] == "RecoveryRequest" for r in rows)
    m = system.metrics()
    assert (m.requested, m.restarts, m.incidents) == (3, 2, 0)  # no failure: no incident
    [event] = [e for e in system.events() if e.kind == "recovery-request" and "alice" in e.detail]
    assert event.detail == "checking (by alice)"
