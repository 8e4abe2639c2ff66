"""Rules of the supervision kernel that a whole-tree test would take long to reach: requested
restarts of temporary children, the outage budget per child, the end of an outage, internal
errors, and determinism under a seed."""

from __future__ import annotations

from stalwart import Child, LevelPolicy, Supervisor
from stalwart.strategies import ErrorCategory
from stalwart.supervisors import SupervisorState, decide
from stalwart.supervisors._kernel import commands as cmd
from stalwart.supervisors._kernel import events as ev
from stalwart.supervisors.messages import RecoveryDone
from tests.core.kernel_harness import Runtime, info, request
from tests.support import Worker

OUTAGE_A = info(ErrorCategory.CONNECTION, "ConnectionRefusedError")
OUTAGE_B = info(ErrorCategory.TIMEOUT, "TimeoutError")
FAULT = info(ErrorCategory.CRASH, "KeyError")
ONE_RESTART = LevelPolicy(
    basic_attempts=1, basic_delay_s=0.01, enhanced_attempts=0, outage_restarts=1
)


def tree(*children: Child, **options) -> Supervisor:
    return Supervisor("s", health_interval_s=0, children=list(children), **options)


def test_a_requested_restart_of_a_temporary_child_is_refused_and_it_keeps_running():
    """Restarting a temporary child would stop it for good (it is never restarted)."""
    rt = Runtime(tree(Child("t", Worker, restart="temporary"), Child("p", Worker)))
    rt.begin()
    spawns = len(rt.effects("spawn"))
    for level in (3, 4):
        rt.feed(ev.RecoveryRequested(level, "t", level, "asked", now=rt.now))
    done = [r for r in rt.reports if isinstance(r, RecoveryDone)]
    assert [(d.request_id, d.ok) for d in done] == [(3, False), (4, False)]
    assert "s/t is temporary: it is never restarted" in done[0].detail
    assert len(rt.effects("spawn")) == spawns and set(rt.alive) == {"t", "p"}
    rt.feed(ev.RecoveryRequested(5, "p", 3, "asked", now=rt.now))  # a permanent one is
    assert [r.ok for r in rt.reports if isinstance(r, RecoveryDone)][-1] is True
    assert len(rt.effects("spawn")) == spawns + 1


def fail_until_outage(rt: Runtime, error, n: int) -> None:
    for i in range(n):
        message, sender = request(f"{error.error_type}{i}", deadline=rt.now + 30)
        rt.failure = error
        rt.fail("c", message, error, sender, sender.deadline)
        rt.advance(1.0)  # its retries and restarts run; the quiet period (30 s) never passes


def test_the_outage_budget_of_restarts_is_the_childs_whatever_the_errors_say():
    """An outage whose errors vary (refused, then timing out) gets ``outage_restarts``
    restarts in all, not that many per kind of error."""
    rt = Runtime(tree(Child("c", Worker, levels=ONE_RESTART)), handler=lambda c, m: False)
    rt.begin()
    fail_until_outage(rt, OUTAGE_A, 4)
    assert len(rt.effects("spawn")) == 2  # the first start, and its one restart
    assert rt.state.children["c"].in_outage(rt.now)
    fail_until_outage(rt, OUTAGE_B, 4)
    assert len(rt.effects("spawn")) == 2  # no restart for the other face of the outage
    assert not rt.effects("escalate")
    assert len([e for e in rt.events("outage")]) == 2  # each error is announced


def test_a_message_that_goes_through_during_an_outage_ends_it():
    down = [True]
    rt = Runtime(tree(Child("c", Worker, levels=ONE_RESTART)), handler=lambda c, m: not down[0])
    rt.begin()
    fail_until_outage(rt, OUTAGE_A, 3)
    c = rt.state.children["c"]
    assert c.in_outage(rt.now)
    down[0] = False  # the dependency is back: the next retried message goes through
    message, sender = request("back", deadline=rt.now + 30)
    rt.fail("c", message, OUTAGE_A, sender, sender.deadline)
    rt.advance(1.0)
    assert rt.answers_to(sender.address) == [("ok", message)]
    assert not c.in_outage(rt.now)  # over, well before its quiet period
    states = [r.state for r in rt.reports if getattr(r, "path", "") == "s/c" and r.state]
    assert states[-1] == "running"


def test_giving_up_names_the_error_that_used_up_the_intensity():
    never = LevelPolicy(basic_attempts=0, enhanced_attempts=0)
    rt = Runtime(tree(Child("c", Worker, levels=never), max_restarts=1, within_s=60))
    rt.begin()
    rt.crash("c", "segfault in the codec")
    rt.crash("c", "segfault in the codec")
    [(_, reason, _)] = rt.effects("escalate")
    assert reason.startswith("s/c: 1 restarts within 60s exceeded (last: ")
    assert "segfault in the codec" in reason


def test_an_internal_error_escalates_once_and_an_exiting_supervisor_decides_nothing():
    state = SupervisorState("s", tree(Child("c", Worker)), seed=1)
    decide(state, ev.Begin(now=0.0))
    _, first = decide(state, ev.InternalError("s: internal error: KeyError('x')", now=1.0))
    _, again = decide(state, ev.InternalError("s: internal error: KeyError('y')", now=2.0))
    assert [c.reason for c in first if isinstance(c, cmd.Escalate)] == [
        "s: internal error: KeyError('x')"
    ]
    assert again == []
    other = SupervisorState("s", tree(Child("c", Worker)), seed=1)
    decide(other, ev.Begin(now=0.0))
    decide(other, ev.Exiting(now=1.0))
    assert decide(other, ev.ChildExited("c", 1, "killed", now=2.0))[1] == []


def test_the_same_seed_makes_the_same_choices():
    """The kernel draws randomness only from its seed: backoff jitter and strategy choices
    repeat exactly, so a recorded sequence of events can be replayed."""

    def choices(seed: int) -> list[str]:
        state = SupervisorState("s", tree(Child("c", Worker)), seed=seed)
        return [state.selector.choose("connection", 2) for _ in range(50)] + [
            f"{state.rng.random():.12f}" for _ in range(5)
        ]

    assert choices(3) == choices(3)
    assert choices(3) != choices(4)


def hand_over_through_two_deaths(behind: bool, node_lost: bool = False) -> list[tuple]:
    """A request handed to the next instance of ``c``, which dies before saying it handled it
    (or whose node is lost)."""
    from stalwart.actors.messages import Request

    rt = Runtime(tree(Child("c", Worker)))
    rt.begin()
    lost = Request("r1", "GetLog", "caller", chan="caller", seq=6)
    for i in range(2):
        if node_lost:
            rt.alive.pop("c", None)
            rt.feed(ev.NodeLost(f"n{i}", ("c",), "no heartbeat", now=rt.now))
        else:
            rt.crash("c")
        rt.feed(ev.LostRequestArrived("c", lost, behind, now=rt.now))
        rt.settle()
    return rt.effects("dead")


def test_a_request_queued_behind_an_unconfirmed_message_is_not_blamed_for_the_deaths():
    """The next instance may die on the tell before it (resent by its sender) without ever
    reaching the request: two deaths in a row make it a poison message only when nothing
    of its channel was unconfirmed before it (caught by
    test_order.py::test_a_tell_whose_actor_keeps_dying_before_confirming_it_becomes_a_dead_letter,
    where the handover reached the instance after the tell that killed it)."""
    assert hand_over_through_two_deaths(behind=True) == []
    [(_, message, error)] = hand_over_through_two_deaths(behind=False)
    assert message.id == "r1" and "two instances died in a row" in str(error)


def test_a_request_is_not_blamed_for_the_loss_of_the_nodes_it_was_handed_to():
    """A partition that takes the node of each instance in turn is no fault of the request
    (caught by the partition soak, where it came back as a PoisonMessageError)."""
    assert hand_over_through_two_deaths(behind=False, node_lost=True) == []


def handed_straight_then_died(*steps: str) -> list[str]:
    """Requests ``r1`` and ``r2`` lost in a crash of ``c``; ``steps`` say what the
    supervisor hears next (``note r1``: a caller's note that it handed ``r1`` straight to
    the spare now serving; ``hand r1``: a caller hands ``r1`` over through the supervisor;
    ``done r1``: the instance handled it; ``die``: the instance dies). Then both callers
    hand their requests over again: the ids answered ``PoisonMessageError``."""
    from stalwart.actors.messages import Request

    rt = Runtime(tree(Child("c", Worker)))
    rt.begin()
    lost = {n: Request(n, "GetLog", f"caller-{n}", chan=f"caller-{n}", seq=1) for n in ("r1", "r2")}
    rt.crash("c")
    rt.settle()
    for step in steps:
        what, _, n = step.partition(" ")
        if what == "die":
            rt.crash("c")
            rt.settle()
        elif what == "done":
            rt.feed(ev.HandoverDone("c", rt.alive["c"], n, now=rt.now))
        else:
            rt.feed(ev.LostRequestArrived("c", lost[n], False, what == "note", now=rt.now))
    for n in ("r1", "r2"):
        rt.feed(ev.LostRequestArrived("c", lost[n], now=rt.now))
    return [message.id for _, message, _ in rt.effects("dead")]


def test_a_request_handed_straight_to_the_spare_that_dies_on_it_is_a_poison():
    """A caller hands what a crash lost straight to the spare, with a note to the
    supervisor: the spare's death counts against it as against one the supervisor handed
    over (a note that comes after that death is not counted: the supervisor drops it, see
    ``CrashNotices.handed``)."""
    assert handed_straight_then_died("note r1", "die") == ["r1"]
    assert handed_straight_then_died("hand r1", "die") == ["r1"]  # (as before)
    assert handed_straight_then_died("note r1", "done r1", "die") == []  # it was handled
    assert handed_straight_then_died("done r1", "note r1", "die") == []  # (done before the note)


def test_which_of_several_requests_handed_straight_killed_the_spare_is_not_guessed():
    """Callers hand their requests to the spare themselves, so the order it took them in
    is unknown: when it dies with two unanswered, neither is blamed (each goes through the
    supervisor next time, one at a time); with one answered, the other is."""
    assert handed_straight_then_died("note r1", "note r2", "die") == []
    assert handed_straight_then_died("hand r1", "note r2", "die") == []  # (one of them)
    assert handed_straight_then_died("note r1", "note r2", "done r2", "die") == ["r1"]
    assert handed_straight_then_died("hand r1", "hand r2", "die") == ["r1"]  # (as before)


def test_a_dependent_whose_held_messages_all_went_out_as_trials_resumes_when_resolved():
    """Its status goes back to running once the incident is resolved, even when nothing is
    left in its hold (the trials took it all); it had stayed "waiting" for good before (seen
    as a missing ``resumed`` event in tests/mediation/test_cascade.py)."""
    rt = Runtime(tree(Child("db", Worker), Child("api", Worker)))
    rt.begin()
    rt.feed(ev.IncidentHeld("s/db", ("s/api",), True, now=rt.now))
    message, sender = request("stock", deadline=rt.now + 30)
    rt.fail("api", message, OUTAGE_A, sender, sender.deadline)
    assert [e.state for e in rt.events("held")] == ["waiting"]
    rt.feed(ev.IncidentHeld("s/db", (), True, probe=True, now=rt.now))  # the trial: it goes
    rt.settle()
    assert rt.answers_to(sender.address) == [("ok", message)]
    assert rt.events("resumed") == []  # a trial's success is not yet the verdict
    rt.feed(ev.IncidentHeld("s/db", ("s/api",), False, now=rt.now))
    [resumed] = rt.events("resumed")
    assert resumed.path == "s/api" and resumed.state == "running"


def test_a_child_whose_exit_overtakes_its_retired_is_restarted_only_once_that_comes():
    """Across hosts the exit notice can come before the instance's ``Retired`` (its final
    state and the answers of the handler that stopped it): the successor must start from
    that state, so it waits for it (up to the stop timeout)."""
    rt = Runtime(tree(Child("c", Worker)))
    rt.begin()
    spawns = len(rt.effects("spawn"))
    incarnation = rt.alive.pop("c")
    rt.feed(ev.StoppedItself("c", incarnation, now=rt.now))
    rt.feed(ev.ChildExited("c", incarnation, now=rt.now))
    assert len(rt.effects("spawn")) == spawns  # not yet: its final state is on its way
    rt.feed(ev.ChildRetired("c", incarnation, now=rt.now))
    assert [s[3] for s in rt.effects("spawn")[spawns:]] == [rt.now]  # at once, when it came
