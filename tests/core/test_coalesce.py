"""Coalesced sends: what an actor sends to one destination in one turn travels as one
envelope, and is handled as if each message had come alone.

Each destination must see each sender's messages in the order sent, each once, whatever
the interleaving of sends in a turn; a message that fails inside a bundle is recovered
like one that came alone, and the rest are handled in order; a SIGKILL of the receiver
in the middle of a bundle loses nothing acknowledged; a raw Thespian actor never gets a
bundle.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stalwart import Child, ManagedActor, Supervisor
from stalwart.actors import ReplyTo
from stalwart.actors._coalesce import MAX_BUNDLE, envelopes, runs, unpacked
from stalwart.actors._runtime import RuntimeActor
from stalwart.actors.messages import Batch
from stalwart.testing import wait_for_event
from tests.support import Balance, Deposit, Ledger, sigkill_actor, wait_for, wait_for_file

SENDERS = ("a", "b", "c")
DESTINATIONS = ("x", "y", "z")


class Mark(msgspec.Struct, frozen=True):
    """One message of a sender to a destination: the ``n``-th it sent there."""

    sender: str
    n: int
    fail: str = ""  # a file: the first time (it is absent), create it and fail


class Script(msgspec.Struct, frozen=True):
    """To a ``Sender``: in one turn, tell (or ask, with ``ask``) each path its marks."""

    steps: tuple[tuple[str, int, bool], ...]  # (destination path, how many, as asks)
    fail: tuple[str, int, str] = ("", 0, "")  # (path, n, file): that mark fails once


class Sent(msgspec.Struct, frozen=True):
    """Asked of a ``Sender``: how many it sent to each path."""


class Seen(msgspec.Struct, frozen=True):
    """Asked of a ``Sink``: the marks it handled, and the sizes of the bundles it got."""


class Sender(ManagedActor):
    def on_start(self) -> None:
        self.counts: dict[str, int] = {}

    def receiveMsg_Script(self, msg: Script, sender: Any) -> None:
        for path, count, asks in msg.steps:
            for _ in range(count):
                n = self.counts.get(path, 0)
                self.counts[path] = n + 1
                fail = msg.fail[2] if msg.fail[:2] == (path, n) else ""
                mark = Mark(self.path.rsplit("/", 1)[-1], n, fail)
                if asks:
                    self.call(path, mark, timeout=60)
                else:
                    self.tell(path, mark)

    def receiveMsg_Sent(self, msg: Sent, sender: Any) -> None:
        self.reply(sender, dict(self.counts))


class Sink(ManagedActor):
    """Keeps every mark it handled, in order (checkpointed), and the bundles it got."""

    def on_start(self) -> None:
        self.marks: list[tuple[str, int]] = list(self.restored_state or [])
        self.bundles: list[int] = []

    def snapshot(self) -> Any:
        return self.marks

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if type(msg) is Batch:
            self.bundles.append(len(msg.items))
        super().receiveMessage(msg, sender)

    def receiveMsg_Mark(self, msg: Mark, sender: Any) -> None:
        if msg.fail and not os.path.exists(msg.fail):
            Path(msg.fail).touch()
            raise ConnectionError(f"mark {msg.n} of {msg.sender} fails once")
        self.marks.append((msg.sender, msg.n))
        if type(sender) is ReplyTo:  # (an ask)
            self.reply(sender, msg.n)

    def receiveMsg_Seen(self, msg: Seen, sender: Any) -> None:
        self.reply(sender, (list(self.marks), list(self.bundles)))


def fan_tree() -> Supervisor:
    return Supervisor(
        "f",
        max_restarts=1000,
        within_s=1.0,
        children=[
            *(Child(name, Sender) for name in SENDERS),
            *(Child(name, Sink) for name in DESTINATIONS),
        ],
    )


def arrived_in_order(system: Any, counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Wait until every sink holds what was sent to it; check each sender's order there."""
    seen = {}
    for dest in DESTINATIONS:
        path = f"f/{dest}"
        expected = {s: counts[s].get(path, 0) for s in SENDERS}
        total = sum(expected.values())
        marks, bundles = wait_for(
            lambda path=path, total=total: (
                got if len((got := system.ask(path, Seen(), timeout=30))[0]) >= total else None
            ),
            timeout=60,
        )
        assert len(marks) == total, marks  # none twice
        for s in SENDERS:
            assert [n for who, n in marks if who == s] == list(range(expected[s]))
        seen[dest] = bundles
    return seen


TURN = st.lists(
    st.tuples(st.sampled_from(DESTINATIONS), st.integers(1, 6), st.booleans()),
    min_size=1,
    max_size=5,
)
TURNS = st.lists(st.tuples(st.sampled_from(SENDERS), TURN), min_size=1, max_size=6)


def test_each_destination_sees_each_senders_messages_in_order_once(make_system, base):
    system = make_system(fan_tree(), base=base)
    bundled = []

    @settings(
        max_examples=8 if base == "multiproc" else 25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(TURNS)
    def interleaving(turns):
        for sender, steps in turns:
            script = tuple((f"f/{dest}", count, asks) for dest, count, asks in steps)
            system.tell(f"f/{sender}", Script(script))
        counts = {s: system.ask(f"f/{s}", Sent(), timeout=30) for s in SENDERS}
        bundles = arrived_in_order(system, counts)
        bundled.extend(size for sizes in bundles.values() for size in sizes)

    interleaving()
    assert bundled and max(bundled) > 1  # turns with several sends did travel together


def test_a_failing_message_inside_a_bundle_is_recovered_and_the_rest_go_on_in_order(
    make_system, base, tmp_path
):
    system = make_system(fan_tree(), base=base)
    fails = str(tmp_path / "failed-once")
    system.tell("f/a", Script((("f/x", 5, False),), fail=("f/x", 2, fails)))
    marks, bundles = wait_for(
        lambda: got if len((got := system.ask("f/x", Seen(), timeout=30))[0]) == 5 else None,
        timeout=30,
    )
    assert 5 in bundles  # the five came as one envelope
    assert os.path.exists(fails)  # the third failed once...
    wait_for_event(system, "failure", "f/x")  # ...went to its supervisor as a failure...
    values = [n for _, n in marks]
    assert sorted(values) == [0, 1, 2, 3, 4]  # ...and was handled once, as were all others
    assert [n for n in values if n != 2] == [0, 1, 3, 4]  # the rest in order
    # (the supervisor tells the root it recovered after the retry has been handled)
    wait_for_event(system, "recovered", "f/x")
    wait_for(lambda: system.status()["f/x"].state == "running")


def test_a_failing_request_inside_a_bundle_is_answered_once_and_the_rest_in_order(
    make_system, base, tmp_path
):
    system = make_system(fan_tree(), base=base)
    fails = str(tmp_path / "failed-once")
    system.tell("f/b", Script((("f/y", 6, True),), fail=("f/y", 2, fails)))
    marks, _ = wait_for(
        lambda: got if len((got := system.ask("f/y", Seen(), timeout=30))[0]) == 6 else None,
        timeout=30,
    )
    assert os.path.exists(fails)
    assert sorted(n for _, n in marks) == list(range(6))
    assert [n for _, n in marks if n != 2] == [0, 1, 3, 4, 5]


class PausingLedger(Ledger):
    """A ledger that, the first time it applies ``options["pause_at"]``, creates
    ``options["started"]`` and sleeps (to be killed there, in the middle of a bundle)."""

    def receiveMsg_Deposit(self, msg: Deposit, sender: Any) -> None:
        started = self.options["started"]
        if msg.id == self.options["pause_at"] and not os.path.exists(started):
            Path(started).touch()
            time.sleep(60)
        super().receiveMsg_Deposit(msg, sender)


class DepositMany(msgspec.Struct, frozen=True):
    first: int
    count: int
    asks: bool


class Depositor(ManagedActor):
    """Sends deposits to the ledger, all in one turn, as tells or asks; keeps the answers."""

    def on_start(self) -> None:
        self.answered: list[int] = []

    def receiveMsg_DepositMany(self, msg: DepositMany, sender: Any) -> None:
        for i in range(msg.first, msg.first + msg.count):
            if msg.asks:
                self.call("k/ledger", Deposit(i), timeout=60, on_reply=self._answered(i))
            else:
                self.tell("k/ledger", Deposit(i))

    def _answered(self, i: int) -> Any:
        return lambda _total: self.answered.append(i)

    def receiveMsg_str(self, msg: str, sender: Any) -> None:
        self.reply(sender, list(self.answered))


@pytest.mark.parametrize("asks", [False, True], ids=["tells", "asks"])
def test_a_sigkill_in_the_middle_of_a_bundle_loses_nothing_acknowledged(
    make_system, tmp_path, asks
):
    started = str(tmp_path / "started")
    tree = Supervisor(
        "k",
        max_restarts=100,
        children=[
            Child("ledger", PausingLedger, options={"pause_at": 13, "started": started}),
            Child("depositor", Depositor),
        ],
    )
    system = make_system(tree, base="multiproc")
    system.tell("k/depositor", DepositMany(0, 10, asks))  # acknowledged before the kill
    wait_for(lambda: system.ask("k/ledger", Balance(), timeout=30)[0] == 10, timeout=30)
    system.tell("k/depositor", DepositMany(10, 10, asks))  # one bundle: killed at its fourth
    wait_for_file(started, timeout=30)
    sigkill_actor(system, "k/ledger")
    total, applied, twice = wait_for(
        lambda: got if (got := system.ask("k/ledger", Balance(), timeout=30))[0] >= 20 else None,
        timeout=60,
    )
    assert (total, applied, twice) == (20, list(range(20)), [])
    if asks:  # every request was answered once
        answered = wait_for(
            lambda: got if len(got := system.ask("k/depositor", "?")) == 20 else None
        )
        assert sorted(answered) == list(range(20))


class RawCollector(RuntimeActor):  # type: ignore[misc]
    """A plain Thespian actor: keeps the type of everything it gets; "report" sends them."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == "report":
            self.send(sender, list(getattr(self, "got", [])))
        elif not isinstance(msg, type) and type(msg).__module__ != "thespian.actors":
            self.got = [*getattr(self, "got", []), type(msg).__name__]


class Fanout(ManagedActor):
    """Sends a raw Thespian actor ``n`` messages and a report request, all in one turn."""

    def receiveMsg_int(self, msg: int, sender: Any) -> None:
        self.asker = sender
        raw = self.createActor(RawCollector)
        for i in range(msg):
            self.send(raw, i)
        self.send(raw, "report")

    def receiveMsg_list(self, msg: list[str], sender: Any) -> None:
        self.reply(self.asker, msg)


def test_a_raw_thespian_actor_gets_plain_messages(make_system, base):
    system = make_system(Supervisor("r", children=[Child("fan", Fanout)]), base=base)
    assert system.ask("r/fan", 7, timeout=30) == ["int"] * 7


def test_many_messages_travel_in_envelopes_that_carry_them_all_in_order():
    for size in (1, 2, MAX_BUNDLE, MAX_BUNDLE + 1, 3 * MAX_BUNDLE + 5):
        msgs = list(range(size))
        out = list(envelopes(msgs))
        assert [m for e in out for m in unpacked(e)] == msgs
        assert len(out) == -(-size // MAX_BUNDLE)
        assert all(len(list(unpacked(e))) <= MAX_BUNDLE for e in out)
    pairs = [(a, i) for i, a in zip(itertools.count(), "xxyxxxz")]
    assert runs(pairs) == [("x", [0, 1]), ("y", [2]), ("x", [3, 4, 5]), ("z", [6])]
