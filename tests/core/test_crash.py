"""A real actor process killed with SIGKILL while it handles a message."""

import os
import signal
import threading
import time

import psutil

from stalwart import Child, Supervisor
from tests.support import Client, GetLog, Ping, Relay, Work, Worker, wait_for


def test_sigkill_mid_message_restarts_restores_and_handles_it_exactly_once(make_system):
    tree = Supervisor("s", children=[Child("w", Worker), Child("peer", Worker)])
    system = make_system(tree, base="multiproc")
    for i in (1, 2, 3):
        system.ask("s/w", Work(i))
    old_pid = system.status()["s/w"].pid
    peer_pid = system.status()["s/peer"].pid
    assert psutil.Process(old_pid).is_running()

    def kill_when_busy():
        time.sleep(0.5)  # the ask below is in the handler's sleep by now
        os.kill(old_pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    done = system.ask("s/w", Work(7, sleep_s=1.5), timeout=15)
    killer.join()
    assert not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == "zombie"
    assert done.id == 7 and done.pid != old_pid
    assert done.attempts == 1  # the new instance saw it once
    assert system.ask("s/w", GetLog()) == [1, 2, 3, 7]  # checkpoint restored, 7 handled once
    status = system.status()
    assert status["s/w"].restarts == 1 and status["s/w"].pid == done.pid
    assert status["s/peer"].pid == peer_pid  # one_for_one at level 3: the sibling is untouched
    crash = wait_for(lambda: [e for e in system.events() if e.kind == "crash"])
    assert crash[0].path == "s/w" and crash[0].level == 3
    # what the supervisor tells the root about the crash goes after the fork, in one
    # envelope, and still in order
    kinds = [e.kind for e in system.events() if e.path == "s/w" and e.kind in ("crash", "restart")]
    assert kinds[:2] == ["crash", "restart"]


def test_a_request_lost_in_a_crash_survives_a_failed_start_of_the_next_instance(
    make_system, tmp_path
):
    flag = tmp_path / "fail-next-start"
    tree = Supervisor("s", children=[Child("w", Worker, options={"fail_start_once": str(flag)})])
    system = make_system(tree, base="multiproc")
    system.ask("s/w", Work(1))
    old_pid = system.status()["s/w"].pid

    def kill_when_busy():
        time.sleep(0.5)
        flag.touch()  # the instance started after the kill fails in on_start, once
        os.kill(old_pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    # the request is resent to the new instance while it starts; that one fails to start
    # and passes the request on (held, or arriving late), and the next one answers it
    done = system.ask("s/w", Work(7, sleep_s=1.5), timeout=20)
    killer.join()
    assert not flag.exists()
    assert done.id == 7 and done.pid != old_pid and done.attempts == 1
    assert system.ask("s/w", GetLog()) == [1, 7]
    assert [e.kind for e in system.events() if e.kind == "start-failure"] == ["start-failure"]


def test_a_call_in_flight_when_its_callee_is_killed_is_answered_by_the_next_instance(
    make_system,
):
    # the caller hands the lost request to the supervisor starting the next instance,
    # which gives it to that instance right after its Init
    tree = Supervisor("s", children=[Child("w", Worker), Child("client", Client)])
    system = make_system(tree, base="multiproc")
    system.ask("s/w", Work(1))
    old_pid = system.status()["s/w"].pid
    threading.Timer(0.5, os.kill, (old_pid, signal.SIGKILL)).start()
    relayed = system.ask("s/client", Relay("s/w", Work(8, sleep_s=1.5), timeout=15), timeout=20)
    assert relayed.ok, relayed
    assert relayed.value.id == 8 and relayed.value.pid != old_pid
    assert relayed.value.attempts == 1  # once, by the new instance
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
