"""Answers and confirmations given again (their request or tell came twice) leave with a
checkpoint of the state they reflect, never ahead of it, and never with a state a handler
has half changed: where only its supervisor keeps an actor's checkpoints (it runs on another
node), through the supervisor; where the actor files its own, once filed. Each case needs an
exact interleaving (a resend while a coroutine awaits, fifty resends in one envelope, a
failing ``snapshot()``, a failure in the same envelope), so the actor runs outside any actor
system here and what it sends is recorded; ``tests/cluster/test_answers_again.py`` shows the
same through a real cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from stalwart import ManagedActor
from stalwart.actors._async_loop import actor_loop
from stalwart.actors.messages import (
    Acked,
    Batch,
    Checkpoint,
    FailureReport,
    Init,
    Reply,
    Request,
    Retry,
    Told,
)

SUPERVISOR, ROOT, ME = "supervisor", "root", "me"


class Deposit(msgspec.Struct, frozen=True):
    n: int


class Move(msgspec.Struct, frozen=True):
    """Moves ``n`` from ``a`` to ``b``, awaiting in between."""

    n: int


class Transfer(msgspec.Struct, frozen=True):
    """Moves ``n`` from ``a`` to ``b`` around an ``await self.ask(...)``; answers."""

    n: int


class Withdraw(msgspec.Struct, frozen=True):
    """Takes ``n`` from ``a``; fails the first time (after taking it)."""

    n: int


class Pay(msgspec.Struct, frozen=True):
    """Adds ``n`` to ``a`` and answers, then awaits before it ends."""

    n: int


class Grow(msgspec.Struct, frozen=True):
    """Calls another path and adds what it answers; fails the first time (after the call)."""


class Shell:
    """Runs a ManagedActor without a runtime: what it sends (envelopes unpacked) and the
    timers it sets are recorded in ``sent``."""

    sent: list[tuple[Any, Any]]

    def send(self, target: Any, msg: Any) -> None:
        for m in msg.items if isinstance(msg, Batch) else (msg,):
            self.sent.append((target, m))

    @property
    def myAddress(self) -> Any:
        return ME

    def after(self, delay: float, payload: Any, key: Any = None) -> Any:
        self.sent.append(("timer", payload))
        return key

    def cancel(self, key: Any) -> None:
        pass


class Account(Shell, ManagedActor):
    snapshot_fails = False

    def on_start(self) -> None:
        state = self.restored_state or {"a": 0, "b": 0}
        self.a, self.b = state["a"], state["b"]
        self.snapshots = 0
        self.moving: asyncio.Event | None = None

    def snapshot(self) -> Any:
        self.snapshots += 1
        if self.snapshot_fails:
            raise RuntimeError("no snapshot now")
        return {"a": self.a, "b": self.b}

    def receiveMsg_Deposit(self, msg: Deposit, sender: Any) -> None:
        self.a += msg.n
        self.reply(sender, self.a)

    async def receiveMsg_Move(self, msg: Move, sender: Any) -> None:
        self.a -= msg.n
        self.moving = asyncio.Event()
        await self.moving.wait()
        self.b += msg.n

    async def receiveMsg_Transfer(self, msg: Transfer, sender: Any) -> None:
        self.a -= msg.n
        await self.ask("elsewhere", "may I?")
        self.b += msg.n
        self.reply(sender, (self.a, self.b))

    async def receiveMsg_Pay(self, msg: Pay, sender: Any) -> None:
        self.a += msg.n
        self.reply(sender, self.a)
        self.paying = asyncio.Event()
        await self.paying.wait()

    def receiveMsg_Withdraw(self, msg: Withdraw, sender: Any) -> None:
        self.a -= msg.n
        self.failures = getattr(self, "failures", 0) + 1
        if self.failures == 1:
            raise ConnectionResetError("the first try fails half way")
        self.reply(sender, self.a)

    def receiveMsg_Grow(self, msg: Grow, sender: Any) -> None:
        def got(value: int) -> None:
            self.a += value

        self.call("elsewhere", "how much?", on_reply=got)
        self.failures = getattr(self, "failures", 0) + 1
        if self.failures == 1:
            raise ConnectionResetError("the first try fails after its call")
        self.reply(sender, "grown")


def account(**init: Any) -> Account:
    """An instance whose checkpoints only its supervisor keeps (no state directory here)."""
    actor = Account()
    actor.sent = []
    actor.receiveMessage(Init("s/a", SUPERVISOR, ROOT, 1, **init), SUPERVISOR)
    assert actor._sw_keeps_with_supervisor()
    actor.sent.clear()
    return actor


def account_on_file(state_dir: str) -> Account:
    """An instance that files its own checkpoints in ``state_dir`` (its supervisor's host)."""
    actor = Account()
    actor.sent = []
    actor.paying = None
    actor.receiveMessage(Init("s/a", SUPERVISOR, ROOT, 1, state_dir=state_dir), SUPERVISOR)
    assert not actor._sw_keeps_with_supervisor()
    actor.sent.clear()
    return actor


def direct(actor: Account) -> list[tuple[Any, Any]]:
    """Answers and confirmations it sent to anyone but its supervisor."""
    return [(t, m) for t, m in actor.sent if t != SUPERVISOR and isinstance(m, (Reply, Acked))]


def checkpoints(actor: Account) -> list[Checkpoint]:
    return [m for t, m in actor.sent if t == SUPERVISOR and isinstance(m, Checkpoint)]


def test_an_answer_given_again_mid_coroutine_waits_for_the_checkpoint_at_its_end():
    """A resend that comes while a coroutine awaits, half way through changing the state,
    is not answered with a checkpoint of that half-changed state: the answer goes with the
    checkpoint taken when the coroutine's turn ends."""
    actor = account()
    actor.receiveMessage(Request("r1", Deposit(10), "caller"), "caller")
    actor.receiveMessage(Told(Move(4), "chan", 1, 1, "teller"), "teller")  # awaits now
    actor.sent.clear()
    actor.receiveMessage(Request("r1", Deposit(10), "caller"), "caller")  # sent again
    assert direct(actor) == [] and checkpoints(actor) == []
    assert actor.moving is not None
    actor.moving.set()
    actor._sw_pump()  # the coroutine ends
    assert direct(actor) == []
    [kept] = checkpoints(actor)
    assert kept.state == {"a": 6, "b": 4}  # the move whole, never half of it
    assert kept.replies == (("caller", Reply("r1", 10, alone=True)),)
    assert kept.acks == (("teller", Acked("s/a", "chan", 1)),)
    assert not actor._sw_turns and not actor_loop().is_running()


def test_fifty_requests_and_tells_sent_again_in_one_envelope_cost_one_checkpoint():
    actor = account()
    requests = tuple(Request(f"r{i}", Deposit(1), "caller") for i in range(50))
    tells = tuple(Told(Deposit(1), "chan", i, 1, "teller") for i in range(1, 51))
    actor.receiveMessage(Batch(requests), "caller")
    actor.receiveMessage(Batch(tells), "teller")
    before = actor.snapshots
    actor.sent.clear()
    actor.receiveMessage(Batch(requests + tells), "caller")
    assert direct(actor) == []
    [kept] = checkpoints(actor)
    assert actor.snapshots - before == 1
    assert [reply.value for _, reply in kept.replies] == list(range(1, 51))
    assert kept.acks == (("teller", Acked("s/a", "chan", 50)),)
    assert kept.state == {"a": 100, "b": 0}  # nothing applied twice


def test_while_snapshot_fails_an_answer_given_again_goes_as_the_first_did():
    """No checkpoint can hold anything while ``snapshot()`` fails: first answers go out as
    they are (the failure is logged), and so does an answer given again, at once, not held
    for a checkpoint that may never come."""
    actor = account()
    actor.receiveMessage(Request("r1", Deposit(3), "caller"), "caller")
    actor.sent.clear()
    actor.snapshot_fails = True
    before = actor.snapshots
    actor.receiveMessage(Request("r1", Deposit(3), "caller"), "caller")
    assert [(to, r.id, r.value) for to, r in direct(actor)] == [("caller", "r1", 3)]
    assert checkpoints(actor) == [] and actor.snapshots - before == 1
    assert actor._sw_again is None


def test_a_tell_sent_again_then_a_new_one_keeps_the_new_one_unconfirmed_until_handled():
    """A resend followed by the channel's next message (a coroutine): the checkpoint taken
    for the resend, before the next message runs, neither counts nor confirms that message,
    which a successor would then skip while its sender never sends it again."""
    actor = account()
    first = Told(Deposit(1), "chan", 1, 1, "teller")
    actor.receiveMessage(first, "teller")
    actor.sent.clear()
    actor.receiveMessage(Batch((first, Told(Move(4), "chan", 2, 1, "teller"))), "teller")
    [kept] = checkpoints(actor)  # (the move awaits: its checkpoint comes at its end)
    assert kept.acks == (("teller", Acked("s/a", "chan", 1)),)
    assert dict(kept.marks)["chan"] == 2  # the next to handle: the move, not past it
    assert kept.state == {"a": 1, "b": 0}
    assert actor.moving is not None
    actor.moving.set()
    actor._sw_pump()
    assert checkpoints(actor)[-1].acks == (("teller", Acked("s/a", "chan", 2)),)


def retry_of(actor: Account) -> Retry:
    """The supervisor's level-1 retry of the failure the actor reported last."""
    [report] = [m for t, m in actor.sent if t == SUPERVISOR and isinstance(m, FailureReport)]
    return Retry(report.failure_id or 0, report.message, report.sender, 1, 1, "basic", report.info)


def test_a_coroutine_that_awaits_an_ask_is_checkpointed_whole():
    """The answer to ``await self.ask(...)`` resolves the coroutine through a callback: no
    checkpoint is taken there, with the state half changed, only when the coroutine ends."""
    actor = account()
    actor.receiveMessage(Request("t1", Transfer(4), "caller"), "caller")
    [call_id] = list(actor._sw_pending)
    actor.receiveMessage(Reply(call_id, "yes"), "elsewhere")
    assert direct(actor) == []
    [kept] = checkpoints(actor)
    assert kept.state == {"a": -4, "b": 4}
    assert [(to, reply.value) for to, reply in kept.replies] == [("caller", (-4, 4))]


def test_an_answer_given_again_is_kept_with_the_state_before_the_next_handler():
    """A resend in the same envelope as a handler that fails half way: its answer goes with
    a checkpoint of the state before that handler ran, not of the half-changed one (which
    a restart would then come back to)."""
    actor = account()
    actor.receiveMessage(Request("r1", Deposit(10), "caller"), "caller")
    actor.sent.clear()
    resend, failing = Request("r1", Deposit(10), "caller"), Request("r2", Withdraw(4), "other")
    actor.receiveMessage(Batch((resend, failing)), "caller")
    assert direct(actor) == []
    [kept] = checkpoints(actor)
    assert kept.state == {"a": 10, "b": 0}
    assert kept.replies == (("caller", Reply("r1", 10, alone=True)),)
    kinds = [type(m).__name__ for t, m in actor.sent if t == SUPERVISOR]
    assert kinds == ["Checkpoint", "FailureReport"]
    assert actor.a == 6  # (the failed handler's half: what happens to it is its recovery's)


def test_on_a_state_file_an_answer_given_again_mid_coroutine_waits_until_it_is_filed(tmp_path):
    """Where the actor files its own checkpoints, an answer a coroutine gave before it
    awaited is filed only when its turn ends: the same request coming again meanwhile is
    answered then too, not ahead of the file."""
    from stalwart.actors._state_file import latest

    actor = account_on_file(str(tmp_path))
    actor.receiveMessage(Request("p1", Pay(3), "caller"), "caller")  # answers, then awaits
    assert actor.paying is not None
    actor.sent.clear()
    actor.receiveMessage(Request("p1", Pay(3), "caller"), "caller")  # sent again
    assert direct(actor) == []
    assert latest(str(tmp_path), "s/a", 1 << 62) is None  # nothing filed yet
    actor.paying.set()
    actor._sw_pump()  # the coroutine ends: filed, then both answers leave
    assert latest(str(tmp_path), "s/a", 1 << 62)[1] == {"a": 3, "b": 0}
    assert [(to, r.id, r.value) for to, r in direct(actor)] == [("caller", "p1", 3)] * 2


def test_a_failed_tries_callback_is_not_kept_for_its_retry():
    """With ``retry_from_checkpoint``, a retry starts from the last checkpoint: the answer to a
    call the failed try made, arriving before the retry, is not counted by it (the retry
    makes the call again)."""
    actor = account(retry_from_checkpoint=True)
    actor.receiveMessage(Request("g1", Grow(), "caller"), "caller")
    [first_call] = list(actor._sw_pending)
    actor.receiveMessage(Reply(first_call, 5), "elsewhere")  # the failed try's call
    retry = retry_of(actor)
    actor.receiveMessage(retry, SUPERVISOR)
    [second_call] = [c for c in actor._sw_pending if c != first_call]
    actor.receiveMessage(Reply(second_call, 5), "elsewhere")
    assert actor.a == 5


def test_on_a_state_file_an_answer_filed_long_ago_is_given_again_at_once(tmp_path):
    """An unrelated coroutine under way does not hold up an answer that is filed already."""
    actor = account_on_file(str(tmp_path))
    actor.receiveMessage(Request("r1", Deposit(5), "caller"), "caller")  # answered and filed
    actor.receiveMessage(Request("p1", Pay(1), "payer"), "payer")  # a coroutine awaits
    actor.sent.clear()
    actor.receiveMessage(Request("r1", Deposit(5), "caller"), "caller")  # sent again
    assert [(to, r.id, r.value) for to, r in direct(actor)] == [("caller", "r1", 5)]
    assert actor.paying is not None
    actor.paying.set()
    actor._sw_pump()
