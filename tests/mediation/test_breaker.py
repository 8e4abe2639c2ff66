"""Breaker actors in the tree: open, fail fast, probe, close; every fallback; no restart storm."""

import os
import signal
import threading
from typing import Any

import msgspec
import pytest

from stalwart import (
    Breaker,
    BreakerOpen,
    Child,
    LevelPolicy,
    ManagedActor,
    QueuedForLater,
    RecoveryRequest,
    Supervisor,
    Timeout,
)
from stalwart.strategies import CircuitOpenError
from stalwart.supervisors import (
    Alternative,
    CachedReply,
    DefaultReply,
    QueueForLater,
    ReducedFunctionality,
)
from stalwart.testing import wait_for_event
from tests.support import (
    BarrierWorker,
    Charge,
    Charged,
    Client,
    GetLog,
    GetOrders,
    HeldWork,
    Never,
    Payments,
    Ping,
    Relay,
    Shop,
    Work,
    Worker,
    pids_in,
    process_gone,
    queued_requests,
    wait_for,
)


def breaker_states(system, path):
    return [e.detail for e in system.events() if e.kind == "breaker" and e.path == path]


def tree(flag, **breaker):
    settings = {"failure_threshold": 2, "recovery_timeout": 0.5, "success_threshold": 1}
    settings.update(breaker)
    return Supervisor(
        "s",
        children=[
            Child("pay", Payments, options={"down_flag": str(flag)}, breaker=Breaker(**settings)),
            Child("client", Client),
        ],
    )


def orders(system):
    return system.ask("s/pay.protected", GetOrders())


def test_opens_fails_fast_probes_and_closes(make_system, base, tmp_path):
    flag = tmp_path / "down"
    system = make_system(tree(flag), base=base)
    assert system.ask("s/pay", Charge(1)) == Charged(1, "s/pay.protected")
    flag.write_text("down")
    from stalwart import DownstreamError

    for order in (2, 3):
        with pytest.raises(DownstreamError, match="provider down"):
            system.ask("s/pay", Charge(order))
    wait_for(lambda: breaker_states(system, "s/pay") == ["open"])
    # the actor answered with errors (it did not fail): the breaker's trip is the error event
    trip = wait_for(lambda: system.correlation().events)
    assert trip == 1
    calls = orders(system)["calls"]
    with pytest.raises(BreakerOpen) as info:
        system.ask("s/pay", Charge(4))
    assert isinstance(info.value, CircuitOpenError) and 0 < info.value.remaining_s <= 0.5
    # an actor that calls it fails at once, without a message reaching the protected actor
    reply = system.ask("s/client", Relay("s/pay", Charge(5)))
    assert (reply.ok, reply.error) == (False, "BreakerOpen")
    assert orders(system)["calls"] == calls
    flag.unlink()  # the provider is back
    opened = wait_for_event(system, "breaker", path="s/pay")
    assert opened.detail == "open"
    # after its recovery_timeout the breaker lets a trial call through
    assert wait_for_event(system, "breaker", path="s/pay", since=opened.seq).detail == "half_open"
    assert system.ask("s/pay", Charge(6)) == Charged(6, "s/pay.protected")  # the probe
    wait_for(lambda: breaker_states(system, "s/pay") == ["open", "half_open", "closed"])
    assert system.ask("s/client", Relay("s/pay", Charge(7))).ok
    assert orders(system)["orders"] == [1, 6, 7]
    assert system.status()["s/pay"].breaker == "closed"


def test_the_breakers_health_score_follows_its_calls_in_status(make_system, base, tmp_path):
    flag = tmp_path / "down"
    system = make_system(tree(flag, failure_threshold=3), base=base)
    health = lambda: system.status()["s/pay"].breaker_health  # noqa: E731
    assert health() == 100 and system.status()["s/pay.protected"].breaker_health is None
    assert system.ask("s/pay", Charge(1)) == Charged(1, "s/pay.protected")
    flag.write_text("down")
    from stalwart import DownstreamError

    with pytest.raises(DownstreamError):
        system.ask("s/pay", Charge(2))
    wait_for(lambda: health() == 50)  # closed: 1 failure in 2 calls
    with pytest.raises(DownstreamError):
        system.ask("s/pay", Charge(3))
    wait_for(lambda: health() == 33)  # closed: 2 failures in 3 calls
    with pytest.raises(DownstreamError):
        system.ask("s/pay", Charge(4))
    wait_for(lambda: (system.status()["s/pay"].breaker, health()) == ("open", 0))


def test_the_tree_breaker_takes_the_slow_call_and_time_window_settings(make_system):
    """A dependency that answers, but slowly, opens a breaker told to count slow calls
    (with no failure threshold, nothing else could open it)."""
    slow = Breaker(
        failure_threshold=None,
        slow_call_rate_threshold=100,
        slow_call_duration_s=0.05,
        minimum_calls=2,
        window_s=60,
        call_timeout_s=5,
    )
    system = make_system(Supervisor("s", children=[Child("w", Worker, breaker=slow)]))
    for n in (1, 2):  # each call takes at least 0.2 s: slow, though it succeeds
        assert system.ask("s/w", Work(n, sleep_s=0.2), timeout=10).id == n
    wait_for(lambda: breaker_states(system, "s/w") == ["open"])
    with pytest.raises(BreakerOpen):
        system.ask("s/w", Ping(3))


def open_breaker(system, flag):
    """Two failed charges trip it (their answers may already come from a fallback)."""
    flag.write_text("down")
    for order in (100, 101):
        try:
            system.ask("s/pay", Charge(order))
        except Exception:
            pass
    wait_for(lambda: breaker_states(system, "s/pay")[-1:] == ["open"])


def test_default_reply_answers_while_open(make_system, tmp_path):
    flag = tmp_path / "down"
    system = make_system(tree(flag, fallback=(DefaultReply("try later"),)))
    open_breaker(system, flag)
    assert system.ask("s/pay", Charge(1)) == "try later"


def test_cached_reply_answers_an_equal_message_within_its_ttl(make_system, tmp_path):
    flag = tmp_path / "down"
    system = make_system(tree(flag, fallback=(CachedReply(ttl_s=30), DefaultReply("none"))))
    assert system.ask("s/pay", Charge(9)) == Charged(9, "s/pay.protected")
    open_breaker(system, flag)
    assert system.ask("s/pay", Charge(9)) == Charged(9, "s/pay.protected")  # from the cache
    assert system.ask("s/pay", Charge(10)) == "none"  # not cached: the next fallback


def test_an_alternative_actor_answers_while_open(make_system, tmp_path):
    flag = tmp_path / "down"
    t = Supervisor(
        "s",
        children=[
            Child(
                "pay",
                Payments,
                options={"down_flag": str(flag)},
                breaker=Breaker(2, 0.5, 1, fallback=(Alternative("s/backup"),)),
            ),
            Child("backup", Payments),
        ],
    )
    system = make_system(t)
    open_breaker(system, flag)
    assert system.ask("s/pay", Charge(3)) == Charged(3, "s/backup")


def test_reduced_functionality_is_a_flag_the_callers_read(make_system, tmp_path):
    flag = tmp_path / "down"
    t = Supervisor(
        "s",
        children=[
            Child(
                "pay",
                Payments,
                options={"down_flag": str(flag)},
                breaker=Breaker(2, 30, 1, fallback=(ReducedFunctionality(),)),
            ),
            Child("shop", Shop, options={"payments": "s/pay"}),
        ],
    )
    system = make_system(t)
    system.ask("s/shop", Charge(1))  # the shop now sends to s/pay: it hears of its breaker
    assert system.ask("s/shop", GetLog()) == []
    open_breaker(system, flag)
    wait_for(lambda: system.ask("s/shop", GetLog()) == ["s/pay"])


def test_queued_requests_are_replayed_in_order_exactly_once_when_it_closes(
    make_system, base, tmp_path
):
    flag = tmp_path / "down"
    queue = tmp_path / "queue.db"
    system = make_system(tree(flag, fallback=(QueueForLater(str(queue)),)), base=base)
    open_breaker(system, flag)
    queued = [system.ask("s/pay", Charge(order)) for order in range(10, 16)]
    assert all(isinstance(q, QueuedForLater) for q in queued)
    assert [q.id for q in queued] == sorted(q.id for q in queued)
    flag.unlink()
    # half-open: the oldest queued request is the trial call; it closes the breaker and the
    # rest follow in order. The two charges that tripped the breaker were queued too.
    expected = [100, 101, 10, 11, 12, 13, 14, 15]
    wait_for(lambda: orders(system)["orders"] == expected)
    wait_for(lambda: breaker_states(system, "s/pay")[-2:] == ["half_open", "closed"])
    # every queued request has been answered and taken off the queue: nothing is left that
    # could be replayed a second time
    wait_for(lambda: queued_requests(queue) == 0)
    assert system.ask("s/pay", Charge(99)) == Charged(99, "s/pay.protected")
    assert orders(system)["orders"] == [*expected, 99]  # and nothing is replayed twice


def test_dependents_failing_because_of_an_open_breaker_are_held_not_restarted(
    make_system, tmp_path
):
    flag = tmp_path / "down"
    policy = LevelPolicy(basic_attempts=1, basic_delay_s=0.001, enhanced_attempts=1)
    t = Supervisor(
        "s",
        children=[
            Child("pay", Payments, options={"down_flag": str(flag)}, breaker=Breaker(2, 0.5, 1)),
            Child("shop", Shop, depends_on=["pay"], levels=policy, options={"payments": "s/pay"}),
        ],
    )
    system = make_system(t)
    open_breaker(system, flag)
    shop_pid = system.status()["s/shop"].incarnation
    for order in range(5):
        system.tell("s/shop", Charge(order))
    wait_for(lambda: len([e for e in system.events() if e.kind == "held"]) == 5)
    assert system.status()["s/shop"].restarts == 0  # no restart storm
    assert system.status()["s/shop"].incarnation == shop_pid
    flag.unlink()
    wait_for(lambda: sorted(orders(system)["orders"]) == [0, 1, 2, 3, 4], timeout=10)
    assert system.status()["s/shop"].restarts == 0
    assert [e.kind for e in system.events()].count("resumed") >= 1


def test_a_breaker_started_again_says_it_is_closed_and_its_dependents_resume(
    make_system, base, tmp_path
):
    # a new instance of a breaker starts closed: the root (status, /metrics, callers) and
    # the supervisor (which holds the dependents' failures while it is open) must hear it
    flag = tmp_path / "down"
    policy = LevelPolicy(basic_attempts=1, basic_delay_s=0.001, enhanced_attempts=1)
    guard = Breaker(failure_threshold=2, recovery_timeout=3600, success_threshold=1)
    t = Supervisor(
        "s",
        children=[
            Child("pay", Payments, options={"down_flag": str(flag)}, breaker=guard),
            Child("shop", Shop, depends_on=["pay"], levels=policy, options={"payments": "s/pay"}),
        ],
    )
    system = make_system(t, base=base)
    open_breaker(system, flag)
    for order in range(3):
        system.tell("s/shop", Charge(order))
    wait_for(lambda: len([e for e in system.events() if e.kind == "held"]) == 3)
    flag.unlink()
    assert system.request_recovery(RecoveryRequest("s/pay", 3, "test")).ok
    wait_for(lambda: system.status()["s/pay"].breaker == "closed")
    assert breaker_states(system, "s/pay")[-2:] == ["open", "closed"]
    wait_for(lambda: sorted(orders(system)["orders"]) == [0, 1, 2], timeout=10)


class Held(msgspec.Struct, frozen=True):
    """How many charges the provider holds unanswered."""


class Fail(msgspec.Struct, frozen=True):
    """Answer the charges held with an error."""


class HoldingPay(ManagedActor):
    """A provider that holds its charges until told to fail them."""

    def on_start(self) -> None:
        self.held: list[Any] = []

    def receiveMsg_Charge(self, msg: Charge, sender: Any) -> None:
        self.held.append(sender)

    def receiveMsg_Held(self, msg: Held, sender: Any) -> None:
        self.reply(sender, len(self.held))

    def receiveMsg_Fail(self, msg: Fail, sender: Any) -> None:
        for caller in self.held:
            self.reply_error(caller, ConnectionError("provider down"))
        self.held = []
        self.reply(sender, True)


def test_a_replaced_breakers_late_outcome_does_not_speak_for_its_successor(make_system, base):
    # a breaker instance retired (restarted) while a call it relayed was out still passes
    # the answer on: its failure opens that instance's breaker, not the path's
    guard = Breaker(failure_threshold=1, recovery_timeout=3600, call_timeout_s=30)
    tree = Supervisor("s", children=[Child("pay", HoldingPay, breaker=guard), Child("c", Client)])
    system = make_system(tree, base=base)
    outcome: list[Any] = []
    caller = threading.Thread(
        target=lambda: outcome.append(system.ask("s/c", Relay("s/pay", Charge(1), 30), 60))
    )
    caller.start()
    wait_for(lambda: system.ask("s/pay.protected", Held()) == 1)  # (relayed by instance 1)
    assert system.request_recovery(RecoveryRequest("s/pay", 3, "test")).ok
    assert system.ask("s/pay.protected", Fail())  # its answer goes back through instance 1
    caller.join(60)
    assert outcome and not outcome[0].ok
    assert system.status()["s/pay"].breaker in ("", "closed")
    assert "open" not in breaker_states(system, "s/pay")
    assert system.status()["s/pay"].incarnation > 1


def test_a_call_the_protected_actor_never_answers_times_out_and_counts(make_system):
    t = Supervisor(
        "s", children=[Child("w", Worker, breaker=Breaker(2, 30, 1, call_timeout_s=0.2))]
    )
    system = make_system(t)
    for _ in range(2):
        with pytest.raises(Timeout, match=r"no reply from s/w.protected within 0.2s"):
            system.ask("s/w", Never(), timeout=5)
    wait_for(lambda: breaker_states(system, "s/w") == ["open"])
    with pytest.raises(BreakerOpen):
        system.ask("s/w", Ping(1))


def test_a_call_whose_protected_actor_is_killed_is_answered_once_by_the_new_one(
    make_system, tmp_path
):
    t = Supervisor("s", children=[Child("w", BarrierWorker, breaker=Breaker(call_timeout_s=20))])
    system = make_system(t, base="multiproc")
    old_pid = system.status()["s/w.protected"].pid
    started, release = tmp_path / "started", tmp_path / "release"

    def kill_when_busy():
        wait_for(lambda: old_pid in pids_in(started), timeout=15)  # inside the handler
        os.kill(old_pid, signal.SIGKILL)
        wait_for(lambda: process_gone(old_pid), timeout=15)
        release.touch()  # the next instance may finish it

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    done = system.ask("s/w", HeldWork(7, str(started), str(release)), timeout=20)
    killer.join()
    assert pids_in(started) == [old_pid, done.pid]
    assert done.id == 7 and done.pid != old_pid and done.attempts == 1
    assert system.ask("s/w", GetLog()) == [7]  # handled once, by the new instance
    assert breaker_states(system, "s/w") == []  # a crash the tree recovered is no failure


def test_a_bad_breaker_setting_names_the_field():
    from stalwart import SpecError

    with pytest.raises(SpecError, match=r"pay: breaker.failure_threshold"):
        Child("pay", Payments, breaker=Breaker(failure_threshold=0))
    with pytest.raises(SpecError, match=r"pay: breaker.call_timeout_s"):
        Child("pay", Payments, breaker=Breaker(call_timeout_s=0))
