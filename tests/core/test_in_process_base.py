"""The in-process base Stalwart's in-process systems run on behaves as Thespian's own.

It creates actors of classes that take no arguments itself, keeps an actor's children by
address and its pending sends in a deque, and hands an ordinary message to its actor
without the checks Thespian's own messages need: each test runs the same raw Thespian
actors on it and on Thespian's ``simpleSystemBase`` and expects the same answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from thespian.actors import (
    Actor,
    ActorExitRequest,
    ActorSystem,
    ChildActorExited,
    DeadEnvelope,
    PoisonMessage,
    Thespian_ActorStatus,
    Thespian_StatusReq,
    WakeupMessage,
)

from stalwart.actors._in_process import InProcessSystem, _Sends
from tests.support import wait_for

BASES = ["stalwart", "thespian"]


def new(base: str) -> Any:
    if base == "stalwart":
        return InProcessSystem({"Colour": "blue"})
    return ActorSystem("simpleSystemBase", {"Colour": "blue"}, logDefs=False, transientUnique=True)


class Leaf(Actor):  # type: ignore[misc]
    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == "who":
            self.send(sender, "leaf")


class Sees(Actor):  # type: ignore[misc]
    """Its ``__init__`` takes the capabilities (Thespian passes them by name)."""

    def __init__(self, capabilities: dict[str, Any]) -> None:
        super().__init__()
        self.colour = capabilities.get("Colour")

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        self.send(sender, self.colour)


class Broken(Actor):  # type: ignore[misc]
    def __init__(self) -> None:
        raise RuntimeError("cannot start")


class Picky(Actor):  # type: ignore[misc]
    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict[str, Any], requirements: Any) -> bool:
        return bool(capabilities.get("Colour") == requirements.get("Colour"))

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        self.send(sender, "picky")


class Parent(Actor):  # type: ignore[misc]
    """Creates children and stops them on request; reports what Thespian tells it."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, tuple) and msg[0] == "make":
            self.kids = [self.createActor(Leaf) for _ in range(msg[1])]
            self.send(sender, len(self.kids))
        elif isinstance(msg, tuple) and msg[0] == "stop":
            self.waiting = sender
            self.send(self.kids[msg[1]], ActorExitRequest())
        elif isinstance(msg, ChildActorExited):
            kids = getattr(self, "kids", [])
            gone = msg.childAddress
            self.send(self.waiting, kids.index(gone) if gone in kids else "exited")
        elif isinstance(msg, tuple) and msg[0] == "create":
            self.waiting = sender
            kwargs = {"targetActorRequirements": msg[2]} if len(msg) > 2 else {}
            child = self.createActor(msg[1], **kwargs)
            self.send(child, "who")
        elif msg == "tick":
            self.waiting = sender
            self.wakeupAfter(0.01, "tocked")
        elif isinstance(msg, str) and msg != "who":
            self.send(self.waiting, msg)
        elif isinstance(msg, WakeupMessage):
            self.send(self.waiting, msg.payload)


class Grumpy(Parent):
    """Fails handling every exit notice (Thespian retries it, then gives up)."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, ChildActorExited):
            raise RuntimeError("cannot take it")
        super().receiveMessage(msg, sender)


def children(asys: Any, address: Any) -> list[str]:
    """The children Thespian lists for ``address``, in its order."""
    status = asys.ask(address, Thespian_StatusReq(), 5)
    assert isinstance(status, Thespian_ActorStatus)
    return [str(child) for child in status.childActors]


def children_of(asys: Any, address: Any) -> int:
    return len(children(asys, address))


def on_both_bases(run: Callable[[Any], Any]) -> dict[str, Any]:
    """What ``run(asys)`` returns on each base, each on a system of its own."""
    seen = {}
    for base in BASES:
        asys = new(base)
        try:
            seen[base] = run(asys)
        finally:
            asys.shutdown()
    return seen


@settings(max_examples=15, deadline=None)
@given(order=st.permutations(range(6)))
def test_children_that_exit_in_any_order_are_each_forgotten_once(order: list[int]) -> None:
    def exits(asys: Any) -> tuple[list[Any], list[list[str]]]:
        parent = asys.createActor(Parent)
        assert asys.ask(parent, ("make", 6), 5) == 6
        heard, left = [], []
        for kid in order:
            heard.append(asys.ask(parent, ("stop", kid), 5))
            left.append(children(asys, parent))
        return heard, left

    seen = on_both_bases(exits)
    assert seen["stalwart"] == seen["thespian"]
    heard, left = seen["stalwart"]
    assert heard == order
    assert [len(now) for now in left] == [5, 4, 3, 2, 1, 0]


@settings(max_examples=30, deadline=None)
@given(ends=st.lists(st.sampled_from([0, -1]), max_size=12))
def test_pending_sends_are_taken_from_either_end_as_from_a_list(ends: list[int]) -> None:
    sends, plain = _Sends(range(8)), list(range(8))
    for end in ends:
        if not plain:
            with pytest.raises(IndexError):
                sends.pop(end)
            continue
        assert sends.pop(end) == plain.pop(end)
    assert list(sends) == plain
    with pytest.raises(IndexError, match="either end"):
        _Sends([1, 2, 3]).pop(1)


def test_a_child_whose_exit_its_parent_fails_to_take_keeps_its_place() -> None:
    def failed_exit(asys: Any) -> list[str]:
        parent = asys.createActor(Grumpy)
        assert asys.ask(parent, ("make", 4), 5) == 4
        asys.tell(parent, ("stop", 2))
        return children(asys, parent)

    seen = on_both_bases(failed_exit)
    assert len(seen["thespian"]) == 4
    assert seen["stalwart"] == seen["thespian"]


@pytest.fixture(params=BASES)
def asys(request: pytest.FixtureRequest) -> Iterator[Any]:
    system = new(request.param)
    yield system
    system.shutdown()


def test_an_actor_whose_init_takes_the_capabilities_gets_them(asys: Any) -> None:
    assert asys.ask(asys.createActor(Sees), "colour?", 5) == "blue"


def test_a_child_that_cannot_be_created_is_reported_exited_to_its_parent(asys: Any) -> None:
    parent = asys.createActor(Parent)
    assert asys.ask(parent, ("make", 1), 5) == 1
    assert asys.ask(parent, ("create", Broken), 5) == "exited"
    assert children_of(asys, parent) == 1


def test_a_class_checks_the_capabilities_before_it_is_created(asys: Any) -> None:
    parent = asys.createActor(Parent)
    assert asys.ask(parent, ("create", Picky, {"Colour": "blue"}), 5) == "picky"
    assert asys.ask(parent, ("create", Picky, {"Colour": "red"}), 5) == "exited"
    assert children_of(asys, parent) == 1


def test_thespian_timers_still_fire(asys: Any) -> None:
    assert asys.ask(asys.createActor(Parent), "tick", 5) == "tocked"


class Chatty(Actor):  # type: ignore[misc]
    """Answers ``n`` with ``n`` messages; on ``"later"`` sets a Thespian timer of its own."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == "later":
            self.wakeupAfter(30, "much later")
        elif isinstance(msg, int):
            for i in range(msg):
                self.send(sender, i)


LOG: list[str] = []  # what the Relay actors of the running test handled, in order


class Relay(Actor):  # type: ignore[misc]
    """Logs each ``("go", tag, plan)`` it handles and passes ``plan``'s parts on
    (``(i, part)``: to its peer ``i``, ``(None, part)``: to itself)."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, tuple) and msg[0] == "peers":
            self.peers = msg[1]
            self.send(sender, "ready")
        elif isinstance(msg, tuple) and msg[0] == "go":
            LOG.append(msg[1])
            for i, (peer, part) in enumerate(msg[2]):
                target = self.myAddress if peer is None else self.peers[peer]
                self.send(target, ("go", f"{msg[1]}.{i}", part))


plans = st.recursive(
    st.just(()),
    lambda inner: st.lists(
        st.tuples(st.sampled_from([None, 0, 1, 2]), inner), min_size=1, max_size=3
    ).map(tuple),
    max_leaves=12,
)


@settings(max_examples=30, deadline=None)
@given(plan=plans)
def test_messages_between_actors_are_handled_in_the_order_thespian_handles_them(
    plan: tuple[Any, ...],
) -> None:
    def handled(asys: Any) -> list[str]:
        relays = [asys.createActor(Relay) for _ in range(3)]
        for relay in relays:
            assert asys.ask(relay, ("peers", relays), 5) == "ready"
        LOG.clear()
        asys.tell(relays[0], ("go", "r", plan))  # (runs the actors until they are idle)
        return list(LOG)

    seen = on_both_bases(handled)
    assert seen["stalwart"] == seen["thespian"]
    assert len(seen["stalwart"]) == 1 + parts(plan)  # each handled once


def parts(plan: tuple[Any, ...]) -> int:
    return sum(1 + parts(part) for _, part in plan)


class Failing(Actor):  # type: ignore[misc]
    """Fails handling ``"boom"`` every time; counts its tries."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == "boom":
            LOG.append("try")
            raise RuntimeError("boom")
        if msg == "tries":
            self.send(sender, LOG.count("try"))


def test_a_message_whose_handler_fails_is_tried_again_then_comes_back_as_poison() -> None:
    def failed(asys: Any) -> tuple[Any, Any]:
        LOG.clear()
        failing = asys.createActor(Failing)
        back = asys.ask(failing, "boom", 5)
        assert isinstance(back, PoisonMessage)
        return back.poisonMessage, asys.ask(failing, "tries", 5)

    seen = on_both_bases(failed)
    assert seen["stalwart"] == seen["thespian"]
    assert seen["stalwart"][0] == "boom" and seen["stalwart"][1] > 1


class DeadLetters(Actor):  # type: ignore[misc]
    """Takes the system's dead letters; answers what it got."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == "take":
            self.handleDeadLetters()
            self.send(sender, "taking")
        elif isinstance(msg, DeadEnvelope):
            LOG.append(str(msg.deadMessage))
        elif msg == "got":
            self.send(sender, list(LOG))


def test_a_message_to_an_actor_that_exited_is_a_dead_letter() -> None:
    def dead(asys: Any) -> Any:
        LOG.clear()
        letters = asys.createActor(DeadLetters)
        assert asys.ask(letters, "take", 5) == "taking"
        gone = asys.createActor(Leaf)
        assert asys.ask(gone, "who", 5) == "leaf"
        asys.tell(gone, ActorExitRequest())
        asys.tell(gone, "who")
        return asys.ask(letters, "got", 5)

    seen = on_both_bases(dead)
    assert seen["stalwart"] == seen["thespian"] == ["who"]


class Keeper(Actor):  # type: ignore[misc]
    """Makes the dead-letter handler as its child; answers the exits it was told of."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == "make":
            self.letters, self.exits = self.createActor(DeadLetters), []
            self.send(sender, self.letters)
        elif isinstance(msg, ChildActorExited):
            self.exits.append(str(msg.childAddress))
        elif msg == "exits":
            self.send(sender, self.exits)


def test_an_exit_request_for_an_actor_gone_already_is_a_dead_letter_and_nothing_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Unlike Thespian's base (the second part), which also "kills" the dead-letter handler
    for it: it warns that the gone actor "had no instance to reset on kill" and tells the
    handler's parent that the gone actor exited. A supervisor that left before hearing of
    its spares' exits made Thespian send them such requests at every shutdown."""

    def exit_twice(asys: Any) -> tuple[list[str], list[str], list[str]]:
        LOG.clear()
        caplog.clear()
        keeper = asys.createActor(Keeper)
        letters = asys.ask(keeper, "make", 5)
        assert asys.ask(letters, "take", 5) == "taking"
        gone = asys.createActor(Leaf)
        assert asys.ask(gone, "who", 5) == "leaf"
        asys.tell(gone, ActorExitRequest())
        asys.tell(gone, ActorExitRequest())  # (it is gone: a dead letter)
        got, exits = asys.ask(letters, "got", 5), asys.ask(keeper, "exits", 5)
        warned = [r.getMessage() for r in caplog.records if "reset on kill" in r.getMessage()]
        return got, exits, warned

    with caplog.at_level(logging.WARNING, logger="Thespian"):
        seen = on_both_bases(exit_twice)
    got, exits, warned = seen["stalwart"]
    assert (got, exits, warned) == (["ActorExitRequest"], [], [])
    got, exits, warned = seen["thespian"]
    assert got == ["ActorExitRequest"] and len(exits) == 1 and len(warned) == 1


def test_answers_to_the_system_are_taken_in_order_unless_thespian_has_a_timer_pending() -> None:
    asys = InProcessSystem({})
    try:
        base, chatty = asys._systemBase, asys.createActor(Chatty)
        assert base.replies() == []
        asys.tell(chatty, 3)  # (runs the actors until they are idle)
        assert base.replies() == [0, 1, 2]
        assert base.replies() == []  # taken once
        asys.tell(chatty, "later")
        asys.tell(chatty, 2)
        assert base.replies() is None  # only Thespian's listen runs its timers
        assert [asys.listen(0.001), asys.listen(0.001)] == [0, 1]
    finally:
        asys.shutdown()


# -- through a Stalwart system: answers are collected without listening (but for Thespian's
# own timers, which only listening runs) -------------------------------------------------
def test_answers_and_an_actors_own_thespian_timer_both_arrive_in_process(make_system):
    from stalwart import Child, ManagedActor, Supervisor

    class Sleeper(ManagedActor):
        def on_start(self) -> None:
            self.woken: list[Any] = []

        def receiveMsg_str(self, msg: str, sender: Any) -> None:
            if msg == "arm":
                self.wakeupAfter(0.05, "own timer")  # Thespian's, not Stalwart's
            self.reply(sender, list(self.woken))

        def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
            self.woken.append(msg.payload)

    system = make_system(Supervisor("s", children=[Child("z", Sleeper)]))
    assert system.ask("s/z", "arm") == []
    answers: list[Any] = []

    def woken() -> bool:  # asked again and again while the timer is pending
        answers.append(system.ask("s/z", "look"))
        return bool(answers[-1])

    wait_for(woken)
    assert answers[-1] == ["own timer"] and all(a == [] for a in answers[:-1])
