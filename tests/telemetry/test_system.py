"""Telemetry in a running tree: recording, learning across restarts, durable state, alerts."""

import os
import signal
import time
from typing import Any

import msgspec
import pytest

from stalwart import (
    BadMessage,
    Child,
    DeleteChild,
    LevelPolicy,
    PoisonMessageError,
    Pool,
    StalwartError,
    StartChild,
    StartFailed,
    Supervisor,
    UnknownPath,
    start,
)
from stalwart.strategies import Fixed
from stalwart.supervisors import _root as root_actor
from stalwart.supervisors import _routing as routing
from stalwart.supervisors.messages import ChildrenNow, StoredGone, StoredStates
from stalwart.telemetry import AlertRule, RecoveryStore
from stalwart.telemetry import _actor as telemetry_actor
from tests.support import (
    FAST,
    Adjustable,
    Counter,
    NeedsAdjust,
    Ping,
    Work,
    Worker,
    wait_for,
)

LEVEL2 = LevelPolicy(
    basic_attempts=1,
    basic_delay_s=0.001,
    enhanced_attempts=3,
    backoff=Fixed(0.001),
    quiet_period_s=0.05,
)


def first_level2_strategy(system, path):
    for e in system.events():
        if e.kind == "failure" and e.path == path and e.level == 2:
            return e.strategy
    return None


def test_every_recovery_attempt_is_recorded_with_its_outcome(make_system, base, tmp_path):
    db = tmp_path / "r.db"
    system = make_system(
        Supervisor("s", children=[Child("w", Worker, levels=FAST)]), base=base, store=str(db)
    )
    assert system.ask("s/w", Work(1, fail_times=2), timeout=10).attempts == 3
    with pytest.raises(PoisonMessageError):
        system.ask("s/w", Work(2, fail_times=-1), timeout=10)
    system.flush()
    history = system.history(path="s/w")
    outcomes = sorted((r["level"], r["strategy"], r["success"]) for r in history)
    assert (1, "retry", 0) in outcomes and (2, "backoff", 1) in outcomes
    assert (3, "restart", 0) in outcomes
    assert all(r["operation"] == "Work" and r["category"] == "unknown" for r in history)
    m = system.metrics()
    assert m.attempts == len(history) and 0 < m.attempt_success_rate < 1
    # two incidents: the first message recovered, the second was set aside as poison
    assert (m.incidents, m.incidents_recovered, m.incidents_given_up) == (2, 1, 1)
    errors = system.errors(path="s/w")
    assert errors and errors[0]["count"] >= 3
    # the file can be read while the system runs
    with RecoveryStore(db, readonly=True) as store:
        assert len(store.recovery_history(path="s/w")) == len(history)


def test_the_learned_strategy_survives_a_restart_of_the_whole_system(tmp_path):
    db = str(tmp_path / "learn.db")
    tree = Supervisor("s", children=[Child("a", Adjustable, levels=LEVEL2)])
    with start(tree, store=db, report_path=None) as system:
        for i in range(12):
            assert system.ask("s/a", NeedsAdjust(i), timeout=10) == i
            time.sleep(0.06)  # a quiet period: the next request starts at level 1 again
        cold = first_level2_strategy(system, "s/a")
    assert cold == "backoff"  # a cold start follows the ladder order
    with start(tree, store=db, report_path=None) as system:
        assert system.ask("s/a", NeedsAdjust(99), timeout=10) == 99
        warm = first_level2_strategy(system, "s/a")
    assert warm == "adjust"  # what the store learned: adjusting is what works here


def test_a_durable_actor_keeps_its_state_across_a_restart_of_the_whole_system(tmp_path, base):
    db = str(tmp_path / "durable.db")
    tree = Supervisor("s", children=[Child("c", Counter, durable=True), Child("v", Counter)])
    with start(tree, base=base, store=db, report_path=None) as system:
        for _ in range(3):
            system.ask("s/c", Ping(5))
            system.ask("s/v", Ping(5))
    with start(tree, base=base, store=db, report_path=None) as system:
        assert system.ask("s/c", Ping(1)) == 16  # restored 15
        assert system.ask("s/v", Ping(1)) == 1  # not durable: starts from nothing


def test_a_deleted_durable_child_starts_afresh_in_the_next_run_as_in_this_one(tmp_path, base):
    # delete_child: "its spec, checkpoints and paths go"; the durable one in the store too,
    # or the next run, declaring the child again, would bring the deleted state back
    db = str(tmp_path / "durable.db")
    tree = Supervisor(
        "s", children=[Child("c", Counter, durable=True), Child("k", Counter, durable=True)]
    )
    with start(tree, base=base, store=db, report_path=None) as system:
        assert system.ask("s/c", Ping(5)) == 5 and system.ask("s/k", Ping(5)) == 5
        system.terminate_child("s", "c")
        system.delete_child("s", "c")
    with start(tree, base=base, store=db, report_path=None) as system:
        assert system.ask("s/c", Ping(1)) == 1  # deleted: from nothing
        assert system.ask("s/k", Ping(1)) == 6  # kept: restored 5


def durable_keys_tree() -> Supervisor:
    """Two Pools of durable keys: sessions (an actor each) and shops (a supervisor each,
    with a durable cart)."""
    return Supervisor(
        "s",
        children=[
            Pool("sessions", template=Child("session", Counter, durable=True)),
            Pool(
                "shops",
                template=Supervisor("shop", children=[Child("cart", Counter, durable=True)]),
            ),
        ],
    )


def test_a_pools_durable_keys_take_their_state_back_when_first_started_in_the_next_run(
    tmp_path, base
):
    """A durable Pool instance's state comes back in the next run when its key is first
    started there, as a declared durable child's does (a key that is a supervisor: its
    durable children's; a durable child added with ``start_child``: its own). The stored
    state is taken only by a start that succeeds; a key not started in a run keeps it for
    the next; a key that ran and ended in a run leaves nothing, so it starts afresh in that
    run and the next, as in one that never stopped."""
    db = str(tmp_path / "keys.db")
    down = tmp_path / "down"
    tree = durable_keys_tree()
    flagged = {"fail_start_flag": str(down)}
    extra = Child("extra", Counter, durable=True)  # (added with start_child, not a Pool's)
    with start(tree, base=base, store=db, report_path=None) as system:
        for key, n in (("alice", 5), ("bob", 7), ("carol", 3)):
            assert system.ask(system.start_child("s/sessions", key, flagged), Ping(n)) == n
        assert system.ask(system.start_child("s/shops", "x") + "/cart", Ping(2)) == 2
        assert system.ask(system.start_child("s", extra), Ping(4)) == 4
    with start(tree, base=base, store=db, report_path=None) as system:
        assert system.ask(system.start_child("s/sessions", "alice"), Ping(1)) == 6
        assert system.ask(system.start_child("s/shops", "x") + "/cart", Ping(1)) == 3
        assert system.ask(system.start_child("s", extra), Ping(1)) == 5
        system.terminate_child("s/sessions", "alice")  # ended: what it kept goes
        assert system.ask(system.start_child("s/sessions", "alice"), Ping(1)) == 1
        down.touch()
        with pytest.raises(StartFailed):
            system.start_child("s/sessions", "carol", flagged)
        system.flush()
        with RecoveryStore(db, readonly=True) as store:  # its failure is no open group
            assert not store.query("SELECT * FROM errors WHERE status = 'open'")
        down.unlink()
        assert system.ask(system.start_child("s/sessions", "carol", flagged), Ping(1)) == 4
    with start(tree, base=base, store=db, report_path=None) as system:
        assert system.ask(system.start_child("s/sessions", "alice"), Ping(1)) == 2
        assert system.ask(system.start_child("s/sessions", "bob"), Ping(1)) == 8  # kept
        assert system.ask(system.start_child("s/sessions", "carol"), Ping(1)) == 5


def test_delete_child_forgets_what_an_earlier_run_stored_for_a_child_not_started_since(
    tmp_path, base
):
    """``delete_child`` of a durable Pool key (or a durable child added with
    ``start_child``) that an earlier run stored and this run has not started drops what the
    store kept for it and below it: its next start begins afresh, in this run and the next;
    other keys keep theirs. A key started in this run, or one nothing was stored for, is
    refused as before."""
    db = str(tmp_path / "deleted.db")
    tree = durable_keys_tree()
    extra = Child("extra", Counter, durable=True)  # (added with start_child, not a Pool's)
    with start(tree, base=base, store=db, report_path=None) as system:
        for key, n in (("alice", 5), ("bob", 7), ("carol", 3)):
            assert system.ask(system.start_child("s/sessions", key), Ping(n)) == n
        for key in ("x", "y"):
            assert system.ask(system.start_child("s/shops", key) + "/cart", Ping(2)) == 2
        assert system.ask(system.start_child("s", extra), Ping(4)) == 4
    with start(tree, base=base, store=db, report_path=None) as system:
        system.delete_child("s/sessions", "alice")
        system.delete_child("s/sessions", "carol")  # (not started again in this run)
        system.delete_child("s/shops", "x")  # (a key that is a supervisor: its child's too)
        with pytest.raises(BadMessage, match="is no key"):
            system.delete_child("s/shops", "y/cart")  # (a name, not a path below one)
        system.delete_child("s/shops", "y")
        system.delete_child("s", "extra")
        for key in ("dave", "carol"):  # (nothing stored for it; deleted already)
            with pytest.raises(UnknownPath, match=f"no stored state for key '{key}'"):
                system.delete_child("s/sessions", key)
        with pytest.raises(UnknownPath, match="'nobody'"):
            system.delete_child("s", "nobody")
        assert system.ask(system.start_child("s/sessions", "alice"), Ping(1)) == 1
        assert system.ask(system.start_child("s/shops", "x") + "/cart", Ping(1)) == 1
        assert system.ask(system.start_child("s", extra), Ping(1)) == 1
        with pytest.raises(BadMessage, match="was started in this run: terminate_child it"):
            system.delete_child("s/sessions", "alice")
        deleted = [e.detail for e in system.events() if e.kind == "child-deleted"]
        assert "s/sessions/alice (what an earlier run stored)" in deleted
    with start(tree, base=base, store=db, report_path=None) as system:
        assert system.ask(system.start_child("s/sessions", "alice"), Ping(1)) == 2  # its new life's
        assert system.ask(system.start_child("s/sessions", "bob"), Ping(1)) == 8  # kept
        assert system.ask(system.start_child("s/shops", "x") + "/cart", Ping(1)) == 2
        assert system.ask(system.start_child("s", extra), Ping(1)) == 2
        assert system.ask(system.start_child("s/sessions", "carol"), Ping(1)) == 1  # its row went
        assert system.ask(system.start_child("s/shops", "y") + "/cart", Ping(1)) == 1


def test_a_deleted_key_that_is_a_supervisor_leaves_no_records_below_it(tmp_path, base):
    """What the store kept for a deleted key's children goes too, durable or not (a
    worker's recovery level and its error group, here), as when a key that ran ends."""
    db = str(tmp_path / "below.db")
    quick = LevelPolicy(basic_attempts=1, basic_delay_s=0.001, quiet_period_s=0.02)
    shop = Supervisor(
        "shop", children=[Child("cart", Counter, durable=True), Child("w", Worker, levels=quick)]
    )
    tree = Supervisor("s", children=[Pool("shops", template=shop)])

    def rows(store: RecoveryStore) -> list[Any]:
        below = ("s/shops/x/%",)
        return [
            *store.query("SELECT path FROM checkpoints WHERE path LIKE ?", below),
            *store.query("SELECT path FROM progressive_recovery WHERE path LIKE ?", below),
            *store.query("SELECT path FROM errors WHERE status = 'open' AND path LIKE ?", below),
        ]

    with start(tree, base=base, store=db, report_path=None) as system:
        shop_x = system.start_child("s/shops", "x")
        assert system.ask(shop_x + "/cart", Ping(2)) == 2
        with pytest.raises(StalwartError):
            system.ask(shop_x + "/w", Work(1, fail_times=-1), timeout=10)
        system.flush()
        with RecoveryStore(db, readonly=True) as store:
            assert {row["path"] for row in rows(store)} == {"s/shops/x/cart", "s/shops/x/w"}
    with start(tree, base=base, store=db, report_path=None) as system:
        system.delete_child("s/shops", "x")
        system.flush()
        with RecoveryStore(db, readonly=True) as store:
            assert rows(store) == []


class HandOutStored(msgspec.Struct, frozen=True):
    """To the root (a test's own): answer the ChildrenNow it held back."""


def test_child_requests_wait_for_what_the_store_kept_below_their_supervisor(tmp_path, monkeypatch):
    """A supervisor handles no child request before the root's answer of what the store
    kept below it: a request that comes first waits (here the root holds its answer back
    until told), then is handled with it (in process: the test's messages reach the root
    in the order sent)."""
    db = str(tmp_path / "wait.db")
    tree = Supervisor(
        "s", children=[Pool("sessions", template=Child("session", Counter, durable=True))]
    )
    with start(tree, store=db, report_path=None) as system:
        assert system.ask(system.start_child("s/sessions", "alice"), Ping(5)) == 5
    held = []

    def hold_back(root, msg, sender):
        if msg.path == "s/sessions" and msg.stored:
            held.append((msg, sender))
            msg = msgspec.structs.replace(msg, stored=False)
        routing.Routing.on_children_now(root, msg, sender)

    def hand_out(root, msg, sender):
        for asked, supervisor in held:
            states = root.stored.under(asked.path, skip=root.registry.knows)
            root.send(supervisor, StoredStates(asked.path, asked.incarnation, states))

    monkeypatch.setitem(root_actor._HANDLERS, ChildrenNow, hold_back)
    monkeypatch.setitem(root_actor._HANDLERS, HandOutStored, hand_out)
    with start(tree, store=db, report_path=None) as system:
        assert len(held) == 1  # (the Pool began: its question is held)
        system.tell("s/sessions", StartChild(key="alice"))  # waits at the Pool
        system._transport.tell(system._root, HandOutStored())  # (after it: one thread)
        wait_for(lambda: any(a.path == "s/sessions/alice" for a in system.status()))
        assert system.ask("s/sessions/alice", Ping(1)) == 6  # started with what was kept


class DropHeld(msgspec.Struct, frozen=True):
    """To the root (a test's own): handle the StoredGone it held back."""


def test_a_deleted_key_is_started_again_only_once_the_root_has_dropped_what_it_kept(
    tmp_path, monkeypatch
):
    """After ``delete_child`` of a stored key, the supervisor handles no child request
    until the root has dropped its copy: a start of the key that comes first waits (here
    the root holds the deletion back until told, as another process's messages can come
    first on the multi-process bases), so a Pool inside the key is never handed what went."""
    db = str(tmp_path / "drop.db")
    tenant = Supervisor(
        "tenant", children=[Pool("users", template=Child("user", Counter, durable=True))]
    )
    tree = Supervisor("s", children=[Pool("tenants", template=tenant)])
    with start(tree, store=db, report_path=None) as system:
        users = system.start_child("s/tenants", "x") + "/users"
        assert system.ask(system.start_child(users, "m"), Ping(5)) == 5
    held = []

    def hold_back(root, msg, sender):
        held.append((msg, sender))

    def drop_held(root, msg, sender):
        for gone, supervisor in held:
            routing.Routing.on_stored_gone(root, gone, supervisor)

    monkeypatch.setitem(root_actor._HANDLERS, StoredGone, hold_back)
    monkeypatch.setitem(root_actor._HANDLERS, DropHeld, drop_held)
    with start(tree, store=db, report_path=None) as system:
        system.tell("s/tenants", DeleteChild("x"))
        system.tell("s/tenants", StartChild(key="x"))  # waits at the Pool
        wait_for(lambda: held)
        assert not any(a.path == "s/tenants/x" for a in system.status())
        system._transport.tell(system._root, DropHeld())  # (after them: one thread)
        wait_for(lambda: any(a.path == "s/tenants/x/users" for a in system.status()))
        assert system.ask(system.start_child("s/tenants/x/users", "m"), Ping(1)) == 1


def test_a_key_that_is_a_supervisor_takes_its_subtrees_stored_states_only_when_it_starts(
    tmp_path, base
):
    """A key that is a supervisor takes what an earlier run stored below it only once it
    has started as a whole: one whose first start fails (the last of its children cannot
    start) keeps the rows of its durable child and of its inner Pool's key. Once a key ran
    and ended in a run, the states stored for paths below it (a key of a Pool inside it,
    not started in that run) went with that life: started again, it and they start
    afresh."""
    db = str(tmp_path / "tenants.db")
    down = tmp_path / "down"
    tenant = Supervisor(
        "tenant",
        children=[
            Child("cart", Counter, durable=True),
            Pool("users", template=Child("user", Counter, durable=True)),
            Child("gate", Counter, options={"fail_start_flag": str(down)}),
        ],
    )
    tree = Supervisor("s", children=[Pool("tenants", template=tenant)])
    with start(tree, base=base, store=db, report_path=None) as system:
        for key in ("x", "y"):
            assert system.ask(system.start_child("s/tenants", key) + "/cart", Ping(2)) == 2
            assert system.ask(system.start_child(f"s/tenants/{key}/users", "m"), Ping(5)) == 5
    with start(tree, base=base, store=db, report_path=None) as system:
        down.touch()
        with pytest.raises(StartFailed):  # (its cart and its Pool started before)
            system.start_child("s/tenants", "x")
        down.unlink()
        system.start_child("s/tenants", "y")
        system.terminate_child("s/tenants", "y")  # ran and ended: its subtree's states go
        system.start_child("s/tenants", "y")
        assert system.ask("s/tenants/y/cart", Ping(1)) == 1
        assert system.ask(system.start_child("s/tenants/y/users", "m"), Ping(1)) == 1
    with start(tree, base=base, store=db, report_path=None) as system:
        assert system.ask(system.start_child("s/tenants", "x") + "/cart", Ping(1)) == 3
        assert system.ask(system.start_child("s/tenants/x/users", "m"), Ping(1)) == 6
        assert system.ask(system.start_child("s/tenants", "y") + "/cart", Ping(1)) == 2
        assert system.ask(system.start_child("s/tenants/y/users", "m"), Ping(1)) == 2


def test_an_ended_pool_key_leaves_no_records_of_its_own_and_its_open_errors_end(
    make_system, tmp_path
):
    db = tmp_path / "keys.db"
    quick = LevelPolicy(basic_attempts=1, basic_delay_s=0.001, quiet_period_s=0.02)
    session = Child("session", Worker, levels=quick, durable=True)
    system = make_system(
        Supervisor("s", children=[Pool("sessions", template=session)]),
        store=str(db),
        telemetry={"timeout_factor": 3.0, "timeout_min_s": 0.01},
    )
    for key in ("gone", "live"):  # each learns a timeout and a level, and keeps an open error
        path = system.start_child("s/sessions", key)
        assert system.ask(path, Work(1, fail_times=1), timeout=10).attempts == 2
        with pytest.raises(StalwartError):
            system.ask(path, Work(2, fail_times=-1), timeout=10)
    mended = system.start_child("s/sessions", "mended")  # its one error group was recovered
    assert system.ask(mended, Work(1, fail_times=1), timeout=10).attempts == 2
    system.terminate_child("s/sessions", "gone")
    system.terminate_child("s/sessions", "mended")
    system.flush()
    with RecoveryStore(db, readonly=True) as store:
        for table in ("checkpoints", "adaptive_timeouts", "progressive_recovery"):
            paths = {r["path"] for r in store.query(f"SELECT path FROM {table}")}
            assert paths == {"s/sessions/live"}, table
        errors = store.query("SELECT path, status, resolved_by, resolved_at FROM errors")
    assert {(e["path"], e["status"]) for e in errors} == {
        ("s/sessions/gone", "resolved"),
        ("s/sessions/mended", "resolved"),
        ("s/sessions/live", "open"),
    }
    [ended] = [e for e in errors if e["path"] == "s/sessions/gone"]
    assert ended["resolved_by"].startswith("ended: terminated")
    [recovered] = [e for e in errors if e["path"] == "s/sessions/mended"]  # (both are said)
    assert recovered["resolved_by"].startswith("ended: terminated")
    assert "recovery:" in recovered["resolved_by"]
    # started again, the key starts afresh, as it does in a run that never stopped, and
    # its error group begins again (another life of the path, not the old one reopened)
    path = system.start_child("s/sessions", "gone")
    assert system.ask(path, Ping(), timeout=10).state == {"handled": []}
    with pytest.raises(StalwartError):
        system.ask(path, Work(2, fail_times=-1), timeout=10)
    system.flush()
    mended = system.start_child("s/sessions", "mended")
    assert system.ask(mended, Work(3, fail_times=1), timeout=10).attempts == 2
    system.flush()
    with RecoveryStore(db, readonly=True) as store:
        [again] = store.query("SELECT * FROM errors WHERE path = 's/sessions/gone'")
        [anew] = store.query("SELECT * FROM errors WHERE path = 's/sessions/mended'")
    assert again["status"] == "open" and again["first_seen"] >= ended["resolved_at"]
    # (a group its recovery had resolved begins again too: one error in this life, not two)
    assert anew["count"] == 1 and anew["first_seen"] >= recovered["resolved_at"]


def test_adaptive_timeouts_come_from_recorded_durations(make_system, tmp_path):
    db = tmp_path / "t.db"
    quick = LevelPolicy(basic_attempts=1, basic_delay_s=0.001, quiet_period_s=0.02)
    system = make_system(
        Supervisor("s", children=[Child("w", Worker, levels=quick)]),
        store=str(db),
        telemetry={"timeout_factor": 3.0, "timeout_min_s": 0.01},
    )
    for i in range(5):
        system.ask("s/w", Work(i, fail_times=1), timeout=10)
        time.sleep(0.03)
    system.flush()
    with RecoveryStore(db, readonly=True) as store:
        timeouts = store.adaptive_timeouts()
        [row] = store.query("SELECT * FROM adaptive_timeouts")
    assert ("s/w", "Work") in timeouts
    assert row["samples"] == 5
    assert row["timeout_s"] >= max(0.01, row["longest_s"])


def test_recovered_errors_are_resolved_and_operators_can_resolve_the_others(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker, levels=FAST)]))
    system.ask("s/w", Work(1, fail_times=1, error="connection"), timeout=10)
    with pytest.raises(StalwartError):
        system.ask("s/w", Work(2, fail_times=-1, error="runtime"), timeout=10)
    system.flush()
    by_message = {e["message"].split(":", 1)[1].strip(): e for e in system.errors()}
    recovered = by_message["backend refused work 1"]
    assert recovered["status"] == "resolved" and recovered["resolved_by"].startswith("recovery:")
    stuck = by_message["flaky 2"]
    assert stuck["status"] == "open"
    assert system.resolve_error(stuck["id"], by="alice")
    assert system.error(stuck["id"])["resolved_by"] == "alice"


def test_a_low_success_rate_raises_an_alert_that_resolves_later(make_system):
    system = make_system(
        Supervisor("s", children=[Child("w", Worker, levels=FAST)]),
        telemetry={"alert_window_s": 0.5, "flush_interval_s": 0.05},
    )
    for i in range(3):
        with pytest.raises(StalwartError):
            system.ask("s/w", Work(i, fail_times=-1), timeout=10)
    system.flush()
    alert = wait_for(lambda: [a for a in system.alerts(active=True) if a["rule"] == "success_rate"])
    assert alert[0]["severity"] == "critical"
    time.sleep(0.6)  # the window moves past the failures
    wait_for(
        lambda: not [a for a in system.alerts(active=True) if a["rule"] == "success_rate"],
        timeout=5,
    )


def test_killing_the_telemetry_process_mid_stream_leaves_whole_batches(make_system, tmp_path):
    db = tmp_path / "stream.db"
    retries = LevelPolicy(basic_attempts=10_000, basic_delay_s=0.001)
    system = make_system(
        Supervisor("s", children=[Child("w", Worker, levels=retries, replicas=2)]),
        base="multiproc",
        store=str(db),
        telemetry={"flush_rows": 20, "flush_interval_s": 0.05},
    )
    for i in range(30):
        system.ask("s/w", Work(i, fail_times=1), timeout=10)
    pid = system.status()["_system/telemetry"].pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: system.status()["_system/telemetry"].pid not in (0, pid), timeout=15)
    with RecoveryStore(db, readonly=True) as store:
        assert store.integrity_ok()
        assert store.partial_batches() == []
        assert len(store.recovery_history()) >= 20
    # the restarted telemetry actor keeps recording into the same file
    system.ask("s/w", Work(100, fail_times=1), timeout=10)
    system.flush()
    with RecoveryStore(db, readonly=True) as store:
        assert any(r["path"].startswith("s/w") for r in store.recovery_history(limit=5))


def test_levels_can_be_reset(make_system):
    policy = LevelPolicy(
        basic_attempts=1, basic_delay_s=0.001, enhanced_attempts=1, quiet_period_s=600
    )
    system = make_system(Supervisor("s", children=[Child("w", Worker, levels=policy)]))
    system.ask("s/w", Work(1, fail_times=2), timeout=10)
    assert system.status()["s/w"].level == 2
    assert system.reset_levels("s/w") == 1
    wait_for(lambda: system.status()["s/w"].level == 0)
    system.ask("s/w", Work(2, fail_times=1), timeout=10)
    levels = [e.level for e in system.events() if e.kind == "failure"]
    assert levels[-1] == 1


def test_telemetry_can_be_turned_off(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker)]), store=None)
    assert "_system/telemetry" not in {s.path for s in system.status()}
    with pytest.raises(StalwartError, match="telemetry is off"):
        system.metrics()


@pytest.mark.parametrize("told", [{}, {"retention_rows": None}, {"retention_rows": 0}])
def test_a_store_in_memory_keeps_a_bounded_history_of_ended_keys_unless_told(
    make_system, monkeypatch, told
):
    # each ended key of a Pool leaves an event: with sessions as keys, a store in memory
    # would grow without end. It keeps MEMORY_RETENTION_ROWS (lowered here; the in-process
    # telemetry actor reads it as it starts), swept every 100 writes (one row each here)
    monkeypatch.setattr(telemetry_actor, "MEMORY_RETENTION_ROWS", 40)
    pool = Pool("sessions", template=Child("session", Worker))
    system = make_system(Supervisor("s", children=[pool]), telemetry={"flush_rows": 1, **told})
    for i in range(260):
        system.start_child("s/sessions", f"k{i}")
        system.terminate_child("s/sessions", f"k{i}")
    system.flush()
    store = system.diagnostics()["store"]
    if told:
        assert store["retention"]["rows"] is None and store["rows"] >= 260
    else:  # (at most 40 kept at the last sweep, and what came after it: under 100 writes)
        assert store["retention"]["rows"] == 40 and 40 <= store["rows"] < 140


def test_a_sweep_keeps_the_alerts_still_active_and_drops_the_incidents_of_the_rows_it_drops(
    make_system, monkeypatch
):
    monkeypatch.setattr(telemetry_actor, "MEMORY_RETENTION_ROWS", 40)
    firing = AlertRule("always", "incidents_open", 0.0, 1e9)  # raised once, never resolved
    pool = Pool("sessions", template=Child("session", Worker, levels=FAST))
    settings = {"flush_rows": 1, "alert_rules": [firing], "alert_interval_s": 0.05}
    system = make_system(Supervisor("s", children=[pool]), telemetry=settings)
    wait_for(lambda: [a["rule"] for a in system.alerts(active=True)] == ["always"])
    for i in range(150):  # each key fails once (an incident, recovered), then ends
        key = system.start_child("s/sessions", f"k{i}")
        assert system.ask(key, Work(i, fail_times=1), timeout=10).attempts == 2
        system.terminate_child("s/sessions", f"k{i}")
    system.flush()
    assert system.diagnostics()["store"]["rows"] < 150
    assert [a["rule"] for a in system.alerts(active=True)] == ["always"]  # still firing
    assert 0 < system.metrics().incidents < 150  # those of the rows dropped went with them
    assert 0 < len(system.errors(limit=1000)) < 150  # so did the resolved error groups
