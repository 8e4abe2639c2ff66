"""The dashboard's data and actions over HTTP, from a running tree and from a store file."""

import threading

import pytest

from stalwart import Breaker, Child, Pool, StalwartError, Supervisor, Timeout
from stalwart.telemetry._api import ApiServer, StoreBackend
from tests.support import FAST, GATES, Gated, Never, Wait, Work, Worker, wait_for
from tests.telemetry.test_api import call


def test_the_page_and_its_files_are_served_with_a_strict_policy(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker)]))
    server = system.serve_api(token="t0k")
    status, page = call(f"{server.url}/")
    assert status == 200 and '<script type="module" src="/dashboard/dashboard.js">' in page
    for name in ("dashboard.js", "dashboard.css"):
        assert call(f"{server.url}/dashboard/{name}")[0] == 200
    for bad in ("/dashboard/../_api.py", "/dashboard/nothing.js", "/dashboard/%2e%2e%2fx.js"):
        assert call(f"{server.url}{bad}")[0] == 404, bad
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/", timeout=10) as response:
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert server.dashboard_url == f"{server.url}/#token=t0k"


def test_a_snapshot_has_the_tree_its_episodes_and_the_headline(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker, levels=FAST)]))
    server = system.serve_api(token="t0k")
    system.ask("s/w", Work(1, fail_times=1), timeout=10)
    system.flush()
    status, first = call(f"{server.url}/api/dashboard")
    assert status == 200 and first["name"] == "s"  # answered without waiting for the figures
    # read in the background: the headline is there once they are back
    snap = wait_for(
        lambda: (s := call(f"{server.url}/api/dashboard")[1])["figures"] == "ready" and s
    )
    assert snap["live"] and snap["name"] == "s" and snap["phase"] == "running"
    paths = {n["path"] for n in snap["tree"]}
    assert {"s", "s/w"} <= paths and paths == {s.path for s in system.status()}
    [episode] = [e for e in snap["timeline"] if e["path"] == "s/w"]
    assert episode["outcome"] == "recovered" and episode["level"] == 1
    assert snap["headline"]["incidents"] == 1 and snap["headline"]["incident_success_rate"] == 1.0
    assert snap["headline"]["attempts"] >= 1 and snap["headline"]["attempt_success_rate"] == 1.0
    assert snap["memory"]["thresholds"] == [70.0, 85.0, 95.0] and snap["memory"]["percent"] > 0
    # where the limit and PSI come from is shown, the same as System.memory() says
    sample = system.memory().sample
    assert snap["memory"]["limit_from"] == sample.limit_from != ""
    assert snap["memory"]["pressure_from"] == sample.pressure_from
    assert (snap["memory"]["pressure"] is None) == (sample.pressure is None)
    # the next poll folds only what is new
    system.ask("s/w", Work(2, fail_times=1), timeout=10)
    status, again = call(f"{server.url}/api/dashboard?episodes=1")
    assert [e["id"] for e in again["timeline"]] == [max(e["id"] for e in again["timeline"])]
    assert again["timeline"][0]["id"] > episode["id"] and again["seq"] > snap["seq"]
    assert call(f"{server.url}/api/dashboard?episodes=0")[1]["field"] == "episodes"


def test_protected_actors_carry_their_breakers_badge_and_health(make_system):
    tree = Supervisor(
        "s", children=[Child("w", Worker, breaker=Breaker(2, 30, 1, call_timeout_s=0.2))]
    )
    system = make_system(tree)
    server = system.serve_api()
    tree = call(f"{server.url}/api/dashboard")[1]["tree"]
    badges = {n["path"]: (n["breaker"], n["breaker_health"]) for n in tree}
    assert badges["s/w"] == badges["s/w.protected"] == ("closed", 100)
    for _ in range(2):
        with pytest.raises(Timeout):
            system.ask("s/w", Never(), timeout=5)
    snap = wait_for(
        lambda: (s := call(f"{server.url}/api/dashboard")[1])["headline"]["open_breakers"] and s
    )
    badges = {n["path"]: (n["breaker"], n["breaker_health"]) for n in snap["tree"]}
    assert badges["s/w"] == badges["s/w.protected"] == ("open", 0)
    assert snap["headline"]["open_breakers"] == ["s/w"]


def test_a_recovery_request_needs_the_token_and_names_what_is_wrong(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker)]))
    server = system.serve_api(token="t0k")
    url = f"{server.url}/api/recovery/request"
    status, body = call(url, "POST", {"path": "s/w", "level": 3})
    assert status == 401 and "token" in body["error"]
    assert system.status()["s/w"].restarts == 0
    status, result = call(url, "POST", {"path": "s/w", "level": 3}, token="t0k")
    assert status == 200 and result["ok"] and result["target"] == "s/w"
    assert system.status()["s/w"].restarts == 1
    for body, field in (
        ({"path": "s/ghost", "level": 3}, "path"),
        ({"path": "s/w", "level": 6}, "level"),
        ({"path": "s/w"}, "level"),
        ({"path": "s/w", "level": 3, "colour": "red"}, "colour"),
    ):
        status, answer = call(url, "POST", body, token="t0k")
        assert (status, answer["field"]) == (400, field), answer
    assert system.status()["s/w"].restarts == 1
    episodes = call(f"{server.url}/api/dashboard")[1]["timeline"]
    assert [(e["kind"], e["outcome"]) for e in episodes if e["path"] == "s/w"] == [
        ("requested", "done")
    ]


def test_a_store_file_is_shown_without_a_live_tree_and_refuses_live_actions(make_system, tmp_path):
    db = tmp_path / "recovery.db"
    system = make_system(Supervisor("s", children=[Child("w", Worker, levels=FAST)]), store=str(db))
    system.ask("s/w", Work(1, fail_times=1), timeout=10)
    system.shutdown()
    with ApiServer(StoreBackend(str(db)), token="t0k") as server:
        status, snap = call(f"{server.url}/api/dashboard")
        assert status == 200 and not snap["live"] and snap["tree"] == []
        snap = wait_for(
            lambda: (s := call(f"{server.url}/api/dashboard")[1])["figures"] == "ready" and s
        )
        assert snap["headline"]["attempts"] >= 1
        assert [(e["path"], e["outcome"]) for e in snap["timeline"] if e["path"] == "s/w"] == [
            ("s/w", "recovered")
        ]
        status, body = call(
            f"{server.url}/api/recovery/request", "POST", {"path": "s/w", "level": 3}, token="t0k"
        )
        assert status == 503 and "no running system" in body["error"]
        assert call(f"{server.url}/")[0] == 200


def test_the_first_poll_answers_while_a_handler_holds_the_in_process_base(make_system):
    """The figures actors answer (metrics, memory, alerts) are read in the background, even
    the first time: the page is never stuck behind a handler."""
    system = make_system(Supervisor("s", children=[Child("g", Gated)]), hang_report_s=0.2)
    server = system.serve_api()
    gate = GATES["dashboard"] = threading.Event()
    asker = threading.Thread(target=lambda: system.ask("s/g", Wait("dashboard"), 60))
    asker.start()
    try:
        wait_for(system.hung_actors, timeout=10)  # the handler holds the actor thread now
        status, snap = call(f"{server.url}/api/dashboard")
        assert status == 200 and snap["figures"] == "reading"
        assert {n["path"]: n["state"] for n in snap["tree"]}["s/g"] == "hung"
    finally:
        gate.set()
        asker.join(10)
    snap = wait_for(
        lambda: (s := call(f"{server.url}/api/dashboard")[1])["figures"] == "ready" and s
    )
    assert snap["memory"]["thresholds"] == [70.0, 85.0, 95.0]


def test_the_headline_counts_every_open_breaker_however_few_rows_are_shown(
    make_system, monkeypatch
):
    from stalwart.telemetry import _api

    monkeypatch.setattr(_api, "TREE_ROWS", 6)  # (a large tree: not every row is shown)
    monkeypatch.setattr(_api, "TREE_FLAGGED", 2)
    guard = Breaker(failure_threshold=1, recovery_timeout=60)
    session = Child("session", Worker, levels=FAST, breaker=guard)
    system = make_system(Supervisor("s", children=[Pool("p", template=session, max_restarts=99)]))
    server = system.serve_api()
    for i in range(8):
        key = system.start_child("s/p", f"k{i}")
        with pytest.raises(StalwartError):
            system.ask(key, Work(1, fail_times=-1), timeout=30)
    opened = {f"s/p/k{i}" for i in range(8)}
    wait_for(
        lambda: set(call(f"{server.url}/api/dashboard")[1]["headline"]["open_breakers"]) == opened
    )
    assert len(call(f"{server.url}/api/dashboard")[1]["tree"]) < len(opened)
