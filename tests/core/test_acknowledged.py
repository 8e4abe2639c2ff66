"""Nothing acknowledged is lost: a reply leaves only once the state it reflects is safe.

On the multi-process bases an actor writes its checkpoint to a file of its own before
its answer leaves; a SIGKILL of the actor, of its supervisor, or of both, right after
the answer, leaves that state for the next instance.
"""

import threading

import psutil
import pytest

from stalwart import Child, RecoveryRequest, Supervisor
from stalwart.supervisors._kernel.state import STARTING
from tests.support import (
    Balance,
    BarrierWorker,
    Deposit,
    HeldWork,
    Ledger,
    Ping,
    SlowStarter,
    Worker,
    pids_in,
    process_gone,
    sigkill,
    sigkill_actor,
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
        sigkill_actor(system, "s/ledger")  # at once, right after the reply
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


def supervisor_shell(monkeypatch, ev, **child_options):
    """The supervisor actor of a tree ``s`` with one child ``c`` (a ``Worker`` with
    ``child_options``), outside any actor system: what it sends is recorded in ``.sent``."""
    from stalwart.supervisors import _supervisor

    monkeypatch.setattr(_supervisor, "die_with_parent", lambda: None)
    shell = _supervisor.SupervisorActor()
    shell.sent = []
    monkeypatch.setattr(shell, "send", lambda to, msg: shell.sent.append((to, msg)))
    state = _supervisor.kernel.SupervisorState(
        "s", Supervisor("s", children=[Child("c", Worker, **child_options)]), seed=1
    )
    _supervisor.kernel.decide(state, ev.Begin(now=0.0))
    shell.state, shell.keepers = state, {"c": _supervisor.Keeper()}
    return shell


def test_a_replaced_instances_checkpoint_releases_no_answer_and_confirms_no_tell(monkeypatch):
    """An answer leaves only with the state it reflects: a checkpoint of an instance that
    was replaced meanwhile (cut off by a partition, arriving once the link is back) is not
    kept, so its answers and confirmations must not go out either; its callers' requests
    were handed to the successor. (A partition soak once counted an acknowledged deposit
    that no account held; an answer released this way is one road to that.)"""
    from stalwart.actors.messages import Acked, Checkpoint, Reply
    from stalwart.supervisors._kernel import events as ev

    shell = supervisor_shell(monkeypatch, ev)
    sent, state = shell.sent, shell.state
    current = state.children["c"].incarnation

    def checkpoint(incarnation: int, value: str) -> Checkpoint:
        return Checkpoint(
            "s/c",
            incarnation,
            value,
            replies=(("caller", Reply(f"r-{value}", value)),),
            acks=(("teller", Acked("s/c", "chan", 3)),),
        )

    shell.on_checkpoint(checkpoint(current + 7, "stale"), None)
    assert sent == [] and not shell.keepers["c"].has_checkpoint
    shell.on_checkpoint(checkpoint(current, "kept"), None)
    assert shell.keepers["c"].checkpoint == "kept"
    assert [msg for _, msg in sent] == [Reply("r-kept", "kept"), Acked("s/c", "chan", 3)]


def test_a_final_state_on_another_node_is_filed_before_its_answers_and_confirmations_go(
    monkeypatch, tmp_path
):
    """An instance on another node that stops (or is restarted) sends its final state with
    the answers and tell confirmations that wait for it. The supervisor keeps and files it
    on its own host before sending them on (a SIGKILL of the supervisor right after must not
    lose what they acknowledge); an untrusted final state (after a failure) sends neither:
    those tells go again to the next instance."""
    from stalwart.actors._state_file import latest
    from stalwart.actors.messages import Acked, Reply, Retired
    from stalwart.supervisors._kernel import events as ev

    shell = supervisor_shell(monkeypatch, ev, requires={"member": True})
    c = shell.state.children["c"]
    shell.settings["state_dir"] = str(tmp_path)
    shell.pids[("c", c.incarnation)] = (4242, "b")  # on another node

    def retired(state: str) -> Retired:
        return Retired(
            "s/c",
            c.incarnation,
            state,
            True,
            (("caller", 3),),
            (("caller", Reply("r-1", state)),),
            acks=(("teller", Acked("s/c", "chan", 4)),),
        )

    c.trust_final_state = False
    shell.on_retired(retired("after a failure"), None)
    assert shell.sent == [] and latest(str(tmp_path), "s/c", 1 << 62) is None
    c.trust_final_state = True
    shell.on_retired(retired("final"), None)
    assert [m for _, m in shell.sent] == [Reply("r-1", "final"), Acked("s/c", "chan", 4)]
    source, state, replies, marks = latest(str(tmp_path), "s/c", 1 << 62)
    assert (source, state, marks) == (c.incarnation, "final", (("caller", 3),))
    assert ("r-1", "final") in replies


def test_an_instance_that_starts_after_it_was_replaced_is_stopped(monkeypatch):
    """Its placement was cut off by a partition and its successor placed elsewhere; when the
    link heals, the request to create it gets through after all and it starts: it must not
    run beside its successor (seen in tests/cluster/test_fencing.py, where it ran on the
    other member after the heal). The instance being started is taken."""
    from stalwart.actors.messages import Started
    from stalwart.supervisors import _supervisor
    from stalwart.supervisors._kernel import events as ev

    shell = supervisor_shell(monkeypatch, ev)
    c = shell.state.children["c"]
    c.incarnation, c.phase = 3, STARTING
    shell.on_started(Started("s/c", 2, True, 4242, node="b"), "late-address")
    assert shell.sent == [("late-address", _supervisor.ActorExitRequest())]
    assert ("c", 2) not in shell.pids
    shell.on_started(Started("s/c", 3, True, 4243, node="c"), "wanted-address")
    assert shell.pids[("c", 3)] == (4243, "c")  # taken: registered, not told to exit
    assert not [to for to, _ in shell.sent if to == "wanted-address"]


def test_an_instance_on_another_node_starts_only_when_its_supervisor_says_so(monkeypatch):
    """An instance placed on another node than its supervisor's asks before it runs
    anything (``on_start`` included): the one its supervisor wants is told to proceed; one
    replaced while a partition held up its creation is stopped before it starts."""
    from stalwart.actors.messages import Placed, Proceed
    from stalwart.supervisors import _supervisor
    from stalwart.supervisors._kernel import events as ev

    shell = supervisor_shell(monkeypatch, ev)
    c = shell.state.children["c"]
    c.incarnation, c.phase = 3, STARTING
    shell.on_placed(Placed("s/c", 3, 4242, "b"), "wanted")
    shell.on_placed(Placed("s/c", 2, 4243, "c"), "replaced")
    shell.on_placed(Placed("s/unknown", 1, 4244, "c"), "stray")
    assert shell.sent == [
        ("wanted", Proceed()),
        ("replaced", _supervisor.ActorExitRequest()),
        ("stray", _supervisor.ActorExitRequest()),
    ]
