"""Passivation in the supervision kernel, without actors: what is decided when a child is
idle, when a message wakes it (also while it is still stopping), for what depends on it,
and at memory pressure (who goes, in what order, and who stays)."""

from __future__ import annotations

from typing import Any

from stalwart import Child, Supervisor
from stalwart.supervisors._kernel import commands as cmd
from stalwart.supervisors._kernel import events as ev
from stalwart.supervisors._kernel.passivation import PASSIVATED, PRESSURE_WAIT_S, REST_S
from stalwart.supervisors._kernel.state import DOWN, UP
from stalwart.supervisors.messages import RecoveryDone, Unavailable
from tests.core.kernel_harness import Runtime
from tests.support import Worker


class Recording(Runtime):
    """The simulated runtime, keeping every command; with ``hold_stops`` a stopping
    instance answers only at :meth:`retire` (a message can come meanwhile)."""

    def __init__(self, spec: Supervisor) -> None:
        super().__init__(spec)
        self.commands: list[cmd.Command] = []
        self.hold_stops = False
        self.stopping: list[cmd.Stop] = []

    def apply(self, c: cmd.Command) -> None:
        self.commands.append(c)
        if isinstance(c, cmd.Stop) and self.hold_stops:
            self.alive.pop(c.child, None)
            self.stopping.append(c)
            return
        super().apply(c)

    def retire(self) -> None:
        stop = self.stopping.pop(0)
        self.feed(ev.ChildRetired(stop.child, stop.incarnation, now=self.now))

    def of(self, kind: type) -> list[Any]:
        return [c for c in self.commands if isinstance(c, kind)]

    def idle(self, child: str, idle_s: float, busy: bool = False) -> None:
        incarnation = self.state.children[child].incarnation
        self.feed(ev.ActivityReported(child, incarnation, 1, busy, idle_s, now=self.now))


def tree(*children: Child) -> Supervisor:
    return Supervisor("s", health_interval_s=0, children=list(children))


def opted(name: str, after: float = 1.0, **options: Any) -> Child:
    return Child(name, Worker, passivate_after_s=after, **options)


def test_an_idle_child_is_passivated_and_a_wake_starts_it_again_without_a_restart():
    rt = Recording(tree(opted("a"), Child("plain", Worker)))
    rt.begin()
    assert "passivate" in rt.timers  # the idle checks run
    rt.advance(2.0)
    rt.idle("a", 0.5)  # not yet
    assert rt.of(cmd.Stop) == []
    rt.idle("a", 1.5)
    assert [(s.child, s.forward, s.passivate) for s in rt.of(cmd.Stop)] == [("a", True, True)]
    a = rt.state.children["a"]
    assert (a.phase, a.waiting, a.restarts) == (DOWN, PASSIVATED, 0)
    assert Unavailable("s/a", "passivated") in rt.reports
    assert rt.of(cmd.Release)[-1] == cmd.Release("a", 1)  # the old instance may leave
    spawns = len(rt.of(cmd.Spawn))
    rt.advance(10.0)  # nothing starts it but a message
    assert len(rt.of(cmd.Spawn)) == spawns and a.phase == DOWN
    rt.feed(ev.ReactivateRequested("s/a", now=rt.now))
    assert rt.of(cmd.Spawn)[-1] == cmd.Spawn("a", 2)
    register = rt.of(cmd.Register)[-1]
    assert (register.child, register.incarnation, register.reactivated) == ("a", 2, True)
    assert (a.phase, a.restarts, a.level(rt.now)) == (UP, 0, 0)
    rt.feed(ev.ReactivateRequested("s/a", now=rt.now))  # a late wake: nothing more
    assert len(rt.of(cmd.Spawn)) == spawns + 1


def test_a_child_that_did_not_opt_in_or_is_busy_is_never_passivated():
    rt = Recording(tree(opted("a"), Child("plain", Worker)))
    rt.begin()
    rt.advance(5.0)
    rt.idle("a", 3.0, busy=True)  # its handler has been running all along
    rt.idle("plain", 99.0)
    assert rt.of(cmd.Stop) == []


def test_a_wake_while_it_stops_starts_its_successor_at_once_still_no_restart():
    rt = Recording(tree(opted("a")))
    rt.begin()
    rt.hold_stops = True
    rt.advance(2.0)
    rt.idle("a", 1.5)
    assert rt.stopping and rt.stopping[0].passivate
    rt.feed(ev.ReactivateRequested("s/a", now=rt.now))  # a message came meanwhile
    rt.retire()
    a = rt.state.children["a"]
    assert rt.of(cmd.Spawn)[-1] == cmd.Spawn("a", 2) and a.waiting == ""
    register = rt.of(cmd.Register)[-1]
    assert (register.predecessor, register.reactivated) == (1, True)  # it forwards to it
    assert a.restarts == 0


def test_a_wake_before_its_stop_began_keeps_it_running():
    rt = Recording(tree(opted("a"), opted("b")))
    rt.begin()
    rt.hold_stops = True
    rt.advance(2.0)
    rt.idle("b", 1.5)  # b stops first (one stop at a time)...
    rt.idle("a", 1.5)  # ...so a waits its turn, marked
    rt.feed(ev.ReactivateRequested("s/a", now=rt.now))
    rt.retire()
    assert rt.stopping == [] and rt.state.children["a"].phase == UP
    assert rt.state.children["b"].waiting == PASSIVATED


def test_a_passivated_dependency_counts_as_up_for_its_dependents():
    rt = Recording(tree(opted("db"), Child("w", Worker, depends_on=["db"])))
    rt.begin()
    rt.advance(2.0)
    rt.idle("db", 1.5)
    rt.feed(ev.RecoveryRequested(1, "w", 3, "asked", now=rt.now))
    assert rt.of(cmd.Spawn)[-1] == cmd.Spawn("w", 2)
    assert rt.state.children["db"].waiting == PASSIVATED
    assert [r.ok for r in rt.reports if isinstance(r, RecoveryDone)] == [True]


def test_at_pressure_the_idlest_quarter_goes_first_and_the_rest_stay():
    names = [f"c{i}" for i in range(9)]
    rt = Recording(tree(*(opted(n, after=3600) for n in names), Child("plain", Worker)))
    rt.begin()
    rt.advance(100.0)
    rt.state.children["c8"].reactivated_at = rt.now - REST_S / 2  # started again lately
    rt.feed(ev.PressureNoted(1, now=rt.now))
    checks = rt.of(cmd.Send)
    assert sorted(c.child for c in checks) == names  # asked how idle they are; plain is not
    idle = {"c0": 5.0, "c1": 50.0, "c2": 20.0, "c3": 0.2, "c4": 40.0, "c5": 30.0, "c7": 10.0}
    for name, seconds in idle.items():
        rt.idle(name, seconds)
    rt.idle("c6", 60.0, busy=True)  # handling a message now
    assert rt.of(cmd.Stop) == []  # (c8 has not answered yet)
    rt.idle("c8", 90.0)  # the idlest, but it came back lately
    # six may go (c3 took a message 0.2 s ago, c6 is busy, c8 rests): a quarter is two
    assert {s.child for s in rt.of(cmd.Stop)} == {"c1", "c4"}
    rt.feed(ev.PressureNoted(1, now=rt.now))  # the next sample: the next idlest
    for name in ["c0", "c2", "c3", "c5", "c7", "c8"]:
        rt.idle(name, idle.get(name, 90.0) + 1)
    rt.idle("c6", 0.0, busy=True)
    # five may go now (c3 too, idle long enough): two again, the idlest
    assert {s.child for s in rt.of(cmd.Stop)[2:]} == {"c5", "c2"}


def test_a_pressure_round_decides_with_the_answers_it_has_after_a_while():
    rt = Recording(tree(opted("a", after=3600), opted("b", after=3600)))
    rt.begin()
    rt.advance(100.0)
    rt.feed(ev.PressureNoted(1, now=rt.now))
    rt.idle("a", 50.0)  # b never answers (it is stuck)
    rt.advance(PRESSURE_WAIT_S - 0.5)
    assert rt.of(cmd.Stop) == []  # (an answer can be slow on a busy host: it is waited for)
    rt.advance(1.0)
    assert [s.child for s in rt.of(cmd.Stop)] == ["a"]


def two_asked_at_pressure() -> Recording:
    """Children a and b, opted in, just asked how idle they are at pressure."""
    rt = Recording(tree(opted("a", after=3600), opted("b", after=3600)))
    rt.begin()
    rt.advance(100.0)
    rt.feed(ev.PressureNoted(1, now=rt.now))
    return rt


def test_at_pressure_one_is_never_passivated_before_an_idler_one_that_answered_earlier():
    # a took its last message before b, but answered the round first, when it had been idle
    # for a little less than the second it takes; b, starved of CPU, answered later, just over
    # it. a's idle time counts on from its answer: it is the idler, and goes first
    rt = two_asked_at_pressure()
    rt.idle("a", 0.95)
    rt.advance(0.2)
    rt.idle("b", 1.05)
    assert [s.child for s in rt.of(cmd.Stop)] == ["a"]


def test_at_pressure_a_young_child_that_never_took_a_message_holds_up_no_idler_one():
    rt = Recording(tree(*(opted(n, after=3600) for n in "abc")))
    rt.begin()
    rt.advance(100.0)
    rt.state.children["a"].up_at = rt.now - 0.3  # (started again 0.3 s ago, untouched since)
    rt.feed(ev.PressureNoted(1, now=rt.now))
    rt.idle("a", 1e9)  # no message yet: it is idle since it came up
    rt.idle("b", 100.0)
    rt.idle("c", 100.0)
    assert [s.child for s in rt.of(cmd.Stop)] == ["b"]
