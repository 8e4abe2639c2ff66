"""Every example runs, as a user would run it."""

import subprocess
import sys

import pytest


def run_example(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def shop_demo():
    """One run of the shop demo on the simple base, serving its dashboard: the tests below
    each read what it printed (it ran to its end before any of them looks)."""
    return run_example("examples.shop", "--seconds", "2", "--dashboard", "0")


def test_the_shop_demo_shows_levels_one_to_four_and_the_tree(shop_demo):
    out = shop_demo
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for level in (1, 2, 3, 4):
        assert f"failed -> level {level}" in text
    assert "recovery levels used: 1, 2, 3, 4" in text
    assert "shop/storefront/api" in text and "w.2" in text  # the status tree at the end
    # the outage: the breaker opened and closed again, and the tree kept running throughout
    outage = text[text.index("== outage") :]
    assert "breaker: open" in outage and "breaker: closed" in outage
    assert "BreakerOpen" in outage and "placed" in outage
    assert "the tree kept running through the outage" in outage
    assert "escalate" not in text and "level5" not in text


def test_the_shop_demo_serves_its_dashboard_while_it_runs(shop_demo):
    out = shop_demo
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("dashboard: "))
    assert line.startswith("dashboard: http://127.0.0.1:") and "/#token=" in line


def test_the_shop_demo_reaches_level_five_when_asked_on_real_processes():
    out = run_example("examples.shop", "--seconds", "2", "--critical", "--base", "multiproc")
    assert out.returncode == 0, out.stderr
    assert "restart-tree: requested: operator: --critical" in out.stdout
    assert "recovery levels used: 1, 2, 3, 4, 5" in out.stdout


def test_the_cascade_example_names_the_database_and_places_each_order_once():
    out = run_example("examples.cascade", "--outage", "1.0")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    resolved = [line for line in text.splitlines() if "resolved: shop/db caused" in line]
    assert resolved and "shop/inventory" in resolved[0], text
    assert "orders placed: 0, 1, 2, 3 (each once)" in text
    assert "incident opened" in text and "resumed" in text


def test_the_memory_example_runs_the_three_tiers_and_restarts_the_importer():
    out = run_example("examples.memory_pressure")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "tiers run: warning, critical, emergency" in text
    assert "restarted to give memory back: shop/importer" in text
    assert "shedding: False" in text  # the restart gave the memory back; load is taken again


def test_the_pool_example_rides_out_the_outage_behind_its_breaker():
    out = run_example("examples.pool")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "200 of 200 jobs answered" in text and "errors: none" in text
    assert "breaker states: open" in text and text.split("breaker states: ")[1].split("\n")[
        0
    ].endswith("closed")
    assert "'cached'" in text  # answers came from the breaker's cache while it was open
    assert "worker restarts: 0" in text  # held, not restarted


def test_the_plain_code_example_recovers_predicts_and_records():
    out = run_example("examples.plain_code")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "recovered: b'paid' by reconnect at level 1" in text
    assert "partner answered 429; waited as asked, then: 'report ready'" in text
    assert "fds predicted to reach" in text and "action: close_leaked_fds: " in text
    assert "payments   level 1  reconnect    ok=True" in text


def test_the_cluster_example_moves_the_trainer_with_its_steps_when_its_node_dies():
    out = run_example("examples.cluster")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "trained steps [1, 2, 3]" in text
    assert "node-lost: " in text and "no heartbeat for" in text
    assert "trained steps [1, 2, 3, 4]" in text  # its checkpoint came along
    assert "stopped; no process left" in text


def test_the_acknowledged_example_loses_no_deposit_to_kills_of_accounts_and_their_branch():
    out = run_example("examples.acknowledged", "--deposits", "10")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "alice: acknowledged 30, balance now 30" in out.stdout  # 2 + 4 + ... + 10
    assert "bob: acknowledged 25, balance now 25" in out.stdout  # 1 + 3 + ... + 9
    assert "nothing acknowledged was lost (the branch restarted 1 time(s))" in out.stdout


def test_the_fanout_example_waits_on_every_supplier_at_once_on_both_bases():
    for base in ("simple", "multiproc"):
        out = run_example("examples.fanout", "--base", base)
        assert out.returncode == 0, out.stderr
        assert "24 quotes in" in out.stdout
        assert out.stdout.count("(2 of 3 answered in time)") == 3  # the slow one was skipped
        assert "Traceback" not in out.stderr


def test_the_sessions_example_starts_one_actor_per_user_and_forgets_idle_ones():
    out = run_example("examples.sessions", "--base", "multiproc")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "logged in: app/sessions/alice, app/sessions/bob" in text
    assert "alice's cart: {'user': 'alice', 'items': ['tea', 'cups']}" in text
    assert "alice again: app/sessions/alice (the same session)" in text
    assert "carol: PoolFull: app/sessions runs max_children=2 instances" in text
    assert "bob idle: unknown actor path 'app/sessions/bob'" in text and "idle_timeout_s" in text
    assert "bob's new cart: {'user': 'bob', 'items': []}" in text
    assert "app/batch shut itself down once its significant job ended" in text
