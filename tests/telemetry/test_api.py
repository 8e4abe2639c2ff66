"""The JSON API and /metrics, exercised with a real HTTP client on a loopback port."""

import json
import socket
import urllib.error
import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stalwart import (
    Breaker,
    Child,
    Pool,
    RecoveryRequest,
    ServiceOff,
    StalwartError,
    Supervisor,
)
from stalwart.telemetry._api import ApiServer, StoreBackend
from tests.support import FAST, Work, Worker, wait_for


def call(url, method="GET", body=None, token=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            kind = response.headers["Content-Type"]
            return response.status, json.loads(text) if "json" in kind else text
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode())


@pytest.fixture
def served(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker, levels=FAST)]))
    system.ask("s/w", Work(1, fail_times=1, error="connection"), timeout=10)
    with pytest.raises(StalwartError):
        system.ask("s/w", Work(2, fail_times=-1, error="runtime"), timeout=10)
    system.flush()
    server = system.serve_api(token="s3cret")
    yield system, server
    server.stop()


def test_the_server_listens_on_loopback(served):
    _, server = served
    assert server.host == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")


def test_errors_list_filter_and_detail(served):
    _, server = served
    status, errors = call(f"{server.url}/api/errors")
    assert status == 200 and len(errors) == 2
    status, open_only = call(f"{server.url}/api/errors?status=open")
    assert [e["status"] for e in open_only] == ["open"]
    status, detail = call(f"{server.url}/api/errors/{open_only[0]['id']}")
    assert status == 200 and detail["events"] and detail["path"] == "s/w"


def test_unknown_ids_and_paths_are_404(served):
    _, server = served
    assert call(f"{server.url}/api/errors/9999")[0] == 404
    status, body = call(f"{server.url}/api/nothing")
    assert status == 404 and "no endpoint" in body["error"]


def test_resolving_needs_the_token_and_happens_once(served):
    _, server = served
    _, [error] = call(f"{server.url}/api/errors?status=open")
    url = f"{server.url}/api/errors/{error['id']}/resolve"
    status, body = call(url, "POST", {"by": "alice"})
    assert status == 401 and "token" in body["error"]
    assert call(url, "POST", {"by": "alice"}, token="wrong")[0] == 401
    status, body = call(url, "POST", {"by": "alice"}, token="s3cret")
    assert (status, body["resolved"]) == (200, True)
    assert call(f"{server.url}/api/errors/{error['id']}")[1]["resolved_by"] == "alice"
    assert call(url, "POST", {"by": "alice"}, token="s3cret")[0] == 409
    assert call(f"{server.url}/api/errors/9999/resolve", "POST", {}, token="s3cret")[0] == 404


def test_bad_json_and_bad_fields_are_400_naming_the_field(served):
    _, server = served
    _, [error] = call(f"{server.url}/api/errors?status=open")
    url = f"{server.url}/api/errors/{error['id']}/resolve"
    status, body = call(url, "POST", raw=b"{not json", token="s3cret")
    assert status == 400 and "JSON" in body["error"]
    status, body = call(url, "POST", {"by": 42}, token="s3cret")
    assert (status, body["field"]) == (400, "by")
    status, body = call(url, "POST", {"who": "x"}, token="s3cret")
    assert (status, body["field"]) == (400, "who")
    status, body = call(f"{server.url}/api/recovery/metrics?window_s=soon")
    assert (status, body["field"]) == (400, "window_s")
    status, body = call(
        f"{server.url}/api/recovery/reset", "POST", {"path": "s/ghost"}, token="s3cret"
    )
    assert (status, body["field"]) == (400, "path")


def test_metrics_history_and_reset(served):
    _, server = served
    status, metrics = call(f"{server.url}/api/recovery/metrics?window_s=3600")
    # one message recovered, one set aside as poison: two incidents, one recovered
    assert status == 200 and metrics["incidents"] == 2 and metrics["incidents_recovered"] == 1
    assert metrics["incident_success_rate"] == 0.5
    assert metrics["attempts"] >= 2 and 0 < metrics["attempt_success_rate"] < 1
    status, history = call(f"{server.url}/api/recovery/history?path=s/w&limit=2")
    assert status == 200 and len(history) == 2
    assert call(f"{server.url}/api/recovery/reset", "POST", {}, token=None)[0] == 401
    status, body = call(f"{server.url}/api/recovery/reset", "POST", {"path": "s/w"}, token="s3cret")
    assert status == 200 and body["supervisors"] == 1


def test_diagnostics_run_now(served):
    _, server = served
    assert call(f"{server.url}/api/diagnostics")[0] == 401  # a scan of the store: token only
    status, body = call(f"{server.url}/api/diagnostics", token="s3cret")
    assert status == 200 and body["store"]["integrity_ok"] is True
    assert "s/w" in {a["path"] for a in body["actors"]}
    assert body["memory"]["level"] == "normal" and body["memory"]["sample"]["used"] > 0


def test_prometheus_metrics_parse(served):
    _, server = served
    status, text = call(f"{server.url}/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert "stalwart_recovery_attempts" in families
    assert families["stalwart_incident_success_ratio"].samples[0].value == 0.5
    outcomes = {s.labels["outcome"]: s.value for s in families["stalwart_incidents"].samples}
    assert (outcomes["recovered"], outcomes["given_up"]) == (1, 1)
    assert families["stalwart_recovery_attempt_success_ratio"].samples[0].value > 0
    paths = {s.labels["path"] for s in families["stalwart_actor_level"].samples}
    assert "s/w" in paths


def scrape(system):
    """The families of one ``GET /metrics`` of ``system``, by name."""
    server = system.serve_api()
    try:
        _, text = call(f"{server.url}/metrics")
    finally:
        server.stop()
    return {f.name: f for f in text_string_to_metric_families(text)}


def tree_metrics(system):
    """The levels ``/metrics`` names (the system's own services left out), and its counts
    of the tree's entries by kind, state and level."""
    families = scrape(system)
    levels = {
        s.labels["path"]: s.value
        for s in families["stalwart_actor_level"].samples
        if not s.labels["path"].startswith("_system")
    }
    nodes = {
        (n.labels["kind"], n.labels["state"], int(n.labels["level"])): n.value
        for n in families["stalwart_tree_nodes"].samples
    }
    return levels, nodes


def counted(system):
    return Counter((e.kind, e.state, e.level) for e in system.status())


def test_metrics_name_an_entry_added_at_run_time_only_while_it_recovers(make_system, base):
    # a Pool's keys are often a session or user each: a series per key that ever ran
    # would grow without end, so what was added at run time is named only above level 0
    # (and what is below it: the children of a Pool's supervisor instance)
    sessions = Pool("sessions", template=Child("session", Worker, levels=FAST))
    teams = Pool("teams", template=Supervisor("team", children=[Child("a", Worker, levels=FAST)]))
    tree = Supervisor("s", children=[Child("w", Worker, levels=FAST), sessions, teams])
    system = make_system(tree, base=base)
    for key in ("a", "b", "c"):
        system.start_child("s/sessions", key)
    system.start_child("s/teams", "red")
    system.start_child("s", Child("extra", Worker, levels=FAST))
    for path in ("s/sessions/b", "s/teams/red/a"):
        with pytest.raises(StalwartError):
            system.ask(path, Work(1, fail_times=-1), timeout=30)
        assert system.status(path)[0].level > 0
    levels, nodes = tree_metrics(system)
    assert set(levels) == {"s", "s/w", "s/sessions", "s/teams", "s/sessions/b", "s/teams/red/a"}
    assert levels["s/sessions/b"] > 0 and levels["s/w"] == 0
    # every entry is counted (those at level 0 too), as status() shows them
    assert nodes == counted(system)
    assert nodes[("actor", "running", 0)] >= 4  # w, a, c and extra (and the services)


def test_metrics_count_what_is_below_a_child_stopped_for_good_as_stopped(make_system):
    inner = Supervisor(
        "mid", children=[Child("y", Worker), Pool("pool", template=Child("p", Worker))]
    )
    system = make_system(Supervisor("s", children=[Child("w", Worker), inner]))
    system.start_child("s/mid/pool", "k")
    system.terminate_child("s", "mid")
    levels, nodes = tree_metrics(system)
    assert nodes == counted(system)
    assert nodes[("actor", "stopped", 0)] == 2  # y and the Pool's instance k, counted
    assert nodes[("supervisor", "stopped", 0)] == 2  # mid and its Pool
    assert set(levels) == {"s", "s/w", "s/mid", "s/mid/y", "s/mid/pool"}


def test_a_store_backed_server_has_no_live_tree_gauges(tmp_path, make_system):
    db = tmp_path / "r.db"
    system = make_system(Supervisor("s", children=[Child("w", Worker)]), store=str(db))
    system.flush()
    with ApiServer(StoreBackend(str(db)), token="t") as server:
        _, text = call(f"{server.url}/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["stalwart_actor_level"].samples == []
    assert families["stalwart_tree_nodes"].samples == []


def test_a_store_backed_server_reads_the_file_but_cannot_act(tmp_path, make_system):
    db = tmp_path / "r.db"
    system = make_system(Supervisor("s", children=[Child("w", Worker, levels=FAST)]), store=str(db))
    system.ask("s/w", Work(1, fail_times=1), timeout=10)
    system.flush()
    with ApiServer(StoreBackend(str(db)), token="t") as server:
        status, history = call(f"{server.url}/api/recovery/history")
        assert status == 200 and history[0]["path"] == "s/w"
        status, body = call(f"{server.url}/api/recovery/reset", "POST", {}, token="t")
        assert status == 503 and "no running system" in body["error"]


def raw_request(server, head: bytes, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send a hand-made HTTP request; answer (status, headers, body)."""
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(head + b"\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data:
                top, _, rest = data.partition(b"\r\n\r\n")
                lines = top.decode().split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines[1:])
                if len(rest) >= int(headers.get("Content-Length", 0)):
                    return int(lines[0].split()[1]), headers, rest
    raise AssertionError(f"no whole answer: {data!r}")


def test_requests_from_other_sites_are_refused(served):
    _, server = served
    port = server.port
    for head in (
        f"GET /api/errors HTTP/1.1\r\nHost: evil.example:{port}\r\n",  # DNS rebinding
        f"GET /api/errors HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\n",
    ):
        status, _, body = raw_request(server, head.encode())
        assert status == 403 and b"allowed_hosts" in body
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        status, _, _ = raw_request(server, f"GET /api/errors HTTP/1.1\r\nHost: {host}\r\n".encode())
        assert status == 200


def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(served):
    _, server = served
    host = f"Host: 127.0.0.1:{server.port}\r\n"

    def reset(token, length):
        auth = f"Authorization: Bearer {token}\r\n"
        return f"POST /api/recovery/reset HTTP/1.1\r\n{host}{auth}Content-Length: {length}\r\n"

    cases = [
        # the token is checked before the body is read, and any text compares safely
        (reset("\u00e9t\u00e9", 2), b"{}", 401),
        (reset("s3cret", "abc"), b"", 400),
        (reset("s3cret", -1), b"", 400),
        (reset("s3cret", 99999999), b"", 413),
        (f"GET /api/errors/100000000000000000000 HTTP/1.1\r\n{host}", b"", 404),
        (f"GET /api/errors?limit=100000000000000000000 HTTP/1.1\r\n{host}", b"", 400),
        (f"DELETE /api/errors HTTP/1.1\r\n{host}", b"", 405),
        (f"PUT /api/recovery/reset HTTP/1.1\r\n{host}", b"", 405),
    ]
    for head, body, expected in cases:
        status, headers, answer = raw_request(server, head.encode("utf-8"), body)
        assert status == expected, (head, answer)
        assert json.loads(answer)["status"] == expected
        if expected == 405:
            assert headers["Allow"] in ("GET", "POST")
    assert call(f"{server.url}/api/errors")[0] == 200


def test_the_counters_count_a_pool_s_instances_together(make_system):
    # a Pool's keys are often one per session: a series per key that ever failed would
    # grow without end, so its instances' errors, incidents and dead letters add up
    pool = Pool("sessions", template=Child("session", Worker, levels=FAST))
    system = make_system(Supervisor("s", children=[Child("w", Worker, levels=FAST), pool]))
    for path in (
        "s/w",
        system.start_child("s/sessions", "a"),
        system.start_child("s/sessions", "b"),
    ):
        with pytest.raises(StalwartError):
            system.ask(path, Work(1, fail_times=-1), timeout=30)
    system.flush()
    families = scrape(system)
    for family in ("stalwart_errors", "stalwart_incidents", "stalwart_dead_letters"):
        counted: Counter[str] = Counter()
        for sample in families[family].samples:
            counted[sample.labels["path"]] += sample.value
        assert set(counted) == {"s/w", "s/sessions/*"}, family
        assert counted["s/sessions/*"] == 2 * counted["s/w"], family


def test_a_system_without_a_store_serves_its_live_gauges_and_says_its_figures_are_off(
    make_system,
):
    system = make_system(Supervisor("s", children=[Child("w", Worker, levels=FAST)]), store=None)
    with pytest.raises(ServiceOff, match=r"store=None"):
        system.totals()
    families = scrape(system)  # the live tree's gauges; the running totals have no sample
    nodes = {
        (n.labels["kind"], n.labels["state"], int(n.labels["level"])): n.value
        for n in families["stalwart_tree_nodes"].samples
    }
    assert nodes == counted(system)
    assert {s.labels["path"] for s in families["stalwart_actor_level"].samples} >= {"s", "s/w"}
    assert families["stalwart_incidents"].samples == []
    assert families["stalwart_alerts_active"].samples == []
    server = system.serve_api()
    for endpoint in ("/api/recovery/metrics", "/api/recovery/history"):
        status, body = call(f"{server.url}{endpoint}")
        assert status == 503 and "store=None" in body["error"], endpoint
    # the dashboard shows the tree, and says there are no figures rather than zeros
    snap = wait_for(
        lambda: (s := call(f"{server.url}/api/dashboard")[1])["figures"] != "reading" and s
    )
    assert snap["figures"] == "off" and {n["path"] for n in snap["tree"]} >= {"s", "s/w"}


def test_a_pool_keys_breaker_is_named_while_its_key_runs_and_the_breaker_is_not_closed(
    make_system, base
):
    # one breaker per session key: a series for each key whose breaker ever opened would
    # grow without end, and would still say "open" once the key has ended
    guard = Breaker(failure_threshold=1, recovery_timeout=60)
    sessions = Pool("sessions", template=Child("session", Worker, levels=FAST, breaker=guard))
    tree = Supervisor("s", children=[sessions, Child("d", Worker, levels=FAST, breaker=guard)])
    system = make_system(tree, base=base)
    for path in ("s/d", system.start_child("s/sessions", "a")):
        with pytest.raises(StalwartError):
            system.ask(path, Work(1, fail_times=-1), timeout=30)
    system.start_child("s/sessions", "b")  # its breaker stays closed: no sample

    def open_breakers():
        samples = scrape(system)["stalwart_breaker_state"].samples
        return {s.labels["path"] for s in samples if s.value and s.labels["state"] == "open"}

    wait_for(lambda: open_breakers() == {"s/d", "s/sessions/a"})
    named = {s.labels["path"] for s in scrape(system)["stalwart_breaker_state"].samples}
    assert named == {"s/d", "s/sessions/a"}
    system.flush()
    assert system.totals().open_breakers == ["s/d"]  # (the key's is live, not a total)
    system.terminate_child("s/sessions", "a")
    assert open_breakers() == {"s/d"}


def test_a_pool_added_at_run_time_counts_its_instances_together(make_system, base):
    # one Pool per tenant, added as tenants come: each counts its sessions under one label
    system = make_system(Supervisor("s", children=[Child("w", Worker)]), base=base)
    guard = Breaker(failure_threshold=1, recovery_timeout=60)
    session = Child("session", Worker, levels=FAST, breaker=guard)
    system.start_child("s", Pool("acme", template=session))
    for key in ("a", "b"):
        system.start_child("s/acme", key)
        with pytest.raises(StalwartError):
            system.ask(f"s/acme/{key}", Work(1, fail_times=-1), timeout=30)
    system.flush()
    families = scrape(system)
    errors = {s.labels["path"] for s in families["stalwart_errors"].samples}
    assert "s/acme/*" in errors and not errors & {"s/acme/a", "s/acme/b"}
    breakers = {
        s.labels["path"] for s in families["stalwart_breaker_state"].samples if s.value
    }  # (live, while each key runs: none is a total of its own)
    assert breakers == {"s/acme/a", "s/acme/b"}
    system.terminate_child("s/acme", "a")
    assert {s.labels["path"] for s in scrape(system)["stalwart_breaker_state"].samples} == {
        "s/acme/b"
    }


def test_a_restarted_telemetry_actor_still_counts_a_run_time_pool_together(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker)]))
    system.start_child("s", Pool("acme", template=Child("session", Worker, levels=FAST)))

    def fail(key):
        system.start_child("s/acme", key)
        with pytest.raises(StalwartError):
            system.ask(f"s/acme/{key}", Work(1, fail_times=-1), timeout=30)
        system.flush()
        return scrape(system)["stalwart_errors"].samples

    assert {s.labels["path"] for s in fail("a")} == {"s/acme/*"}  # (the Pool was heard of)
    result = system.request_recovery(RecoveryRequest("_system/telemetry", 3, "test"))
    assert result.ok, result.detail
    assert {s.labels["path"] for s in fail("b")} == {"s/acme/*"}  # (and the new one heard)


def test_a_breaker_added_at_run_time_leaves_no_series_once_deleted(make_system, base):
    guard = Breaker(failure_threshold=1, recovery_timeout=60)
    system = make_system(Supervisor("s", children=[Child("w", Worker)]), base=base)
    path = system.start_child("s", Child("x", Worker, levels=FAST, breaker=guard))
    with pytest.raises(StalwartError):
        system.ask(path, Work(1, fail_times=-1), timeout=30)

    def named():
        return {s.labels["path"] for s in scrape(system)["stalwart_breaker_state"].samples}

    wait_for(lambda: named() == {"s/x"})
    system.terminate_child("s", "x")
    system.delete_child("s", "x")
    system.flush()
    assert named() == set() and system.totals().open_breakers == []


def test_a_tree_that_is_a_pool_counts_its_keys_together(make_system):
    system = make_system(Pool("sessions", template=Child("session", Worker, levels=FAST)))
    key = system.start_child("sessions", "a")
    with pytest.raises(StalwartError):
        system.ask(key, Work(1, fail_times=-1), timeout=30)
    system.flush()
    errors = {s.labels["path"] for s in scrape(system)["stalwart_errors"].samples}
    assert errors == {"sessions/*"}


def test_a_declared_breakers_gauge_follows_the_live_tree(make_system):
    # read at each scrape: a restarted telemetry actor (its totals start again) still shows
    # it open, and a deleted child leaves no sample behind
    guard = Breaker(failure_threshold=1, recovery_timeout=3600)
    x = Child("x", Worker, levels=FAST, breaker=guard)
    system = make_system(Supervisor("s", children=[Child("w", Worker), x]))
    with pytest.raises(StalwartError):
        system.ask("s/x", Work(1, fail_times=-1), timeout=30)

    def named():
        samples = scrape(system)["stalwart_breaker_state"].samples
        return {(s.labels["path"], s.labels["state"]) for s in samples if s.value}

    wait_for(lambda: named() == {("s/x", "open")})
    result = system.request_recovery(RecoveryRequest("_system/telemetry", 3, "test"))
    assert result.ok and named() == {("s/x", "open")}
    system.terminate_child("s", "x")
    system.delete_child("s", "x")
    assert named() == set()


@pytest.mark.parametrize("name", ["x", "x" * 300])  # (a long path is not cut short)
def test_a_declared_breaker_deleted_while_open_is_recorded_open_no_more(make_system, name):
    guard = Breaker(failure_threshold=1, recovery_timeout=3600)
    x = Child(name, Worker, levels=FAST, breaker=guard)
    system = make_system(Supervisor("s", children=[Child("w", Worker), x]))
    with pytest.raises(StalwartError):
        system.ask(f"s/{name}", Work(1, fail_times=-1), timeout=30)
    wait_for(lambda: system.flush() or system.totals().open_breakers == [f"s/{name}"])
    system.terminate_child("s", name)
    system.delete_child("s", name)
    system.flush()
    assert system.totals().open_breakers == [] and system.metrics().open_breakers == []
    assert {s.value for s in system.totals().series if s.name == "stalwart_breaker_state"} == {0}


def test_a_name_a_deleted_pool_had_is_counted_as_its_new_child_is(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker)]))
    system.start_child("s", Pool("acme", template=Child("session", Worker, levels=FAST)))
    system.terminate_child("s", "acme")
    system.delete_child("s", "acme")
    assert errors_of_a_plain_supervisor_named_acme(system) == {"s/acme/billing"}


def errors_of_a_plain_supervisor_named_acme(system):
    """The error series once a plain supervisor named ``acme`` is added and its child fails."""
    system.start_child("s", Supervisor("acme", children=[Child("billing", Worker, levels=FAST)]))
    with pytest.raises(StalwartError):
        system.ask("s/acme/billing", Work(1, fail_times=-1), timeout=30)
    system.flush()
    return {s.labels["path"] for s in scrape(system)["stalwart_errors"].samples}


def test_a_declared_pool_deleted_leaves_its_name_to_what_comes_next(make_system):
    pool = Pool("acme", template=Child("session", Worker, levels=FAST))
    system = make_system(Supervisor("s", children=[Child("w", Worker), pool]))
    system.terminate_child("s", "acme")
    system.delete_child("s", "acme")
    system.flush()  # (the telemetry actor has heard; then it is restarted, and hears again)
    result = system.request_recovery(RecoveryRequest("_system/telemetry", 3, "test"))
    assert result.ok
    assert errors_of_a_plain_supervisor_named_acme(system) == {"s/acme/billing"}
