"""In one process, a caller waiting alone for the actor thread lends it its CPU, and
nothing keeps the one CPU after: not the caller (also when interrupted), not the actor
thread, not a thread an actor starts, not a system in the process a fork left behind."""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from stalwart import Child, ManagedActor, Supervisor, Timeout, start
from stalwart.supervisors._shared_cpu import _GETCPU, SharedCpu
from tests.support import GATES, wait_for


def _may_set_cpus() -> bool:
    try:
        os.sched_setaffinity(0, os.sched_getaffinity(0))
    except (OSError, AttributeError):
        return False
    return _GETCPU is not None and len(os.sched_getaffinity(0)) >= 2


pytestmark = pytest.mark.skipif(
    not _may_set_cpus(),
    reason="needs Linux's sched_getcpu and sched_setaffinity, allowed, and two CPUs here",
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
    # (a caller lends its CPU only while no other waits: the actor thread is busy then)
    everything = sorted(os.sched_getaffinity(0))
    masks = [set(everything), {everything[0]}, {everything[-1]}, set(everything)]
    wrong: list[str] = []

    def ask_many(system: Any, mask: set[int]) -> None:
        os.sched_setaffinity(0, mask)
        for _ in range(40):
            seen = system.ask("app/looker", Look(threading.get_native_id()))
            if seen.own != everything or seen.started != everything:
                wrong.append(f"actor thread on {seen.own}, a thread it started on {seen.started}")
            if set(seen.caller) != mask and (len(seen.caller) != 1 or not set(seen.caller) <= mask):
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


def test_with_lend_cpu_off_a_waiting_caller_keeps_all_its_cpus() -> None:
    everything = sorted(os.sched_getaffinity(0))
    with start(_tree(), report_path=None, lend_cpu=False) as system:
        for _ in range(20):
            seen = system.ask("app/looker", Look(threading.get_native_id()))
            assert seen.caller == everything and seen.own == everything


def test_a_process_forked_from_a_running_system_never_confines_its_actor_thread() -> None:
    everything = sorted(os.sched_getaffinity(0))
    with start(_tree(), report_path=None) as system:
        system.ask("app/looker", Look(threading.get_native_id()))
        wait_for(lambda: system._transport.cpu.idle)  # type: ignore[union-attr]
        pid = os.fork()
        if pid == 0:  # (the system's copy here has no actor thread: its asks time out)
            code = 1
            try:
                system.ask("app/looker", Look(threading.get_native_id()), timeout=0.2)
            except Timeout:
                code = 0
            finally:
                os._exit(code)
        reaped: list[int] = []

        def child_ended() -> bool:
            got, status = os.waitpid(pid, os.WNOHANG)
            if got:
                reaped.append(os.waitstatus_to_exitcode(status))
            return bool(got)

        try:
            wait_for(child_ended, timeout=60)
        finally:
            if not reaped:  # (it hangs: no process is left behind)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        assert reaped == [0]
        seen = system.ask("app/looker", Look(threading.get_native_id()))
        assert seen.own == everything and seen.started == everything


@pytest.mark.parametrize("after", ["the actor thread's", "the caller's"])
def test_an_interrupt_right_after_a_cpu_is_lent_leaves_nobody_on_it(
    after: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = sorted(os.sched_getaffinity(0))
    real = os.sched_setaffinity
    with start(_tree(), report_path=None) as system:
        me = threading.get_native_id()
        system.ask("app/looker", Look(me))
        actor = system._transport.thread.native_id  # type: ignore[union-attr]
        shared = system._transport.cpu  # type: ignore[union-attr]

        def interrupted(tid: int, cpus: Any) -> None:
            real(tid, cpus)
            cpus = set(cpus)
            if (after == "the caller's" and tid == 0 and len(cpus) == 1) or (
                after == "the actor thread's" and tid == actor and len(cpus) == 1
            ):
                raise KeyboardInterrupt

        for _ in range(100):  # (until the actor thread sleeps as the caller asks)
            wait_for(lambda: shared.idle)
            monkeypatch.setattr(os, "sched_setaffinity", interrupted)
            try:
                system.ask("app/looker", Look(me))
            except KeyboardInterrupt:
                break
            finally:
                monkeypatch.setattr(os, "sched_setaffinity", real)
        else:
            pytest.fail(f"no ask lent {after} CPU in 100 tries")
        assert sorted(os.sched_getaffinity(0)) == everything
        assert not shared.lock.locked() and not system._transport.waiters  # type: ignore[union-attr]
        seen = system.ask("app/looker", Look(me), timeout=10)
        assert seen.own == everything and seen.started == everything


def test_a_second_interrupt_that_cuts_the_giving_back_short_is_mended_by_the_next_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    everything = sorted(os.sched_getaffinity(0))
    real = os.sched_setaffinity
    with start(_tree(), report_path=None) as system:
        me = threading.get_native_id()

        def interrupted(tid: int, cpus: Any) -> None:
            giving_back = tid == 0 and set(cpus) == set(everything)
            if giving_back and threading.get_native_id() == me:  # (the caller's)
                raise KeyboardInterrupt
            real(tid, cpus)

        monkeypatch.setattr(os, "sched_setaffinity", interrupted)
        with pytest.raises(KeyboardInterrupt):
            system.ask("app/looker", Look(me))
        monkeypatch.setattr(os, "sched_setaffinity", real)
        assert len(os.sched_getaffinity(0)) == 1  # (cut short: still on the one CPU)
        assert not system._transport.waiters  # type: ignore[union-attr]
        seen = system.ask("app/looker", Look(me))
        assert seen.own == everything and len(seen.caller) == 1  # (it lends again)
        assert sorted(os.sched_getaffinity(0)) == everything


class _Thread:
    """A thread that runs what it is given, one call at a time, on command."""

    def __init__(self) -> None:
        self.commands: queue.SimpleQueue[Callable[[], Any] | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while (command := self.commands.get()) is not None:
            self.results.put(command())

    def do(self, command: Callable[[], Any]) -> Any:
        self.commands.put(command)
        return self.results.get(timeout=30)

    def stop(self) -> None:
        self.commands.put(None)
        self.thread.join(30)


class _Caller:
    def __init__(self) -> None:
        self.thread = _Thread()
        self.mine: set[int] | None = None  # its own CPUs while it waits (set(): not lendable)
        self.lent = False


CALLER = st.sampled_from([0, 1])


class LendingMachine(RuleBasedStateMachine):
    """Two callers lend, take back and are refused; the actor thread sleeps and wakes;
    whatever the order, the actor thread runs on its own CPUs whenever it is awake, and a
    caller has its own back when its wait ends."""

    def __init__(self) -> None:
        super().__init__()
        self.everything = os.sched_getaffinity(0)
        self.cpu = SharedCpu()
        self.actor = _Thread()
        self.actor.do(self.cpu.attach)
        self.callers = [_Caller(), _Caller()]
        self.asleep = False
        self.fail_next = False
        self.real = os.sched_setaffinity

    def _set(self, tid: int, cpus: Any) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError(22, "refused")
        self.real(tid, cpus)

    def _refusable(self, thread: _Thread, call: Callable[[], Any]) -> Any:
        os.sched_setaffinity = self._set  # type: ignore[assignment]
        try:
            return thread.do(call)
        finally:
            os.sched_setaffinity = self.real

    @rule()
    def actor_sleeps(self) -> None:
        self.actor.do(self.cpu.sleeping)
        self.asleep = True

    @rule()
    def actor_wakes(self) -> None:
        self._refusable(self.actor, self.cpu.awake)
        self.asleep = False

    @rule(i=CALLER)
    def caller_may_lend(self, i: int) -> None:
        caller = self.callers[i]
        if caller.mine is None:
            caller.mine = caller.thread.do(self.cpu.lendable) or set()

    @rule(i=CALLER)
    def caller_lends(self, i: int) -> None:  # (the actor thread may have woken since)
        caller = self.callers[i]
        if caller.mine and not caller.lent:
            mine = caller.mine
            self._refusable(caller.thread, lambda: self.cpu.lend(mine))
            caller.lent = True

    @rule(i=CALLER)
    def callers_wait_ends(self, i: int) -> None:
        caller = self.callers[i]
        if caller.mine is not None:
            mine = caller.mine
            if mine:
                self._refusable(caller.thread, lambda: self.cpu.take_back(mine))
            caller.mine, caller.lent = None, False
            assert caller.thread.do(lambda: os.sched_getaffinity(0)) >= self.everything

    @rule()
    def the_next_call_is_refused(self) -> None:
        self.fail_next = True

    @invariant()
    def the_actor_thread_awake_is_on_its_own_cpus(self) -> None:
        if not self.asleep:  # (or more, where a refused giving back took every CPU allowed)
            assert self.actor.do(lambda: os.sched_getaffinity(0)) >= self.everything

    def teardown(self) -> None:
        for thread in (self.actor, *(c.thread for c in self.callers)):
            thread.do(lambda: self.real(0, self.everything))
            thread.stop()


LendingMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)
TestLendingMachine = LendingMachine.TestCase
