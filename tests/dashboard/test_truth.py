"""The dashboard says what is true: identical errors grouped, a state that follows the system,
and nothing "live" or "recovering" about what has ended."""

import pytest

from stalwart import Child, LevelPolicy, StalwartError, Supervisor
from stalwart.dashboard import Timeline, error_groups
from stalwart.dashboard._snapshot import Snapshots
from stalwart.strategies import Fixed
from stalwart.telemetry import RecoveryStore
from stalwart.telemetry._api import ApiServer, StoreBackend
from stalwart.testing import wait_for_event
from tests.support import FAST, Work, Worker, wait_for
from tests.telemetry.test_api import call


def ev(seq, kind, path="s/w", fingerprint="f1", detail="ConnectionError: reset", level=1):
    return {
        "seq": seq,
        "time": 100.0 + seq,
        "kind": kind,
        "path": path,
        "level": level,
        "strategy": "retry",
        "detail": detail,
        "category": "connection",
        "fingerprint": fingerprint,
        "trace": "",
    }


def test_identical_errors_are_one_group_with_a_count_and_first_and_last_seen():
    timeline = Timeline()
    events = []
    for i in range(26):  # the same ConnectionError, recovered 26 times
        events += [ev(2 * i + 1, "failure"), ev(2 * i + 2, "recovered")]
    events += [ev(60, "failure", fingerprint="f2", detail="KeyError: 'x'")]
    timeline.feed(events)
    groups = error_groups(timeline.newest(1000), live=True, phase="running")
    assert [(g["error"], g["count"], g["outcomes"]) for g in groups] == [
        ("KeyError: 'x'", 1, {"recovering": 1}),
        ("ConnectionError: reset", 26, {"recovered": 26}),
    ]
    connection = groups[1]
    assert (connection["first_seen"], connection["last_seen"]) == (101.0, 152.0)
    assert connection["latest"]["id"] == 51 and len(connection["incidents"]) == 26


def test_what_has_ended_is_never_shown_as_recovering():
    timeline = Timeline()
    timeline.feed([ev(1, "failure")])
    [episode] = timeline.newest()
    shown = {
        (live, phase): error_groups([episode], live, phase)[0]["latest"]["outcome"]
        for live, phase in ((True, "running"), (False, "stopped"), (False, "recorded"))
    }
    assert shown == {
        (True, "running"): "recovering",
        (False, "stopped"): "unresolved",  # the system stopped with it open
        (False, "recorded"): "open",  # a store whose writer never said it stopped
    }


class Stopped:
    """A live system's backend once the system has stopped (a level-5 stop keeps it
    answering): the tree is gone, the events stay."""

    def tree(self):
        return "s", "stopped", [], None

    def events(self, since):
        return [ev(1, "failure")] if since < 1 else []

    def incidents(self):
        return []

    def memory(self):
        return None

    def tree_gauges(self):
        return None

    def totals(self):
        return {}

    def alerts(self, active):
        return []

    def quiet_periods(self):
        return {}


def test_a_snapshot_of_a_stopped_system_is_not_live():
    snap = Snapshots(Stopped()).snapshot()
    assert (snap["phase"], snap["live"]) == ("stopped", False)
    assert [e["outcome"] for e in snap["timeline"]] == ["unresolved"]
    assert [g["latest"]["outcome"] for g in snap["groups"]] == ["unresolved"]


def test_the_snapshot_groups_a_live_trees_identical_errors(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker, levels=FAST)]))
    server = system.serve_api()
    for i in range(4):  # the same error four times, each recovered before the next
        system.ask("s/w", Work(i, fail_times=1), timeout=10)
    system.ask("s/w", Work(9, fail_times=1, error="connection"), timeout=10)

    def grouped():
        groups = call(f"{server.url}/api/dashboard")[1]["groups"]
        counts = sorted(g["count"] for g in groups if g["path"] == "s/w")
        return counts == [1, 4] and groups

    groups = {g["count"]: g for g in wait_for(grouped)}
    assert groups[4]["error"].startswith("RuntimeError: flaky")
    assert groups[4]["outcomes"] == {"recovered": 4}
    assert groups[4]["first_seen"] <= groups[4]["last_seen"]
    assert groups[1]["error"].startswith("ConnectionError")


def test_a_store_shows_a_poison_message_given_up_and_the_system_stopped(make_system, tmp_path):
    db = tmp_path / "recovery.db"
    system = make_system(Supervisor("s", children=[Child("w", Worker, levels=FAST)]), store=str(db))
    with pytest.raises(StalwartError):
        system.ask("s/w", Work(1, fail_times=-1), timeout=10)  # poison: set aside
    wait_for_event(system, "dead-letter", "s/w")
    system.shutdown()
    with ApiServer(StoreBackend(str(db))) as server:
        snap = wait_for(
            lambda: (s := call(f"{server.url}/api/dashboard")[1])["figures"] == "ready" and s
        )
    assert (snap["phase"], snap["live"]) == ("stopped", False)
    [group] = [g for g in snap["groups"] if g["path"] == "s/w"]
    assert group["latest"]["outcome"] == "given up" and group["latest"]["set_aside"] == 1
    assert snap["headline"]["incidents_given_up"] == 1


def test_an_incident_open_when_the_system_stops_is_unresolved(make_system, tmp_path):
    db = tmp_path / "recovery.db"
    slow = LevelPolicy(basic_attempts=0, enhanced_attempts=1, backoff=Fixed(600.0))
    system = make_system(Supervisor("s", children=[Child("w", Worker, levels=slow)]), store=str(db))
    system.tell("s/w", Work(1, fail_times=1))  # its retry waits ten minutes
    wait_for_event(system, "failure", "s/w")
    system.shutdown()
    with RecoveryStore(db, readonly=True) as store:
        [row] = store.incidents(path="s/w")
        run = store.latest_run()
        m = store.metrics()
    assert row["outcome"] == "unresolved" and run["stopped"] is not None
    assert (m.incidents_unresolved, m.incidents_open, m.incident_success_rate) == (1, 0, None)
    with ApiServer(StoreBackend(str(db))) as server:
        snap = call(f"{server.url}/api/dashboard")[1]
    assert [e["outcome"] for e in snap["timeline"] if e["path"] == "s/w"] == ["unresolved"]
