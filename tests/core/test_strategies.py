"""Restart strategies and restart types, with observable effects."""

import pytest

from stalwart import Child, RecoveryRequest, Supervisor
from tests.support import (
    RESTART_FIRST,
    Ping,
    StopSelf,
    Work,
    Worker,
    read_journal,
    sigkill_actor,
    wait_for,
)


def incarnations(system, *paths):
    status = system.status()
    return {p: status[p].incarnation for p in paths}


def restarted(before, after):
    return sorted(p for p in before if after[p] != before[p])


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("one_for_one", ["s/b"]),
        ("one_for_all", ["s/a", "s/b", "s/c"]),
        ("rest_for_one", ["s/b", "s/c"]),
    ],
)
def test_level_four_restarts_the_siblings_the_strategy_names(make_system, base, strategy, expected):
    tree = Supervisor(
        "s",
        strategy=strategy,
        children=[Child("a", Worker), Child("b", Worker), Child("c", Worker)],
    )
    system = make_system(tree, base=base)
    paths = ("s/a", "s/b", "s/c")
    before = incarnations(system, *paths)
    result = system.request_recovery(RecoveryRequest("s/b", 4, "test"))
    assert result.ok, result.detail
    after = incarnations(system, *paths)
    assert restarted(before, after) == expected
    for p in paths:
        assert system.ask(p, Ping(1)).path == p


def test_one_for_one_also_restarts_what_depends_on_the_failed_child(make_system, base):
    tree = Supervisor(
        "s",
        children=[
            Child("db", Worker),
            Child("api", Worker, depends_on=["db"]),
            Child("other", Worker),
        ],
    )
    system = make_system(tree, base=base)
    before = incarnations(system, "s/db", "s/api", "s/other")
    assert system.request_recovery(RecoveryRequest("s/db", 4)).ok
    assert restarted(before, incarnations(system, "s/db", "s/api", "s/other")) == ["s/api", "s/db"]


def test_level_three_restarts_only_the_actor_with_its_checkpoint(make_system, base):
    tree = Supervisor(
        "s", strategy="one_for_all", children=[Child("a", Worker), Child("b", Worker)]
    )
    system = make_system(tree, base=base)
    system.ask("s/a", Work(1))
    system.ask("s/a", Work(2))
    before = incarnations(system, "s/a", "s/b")
    assert system.request_recovery(RecoveryRequest("s/a", 3)).ok
    assert restarted(before, incarnations(system, "s/a", "s/b")) == ["s/a"]
    assert system.ask("s/a", Ping()).state["handled"] == [1, 2]


def test_children_start_in_dependency_order_and_stop_in_reverse(make_system, base, tmp_path):
    journal = tmp_path / "journal"
    opts = {"journal": str(journal)}
    tree = Supervisor(
        "s",
        children=[
            Child("api", Worker, depends_on=["cache", "db"], options=opts),
            Child("cache", Worker, depends_on=["db"], options=opts),
            Child("db", Worker, options=opts),
        ],
    )
    system = make_system(tree, base=base)
    system.shutdown()
    lines = read_journal(journal)
    assert lines == [
        "start s/db",
        "start s/cache",
        "start s/api",
        "stop s/api",
        "stop s/cache",
        "stop s/db",
    ]


def test_a_permanent_child_that_stops_itself_is_started_again(make_system, base):
    system = make_system(Supervisor("s", children=[Child("p", Worker)]), base=base)
    first = system.status()["s/p"].incarnation
    system.tell("s/p", StopSelf())
    wait_for(
        lambda: (
            system.status()["s/p"].incarnation > first and system.status()["s/p"].state == "running"
        )
    )
    assert system.ask("s/p", Ping(2)).n == 2


def test_a_transient_child_that_stops_itself_stays_stopped(make_system, base):
    system = make_system(
        Supervisor("s", children=[Child("t", Worker, restart="transient"), Child("x", Worker)]),
        base=base,
    )
    system.tell("s/t", StopSelf())
    wait_for(lambda: system.status()["s/t"].state == "stopped")
    assert system.ask("s/x", Ping(1)).n == 1


def test_a_transient_child_that_fails_is_restarted(make_system, base):
    tree = Supervisor("s", children=[Child("t", Worker, restart="transient", levels=RESTART_FIRST)])
    system = make_system(tree, base=base)
    first = system.status()["s/t"].incarnation
    from stalwart import PoisonMessageError

    with pytest.raises(PoisonMessageError):
        system.ask("s/t", Work(1, fail_times=-1), timeout=10)
    assert system.status()["s/t"].incarnation > first
    assert system.ask("s/t", Ping(4)).n == 4


def test_a_temporary_child_is_not_restarted(make_system, base):
    tree = Supervisor(
        "s",
        children=[
            Child("tmp", Worker, restart="temporary", levels=RESTART_FIRST),
            Child("x", Worker),
        ],
    )
    system = make_system(tree, base=base)
    from stalwart import ActorStopped

    stopped = r"s/tmp was stopped for good: it failed \(RuntimeError: flaky 1\)"
    with pytest.raises(ActorStopped, match=stopped):
        system.ask("s/tmp", Work(1, fail_times=-1), timeout=10)
    wait_for(lambda: system.status()["s/tmp"].state == "stopped")
    assert system.ask("s/x", Ping(3)).n == 3


def test_replicas_share_the_work_and_level_three_can_reassign_it(make_system, base, tmp_path):
    tree = Supervisor("s", children=[Child("w", Worker, replicas=3, levels=RESTART_FIRST)])
    system = make_system(tree, base=base)
    served_by = {system.ask("s/w", Ping(i)).path for i in range(6)}
    assert served_by == {"s/w.0", "s/w.1", "s/w.2"}
    # fails once wherever it lands: level 3 restarts that replica or hands the message on
    done = system.ask("s/w", Work(9, fail_times=1, counter=str(tmp_path / "n")), timeout=10)
    assert (done.id, done.attempts) == (9, 2)


def test_a_crashed_process_is_restarted_at_level_three(make_system):
    system = make_system(
        Supervisor("s", children=[Child("c", Worker), Child("d", Worker)]), base="multiproc"
    )
    system.ask("s/c", Work(1))
    before = system.status()
    sigkill_actor(system, "s/c")
    wait_for(
        lambda: (
            system.status()["s/c"].pid not in (0, before["s/c"].pid)
            and system.status()["s/c"].state == "running"
        )
    )
    after = system.status()
    assert after["s/c"].restarts == 1 and after["s/d"].pid == before["s/d"].pid
    assert system.ask("s/c", Ping()).state["handled"] == [1]
    crash = [e for e in system.events() if e.kind == "crash"]
    assert crash and crash[0].level == 3
