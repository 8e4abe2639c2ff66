"""Erlang/OTP's supervisor behaviour, ported from ``lib/stdlib/test/supervisor_SUITE.erl``.

Every child runs with ``LevelPolicy.otp()`` (no retries in place: each failure
restarts the restart set per the strategy), so each test asserts what OTP's
suite asserts, on real actor systems, on the in-process base and on real
processes. A child "dies" as OTP's ``supervisor_1`` does on ``die``: its
process exits (``Crash``) on the multi-process base; in-process, where one
actor cannot crash alone, its handler raises (``Die``). A child "exits
normally" (OTP's ``stop``) with ``StopSelf``. A supervisor that gives up shows
as an ``escalate`` event on its path; its parent (or, at the top, the root at
level 5) takes over.

Where OTP's API has no counterpart here (``terminate_child``, ``start_child``,
``which_children``), the same state is reached and observed another way: a
transient supervisor that gave up stays stopped as one terminated with
``terminate_child`` does; ``system.status()`` and a journal shared by all
processes show who runs and in what order things started and stopped.
"""

from __future__ import annotations

import time

import pytest

from stalwart import Child
from tests.core.otp_actors import OtpChild
from tests.core.otp_support import (
    assert_stopped_for_good,
    child,
    crash,
    gave_up,
    incarnations,
    running,
    sup,
    wait_restarted,
)
from tests.support import Ping, StopSelf, read_journal, wait_for

# -- restart intensity ------------------------------------------------------------------------


# OTP supervisor_SUITE: one_for_one
def test_one_for_one_restarts_only_the_dead_child_and_gives_up_at_the_third_restart(
    make_system, base, tmp_path
):
    journal = tmp_path / "journal"
    tree = sup("o4o", [child("c1", journal), child("c2", journal)], max_restarts=2)
    system = make_system(tree, base=base, root_max_restarts=0)
    first = running(system, "o4o/c1", "o4o/c2")
    mark = len(read_journal(journal))

    crash(system, base, "o4o/c1")
    after_c1 = wait_restarted(system, {"o4o/c1": first["o4o/c1"]})
    assert incarnations(system, "o4o/c2") == {"o4o/c2": first["o4o/c2"]}
    assert read_journal(journal)[mark:] == ["start o4o/c1"]  # c2 was not touched

    crash(system, base, "o4o/c2")  # the second restart within the period: still allowed
    wait_restarted(system, {"o4o/c2": first["o4o/c2"]})
    assert incarnations(system, "o4o/c1") == after_c1
    assert gave_up(system, "o4o") == 0

    crash(system, base, "o4o/c1")  # the third within the period: MaxR=2 is exceeded
    wait_for(lambda: system.stopped)
    assert gave_up(system, "o4o", expect=1) == 1
    assert "2 restarts within 60s exceeded" in system.final_report["reason"]


# OTP supervisor_SUITE: multiple_restarts
def test_restarts_older_than_the_period_are_forgotten(make_system, base):
    window = 2.0  # (the two crashes below, a restart apart, fall within it on a busy machine)
    tree = sup("window", [child("c")], max_restarts=1, within_s=window)
    system = make_system(tree, base=base, root_max_restarts=0)
    for _ in range(3):  # one restart per window: never two within the period
        before = running(system, "window/c")
        crash(system, base, "window/c")
        wait_restarted(system, before)
        time.sleep(window + 0.2)  # the time passing is what is tested: the window slides on
    assert gave_up(system, "window") == 0
    assert system.ask("window/c", Ping(1)).n == 1

    # two restarts within the period exceed MaxR=1, as the count above would have
    before = running(system, "window/c")
    crash(system, base, "window/c")
    wait_restarted(system, before)
    crash(system, base, "window/c")
    wait_for(lambda: system.stopped)
    assert gave_up(system, "window", expect=1) == 1


# OTP supervisor_SUITE: sup_flags (intensity 0 is valid) and supervisor:add_restart
def test_max_restarts_zero_gives_up_at_the_first_restart_only(make_system, base):
    tree = sup(
        "top",
        [
            sup(
                "zero",
                [
                    child("tr", restart="transient"),
                    child("tmp", restart="temporary"),
                    child("tmp2", restart="temporary"),
                    child("p"),
                ],
                max_restarts=0,
            )
        ],
        max_restarts=5,
    )
    system = make_system(tree, base=base)
    paths = ("top/zero", "top/zero/tr", "top/zero/tmp", "top/zero/tmp2", "top/zero/p")
    before = running(system, *paths)

    # exits that are not restarted are not restarts: they never reach the intensity
    system.tell("top/zero/tr", StopSelf())
    assert_stopped_for_good(system, "top/zero/tr")
    crash(system, base, "top/zero/tmp")
    assert_stopped_for_good(system, "top/zero/tmp")
    system.tell("top/zero/tmp2", StopSelf())
    assert_stopped_for_good(system, "top/zero/tmp2")
    assert gave_up(system, "top/zero") == 0
    assert incarnations(system, "top/zero/p") == {"top/zero/p": before["top/zero/p"]}

    # the first restart of anything exceeds MaxR=0: the supervisor gives up, and its
    # parent starts it again with every child of its spec
    system.tell("top/zero/p", StopSelf())
    wait_restarted(system, before)
    assert gave_up(system, "top/zero", expect=1) == 1
    assert gave_up(system, "top") == 0


# OTP supervisor_SUITE: temporary_bystander (permanent_normal: a normal exit is restarted)
def test_a_permanent_childs_normal_exit_is_a_restart_counted_toward_intensity(make_system, base):
    tree = sup("top", [sup("inner", [child("p"), child("q")], max_restarts=1)])
    system = make_system(tree, base=base)
    first = running(system, "top/inner", "top/inner/p", "top/inner/q")

    system.tell("top/inner/p", StopSelf())
    wait_restarted(system, {"top/inner/p": first["top/inner/p"]})
    assert incarnations(system, "top/inner", "top/inner/q") == {
        "top/inner": first["top/inner"],
        "top/inner/q": first["top/inner/q"],
    }
    assert gave_up(system, "top/inner") == 0

    system.tell("top/inner/p", StopSelf())  # a second restart within the period: MaxR=1
    wait_restarted(system, first)  # its parent started the supervisor (and both) again
    assert gave_up(system, "top/inner", expect=1) == 1


# OTP supervisor_SUITE: scale_mass_exit_children (every 'EXIT' of a mass exit is handled;
# here half the children stop normally while the other half die, all at once)
def test_every_exit_of_children_exiting_at_once_is_handled(make_system, base):
    pairs = 8
    children = []
    for i in range(pairs):  # (a short shutdown_s: an exit that went unseen costs no more)
        children += [
            Child(f"n{i}", OtpChild, restart="transient", shutdown_s=1.0),
            Child(f"c{i}", OtpChild, shutdown_s=1.0),
        ]
    system = make_system(sup("mass", children, max_restarts=100), base=base)
    dying = [f"mass/c{i}" for i in range(pairs)]
    before = running(system, *dying)
    for i in range(pairs):
        system.tell(f"mass/n{i}", StopSelf())
        crash(system, base, f"mass/c{i}")
    wait_restarted(system, before)
    for i in range(pairs):
        assert_stopped_for_good(system, f"mass/n{i}")
    assert gave_up(system, "mass") == 0


# -- restart types x exit kinds ---------------------------------------------------------------


# OTP supervisor_SUITE: permanent_normal, permanent_abnormal, transient_normal,
# transient_abnormal, temporary_normal, temporary_abnormal
@pytest.mark.parametrize(
    ("restart", "how", "restarted"),
    [
        ("permanent", "normal", True),
        ("permanent", "abnormal", True),
        ("transient", "normal", False),
        ("transient", "abnormal", True),
        ("temporary", "normal", False),
        ("temporary", "abnormal", False),
    ],
)
def test_restart_type_and_exit_kind_decide_whether_a_child_is_restarted(
    make_system, base, restart, how, restarted
):
    tree = sup("types", [child("c", restart=restart), child("other")], max_restarts=2)
    system = make_system(tree, base=base)
    before = running(system, "types/c", "types/other")
    if how == "normal":
        system.tell("types/c", StopSelf())
    else:
        crash(system, base, "types/c")
    if restarted:
        after = wait_restarted(system, {"types/c": before["types/c"]})
        pong = system.ask("types/c", Ping(3))
        assert (pong.n, pong.incarnation) == (3, after["types/c"])
    else:
        assert_stopped_for_good(system, "types/c")
        assert system.status()["types/c"].incarnation == before["types/c"]
    assert incarnations(system, "types/other") == {"types/other": before["types/other"]}
    assert gave_up(system, "types") == 0


# OTP supervisor_SUITE: temporary_bystander
@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
def test_a_temporary_sibling_terminated_by_a_group_restart_is_dropped(make_system, base, strategy):
    tree = sup(
        "bystander",
        [child("c1"), child("c2", restart="temporary")],
        strategy=strategy,
        max_restarts=2,
        within_s=300,
    )
    system = make_system(tree, base=base)
    before = running(system, "bystander/c1", "bystander/c2")
    system.tell("bystander/c1", StopSelf())  # a normal exit: c1 is permanent, so restarted
    wait_restarted(system, {"bystander/c1": before["bystander/c1"]})
    assert_stopped_for_good(system, "bystander/c2")
    assert system.status()["bystander/c2"].incarnation == before["bystander/c2"]
    assert gave_up(system, "bystander") == 0
    assert system.ask("bystander/c1", Ping(1)).n == 1
