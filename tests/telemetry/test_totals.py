"""Running totals: counters and histograms counted as things happen, never read from rows.

Real systems on real SQLite files, scraped over HTTP; the exact figures come from scenarios
whose answer is known, and ``/metrics`` is read with Prometheus' own parser.
"""

import sqlite3
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stalwart import Child, StalwartError, Supervisor
from stalwart.telemetry import Attempt, RecoveryStore, Totals
from stalwart.telemetry._api import ApiServer, StoreBackend
from stalwart.telemetry._rows import attempt_row
from stalwart.telemetry._schema import MIGRATIONS, SCHEMA_VERSION
from stalwart.telemetry._totals import RunningTotals
from stalwart.testing import wait_for_event
from tests.support import FAST, Work, Worker, wait_for
from tests.telemetry.test_api import call
from tests.telemetry.test_incidents import BACKOFF_S, BASIC_S, incident, recovered_three_times

COUNTERS = ("counter", "histogram")


def scrape(url: str) -> dict[str, object]:
    """``GET /metrics`` parsed: family name -> family."""
    status, text = call(f"{url}/metrics")
    assert status == 200
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(families, kinds=COUNTERS) -> dict[tuple[str, frozenset], float]:
    """Every sample of the families of ``kinds``, by (sample name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in families.values()
        if f.type in kinds
        for s in f.samples
    }


def total(families, name, **labels) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        s.value
        for f in families.values()
        for s in f.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


# -- a known scenario, counted exactly ---------------------------------------------------------


def test_three_incidents_of_two_attempts_are_counted_exactly(make_system, base, tmp_path):
    db = tmp_path / "r.db"
    system, _ = recovered_three_times(make_system, base, db)
    server = system.serve_api()
    families = scrape(server.url)
    assert families["stalwart_incidents"].type == "counter"
    assert families["stalwart_recovery_attempts"].type == "counter"
    assert families["stalwart_recovery_duration_seconds"].type == "histogram"
    assert families["stalwart_recovery_attempt_duration_seconds"].type == "histogram"
    for gauge in ("stalwart_incidents_open", "stalwart_breaker_state", "stalwart_memory_level"):
        assert families[gauge].type == "gauge"
    assert total(families, "stalwart_incidents_total", outcome="recovered") == 3
    assert total(families, "stalwart_incidents_total", outcome="recovered", level="2") == 3
    assert total(families, "stalwart_incidents_total", outcome="given_up") == 0
    assert total(families, "stalwart_incidents_opened_total") == 3
    assert total(families, "stalwart_recovery_attempts_total") == 6
    assert total(families, "stalwart_recovery_attempts_total", outcome="success", level="2") == 3
    assert total(families, "stalwart_recovery_attempts_total", outcome="failure", level="1") == 3
    assert total(families, "stalwart_recovery_duration_seconds_count") == 3
    assert total(families, "stalwart_recovery_duration_seconds_bucket", le="+Inf") == 3
    assert total(families, "stalwart_recovery_attempt_duration_seconds_count") == 6
    assert total(families, "stalwart_incidents_open") == 0
    with RecoveryStore(db, readonly=True) as store:
        spent = sum(a["duration_s"] for a in store.recovery_history())
    # each time to recover runs from the first failure: both attempts, waits included
    assert total(families, "stalwart_recovery_duration_seconds_sum") >= spent
    assert families["stalwart_incident_success_ratio"].samples[0].value == 1.0
    assert families["stalwart_recovery_attempt_success_ratio"].samples[0].value == 0.5
    t = system.totals()
    assert isinstance(t, Totals)
    assert (t.incidents, t.incidents_recovered, t.incident_success_rate) == (3, 3, 1.0)
    assert (t.attempts, t.attempts_succeeded, t.attempt_success_rate) == (6, 3, 0.5)
    assert t.mttr_p50_s >= BASIC_S + BACKOFF_S and t.mttr_mean_s >= BASIC_S + BACKOFF_S


def test_no_data_is_no_sample_not_a_ratio_of_zero(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker)]))
    server = system.serve_api()
    families = scrape(server.url)
    assert families["stalwart_incident_success_ratio"].samples == []
    assert families["stalwart_recovery_attempt_success_ratio"].samples == []
    assert families["stalwart_recovery_duration_seconds"].samples == []
    t = system.totals()
    assert (t.incident_success_rate, t.mttr_p50_s, t.attempt_success_rate) == (None, None, None)


# -- retention and restarts never lower a counter ----------------------------------------------


def recover_until(system, db, deleted):
    """Have ``s/w`` fail and recover once more until the store has deleted ``deleted`` of
    the attempts recorded; answers how many incidents that took."""
    done = [0]

    def swept():
        done[0] += 1
        system.ask("s/w", Work(1000 + done[0], fail_times=1), timeout=10)
        system.flush()
        with RecoveryStore(db, readonly=True) as store:
            kept = store.metrics().attempts
        return done[0] - kept >= deleted

    wait_for(swept, timeout=60)
    return done[0]


def test_a_retention_sweep_between_two_scrapes_lowers_no_counter(make_system, tmp_path):
    db = tmp_path / "r.db"
    tree = Supervisor("s", children=[Child("w", Worker, levels=FAST)])
    # every record is its own batch, and every 100th batch sweeps all but the newest rows
    settings = {"flush_rows": 1, "retention_rows": 5}
    system = make_system(tree, store=str(db), telemetry=settings)
    for i in range(3):
        system.ask("s/w", Work(i, fail_times=1), timeout=10)
    system.flush()
    server = system.serve_api()
    before = scrape(server.url)
    assert total(before, "stalwart_incidents_total", outcome="recovered") == 3
    more = recover_until(system, db, deleted=10)  # the actor's own retention deleted rows
    after = scrape(server.url)
    lowered = {
        key: (value, samples(after).get(key))
        for key, value in samples(before).items()
        if samples(after).get(key, -1) < value
    }
    assert lowered == {}
    assert total(after, "stalwart_incidents_total", outcome="recovered") == 3 + more
    assert total(after, "stalwart_recovery_attempts_total") == 3 + more
    assert total(after, "stalwart_recovery_duration_seconds_count") == 3 + more
    assert system.metrics().attempts < 3 + more  # (the rows are gone: they cannot be counted)
    assert system.totals().incidents_recovered == 3 + more


def test_totals_go_on_after_a_restart_and_a_store_view_reads_them(make_system, tmp_path):
    db = tmp_path / "r.db"
    tree = Supervisor("s", children=[Child("w", Worker, levels=FAST)])
    system = make_system(tree, store=str(db))
    for i in range(2):
        system.ask("s/w", Work(i, fail_times=1), timeout=10)
    with pytest.raises(StalwartError):
        system.ask("s/w", Work(9, fail_times=-1), timeout=10)  # set aside: given up
    wait_for_event(system, "dead-letter", "s/w")
    system.flush()
    live = samples(scrape(system.serve_api().url))
    system.shutdown()
    with ApiServer(StoreBackend(str(db))) as server:
        stored = samples(scrape(server.url))
    # the file holds what the live system counted (alerts aside: the rules may run between)
    alerts = {k for k in {*stored, *live} if k[0] == "stalwart_alerts_total"}
    assert {k: v for k, v in stored.items() if k not in alerts} == {
        k: v for k, v in live.items() if k not in alerts
    }
    assert stored[("stalwart_dead_letters_total", frozenset({("path", "s/w")}))] == 1
    again = make_system(tree, store=str(db))
    again.ask("s/w", Work(3, fail_times=1), timeout=10)
    again.flush()
    families = scrape(again.serve_api().url)
    assert total(families, "stalwart_incidents_total", outcome="recovered") == 3
    assert total(families, "stalwart_incidents_total", outcome="given_up") == 1
    assert total(families, "stalwart_dead_letters_total") == 1
    t = again.totals()
    assert (t.incidents, t.incidents_recovered, t.incidents_given_up) == (4, 3, 1)


# -- the store: retention, cut-short runs, older files ------------------------------------------


def test_retention_deletes_rows_not_totals(tmp_path):
    now = time.time()
    counted = RunningTotals()  # (as the telemetry actor counts what it writes)
    attempts = [Attempt(now, "s/w", "Work", "connection", "fp", 1, "retry", True, 0.1)] * 4
    for a in attempts:
        counted.attempt(a)
    with RecoveryStore(tmp_path / "r.db") as store:
        store.write_batch(
            {"recovery_performance": [attempt_row(a) for a in attempts]}, counted.statements()
        )
        before = store.totals()
        assert store.retain(max_rows=0) == 4
        assert store.metrics().attempts == 0
        assert store.totals() == before and before.attempts == 4


def test_incidents_left_open_by_a_cut_short_run_count_as_unresolved(tmp_path):
    with RecoveryStore(tmp_path / "r.db") as store:
        store.write_batch({}, [incident("1", time.time(), "open", level=3)])
        store.start_run()
        t = store.totals()
        [row] = store.incidents()
    assert row["outcome"] == "unresolved"
    assert t.incidents_unresolved == 1 and t.incidents_open == 0


def older_file(path, version=3):
    """A store file as Stalwart with schema ``version`` left it, with rows of each kind."""
    conn = sqlite3.connect(path)
    for v in range(1, version + 1):
        MIGRATIONS[v](conn)
    conn.execute(f"PRAGMA user_version = {version}")
    now = time.time()
    for key, outcome, duration in (
        ("1", "recovered", 0.5),
        ("2", "recovered", 2.0),
        ("3", "given up", 1.0),
    ):
        sql, params = incident(key, now, outcome, duration, level=2)
        conn.execute(sql, params)
    for success in (0, 1, 1):
        conn.execute(
            "INSERT INTO recovery_performance (batch_id, time, path, level, strategy, success,"
            " duration_s) VALUES (1, ?, 's/w', 2, 'backoff', ?, 0.2)",
            (now, success),
        )
    conn.execute(
        "INSERT INTO events (batch_id, time, kind, path, category) VALUES (1, ?, 'failure',"
        " 's/w', 'connection')",
        (now,),
    )
    conn.commit()
    conn.close()


def test_an_older_file_is_read_read_only_and_migrated_with_its_totals(tmp_path):
    path = tmp_path / "v3.db"
    older_file(path)
    with RecoveryStore(path, readonly=True) as store:  # (as `stalwart report` reads it)
        read = store.totals()
    assert (read.incidents, read.incidents_recovered, read.incidents_given_up) == (3, 2, 1)
    assert (read.attempts, read.attempts_succeeded, read.errors) == (3, 2, 1)
    assert read.mttr_mean_s == 1.25
    with RecoveryStore(path) as store:  # migrated: the totals start from the rows kept
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.db.execute("SELECT count(*) FROM totals").fetchone()[0] > 0
        assert store.totals() == read
        store.retain(max_rows=0)
        assert store.totals() == read


def test_reading_alerts_as_last_evaluated_evaluates_nothing(make_system):
    # (nothing is written, and the rules do not run, unless asked)
    settings = {"alert_window_s": 60, "alert_interval_s": 3600, "flush_interval_s": 3600}
    system = make_system(
        Supervisor("s", children=[Child("w", Worker, levels=FAST)]), telemetry=settings
    )
    with pytest.raises(StalwartError):
        system.ask("s/w", Work(1, fail_times=-1), timeout=10)  # set aside: given up
    wait_for_event(system, "dead-letter", "s/w")
    system.flush()  # the rules run (on what was written before), the incident is written
    assert system.alerts(active=True, evaluate=False) == []  # as a scrape reads them
    [alert] = system.alerts(active=True)  # evaluated now
    assert alert["rule"] == "success_rate"
    assert system.alerts(active=True, evaluate=False) == [alert]
