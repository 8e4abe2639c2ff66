"""Health checks and hangs converge: hooks, then restarts, then escalation by intensity; a hung
actor is replaced once; in one process a slow handler never blocks the questions."""

from __future__ import annotations

import threading
import time
from typing import Any

import msgspec
import pytest

from stalwart import Child, LevelPolicy, ManagedActor, Supervisor
from stalwart.testing import wait_for_event
from tests.support import (
    GATES,
    Gated,
    HealthChecks,
    Ping,
    Sick,
    Wait,
    WhereAmI,
    Worker,
    wait_for,
)

ONE_EACH = LevelPolicy(
    basic_attempts=1, basic_delay_s=0.001, enhanced_attempts=1, component_attempts=1
)


def levels(system, path, kind="failure"):
    return [e.level for e in system.events() if e.kind == kind and e.path == path]


def test_a_hung_actor_on_real_processes_is_replaced_once_and_its_replacement_kept(make_system):
    tree = Supervisor(
        "s",
        health_interval_s=0.2,
        health_misses=5,  # (a second: a busy machine can hold a healthy process up for less)
        children=[Child("w", Sick), Child("other", Worker)],
    )
    system = make_system(tree, base="multiproc", chaos=True)
    before = system.status()
    system.inject("s/w", "hang")  # its handler never returns
    wait_for(lambda: system.status()["s/w"].incarnation == before["s/w"].incarnation + 1)
    wait_for(lambda: system.status()["s/w"].state == "running")
    # the replacement answers health check after health check, and is left alone
    wait_for(lambda: system.ask("s/w", HealthChecks()) >= 10, timeout=20)
    status = system.status()["s/w"]
    assert (status.restarts, status.incarnation) == (1, before["s/w"].incarnation + 1)
    kinds = [(e.kind, e.detail) for e in system.events() if e.path == "s/w"]
    assert [k for k, _ in kinds].count("hung") == 1
    assert any(k == "crash" and "killed: it was hung" in d for k, d in kinds)
    assert system.status()["s/other"].pid == before["s/other"].pid


@pytest.mark.parametrize("base", ["simple", "multiproc"])
def test_an_unhealthy_actor_gets_its_hooks_then_restarts_then_escalates(
    make_system, base, tmp_path
):
    flag = tmp_path / "sick"
    flag.write_text("yes")
    tree = Supervisor(
        "s",
        health_interval_s=0.1,
        max_restarts=2,
        within_s=60,
        children=[Child("w", Sick, levels=ONE_EACH, options={"sick_flag": str(flag)})],
    )
    system = make_system(tree, base=base, root_max_restarts=0)
    wait_for(lambda: system.stopped, timeout=30)
    # hooks at levels 1 and 2, a restart at 3, its restart set at 4, then the intensity
    assert levels(system, "s/w")[:4] == [1, 2, 3, 4]
    kinds = [e.kind for e in system.events()]
    assert kinds.index("escalate") < kinds.index("level5")
    assert (
        "restart intensity" in system.final_report["reason"]
        or "restarts within" in (system.final_report["reason"])
    )


def test_an_unhealthy_actor_that_heals_is_recovered_and_left_alone(make_system, tmp_path):
    flag = tmp_path / "sick"
    flag.write_text("yes")
    tree = Supervisor(
        "s",
        health_interval_s=0.1,
        children=[Child("w", Sick, levels=LevelPolicy(), options={"sick_flag": str(flag)})],
    )
    system = make_system(tree)
    wait_for(lambda: system.ask("s/w", Ping()) >= 1)  # on_retry ran: it tried to heal
    flag.unlink()
    wait_for_event(system, "recovered", "s/w")
    failures = len(levels(system, "s/w"))
    checks = system.ask("s/w", HealthChecks())
    wait_for(lambda: system.ask("s/w", HealthChecks()) >= checks + 5)  # five more, all well
    assert len(levels(system, "s/w")) == failures
    assert system.status()["s/w"].restarts == 0


def test_in_one_process_a_slow_handler_blocks_no_question_and_is_reported_while_slow(
    make_system,
):
    system = make_system(Supervisor("s", children=[Child("g", Gated)]), hang_report_s=0.2)
    gate = GATES["slow"] = threading.Event()
    answers = []
    asker = threading.Thread(target=lambda: answers.append(system.ask("s/g", Wait("slow"), 30)))
    asker.start()
    try:
        # seen while it is stuck (a system service slow on a loaded machine may come first)
        report = wait_for(lambda: [h for h in system.hung_actors() if h["path"] == "s/g"], 10)
        assert report[0]["handler"] == "Gated.receiveMsg_Wait"
        # the handler holds the actor thread; these answer anyway (they would deadlock if not)
        assert system.status()["s/g"].state == "hung"
        kinds = [(e.kind, e.path) for e in system.events()]
        assert [kind for kind, _ in kinds[:2]] == ["services-started", "tree-started"]
        assert ("hung", "s/g") in kinds
        assert system.dead_letters() == [] and system.incidents() == []
    finally:
        gate.set()
        asker.join(10)
    assert answers == ["done"]
    wait_for(lambda: system.hung_actors() == [])  # not listed once its handler returned
    assert system.status()["s/g"].state == "running"
    assert [e.kind for e in system.events() if e.path == "s/g"][-2:] == ["hung", "recovered"]


def test_in_one_process_the_hang_list_changes_only_after_the_status_has(make_system, monkeypatch):
    """Whoever sees an actor in ``hung_actors()`` (or sees it leave) sees the status agree."""
    from stalwart.supervisors._gateway import Gateway

    listed_while_noted = []
    note_hang = Gateway.note_hang

    def noting(gateway, path, hung, detail):
        if path == "s/g":  # (a system service slow on a loaded machine is no concern here)
            listed = [h["path"] for h in system.hung_actors() if h["path"] == path]
            listed_while_noted.append((hung, listed))
        note_hang(gateway, path, hung, detail)

    monkeypatch.setattr(Gateway, "note_hang", noting)
    system = make_system(Supervisor("s", children=[Child("g", Gated)]), hang_report_s=0.2)
    gate = GATES["order"] = threading.Event()
    asker = threading.Thread(target=lambda: system.ask("s/g", Wait("order"), 30))
    asker.start()
    try:
        wait_for(lambda: [h for h in system.hung_actors() if h["path"] == "s/g"], timeout=10)
    finally:
        gate.set()
        asker.join(10)
    wait_for(lambda: len(listed_while_noted) == 2)
    # the status is told first: not yet listed as it turns hung, still listed as it recovers
    assert listed_while_noted == [(True, []), (False, ["s/g"])]


class Bounce(msgspec.Struct, frozen=True):
    """Sent to itself, again and again, until the gate opens; then the count is the answer."""

    gate: str
    asker: Any = None
    count: int = 0


class Bouncer(ManagedActor):
    def receiveMsg_Bounce(self, msg: Bounce, sender: Any) -> None:
        asker = msg.asker or sender
        if GATES[msg.gate].is_set():
            self.reply(asker, msg.count)
        else:  # one quick handler after another: the actor thread never goes idle
            self.send(self.myAddress, Bounce(msg.gate, asker, msg.count + 1))


def test_in_one_process_a_stream_of_quick_handlers_is_not_taken_for_a_hung_one(make_system):
    """The watchdog follows each handler call: a thread kept busy without a pause by short
    calls, for five times ``hang_report_s``, is not reported."""
    system = make_system(Supervisor("s", children=[Child("b", Bouncer)]), hang_report_s=0.3)
    gate = GATES["bounce"] = threading.Event()
    answers: list[int] = []
    asker = threading.Thread(target=lambda: answers.append(system.ask("s/b", Bounce("bounce"))))
    started = time.monotonic()
    asker.start()
    try:  # the watchdog samples the busy thread twenty times meanwhile
        wait_for(lambda: time.monotonic() - started >= 1.5, timeout=60)
    finally:
        gate.set()
        asker.join(10)
    assert answers and answers[0] > 100  # it did bounce, all along
    assert system.hung_actors() == []
    assert [e for e in system.events() if e.kind == "hung"] == []


def test_in_one_process_every_handler_and_timer_runs_on_one_thread(make_system):
    system = make_system(Supervisor("s", children=[Child("g", Gated)]))
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(system.ask("s/g", WhereAmI())))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 4
    names, _ = max(results, key=lambda r: r[1])
    assert names == ["stalwart-actors"]  # on_start, the timer, and every ask's handler
    assert sorted(count for _, count in results) == [1, 2, 3, 4]  # its sqlite connection works


@pytest.mark.parametrize(("own_processes", "asked"), [(False, {"sick"}), (True, {"plain", "sick"})])
def test_in_one_process_only_an_actor_that_defines_health_is_asked(own_processes, asked):
    """In one process the default ``health()`` would answer yes whenever a check could
    reach it: 100,000 idle actors are not asked twice a message per interval for that."""
    from stalwart.actors.messages import HealthCheck
    from stalwart.supervisors import SupervisorState, decide
    from stalwart.supervisors._kernel import commands as cmd
    from stalwart.supervisors._kernel import events as ev

    spec = Supervisor(
        "s", health_interval_s=1, children=[Child("plain", Worker), Child("sick", Sick)]
    )
    state = SupervisorState("s", spec, can_kill=own_processes)
    decide(state, ev.Begin(now=0.0))
    for c in state.order:
        decide(state, ev.ChildStarted(c.name, c.incarnation, True, now=0.0))
    for tick in (1.0, 2.0, 3.0, 4.0):  # (more than health_misses: no reply comes here)
        _, commands = decide(state, ev.TimerFired(("health",), now=tick))
        sent = {
            c.child
            for c in commands
            if isinstance(c, cmd.Send) and isinstance(c.message, HealthCheck)
        }
        assert sent == asked
    assert {c.name for c in state.order if c.hung_reported} == asked
