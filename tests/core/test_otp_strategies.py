"""Erlang/OTP's supervisor behaviour, ported from ``lib/stdlib/test/supervisor_SUITE.erl``:
strategies and order, failing starts, nested supervisors (restart intensity and restart
types are in ``test_otp_supervisor.py``, whose docstring says how the cases are ported).
"""

from __future__ import annotations

import pytest

from stalwart import SystemStopped
from tests.core.otp_support import (
    assert_stopped_for_good,
    child,
    crash,
    failing_starts,
    gave_up,
    incarnations,
    kinds,
    running,
    start_failures,
    sup,
    wait_restarted,
)
from tests.support import Ping, StopSelf, read_journal, wait_for

# -- strategies and order ---------------------------------------------------------------------


# OTP supervisor_SUITE: one_for_all
def test_one_for_all_stops_the_others_in_reverse_and_starts_all_in_order(
    make_system, base, tmp_path
):
    journal = tmp_path / "journal"
    names = ("o4a/c1", "o4a/c2", "o4a/c3")
    tree = sup(
        "o4a",
        [child("c1", journal), child("c2", journal), child("c3", journal)],
        strategy="one_for_all",
        max_restarts=2,
    )
    system = make_system(tree, base=base)  # the root may restart the tree once
    first = running(system, *names)
    mark = len(read_journal(journal))

    crash(system, base, "o4a/c1")
    second = wait_restarted(system, first)
    assert read_journal(journal)[mark:] == [
        "stop o4a/c3",
        "stop o4a/c2",
        "start o4a/c1",
        "start o4a/c2",
        "start o4a/c3",
    ]

    crash(system, base, "o4a/c2")
    third = wait_restarted(system, second)
    assert gave_up(system, "o4a") == 0

    # the third restart within the period exceeds MaxR=2: the top supervisor gives up
    # and the root restarts the whole tree (level 5); incarnations go on growing
    crash(system, base, "o4a/c3")
    wait_for(lambda: "restart-tree" in kinds(system))
    wait_restarted(system, third)
    seen = kinds(system)
    assert seen.index("escalate") < seen.index("level5") < seen.index("restart-tree")
    assert gave_up(system, "o4a", expect=1) == 1
    assert not system.stopped


# OTP supervisor_SUITE: rest_for_one
def test_rest_for_one_restarts_the_dead_child_and_those_started_after_it(
    make_system, base, tmp_path
):
    journal = tmp_path / "journal"
    tree = sup(
        "r41",
        [child("c1", journal), child("c2", journal), child("c3", journal)],
        strategy="rest_for_one",
        max_restarts=2,
    )
    system = make_system(tree, base=base, root_max_restarts=0)
    first = running(system, "r41/c1", "r41/c2", "r41/c3")
    mark = len(read_journal(journal))

    crash(system, base, "r41/c2")
    second = wait_restarted(system, {"r41/c2": first["r41/c2"], "r41/c3": first["r41/c3"]})
    assert incarnations(system, "r41/c1") == {"r41/c1": first["r41/c1"]}
    assert read_journal(journal)[mark:] == ["stop r41/c3", "start r41/c2", "start r41/c3"]

    crash(system, base, "r41/c3")
    wait_restarted(system, {"r41/c3": second["r41/c3"]})
    assert gave_up(system, "r41") == 0

    crash(system, base, "r41/c1")  # the third restart within the period: MaxR=2
    wait_for(lambda: system.stopped)
    assert gave_up(system, "r41", expect=1) == 1


# OTP supervisor_SUITE: order_of_children
def test_rest_for_one_keeps_the_declared_order_of_unsorted_children(make_system, base, tmp_path):
    journal = tmp_path / "journal"
    ids = ["ch7", "ch3", "ch10", "ch2", "ch5"]
    tree = sup("order", [child(i, journal) for i in ids], strategy="rest_for_one")
    system = make_system(tree, base=base)
    assert read_journal(journal) == [f"start order/{i}" for i in ids]
    before = running(system, *(f"order/{i}" for i in ids))

    crash(system, base, "order/ch10")
    wait_restarted(system, {f"order/{i}": before[f"order/{i}"] for i in ("ch10", "ch2", "ch5")})
    assert incarnations(system, "order/ch7", "order/ch3") == {
        "order/ch7": before["order/ch7"],
        "order/ch3": before["order/ch3"],
    }
    assert read_journal(journal)[len(ids) :] == [
        "stop order/ch5",
        "stop order/ch2",
        "start order/ch10",
        "start order/ch2",
        "start order/ch5",
    ]

    mark = len(read_journal(journal))
    system.shutdown()
    assert read_journal(journal)[mark:] == [f"stop order/{i}" for i in reversed(ids)]


# OTP supervisor_SUITE: order_of_children and sup_stop_infinity (a supervisor child
# stops its whole subtree before the siblings started before it stop)
def test_a_nested_tree_starts_depth_first_in_order_and_stops_in_exact_reverse(
    make_system, base, tmp_path
):
    journal = tmp_path / "journal"
    tree = sup(
        "nest",
        [
            child("a", journal),
            sup("sub", [child("x", journal), child("y", journal)]),
            child("b", journal),
        ],
    )
    system = make_system(tree, base=base)
    started = ["start nest/a", "start nest/sub/x", "start nest/sub/y", "start nest/b"]
    assert read_journal(journal) == started
    system.shutdown()
    assert read_journal(journal) == [
        *started,
        "stop nest/b",
        "stop nest/sub/y",
        "stop nest/sub/x",
        "stop nest/a",
    ]


# -- failing starts ---------------------------------------------------------------------------


# OTP supervisor_SUITE: one_for_one_escalation (and supervisor:restart/2's try_again_restart:
# every failed restart attempt is retried and counted)
@pytest.mark.parametrize(("failures", "escalates"), [(3, False), (4, True)])
def test_each_failed_restart_attempt_counts_toward_intensity(
    make_system, base, tmp_path, failures, escalates
):
    journal = tmp_path / "journal"
    counter = failing_starts(tmp_path)
    tree = sup(
        "top",
        [
            sup(
                "inner",
                [child("c1", journal, fail_starts=str(counter)), child("c2", journal)],
                max_restarts=4,
            )
        ],
        max_restarts=5,
    )
    system = make_system(tree, base=base)
    paths = ("top/inner", "top/inner/c1", "top/inner/c2")
    first = running(system, *paths)
    mark = len(read_journal(journal))
    counter.write_text(str(failures))  # from now on, c1's next starts fail

    crash(system, base, "top/inner/c1")  # restart 1, then one more per failed start
    if not escalates:  # 1 + 3 restarts: within MaxR=4, c1 starts at its 4th attempt
        wait_restarted(system, {"top/inner/c1": first["top/inner/c1"]})
        assert incarnations(system, "top/inner", "top/inner/c2") == {
            "top/inner": first["top/inner"],
            "top/inner/c2": first["top/inner/c2"],
        }
        assert gave_up(system, "top/inner") == 0
        assert read_journal(journal)[mark:] == [
            *["start-failed top/inner/c1"] * 3,
            "start top/inner/c1",
        ]
    else:  # the 5th restart exceeds MaxR=4: the supervisor gives up, c2 goes with it
        wait_restarted(system, first)
        assert gave_up(system, "top/inner", expect=1) == 1
        assert read_journal(journal)[mark:] == [
            *["start-failed top/inner/c1"] * 4,
            "stop top/inner/c2",
            "start top/inner/c1",
            "start top/inner/c2",
        ]
    assert start_failures(system, "top/inner/c1", expect=failures) == failures
    assert gave_up(system, "top") == 0


# OTP supervisor_SUITE: one_for_all_escalation, rest_for_one_escalation
@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
def test_a_sibling_whose_restarts_fail_makes_the_supervisor_give_up(
    make_system, base, tmp_path, strategy
):
    counter = failing_starts(tmp_path)
    tree = sup(
        "top",
        [
            sup(
                "inner",
                [child("c1"), child("c2", fail_starts=str(counter))],
                strategy=strategy,
                max_restarts=4,
            )
        ],
        max_restarts=5,
    )
    system = make_system(tree, base=base)
    first = running(system, "top/inner", "top/inner/c1", "top/inner/c2")
    counter.write_text("4")  # c2 fails every restart the supervisor's intensity allows

    crash(system, base, "top/inner/c1")  # restarts c1 and c2; c2's start fails, 4 times
    wait_restarted(system, first)  # the supervisor gave up; its parent started it again
    assert gave_up(system, "top/inner", expect=1) == 1
    assert start_failures(system, "top/inner/c2", expect=4) == 4
    assert gave_up(system, "top") == 0


# OTP supervisor_SUITE: one_for_all_other_child_fails_restart,
# rest_for_one_other_child_fails_restart
@pytest.mark.parametrize(
    ("strategy", "retry"),
    [
        # the retry restarts the whole group again: the fresh c1 is stopped first
        ("one_for_all", ["stop s/c1", "start s/c1", "start s/c2"]),
        # the retry works from the failing child on: c1, started before it, is left alone
        ("rest_for_one", ["start s/c2"]),
    ],
)
def test_a_failed_start_during_a_group_restart_retries_per_the_strategy(
    make_system, base, tmp_path, strategy, retry
):
    journal = tmp_path / "journal"
    counter = failing_starts(tmp_path)
    tree = sup(
        "s",
        [child("c1", journal), child("c2", journal, fail_starts=str(counter))],
        strategy=strategy,
    )
    system = make_system(tree, base=base)
    first = running(system, "s/c1", "s/c2")
    mark = len(read_journal(journal))
    counter.write_text("1")

    crash(system, base, "s/c1")
    wait_restarted(system, first)
    assert read_journal(journal)[mark:] == [
        "stop s/c2",
        "start s/c1",
        "start-failed s/c2",
        *retry,
    ]
    assert gave_up(system, "s") == 0


# OTP supervisor_SUITE: faulty_application_shutdown. OTP gives up at once when a child
# fails to start at init; here the start is retried like a restart, each attempt
# counted toward the intensity (docs/concepts.md: levels 4 and 5 answer an actor
# that fails to start), and a tree whose child never starts fails start() naming it.
@pytest.mark.parametrize(("failures", "starts"), [(2, True), (3, False)])
def test_a_child_failing_to_start_at_boot_is_retried_within_intensity(
    make_system, base, tmp_path, failures, starts
):
    counter = failing_starts(tmp_path, failures)
    tree = sup("boot", [child("c", fail_starts=str(counter)), child("d")], max_restarts=2)
    if not starts:  # the third retry exceeds MaxR=2, and the root may not restart the tree
        with pytest.raises(SystemStopped, match=r"boot/c: 2 restarts within 60s exceeded"):
            make_system(tree, base=base, root_max_restarts=0, start_timeout_s=20)
        assert counter.read_text() == "0"  # every start failed until it gave up
        return
    system = make_system(tree, base=base, root_max_restarts=0)
    assert running(system, "boot/c", "boot/d") == {"boot/c": failures + 1, "boot/d": 1}
    assert start_failures(system, "boot/c", expect=failures) == failures
    assert gave_up(system, "boot") == 0
    assert system.ask("boot/c", Ping(5)).n == 5


# -- nested supervisors -----------------------------------------------------------------------


# OTP supervisor_SUITE: tree
def test_a_nested_supervisor_giving_up_makes_its_one_for_all_parent_restart_all(
    make_system, base, tmp_path
):
    counter = failing_starts(tmp_path)
    tree = sup(
        "tree",
        [
            sup("sup1", [child("c1"), child("c2")]),
            sup("sup2", [child("c3", fail_starts=str(counter)), child("c4")], max_restarts=4),
            sup("sup3", [child("c5")], max_restarts=0, restart="transient"),
        ],
        strategy="one_for_all",
        max_restarts=4,
    )
    system = make_system(tree, base=base)
    sups = ("tree/sup1", "tree/sup2", "tree/sup3")
    workers = ("tree/sup1/c1", "tree/sup1/c2", "tree/sup2/c3", "tree/sup2/c4", "tree/sup3/c5")
    first = running(system, *sups, *workers)

    # sup3 (transient) gives up: it exits "shutdown", so it stays stopped and nothing
    # else is restarted (OTP's test stops it with terminate_child)
    crash(system, base, "tree/sup3/c5")
    wait_for(lambda: system.status()["tree/sup3"].state == "stopped")
    assert gave_up(system, "tree/sup3", expect=1) == 1
    assert_stopped_for_good(system, "tree/sup3/c5")

    # c4 dies: sup2 restarts c4 alone
    crash(system, base, "tree/sup2/c4")
    wait_restarted(system, {"tree/sup2/c4": first["tree/sup2/c4"]})
    unchanged = [p for p in (*sups, *workers) if p not in ("tree/sup2/c4", "tree/sup3/c5")]
    assert incarnations(system, *unchanged) == {p: first[p] for p in unchanged}

    # c3 dies and every restart of it fails: sup2 gives up, and its one_for_all parent
    # restarts all three supervisors, the stopped sup3 included
    before = incarnations(system, *sups, *workers)
    counter.write_text("4")
    crash(system, base, "tree/sup2/c3")
    wait_restarted(system, before)
    assert gave_up(system, "tree/sup2", expect=1) == 1
    assert gave_up(system, "tree") == 0
    for path in workers:
        assert system.ask(path, Ping(1)).incarnation > first[path]


# OTP supervisor_SUITE: transient_normal and tree (a stopped child's spec is kept, and a
# one_for_all restart starts it again)
def test_a_transient_child_that_stopped_answers_at_once_and_returns_with_its_group(
    make_system, base
):
    tree = sup("grp", [child("t", restart="transient"), child("p")], strategy="one_for_all")
    system = make_system(tree, base=base)
    first = running(system, "grp/t", "grp/p")

    system.tell("grp/t", StopSelf())
    assert_stopped_for_good(system, "grp/t")
    assert incarnations(system, "grp/p") == {"grp/p": first["grp/p"]}

    crash(system, base, "grp/p")
    wait_restarted(system, first)
    pong = system.ask("grp/t", Ping(2))
    assert pong.n == 2 and pong.incarnation > first["grp/t"]
    assert gave_up(system, "grp") == 0
