"""Messages: bad input gets clear errors, nothing is lost while an actor restarts."""

import math
import os
import signal
import threading

import pytest

from stalwart import (
    BadMessage,
    Child,
    LevelPolicy,
    RecoveryRequest,
    Supervisor,
    Timeout,
    UnknownMessage,
    UnknownPath,
)
from stalwart.actors._runtime import ActorExitRequest
from stalwart.strategies import Exponential
from stalwart.testing import wait_for_event
from tests.support import (
    RESTART_FIRST,
    Burst,
    Burster,
    CallThenPing,
    Client,
    GatedBurst,
    GatedBurster,
    GetLog,
    LateBurst,
    Never,
    Ping,
    Relay,
    Resender,
    Say,
    Unhandled,
    Work,
    Worker,
    pids_in,
    process_gone,
    wait_for,
)


@pytest.fixture
def tree():
    return Supervisor(
        "s",
        children=[
            Child("w", Worker, levels=RESTART_FIRST),
            Child("client", Client),
        ],
    )


def test_an_unknown_message_type_gets_an_error_naming_it_and_the_actor_keeps_running(
    make_system, base, tree
):
    system = make_system(tree, base=base)
    before = system.status()["s/w"]
    with pytest.raises(UnknownMessage, match="Unhandled") as info:
        system.ask("s/w", Unhandled(1))
    assert info.value.path == "s/w"
    after = system.status()["s/w"]
    assert (after.incarnation, after.restarts) == (before.incarnation, 0)
    assert system.ask("s/w", Ping(5)).n == 5


def test_an_unknown_path_is_named_in_the_error(make_system, base, tree):
    system = make_system(tree, base=base)
    with pytest.raises(UnknownPath, match="'s/nope'"):
        system.ask("s/nope", Ping())
    with pytest.raises(UnknownPath):
        system.tell("nowhere", Ping())
    reply = system.ask("s/client", Relay("s/missing", Ping()))
    assert (reply.ok, reply.error) == (False, "UnknownPath")
    assert "s/missing" in reply.detail


def test_a_malformed_message_is_refused_naming_the_field(make_system, base, tree):
    system = make_system(tree, base=base)
    with pytest.raises(BadMessage, match=r"Ping: Expected `int`, got `str` - at `\$.n`"):
        system.ask("s/w", Ping("seven"))
    with pytest.raises(BadMessage, match=r"Say: Expected `str`, got `bytes` - at `\$.last`"):
        system.tell("s/w", Say(1, b"bytes are not text"))  # (not passed off as base64 text)
    with pytest.raises(BadMessage, match=r"ActorExitRequest is one of Thespian's own"):
        system.ask("s/w", ActorExitRequest())
    assert system.ask("s/w", Ping(7)).n == 7


def test_an_ask_without_an_answer_times_out_clearly(make_system, base, tree):
    system = make_system(tree, base=base)
    with pytest.raises(Timeout, match=r"no reply from s/w within 0\.3s"):
        system.ask("s/w", Never(), timeout=0.3)
    reply = system.ask("s/client", Relay("s/w", Never(), timeout=0.2))
    assert (reply.ok, reply.error) == (False, "Timeout")


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, "1", True])
def test_a_timeout_that_could_not_wait_is_refused_before_anything_is_sent(timeout, make_system):
    """At 0 or less the call would fail before an answer could come, yet what it asked for
    would be done all the same: it is refused, naming the timeout, and nothing is sent."""
    system = make_system(Supervisor("s", children=[Child("w", Worker)]))
    with pytest.raises(BadMessage, match=r"^timeout: .*seconds > 0"):
        system.ask("s/w", Ping(1), timeout=timeout)
    with pytest.raises(BadMessage, match=r"^timeout: .*seconds > 0"):
        system.start_child("s", Child("x", Worker), timeout=timeout)
    assert [c.name for c in system.which_children("s")] == ["w"]  # (x was never started)
    assert system.ask("s/w", Ping(2), timeout=5).n == 2


def test_actors_call_each_other_by_path(make_system, base, tree):
    system = make_system(tree, base=base)
    reply = system.ask("s/client", Relay("s/w", Ping(11)))
    assert reply.ok and reply.value.n == 11 and reply.value.path == "s/w"


def test_messages_sent_during_a_restart_are_delivered_after_it_in_order(make_system, base):
    tree = Supervisor("s", children=[Child("c", Client), Child("b", Burster)])
    system = make_system(tree, base=base)
    assert system.ask("s/b", Burst("s/c", 200)) == "sent"
    wait_for(
        lambda: system.status()["s/c"].restarts == 1 and system.status()["s/c"].state == "running",
        timeout=10,
    )
    wait_for(lambda: len(system.ask("s/c", GetLog())) == 200, timeout=10)
    assert system.ask("s/c", GetLog()) == list(range(200))


@pytest.mark.parametrize("how", ["restart", "sigkill"])
def test_what_a_busy_sender_sends_to_a_replaced_instance_reaches_the_new_one(
    make_system, how, tmp_path
):
    # the sender is inside one handler while its target is replaced, so it still holds
    # the old address; it sends once the old instance is gone (released, or killed)
    tree = Supervisor("s", children=[Child("c", Client), Child("b", GatedBurster)])
    system = make_system(tree, base="multiproc")
    assert system.ask("s/b", LateBurst("s/c", 1, 0)) == "sent"  # now it has the address
    wait_for(lambda: system.ask("s/c", GetLog()) == [0])
    old = system.status()["s/c"].pid
    started, release = tmp_path / "started", tmp_path / "release"
    sent: list[object] = []
    burst = GatedBurst("s/c", 10, str(started), str(release))
    sender = threading.Thread(target=lambda: sent.append(system.ask("s/b", burst, timeout=30)))
    sender.start()
    wait_for(lambda: pids_in(started), timeout=10)  # the sender is inside its handler
    if how == "restart":
        assert system.request_recovery(RecoveryRequest("s/c", 3, "replace it")).ok
    else:
        os.kill(old, signal.SIGKILL)
    # the old instance forwards for 2 s, then for as long as traffic goes on, then leaves
    wait_for(lambda: process_gone(old), timeout=15)
    release.touch()
    sender.join(30)
    assert sent == ["sent"]
    # a SIGKILL reaches the tree as an exit notice, on its own time: wait for the new instance
    wait_for(lambda: (s := system.status()["s/c"]).pid not in (0, old) and s.state == "running")
    log = wait_for(
        lambda: (lambda h: h if len(h) == 11 else None)(system.ask("s/c", GetLog())), timeout=15
    )
    assert sorted(log) == [0, *range(10)]  # none lost, none twice


def test_the_failed_message_and_the_ones_queued_behind_it_reach_the_new_instance(
    make_system, base, tmp_path
):
    tree = Supervisor("s", children=[Child("w", Worker, levels=RESTART_FIRST)])
    system = make_system(tree, base=base)
    system.ask("s/w", Work(1))
    # fails once: restart, redelivered. Its attempts are counted in a file, not in the
    # instance's checkpoint, which may or may not include the failed attempt when the
    # old instance is replaced (that depends on timing)
    system.tell("s/w", Work(2, fail_times=1, counter=str(tmp_path / "attempts")))
    for i in range(3, 10):
        system.tell("s/w", Work(i))
    log = wait_for(lambda: (lambda h: h if len(h) == 9 else None)(system.ask("s/w", GetLog())))
    assert sorted(log) == list(range(1, 10))
    assert system.status()["s/w"].restarts == 1


def test_checkpointed_state_survives_a_restart(make_system, base, tree):
    system = make_system(tree, base=base)
    for i in range(3):
        system.ask("s/w", Work(i))
    assert system.request_recovery(RecoveryRequest("s/w", 3)).ok
    pong = system.ask("s/w", Ping())
    assert pong.state["handled"] == [0, 1, 2]
    assert pong.incarnation > 1


def test_requested_recovery_of_an_unknown_path_fails_with_a_reason(make_system, base, tree):
    system = make_system(tree, base=base)
    result = system.request_recovery(RecoveryRequest("s/ghost", 3))
    assert not result.ok and "unknown actor path 's/ghost'" in result.detail
    with pytest.raises(ValueError, match="level"):
        RecoveryRequest("s/w", 9)


def test_requested_recovery_at_levels_one_and_two_runs_the_hooks(make_system, base, tree):
    system = make_system(tree, base=base)
    for level in (1, 2):
        result = system.request_recovery(RecoveryRequest("s/w", level, "reconnect please"))
        assert result.ok and result.level == level
    assert system.status()["s/w"].restarts == 0


def test_a_request_sent_again_while_it_is_being_recovered_is_handled_once(
    make_system, base, tmp_path
):
    flag = tmp_path / "backend-down"
    flag.write_text("down")
    patient = LevelPolicy(
        basic_attempts=1, enhanced_attempts=500, backoff=Exponential(initial=0.02).capped(0.05)
    )
    t = Supervisor(
        "s",
        children=[
            Child("w", Worker, levels=patient),
            Child("a", Client),
            Child("b", Resender),
        ],
    )
    system = make_system(t, base=base)
    work = Work(5, fail_while=str(flag))
    replies: dict[str, object] = {}

    def relay():
        replies["a"] = system.ask(
            "s/a", Relay("s/w", work, timeout=20, request_id="order-5"), timeout=25
        )

    first = threading.Thread(target=relay)
    first.start()
    wait_for_event(system, "failure", path="s/w")
    # the same request, while the first copy is retried (it fails for as long as the flag
    # exists); the reply says that s/w has taken it in
    again = CallThenPing("s/w", work, request_id="order-5")
    assert system.ask("s/b", again, timeout=25) == "taken in"
    flag.unlink()
    first.join(30)
    replies["b"] = wait_for(lambda: system.ask("s/b", GetLog()))[0]
    assert replies["a"].ok and replies["b"].ok, replies
    assert replies["a"].value == replies["b"].value  # one answer, sent to both
    assert system.ask("s/w", GetLog()) == [5]  # handled once
