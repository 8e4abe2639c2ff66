"""A real actor process killed with SIGKILL while it handles a message."""

import os
import signal
import threading

import psutil
import pytest

from stalwart import Child, PoisonMessageError, Supervisor
from stalwart.testing import wait_for_event
from tests.support import (
    BarrierWorker,
    Client,
    Crash,
    GetLog,
    HeldWork,
    Ping,
    Relay,
    Work,
    Worker,
    pids_in,
    process_gone,
    wait_for,
)


def kill_mid_message(pid, started, release, before_kill=lambda: None):
    """Once the instance ``pid`` is inside the handler (it wrote ``started``), SIGKILL it;
    once it is gone, create ``release`` so that the next instance can finish the message."""

    def kill():
        wait_for(lambda: pid in pids_in(started), timeout=15)
        before_kill()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: process_gone(pid), timeout=15)
        release.touch()

    killer = threading.Thread(target=kill)
    killer.start()
    return killer


def test_sigkill_mid_message_restarts_restores_and_handles_it_exactly_once(make_system, tmp_path):
    tree = Supervisor("s", children=[Child("w", BarrierWorker), Child("peer", Worker)])
    system = make_system(tree, base="multiproc")
    for i in (1, 2, 3):
        system.ask("s/w", Work(i))
    old_pid = system.status()["s/w"].pid
    peer_pid = system.status()["s/peer"].pid
    assert psutil.Process(old_pid).is_running()

    started, release = tmp_path / "started", tmp_path / "release"
    killer = kill_mid_message(old_pid, started, release)
    done = system.ask("s/w", HeldWork(7, str(started), str(release)), timeout=15)
    killer.join()
    assert process_gone(old_pid)
    assert pids_in(started) == [old_pid, done.pid]  # begun by the killed one, then by the next
    assert done.id == 7 and done.pid != old_pid
    assert done.attempts == 1  # the new instance saw it once
    assert system.ask("s/w", GetLog()) == [1, 2, 3, 7]  # checkpoint restored, 7 handled once
    status = system.status()
    assert status["s/w"].restarts == 1 and status["s/w"].pid == done.pid
    assert status["s/peer"].pid == peer_pid  # one_for_one at level 3: the sibling is untouched
    crash = wait_for_event(system, "crash")
    assert crash.path == "s/w" and crash.level == 3
    # what the supervisor tells the root about the crash goes after the fork, in one
    # envelope, and still in order
    kinds = [e.kind for e in system.events() if e.path == "s/w" and e.kind in ("crash", "restart")]
    assert kinds[:2] == ["crash", "restart"]


def test_a_request_lost_in_a_crash_survives_a_failed_start_of_the_next_instance(
    make_system, tmp_path
):
    flag = tmp_path / "fail-next-start"
    tree = Supervisor(
        "s", children=[Child("w", BarrierWorker, options={"fail_start_once": str(flag)})]
    )
    system = make_system(tree, base="multiproc")
    system.ask("s/w", Work(1))
    old_pid = system.status()["s/w"].pid

    # the instance started after the kill fails in on_start, once
    started, release = tmp_path / "started", tmp_path / "release"
    killer = kill_mid_message(old_pid, started, release, before_kill=flag.touch)
    # the request is resent to the new instance while it starts; that one fails to start
    # and passes the request on (held, or arriving late), and the next one answers it
    done = system.ask("s/w", HeldWork(7, str(started), str(release)), timeout=20)
    killer.join()
    assert not flag.exists()
    assert done.id == 7 and done.pid != old_pid and done.attempts == 1
    assert pids_in(started) == [old_pid, done.pid]  # the instance that failed to start never had it
    assert system.ask("s/w", GetLog()) == [1, 7]
    assert [e.kind for e in system.events() if e.kind == "start-failure"] == ["start-failure"]


def test_a_call_in_flight_when_its_callee_is_killed_is_answered_by_the_next_instance(
    make_system, tmp_path
):
    # the caller hands the lost request to the supervisor starting the next instance,
    # which gives it to that instance right after its Init
    tree = Supervisor("s", children=[Child("w", BarrierWorker), Child("client", Client)])
    system = make_system(tree, base="multiproc")
    system.ask("s/w", Work(1))
    old_pid = system.status()["s/w"].pid
    started, release = tmp_path / "started", tmp_path / "release"
    killer = kill_mid_message(old_pid, started, release)
    work = HeldWork(8, str(started), str(release))
    relayed = system.ask("s/client", Relay("s/w", work, timeout=15), timeout=20)
    killer.join()
    assert relayed.ok, relayed
    assert relayed.value.id == 8 and relayed.value.pid != old_pid
    assert relayed.value.attempts == 1  # once, by the new instance
    assert pids_in(started) == [old_pid, relayed.value.pid]
    assert system.ask("s/w", GetLog()) == [1, 8]


def test_a_killed_supervisor_takes_its_orphans_down_and_its_subtree_comes_back(make_system):
    tree = Supervisor(
        "s",
        children=[
            Supervisor("mid", children=[Child("leaf", Worker)]),
            Child("other", Worker),
        ],
    )
    system = make_system(tree, base="multiproc")
    system.ask("s/mid/leaf", Work(1))
    status = system.status()
    mid_pid, leaf_pid = status["s/mid"].pid, status["s/mid/leaf"].pid
    os.kill(mid_pid, signal.SIGKILL)
    wait_for(
        lambda: (
            system.status()["s/mid/leaf"].state == "running"
            and system.status()["s/mid/leaf"].pid not in (0, leaf_pid)
        ),
        timeout=15,
    )
    wait_for(
        lambda: not psutil.pid_exists(leaf_pid) or psutil.Process(leaf_pid).status() == "zombie"
    )
    assert system.ask("s/mid/leaf", Ping(3)).n == 3
    assert system.ask("s/other", Ping(4)).n == 4


def test_a_request_that_kills_two_instances_in_a_row_is_set_aside_as_poison(make_system):
    """A request is handed to the next instance after a crash; if it kills that one too, it
    is a poison message: its caller gets PoisonMessageError, it is kept as a dead letter, and
    it is not handed on again (no third crash, no escalation). The tree keeps serving."""
    system = make_system(Supervisor("s", children=[Child("w", Worker)]), base="multiproc")
    first = system.status()["s/w"].pid
    with pytest.raises(PoisonMessageError, match="s/w"):
        system.ask("s/w", Crash(), timeout=60)
    status = wait_for(lambda: (s := system.status()["s/w"]).state == "running" and s)
    assert status.restarts == 2 and status.pid not in (0, first)
    assert [d.message for d in system.dead_letters()] == [Crash()]
    kinds = [e.kind for e in system.events()]
    assert kinds.count("crash") == 2 and "escalate" not in kinds and "level5" not in kinds
    assert system.ask("s/w", Ping(3), timeout=30).n == 3
