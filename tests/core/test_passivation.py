"""Passivation: an idle actor that opted in is stopped with its state kept and started again
from it by the next message to its path, on real actor systems on both bases."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import msgspec
import pytest

from stalwart import AlreadyStarted, Breaker, Child, Pool, RecoveryRequest, SpecError, Supervisor
from stalwart.supervisors._tree_file import load_tree
from tests.support import Append, Client, Counter, GetLog, Ping, Relay, Worker, wait_for

IDLE_S = 0.2  # passivate_after_s of the tests that wait for it


class TellMany(msgspec.Struct, frozen=True):
    path: str
    values: list[int]


class Teller(Client):
    """Tells ``values`` to ``path`` by path, one Append each (another sender)."""

    def receiveMsg_TellMany(self, msg: TellMany, sender: Any) -> None:
        for value in msg.values:
            self.tell(msg.path, Append(value))


def state(system, path):
    return system.status()[path].state


def passivated(system, path):
    return wait_for(lambda: state(system, path) == "passivated", timeout=30)


def kinds(system, kind):
    return [e for e in system.events() if e.kind == kind]


def test_an_idle_counter_is_passivated_and_its_count_survives(make_system, base):
    tree = Supervisor("app", children=[Child("c", Counter, passivate_after_s=IDLE_S)])
    system = make_system(tree, base=base)
    assert system.ask("app/c", Ping(5)) == 5
    passivated(system, "app/c")
    assert system.summary().counts.get("passivated") == 1
    assert system.summary().unhealthy_total == 0  # idle, not in trouble
    assert system.ask("app/c", Ping(1)) == 6  # started again from its checkpoint
    row = system.status()["app/c"]
    assert (row.state, row.level, row.restarts, row.incarnation) == ("running", 0, 0, 2)
    assert [e.path for e in kinds(system, "passivated")] == ["app/c"]
    assert [e.path for e in kinds(system, "reactivated")] == ["app/c"]
    assert kinds(system, "restarted") == [] and kinds(system, "crash") == []
    assert system.incidents() == [] and system.dead_letters() == []


def test_messages_sent_while_it_reactivates_arrive_in_order_none_lost_none_twice(make_system, base):
    tree = Supervisor(
        "app",
        children=[
            Child("log", Client, passivate_after_s=IDLE_S),
            Child("other", Teller),  # another sender, by path
        ],
    )
    system = make_system(tree, base=base)
    expected_mine, expected_other = [], []
    for cycle in range(3):
        passivated(system, "app/log")
        if cycle == 1:  # the other sender wakes it this time, the test's tells follow
            system.tell("app/other", TellMany("app/log", [-99_999]))
            expected_other.append(-99_999)
        for i in range(40):  # the first wakes it; the rest wait behind it, in order
            value = cycle * 1000 + i
            system.tell("app/log", Append(value))
            expected_mine.append(value)
            if i % 4 == 0:  # asks and calls from an actor go the same way
                relayed = system.ask("app/other", Relay("app/log", GetLog(), timeout=20), 30)
                assert relayed.ok, relayed  # (no order across senders: only that it answers)
        theirs = [-(cycle * 100 + i) - 1 for i in range(10)]
        system.tell("app/other", TellMany("app/log", theirs))
        expected_other += theirs
        last = theirs[-1]
        wait_for(lambda last=last: last in system.ask("app/log", GetLog(), 20))
    log = system.ask("app/log", GetLog(), 20)
    assert [v for v in log if v >= 0] == expected_mine  # each sender's in its order, once
    assert [v for v in log if v < 0] == expected_other
    assert len(kinds(system, "reactivated")) >= 3
    assert system.dead_letters() == [] and kinds(system, "restarted") == []


def test_ask_async_reaches_a_passivated_actor(make_system, base):
    tree = Supervisor("app", children=[Child("c", Counter, passivate_after_s=IDLE_S)])
    system = make_system(tree, base=base)
    assert system.ask("app/c", Ping(2)) == 2
    passivated(system, "app/c")

    async def both():
        return await asyncio.gather(
            system.ask_async("app/c", Ping(1)), system.ask_async("app/c", Ping(10))
        )

    assert sorted(asyncio.run(both())) == [3, 13]


def passivated_instance(make_system, base):
    """A system with a Pool, and the path of its instance ``alice``, counted to 7 and
    passivated."""
    template = Child("counter", Counter, passivate_after_s=IDLE_S)
    tree = Supervisor("app", children=[Pool("counters", template=template)])
    system = make_system(tree, base=base)
    path = system.start_child("app/counters", "alice")
    assert system.ask(path, Ping(7)) == 7
    passivated(system, path)
    return system, path


def test_a_pool_instance_keeps_its_path_and_state_across_passivation(make_system, base):
    system, path = passivated_instance(make_system, base)
    assert system.ask(path, Ping(1)) == 8


def test_starting_a_passivated_pool_instance_again_says_it_is_started(make_system, base):
    """A login that starts the session of its key, and takes AlreadyStarted as "logged in
    already", works while that session is passivated: the instance is kept, with its state."""
    system, path = passivated_instance(make_system, base)
    with pytest.raises(AlreadyStarted, match="passivated: the next message") as caught:
        system.start_child("app/counters", "alice")
    assert caught.value.path == path
    assert state(system, path) == "passivated"  # (the refused start did not wake it)
    assert system.ask(path, Ping(1)) == 8


def test_a_dependent_restarts_while_its_dependency_is_passivated(make_system):
    tree = Supervisor(
        "app",
        strategy="one_for_all",
        children=[
            Child("db", Counter, passivate_after_s=IDLE_S),
            Child("w", Worker, depends_on=["db"]),
        ],
    )
    system = make_system(tree)
    passivated(system, "app/db")
    assert system.request_recovery(RecoveryRequest("app/w", 3, "test")).ok
    assert system.ask("app/w", Ping(3)).n == 3
    assert state(system, "app/db") == "passivated"  # it stays so until a message comes
    assert system.ask("app/db", Ping(1)) == 1


def test_shutdown_with_passivated_children_is_clean(make_system, base):
    tree = Supervisor(
        "app",
        children=[Child(f"c{i}", Counter, passivate_after_s=IDLE_S) for i in range(3)],
    )
    system = make_system(tree, base=base)
    for i in range(3):
        passivated(system, f"app/c{i}")
    system.shutdown()
    assert system.stopped and system.final_report is None


def test_a_tree_whose_actors_passivate_as_it_starts_finishes_starting(make_system, base):
    # each actor is passivated a millisecond after it has started: the last path the start
    # waits for may be passivated rather than registered by then (several starts, as that
    # depends on the order in which the root hears of them)
    tree = Supervisor(
        "app",
        children=[
            Supervisor(
                f"b{b}",
                children=[Child(f"c{c}", Counter, passivate_after_s=0.001) for c in range(3)],
            )
            for b in range(2)
        ],
    )
    for _ in range(6):
        system = make_system(tree, base=base, start_timeout_s=10)
        assert system.ask("app/b1/c2", Ping(1)) == 1  # (and a message wakes it)
        system.shutdown()


# -- memory pressure --------------------------------------------------------------------------
def pressure_tree():
    later = 3600.0  # never by their own setting within a test: only at pressure
    return Supervisor(
        "app",
        children=[
            Child("a", Counter, passivate_after_s=later),
            Child("b", Counter, passivate_after_s=later),
            Child("c", Counter, passivate_after_s=later),
            Child("busy", Counter, passivate_after_s=later),
            Child("plain", Counter),  # never passivated: it did not opt in
        ],
    )


def under_pressure(system, done):
    """Run warning-tier cleanups (the documented hook) until ``done()`` is true."""

    def round_then_look():
        system.memory_cleanup("warning")
        return done()

    return wait_for(round_then_look, timeout=60)


class Steady:
    """Traffic to ``path`` from a thread, until stopped."""

    def __init__(self, system, path):
        import threading

        self.stop, self.system, self.path = threading.Event(), system, path
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            self.system.ask(self.path, Ping(1), 20)

    def end(self):
        self.stop.set()
        self.thread.join(30)


def test_the_warning_tier_passivates_idle_opted_in_children_longest_idle_first(make_system, base):
    system = make_system(pressure_tree(), base=base, memory_budget="1TiB")
    for name in ("a", "b", "c", "plain"):
        system.ask(f"app/{name}", Ping(1))  # a is idle longest, then b, then c
    steady = Steady(system, "app/busy")
    try:
        under_pressure(system, lambda: state(system, "app/c") == "passivated")
        assert state(system, "app/busy") == "running"  # under steady traffic: never
    finally:
        steady.end()
    order = [e.path for e in kinds(system, "passivated")]
    assert order == ["app/a", "app/b", "app/c"], [(e.path, e.detail) for e in system.events()]
    assert all("memory pressure" in e.detail for e in kinds(system, "passivated"))
    assert state(system, "app/plain") == "running"
    assert system.ask("app/a", Ping(1)) == 2 and system.ask("app/plain", Ping(1)) == 2


def test_an_actor_reactivated_lately_is_not_passivated_again_at_pressure(make_system, base):
    system = make_system(pressure_tree(), base=base, memory_budget="1TiB")
    steady = [Steady(system, f"app/{name}") for name in ("b", "c", "busy")]
    try:
        system.ask("app/a", Ping(1))
        under_pressure(system, lambda: state(system, "app/a") == "passivated")
    finally:
        for s in steady:
            s.end()
    assert system.ask("app/a", Ping(1)) == 2  # reactivated: idle from now on
    for name in ("b", "c", "busy"):  # each less idle than a from here
        system.ask(f"app/{name}", Ping(0))
    # rounds until the three others went, one a round, idlest first: a, idler than each of
    # them and long enough, stayed, as it was started again lately
    under_pressure(system, lambda: len(kinds(system, "passivated")) == 4)
    assert [e.path for e in kinds(system, "passivated")][1:] == ["app/b", "app/c", "app/busy"]
    assert state(system, "app/a") == "running"


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, -1, "1", True, math.nan, math.inf, [1]])
def test_passivate_after_s_must_be_a_positive_number(value):
    with pytest.raises(SpecError) as caught:
        Child("c", Counter, passivate_after_s=value)
    assert caught.value.field == "passivate_after_s" and caught.value.path == "c"


def test_passivation_needs_one_replica_and_no_breaker():
    for extra in ({"replicas": 2}, {"breaker": Breaker()}):
        with pytest.raises(SpecError, match="passivate_after_s: needs one replica"):
            Child("c", Counter, passivate_after_s=1.0, **extra)


def test_a_tree_file_takes_passivate_after_s(tmp_path):
    file = tmp_path / "tree.toml"
    file.write_text(
        '[supervisor]\nname = "app"\n\n[[supervisor.children]]\nname = "c"\n'
        'actor = "tests.support:Counter"\npassivate_after_s = 0.5\n'
    )
    assert load_tree(file).tree.children[0].passivate_after_s == 0.5
    file.write_text(file.read_text().replace("0.5", "-2"))
    with pytest.raises(Exception, match="passivate_after_s: must be a number > 0 or None"):
        load_tree(file)
