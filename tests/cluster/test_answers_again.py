"""An actor on another node than its supervisor's: what it answers again goes out as its
first answers do, through the supervisor that holds the state they reflect."""

import contextlib

from thespian.actors import ActorExitRequest

from stalwart import Child, Supervisor
from stalwart.actors.messages import Acked, Reply, Request, Resolve, Told
from tests.support import (
    AnswerProbe,
    Balance,
    Deliver,
    Deposit,
    Heard,
    Ledger,
    StopSelf,
    Worker,
    wait_for,
)


def test_a_request_or_tell_that_comes_twice_is_answered_through_the_supervisor(cluster):
    """A sender sends again what it has no confirmation of (after a partition, say), so a
    request can come twice; its answer is then given from memory. But the checkpoint that
    holds the state it reflects may still be on its way to the supervisor, or be lost with
    the actor's node: the second answer (and a tell's second confirmation) must wait for it
    as the first did, so they go through the supervisor too. (A partition soak counted
    three acknowledged deposits that no account held: their second answers had left from
    the actor itself, ahead of a checkpoint the supervisor never kept.)"""
    c = cluster(tree(), {"b": ["member=true"]})
    system = c.system
    assert system.status()["s/ledger"].node == "b"
    assert system.ask("s/ledger", Deposit(1), timeout=15) == 1
    with system._asys.private() as asys, probing(asys) as probe:
        ledger = asys.ask(system._root, Resolve("s/ledger"), 10).addresses[0]
        asys.tell(probe, Deliver(ledger, Request("again-1", Deposit(2), probe), times=2))
        asys.tell(probe, Deliver(ledger, Told(Deposit(3), "probe-chan", 1, 1, probe), times=2))
        heard = wait_for(lambda: heard_at_least(asys, probe, 4), timeout=30)
    replies = [(m.id, m.value) for m, _ in heard if isinstance(m, Reply)]
    acks = [m for m, _ in heard if isinstance(m, Acked)]
    assert replies == [("again-1", 2), ("again-1", 2)]
    assert acks == [Acked("s/ledger", "probe-chan", 1)] * 2
    senders = {s for _, s in heard}
    assert str(ledger) not in senders, heard  # none left from the actor itself
    assert len(senders) == 1  # all from its supervisor
    # applied once each, and the tell after the request
    assert system.ask("s/ledger", Balance(), timeout=15) == (3, [1, 2, 3], [])


def test_the_confirmation_of_a_tell_that_stops_the_actor_goes_with_its_final_state(cluster):
    """A tell whose handler stops the actor is confirmed with the state it leaves (in its
    ``Retired``), through the supervisor that keeps that state: not by the actor ahead of
    it, which a fence right after would leave confirmed but lost."""
    c = cluster(tree(), {"b": ["member=true"]})
    system = c.system
    with system._asys.private() as asys, probing(asys) as probe:
        worker = asys.ask(system._root, Resolve("s/w"), 10).addresses[0]
        asys.tell(probe, Deliver(worker, Told(StopSelf(), "probe-chan", 1, 1, probe)))
        heard = wait_for(lambda: heard_at_least(asys, probe, 1), timeout=30)
    assert [m for m, _ in heard] == [Acked("s/w", "probe-chan", 1)]
    assert heard[0][1] != str(worker)  # from its supervisor


def tree() -> Supervisor:
    return Supervisor(
        "s",
        children=[
            Child("ledger", Ledger, requires={"member": True}),
            Child("w", Worker, requires={"member": True}),
        ],
    )


@contextlib.contextmanager
def probing(asys):
    probe = asys.createActor(AnswerProbe)
    try:
        yield probe
    finally:
        asys.tell(probe, ActorExitRequest())


def heard_at_least(asys, probe, n: int):
    heard = asys.ask(probe, Heard(), 10)  # (an update of a path it resolved may come first)
    return heard if isinstance(heard, list) and len(heard) >= n else None
