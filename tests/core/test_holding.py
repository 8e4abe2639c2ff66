"""What waits for an actor is bounded and answered: stopped-for-good paths take nothing,
waiting lines have a limit, cancelled asks leave, an outage keeping an actor from
starting is waited out, and incarnations grow for the system's lifetime."""

from __future__ import annotations

import threading

import pytest

import stalwart.actors._calls
from stalwart import (
    ActorStopped,
    Child,
    LevelPolicy,
    Overloaded,
    RecoveryRequest,
    Supervisor,
    Unavailable,
)
from stalwart.testing import wait_for_event
from tests.support import (
    GetLog,
    Ping,
    StopSelf,
    Work,
    Worker,
    sigkill_actor,
    wait_for,
    wait_for_file,
)


def test_a_child_stopped_for_good_answers_at_once_and_holds_nothing(make_system, base):
    tree = Supervisor("s", children=[Child("t", Worker, restart="transient"), Child("x", Worker)])
    system = make_system(tree, base=base)
    system.tell("s/t", StopSelf())
    wait_for(lambda: system.status()["s/t"].state == "stopped")
    with pytest.raises(ActorStopped, match="s/t has stopped for good"):
        system.ask("s/t", Ping(1), timeout=30)  # at once, not after 30 s
    for n in range(1000):
        system.tell("s/t", Work(n))  # nothing waits for it: each is a dead letter
    wait_for(lambda: len(system.dead_letters()) == 1000)
    assert {d.path for d in system.dead_letters()} == {"s/t"}
    assert system.ask("s/x", Ping(2)).n == 2
    first = system.dead_letters()[0]
    with pytest.raises(ActorStopped):  # sending it again is refused, and it stays kept
        system.redeliver(first.id, timeout=10)
    assert system.dead_letters()[0] == first and len(system.dead_letters()) == 1000


def test_a_tell_to_a_tree_that_stopped_at_level_5_is_kept_as_a_dead_letter(make_system, base):
    restart_at_once = LevelPolicy(basic_attempts=0, enhanced_attempts=0)
    tree = Supervisor("s", max_restarts=0, children=[Child("w", Worker, levels=restart_at_once)])
    system = make_system(tree, base=base, root_max_restarts=0)
    system.tell("s/w", Work(1, fail_times=-1))  # no restart allowed: the system stops
    wait_for(lambda: system.stopped)
    system.tell("s/w", Work(7))  # no one can answer a tell: it must not vanish either
    letters = wait_for(lambda: [d for d in system.dead_letters() if d.message == Work(7)])
    assert letters[0].path == "s/w" and "the system has stopped" in letters[0].error


def outage_keeps_it_down(make_system, base, tmp_path, **options):
    flag = tmp_path / "db-down"
    opts = {"fail_start_flag": str(flag), "fail_start_error": "connection"}
    tree = Supervisor("s", children=[Child("w", Worker, options=opts), Child("x", Worker)])
    system = make_system(tree, base=base, **options)
    assert system.ask("s/w", Work(1)).id == 1
    flag.write_text("down")
    if base == "multiproc":
        sigkill_actor(system, "s/w")
    else:
        system.tell("s/w", Work(99, fail_times=-1))
    wait_for_event(system, "outage", "s/w")
    return system, flag


def test_an_outage_that_keeps_a_child_from_starting_is_waited_out(make_system, base, tmp_path):
    system, flag = outage_keeps_it_down(make_system, base, tmp_path)
    waits = lambda: [e for e in system.events() if e.kind == "restart" and e.strategy == "backoff"]  # noqa: E731
    wait_for(lambda: len(waits()) >= 3)  # tried again and again, on the backoff
    assert system.status()["s/w"].state == "waiting"
    assert not [e for e in system.events() if e.kind in ("escalate", "level5")]
    system.tell("s/w", Work(2))  # held while it is down
    flag.unlink()
    wait_for(lambda: system.status()["s/w"].state == "running", timeout=30)
    wait_for(lambda: 2 in system.ask("s/w", GetLog()))


@pytest.mark.parametrize("how", ["waiting for an outage", "temporary, failed to start"])
def test_a_start_ends_when_the_last_path_it_waits_for_waits_or_has_stopped(
    make_system, base, tmp_path, how
):
    # the root hears of such a path by another message than a registration, possibly last
    # (it comes from another supervisor's process than the others): several starts
    flag = tmp_path / "down"
    flag.write_text("down")
    options = {"fail_start_flag": str(flag)}
    if how.startswith("waiting"):
        options["fail_start_error"] = "connection"
    restart = "temporary" if how.startswith("temporary") else "permanent"
    last = Child("c2", Worker, options=options, restart=restart)
    tree = Supervisor(
        "app",
        children=[
            Supervisor("b0", children=[Child(f"c{c}", Worker) for c in range(3)]),
            Supervisor("b1", children=[Child("c0", Worker), Child("c1", Worker), last]),
        ],
    )
    for _ in range(4):
        system = make_system(tree, base=base, start_timeout_s=10)
        assert system.status()["app/b1/c2"].state in ("waiting", "stopped")
        system.shutdown()


def test_the_waiting_line_for_a_path_is_bounded(make_system, base, tmp_path):
    system, flag = outage_keeps_it_down(make_system, base, tmp_path, hold_limit=5)
    for n in range(10, 20):
        system.tell("s/w", Work(n))  # five wait, five are dead letters
    wait_for(lambda: len([d for d in system.dead_letters() if d.path == "s/w"]) >= 5)
    with pytest.raises(Overloaded, match="5 messages already wait for it"):
        system.ask("s/w", Ping(), timeout=30)  # at once
    flag.unlink()
    wait_for(lambda: system.status()["s/w"].state == "running", timeout=30)
    handled = wait_for(lambda: [n for n in system.ask("s/w", GetLog()) if n >= 10] or None)
    assert handled == [10, 11, 12, 13, 14]  # the first five, in order


def test_an_ask_the_path_cannot_take_in_time_is_answered_and_leaves_the_line(
    make_system, base, tmp_path, monkeypatch
):
    # the root answers this long before the caller's deadline (a second here, not 0.15 s:
    # a busy machine may hold the answer up that long; forked processes inherit it)
    monkeypatch.setattr(stalwart.actors._calls, "DEADLINE_MARGIN_S", 1.0)
    system, flag = outage_keeps_it_down(make_system, base, tmp_path)
    with pytest.raises(Unavailable, match="s/w could not take the request before its deadline"):
        system.ask("s/w", Work(7), timeout=2.0)  # answered before it, not a Timeout
    system.tell("s/w", Work(8))
    flag.unlink()
    wait_for(lambda: 8 in system.ask("s/w", GetLog()), timeout=30)
    assert 7 not in system.ask("s/w", GetLog())  # its caller gave up: it was never handled


def test_incarnations_grow_for_the_systems_lifetime_even_across_subtree_restarts(make_system, base):
    tree = Supervisor(
        "s",
        children=[Supervisor("sub", children=[Child("w", Worker)]), Child("x", Worker)],
    )
    system = make_system(tree, base=base)
    seen = [system.ask("s/sub/w", Ping()).incarnation]
    for _ in range(2):
        result = system.request_recovery(RecoveryRequest("s/sub", 3, "test"))
        assert result.ok, result
        seen.append(system.ask("s/sub/w", Ping()).incarnation)
    result = system.request_recovery(RecoveryRequest("s", 5, "test"))
    assert result.ok, result
    seen.append(system.ask("s/sub/w", Ping()).incarnation)
    assert seen == sorted(set(seen)), seen  # never the same twice, never smaller


def test_an_asks_deadline_runs_from_when_it_was_asked_not_from_when_the_root_reads_it(
    make_system, tmp_path
):
    # in one process, every actor's handlers share one thread: while s/x handles a long
    # message, the root reads the ask for s/w only once that handler returns
    system, _ = outage_keeps_it_down(make_system, "simple", tmp_path)
    began = tmp_path / "began"
    busy = threading.Thread(
        target=lambda: system.ask("s/x", Work(1, sleep_s=1.0, counter=str(began)), timeout=30)
    )
    busy.start()
    wait_for_file(began)  # s/x is in its handler: the ask below waits for the root to read it
    with pytest.raises(Unavailable, match="could not take the request before its deadline"):
        system.ask("s/w", Work(7), timeout=3.0)  # answered before the caller's deadline
    busy.join(30)
