"""In one process, a caller waiting for the actor thread lends it its CPU, and nothing
keeps the one CPU after: not the caller, not the actor thread, not a thread an actor starts."""

from __future__ import annotations

import os
import threading
from typing import Any

import msgspec
import pytest

from stalwart import Child, ManagedActor, Supervisor, Timeout, start
from stalwart.supervisors._shared_cpu import _GETCPU
from tests.support import GATES

pytestmark = pytest.mark.skipif(
    _GETCPU is None or len(os.sched_getaffinity(0)) < 2,
    reason="needs sched_getcpu and sched_setaffinity (Linux) and two CPUs for this process",
)


class Look(msgspec.Struct, frozen=True):
    caller: int  # the asking thread's native id
    gate: str = ""  # wait for this gate first (GATES)


class Seen(msgspec.Struct, frozen=True):
    own: list[int]  # the actor thread's CPUs as its handler runs
    caller: list[int]  # the waiting caller's
    started: list[int]  # those of a thread the handler starts


class Looker(ManagedActor):
    def receiveMsg_Look(self, msg: Look, sender: Any) -> None:
        if msg.gate:
            GATES[msg.gate].wait()
        own = sorted(os.sched_getaffinity(0))
        caller = sorted(os.sched_getaffinity(msg.caller))
        started: list[int] = []
        thread = threading.Thread(target=lambda: started.extend(sorted(os.sched_getaffinity(0))))
        thread.start()
        thread.join()
        self.reply(sender, Seen(own, caller, started))


def _tree() -> Supervisor:
    return Supervisor("app", children=[Child("looker", Looker)])


def test_a_waiting_caller_is_on_one_cpu_and_the_actor_thread_runs_on_all_of_its_own() -> None:
    everything = sorted(os.sched_getaffinity(0))
    with start(_tree(), report_path=None) as system:
        for _ in range(50):
            seen = system.ask("app/looker", Look(threading.get_native_id()))
            assert len(seen.caller) == 1 and seen.caller[0] in everything
            assert seen.own == everything
            assert seen.started == everything  # (a thread an actor starts: not confined)
            assert sorted(os.sched_getaffinity(0)) == everything


def test_a_caller_whose_ask_times_out_has_its_cpus_back_and_the_actor_thread_its_own() -> None:
    everything = sorted(os.sched_getaffinity(0))
    GATES["shared-cpu"] = gate = threading.Event()
    try:
        with start(_tree(), report_path=None) as system:
            me = threading.get_native_id()
            with pytest.raises(Timeout):
                system.ask("app/looker", Look(me, gate="shared-cpu"), timeout=0.2)
            assert sorted(os.sched_getaffinity(0)) == everything
            gate.set()  # (the handler of the ask that timed out runs now, and then the next)
            seen = system.ask("app/looker", Look(me))
            assert seen.own == everything and len(seen.caller) == 1
    finally:
        gate.set()
        GATES.pop("shared-cpu", None)


def test_callers_on_their_own_cpus_asking_at_once_each_get_theirs_back() -> None:
    everything = sorted(os.sched_getaffinity(0))
    masks = [set(everything), {everything[0]}, {everything[-1]}, set(everything)]
    wrong: list[str] = []

    def ask_many(system: Any, mask: set[int]) -> None:
        os.sched_setaffinity(0, mask)
        for _ in range(40):
            seen = system.ask("app/looker", Look(threading.get_native_id()))
            if seen.own != everything or seen.started != everything:
                wrong.append(f"actor thread on {seen.own}, a thread it started on {seen.started}")
            if len(seen.caller) != 1 or not set(seen.caller) <= mask:
                wrong.append(f"a caller of {sorted(mask)} waited on {seen.caller}")
            if os.sched_getaffinity(0) != mask:
                wrong.append(f"a caller of {sorted(mask)} got {sorted(os.sched_getaffinity(0))}")

    with start(_tree(), report_path=None) as system:
        callers = [threading.Thread(target=ask_many, args=(system, mask)) for mask in masks]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        assert wrong == []
        seen = system.ask("app/looker", Look(threading.get_native_id()))
        assert seen.own == everything


def test_an_actor_thread_started_on_fewer_cpus_is_never_lent_another() -> None:
    everything = sorted(os.sched_getaffinity(0))
    first, last = everything[0], everything[-1]
    result: list[Any] = []

    def run() -> None:  # (the actor thread inherits the CPUs of the thread that starts it)
        os.sched_setaffinity(0, {first})
        with start(_tree(), report_path=None) as system:
            asker = threading.Thread(
                target=lambda: (
                    os.sched_setaffinity(0, {last}),
                    result.append(system.ask("app/looker", Look(threading.get_native_id()))),
                    result.append(sorted(os.sched_getaffinity(0))),
                )
            )
            asker.start()
            asker.join()

    starter = threading.Thread(target=run)
    starter.start()
    starter.join()
    seen, after = result
    assert seen.own == [first] and seen.started == [first] and seen.caller == [last]
    assert after == [last]
