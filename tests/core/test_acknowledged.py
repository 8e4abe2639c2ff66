"""Nothing acknowledged is lost: a reply leaves only once the state it reflects is safe.

On the multi-process bases an actor writes its checkpoint to a file of its own before
its answer leaves; a SIGKILL of the actor, of its supervisor, or of both, right after
the answer, leaves that state for the next instance.
"""

import threading

import psutil
import pytest

from stalwart import Child, RecoveryRequest, Supervisor
from tests.support import (
    Balance,
    BarrierWorker,
    Deposit,
    HeldWork,
    Ledger,
    Ping,
    SlowStarter,
    pids_in,
    process_gone,
    sigkill,
    wait_for,
)

BIG = 8 * 1024 * 1024  # a large state: 8 MB of ballast checkpointed after every message


@pytest.mark.parametrize("ballast", [0, BIG], ids=["small-state", "8mb-state"])
def test_a_sigkill_right_after_each_reply_loses_no_acknowledged_deposit(make_system, ballast):
    tree = Supervisor(
        "s",
        max_restarts=100,  # every kill is a crash; this test is not about intensity
        children=[Child("ledger", Ledger, options={"ballast": ballast})],
    )
    system = make_system(tree, base="multiproc")
    acknowledged = []
    for i in range(8):
        total = system.ask("s/ledger", Deposit(i), timeout=15)
        acknowledged.append(i)
        assert total == len(acknowledged)  # each restart began from the last acknowledged
        sigkill(system.status()["s/ledger"].pid)  # at once, right after the reply
    total, applied, twice = system.ask("s/ledger", Balance(), timeout=15)
    assert (total, applied, twice) == (8, acknowledged, [])
    assert system.status()["s/ledger"].restarts == 8


def test_a_sigkill_of_the_supervisor_keeps_its_childrens_state_and_answers_their_requests(
    make_system, tmp_path
):
    tree = Supervisor(
        "s",
        children=[Supervisor("sub", children=[Child("ledger", Ledger), Child("w", BarrierWorker)])],
    )
    system = make_system(tree, base="multiproc")
    for i in range(5):
        assert system.ask("s/sub/ledger", Deposit(i)) == i + 1
    supervisor = system.status()["s/sub"].pid
    worker = system.status()["s/sub/w"].pid
    started, release = tmp_path / "started", tmp_path / "release"
    answer = {}

    def ask():
        answer["done"] = system.ask("s/sub/w", HeldWork(7, str(started), str(release)), timeout=30)

    asker = threading.Thread(target=ask)
    asker.start()
    wait_for(lambda: worker in pids_in(started), timeout=15)  # the request is being handled
    sigkill(supervisor)  # its children go with it, mid-message
    wait_for(lambda: process_gone(worker), timeout=15)
    release.touch()
    asker.join(30)
    # the request the dead child was handling went to its next instance and was answered
    assert answer["done"].id == 7 and answer["done"].pid != worker
    assert pids_in(started)[0] == worker and len(pids_in(started)) == 2
    # every acknowledged deposit is still there: the checkpoints outlived their supervisor
    assert system.ask("s/sub/ledger", Balance(), timeout=15) == (5, [0, 1, 2, 3, 4], [])
    assert system.status()["s/sub"].restarts == 1


def test_no_actor_process_outlives_its_killed_supervisor_even_one_still_starting(
    make_system, tmp_path
):
    hold = tmp_path / "hold"
    tree = Supervisor(
        "s",
        children=[
            Supervisor("sub", children=[Child("w", SlowStarter, options={"hold": str(hold)})])
        ],
    )
    system = make_system(tree, base="multiproc")
    supervisor, first = system.status()["s/sub"].pid, system.status()["s/sub/w"].pid
    hold.touch()  # the next instance stays in on_start: forked, not yet known to the root
    results = []
    restart = threading.Thread(
        target=lambda: results.append(
            system.request_recovery(RecoveryRequest("s/sub/w", 3, "replace it"))
        )
    )
    restart.start()
    starting = wait_for(
        lambda: [p.pid for p in psutil.Process(supervisor).children() if p.pid != first],
        timeout=15,
    )
    assert system.status()["s/sub/w"].pid in (0, first)  # the root does not know it yet
    sigkill(supervisor)
    hold.unlink()
    wait_for(lambda: all(process_gone(pid) for pid in starting), timeout=15)
    restart.join(60)
    # the supervisor performing the recovery died: its caller is answered, not left waiting
    assert [(r.ok, r.detail) for r in results] == [
        (False, "s/sub died while it was being performed")
    ]
    assert system.ask("s/sub/w", Ping(1), timeout=15).n == 1  # the subtree serves again
