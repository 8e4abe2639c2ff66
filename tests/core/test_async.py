"""Async handlers and ``System.ask_async`` on both bases."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from typing import Any

import pytest

from stalwart import (
    ActorStopped,
    Child,
    RecoveryRequest,
    Supervisor,
    SystemStopped,
    Timeout,
    UnknownPath,
)
from stalwart.testing import wait_for_event, wait_until
from tests.core.async_actors import (
    FAILED_ONCE,
    Add,
    Bump,
    Bumps,
    Fan,
    FanWaitFor,
    Fetch,
    Flaky,
    Gate,
    Hold,
    Items,
    Ledger,
    Nap,
    NestedLoop,
    Notes,
    Offload,
    Open,
    Overlapping,
    Plain,
    Politely,
    Quit,
    Recorder,
    Step,
    Stepper,
)
from tests.support import wait_for


def tree(worker: type = Stepper) -> Supervisor:
    return Supervisor(
        "t",
        children=(
            Child("gate", Gate),
            Child("recorder", Recorder),
            Child("stepper", worker),
        ),
    )


def notes(system: Any) -> list[str]:
    return system.ask("t/recorder", Notes())  # type: ignore[no-any-return]


def asked_in_background(system: Any, msg: Any) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []

    def ask() -> None:
        try:
            answers.append(system.ask("t/stepper", msg, timeout=60))
        except Exception as exc:  # the test reads it
            answers.append(exc)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    return thread, answers


def test_an_async_handler_awaits_several_actors_at_once_and_answers(make_system, base):
    system = make_system(tree(), base=base)
    system.tell("t/gate", Open())
    assert system.ask("t/stepper", Fan(("a", "b", "c")), timeout=30) == ["a", "b", "c"]


def test_at_max_concurrency_one_a_message_waits_for_the_handler_under_way(make_system, base):
    system = make_system(tree(), base=base)
    first, answers = asked_in_background(system, Step("A"))
    wait_for(lambda: "A-start" in notes(system))
    system.tell("t/stepper", Plain("B"))  # comes while A awaits the gate
    system.tell("t/gate", Open())
    first.join(60)
    assert answers == ["A"]
    assert system.ask("t/stepper", Plain("C")) == "C"
    assert notes(system) == ["A-start", "A-end", "B", "C"]


def test_above_one_a_second_handler_runs_while_the_first_awaits(make_system, base):
    system = make_system(tree(Overlapping), base=base)
    first, first_answer = asked_in_background(system, Step("A"))
    second, second_answer = asked_in_background(system, Step("B"))
    # both started before the gate opened: they overlap
    wait_for(lambda: {"A-start", "B-start"} <= set(notes(system)))
    # a third, plain, is answered meanwhile (its answer confirms only itself to the root)
    assert system.ask("t/stepper", Plain("C")) == "C"
    assert "A-end" not in notes(system)
    system.tell("t/gate", Open())
    first.join(60)
    second.join(60)
    assert (first_answer, second_answer) == (["A"], ["B"])


def test_a_failing_async_handler_goes_through_the_levels(make_system, base):
    system = make_system(tree(), base=base)
    assert system.ask("t/stepper", Flaky(fails=1), timeout=30) == 2  # retried in place
    failure = wait_for_event(system, "failure", "t/stepper")
    assert "ConnectionRefusedError" in failure.detail
    recovered = wait_for_event(system, "recovered", "t/stepper")
    assert recovered.level == 1


def test_a_restart_cancels_the_awaiting_handler_and_the_next_instance_handles_its_message(
    make_system, base
):
    system = make_system(tree(), base=base)
    asker, answers = asked_in_background(system, Step("A"))
    wait_for(lambda: "A-start" in notes(system))
    result = system.request_recovery(RecoveryRequest("t/stepper", 3, "test restart"))
    assert result.ok
    # the coroutine saw its cancellation (its except/finally ran), and its request went on
    wait_for(lambda: notes(system).count("A-start") == 2)
    assert notes(system)[:3] == ["A-start", "A-cancelled", "A-start"]
    system.tell("t/gate", Open())
    asker.join(60)
    assert answers == ["A"]


def test_asyncio_timers_and_sockets_work_inside_a_handler(make_system, base):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve_one() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"hello from the socket\n")

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        system = make_system(tree(), base=base)
        assert system.ask("t/stepper", Nap(0.05)) == "rested"
        assert system.ask("t/stepper", Fetch(port), timeout=30) == "hello from the socket"
    finally:
        thread.join(30)
        server.close()


def test_thousands_of_concurrent_ask_async_from_one_loop_each_get_their_answer(make_system, base):
    # (10,000 on multiproc too in benchmarks/bench_async.py: Thespian's TCP carries ~300 a second)
    count = 10_000 if base == "simple" else 1_000
    system = make_system(tree(), base=base)
    system.tell("t/gate", Open())

    async def ask_all() -> list[Any]:
        asks = (system.ask_async("t/gate", Hold(str(i)), timeout=300) for i in range(count))
        return await asyncio.gather(*asks)

    assert asyncio.run(ask_all()) == [str(i) for i in range(count)]


def test_ask_async_raises_what_ask_raises(make_system, base):
    system = make_system(tree(), base=base)

    async def asks() -> None:
        with pytest.raises(UnknownPath, match="t/nobody"):
            await system.ask_async("t/nobody", Plain("x"))
        with pytest.raises(Timeout, match="t/stepper"):
            await system.ask_async("t/stepper", Step("never"), timeout=0.3)

    asyncio.run(asks())


def test_a_tell_whose_async_handler_was_under_way_when_its_process_was_killed_is_handled_again(
    make_system,
):
    system = make_system(tree(), base="multiproc")
    pid = system.status()["t/stepper"].pid
    system.tell("t/stepper", Step("K"))  # a tell: confirmed only once its handler is done
    wait_for(lambda: "K-start" in notes(system))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: notes(system).count("K-start") == 2)  # sent again to the next instance
    system.tell("t/gate", Open())
    wait_for(lambda: "K-end" in notes(system))
    assert notes(system) == ["K-start", "K-start", "K-end"]


# -- what a review of the first version found ------------------------------------------------
def test_a_handler_awaiting_an_executor_job_goes_on_and_so_does_the_actor(make_system, base):
    system = make_system(tree(), base=base)
    assert system.ask("t/stepper", Offload(1000), timeout=30) == sum(range(1000))
    assert system.ask("t/stepper", Plain("behind it"), timeout=30) == "behind it"


def test_many_plain_messages_queued_behind_an_awaiting_handler_are_all_handled_in_order(
    make_system, base
):
    count = 1000 if base == "simple" else 200
    system = make_system(tree(), base=base)
    first, answers = asked_in_background(system, Step("A"))
    wait_for(lambda: "A-start" in notes(system))
    for n in range(count):
        system.tell("t/stepper", Bump(n))
    system.tell("t/gate", Open())
    first.join(60)
    assert answers == ["A"]
    assert system.ask("t/stepper", Bumps(), timeout=60) == list(range(count))


def test_an_async_handler_that_stops_its_actor_is_not_handled_again(make_system, base):
    system = make_system(tree(), base=base)
    assert system.ask("t/stepper", Plain("before")) == "before"  # (its way to the recorder known)
    system.tell("t/stepper", Quit())
    system.tell("t/stepper", Plain("after"))  # handled by the next instance
    wait_for(lambda: "after" in notes(system))
    assert notes(system) == ["before", "quit-1", "after"]


def test_a_cancelled_handler_whose_cleanup_awaits_still_hands_its_message_on(make_system, base):
    system = make_system(tree(), base=base)
    asker, answers = asked_in_background(system, Politely("A"))
    wait_for(lambda: "A-start" in notes(system))
    assert system.request_recovery(RecoveryRequest("t/stepper", 3, "test restart")).ok
    wait_for(lambda: notes(system).count("A-start") == 2)
    system.tell("t/gate", Open())
    asker.join(60)
    assert answers == ["A"]
    assert notes(system)[:3] == ["A-start", "A-cancelled", "A-start"]


def test_a_retry_waits_for_the_handler_under_way_before_it_rolls_the_state_back(make_system):
    FAILED_ONCE.clear()
    ledger = Supervisor(
        "t",
        children=(
            Child("gate", Gate),
            Child("recorder", Recorder),
            Child("stepper", Ledger, retry_from_checkpoint=True),
        ),
    )
    system = make_system(ledger, base="simple")
    a, a_answer = asked_in_background(system, Add("a", fail_once=True))
    b, b_answer = asked_in_background(system, Add("b", wait=True))
    wait_for(lambda: "b-waits" in notes(system))
    wait_for_event(system, "failure", "t/stepper")  # a failed; its retry waits for b
    system.tell("t/gate", Open())
    a.join(60)
    b.join(60)
    # as with plain handlers: b's checkpoint kept b, and a's retry went back to it
    assert system.ask("t/stepper", Items()) == ["b", "a"]
    assert (a_answer, b_answer) == ([["b", "a"]], [["b"]])


def test_tasks_a_handler_creates_belong_to_its_message(make_system, base):
    system = make_system(tree(), base=base)
    system.tell("t/gate", Open())
    began = time.time()
    assert system.ask("t/stepper", Plain("short"), timeout=2.0) == "short"
    wait_until(lambda: time.time() > began + 2.2)  # that request's deadline has passed
    # the asks of gather's and wait_for's tasks are this message's, not the expired one's
    assert system.ask("t/stepper", Fan(("a", "b")), timeout=30) == ["a", "b"]
    assert system.ask("t/stepper", FanWaitFor(("c", "d")), timeout=30) == ["c", "d"]
    assert [e for e in system.events() if e.kind == "failure"] == []


def test_ask_async_still_out_when_its_system_shuts_down_ends_with_a_clear_error(make_system, base):
    system = make_system(tree(), base=base)

    async def ask_then_shut_down() -> None:
        out = asyncio.ensure_future(system.ask_async("t/stepper", Step("never"), timeout=60))
        await asyncio.to_thread(wait_for, lambda: "never-start" in notes(system))
        await asyncio.to_thread(system.shutdown)
        with pytest.raises((ActorStopped, SystemStopped)):  # (not a Timeout a minute later)
            await out

    asyncio.run(ask_then_shut_down())


def test_a_plain_handler_that_waited_its_turn_may_run_an_event_loop_of_its_own(make_system):
    system = make_system(tree(), base="simple")
    first, answers = asked_in_background(system, Step("A"))
    wait_for(lambda: "A-start" in notes(system))
    second, doubled = asked_in_background(system, NestedLoop(21))  # waits behind A
    system.tell("t/gate", Open())
    first.join(60)
    second.join(60)
    assert (answers, doubled) == (["A"], [42])
