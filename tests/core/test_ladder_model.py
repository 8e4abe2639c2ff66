"""The documented levels as state machines: the ladder, restart intensity, and outages.

The first machine checks the ladder against the table in docs/concepts.md (levels
never skip, budgets are respected, level 4 is the top and repeats, a quiet period
resets to level 1). The kernel machines feed whole supervisors with failures and
check the policy's promises: an outage never escalates and never restarts more
than ``outage_restarts`` times per episode; every failed request gets exactly one
answer; restarts in any window stay within the intensity; level 5 (escalation)
happens only when the intensity is exceeded.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from stalwart import Child, LevelPolicy, Supervisor
from stalwart.strategies import ErrorCategory
from stalwart.supervisors import Ladder, RestartIntensity
from stalwart.supervisors._kernel.events import Failed
from stalwart.supervisors._ladder import TOP_LEVEL
from tests.core.kernel_harness import Runtime, info, request
from tests.support import Worker


class LadderMachine(RuleBasedStateMachine):
    @initialize(
        budgets=st.tuples(*[st.integers(0, 3)] * 3),
        quiet=st.sampled_from([1.0, 5.0]),
    )
    def setup(self, budgets, quiet):
        self.now = 0.0
        self.policy = LevelPolicy(
            basic_attempts=budgets[0],
            enhanced_attempts=budgets[1],
            component_attempts=budgets[2],
            quiet_period_s=quiet,
        )
        self.ladder = Ladder(self.policy)
        self.last_level = 0
        self.used = 0  # attempts at last_level
        self.last_event: float | None = None

    def expected_next(self, quiet_passed: bool) -> int:
        level, used = (
            (1, 0) if quiet_passed or self.last_level == 0 else (self.last_level, self.used)
        )
        while level < TOP_LEVEL and used >= self.policy.budget(level):
            level, used = level + 1, 0
        return level

    @rule()
    def failure(self):
        quiet_passed = (
            self.last_event is not None and self.now - self.last_event >= self.policy.quiet_period_s
        )
        expected = self.expected_next(quiet_passed)
        decision = self.ladder.on_failure(self.now)
        assert decision is not None
        assert decision.level == expected, "the lowest level whose attempts are not used up"
        if not (quiet_passed or self.last_level == 0):
            assert decision.level >= self.last_level, "levels never go down within an episode"
        same = decision.level == self.last_level and not quiet_passed
        self.used = self.used + 1 if same else 1
        self.last_level = decision.level
        self.last_event = self.now

    @rule()
    def success(self):
        self.ladder.on_success(self.now)
        if self.last_event is not None and self.now - self.last_event >= self.policy.quiet_period_s:
            self.last_level, self.used = 0, 0  # the quiet period had passed already
        elif self.last_level:
            self.last_event = self.now

    @rule(dt=st.sampled_from([0.1, 0.5, 1.0, 3.0, 6.0]))
    def wait(self, dt):
        self.now += dt

    @invariant()
    def level_is_bounded(self):
        assert 0 <= self.ladder.current(self.now) <= TOP_LEVEL


LadderMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
TestLadder = LadderMachine.TestCase


@settings(max_examples=300, deadline=None)
@given(
    max_r=st.integers(0, 4),
    period=st.sampled_from([1.0, 2.5, 10.0]),
    gaps=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 3.0]), max_size=30),
)
def test_restart_intensity_is_otps_rule(max_r, period, gaps):
    """Allowed iff the restarts at or after now - period, this one counted, are <= max_r."""
    intensity = RestartIntensity(max_r, period)
    now, times = 0.0, []
    for gap in gaps:
        now += gap
        times.append(now)
        in_window = [t for t in times if t >= now - period]
        assert intensity.add(now) == (len(in_window) <= max_r)


def test_a_crash_starts_at_level_three():
    assert Ladder(LevelPolicy()).on_failure(0.0, minimum=3).level == 3


def test_zero_attempts_skips_a_level():
    assert Ladder(LevelPolicy(basic_attempts=0, enhanced_attempts=0)).on_failure(0.0).level == 3


def test_level_four_is_the_top_and_repeats():
    ladder = Ladder(LevelPolicy(basic_attempts=1, enhanced_attempts=1, component_attempts=1))
    assert [ladder.on_failure(float(i)).level for i in range(6)] == [1, 2, 3, 4, 4, 4]


@settings(max_examples=200, deadline=None)
@given(
    messages=st.integers(1, 8),
    rounds=st.integers(1, 12),
    budgets=st.tuples(st.integers(0, 4), st.integers(0, 6)),
)
def test_messages_failing_together_climb_levels_one_and_two_as_fast_as_one(
    messages, rounds, budgets
):
    policy = LevelPolicy(
        basic_attempts=budgets[0], enhanced_attempts=budgets[1], quiet_period_s=100.0
    )
    now = 0.0
    alone, together = Ladder(policy), Ladder(policy)
    seen_alone, seen = 0, [0] * messages
    for _ in range(rounds):
        expected = alone.on_failure(now, seen=seen_alone)
        seen_alone = alone.round
        decisions = []
        for i in range(messages):  # every message fails once in the round, one after another
            decisions.append(together.on_failure(now, seen=seen[i]))
            seen[i] = together.round
        assert decisions[0] == expected  # the first to fail moves the ladder on
        if expected.level > 2:
            break  # a restart is one event for the actor, whatever was in flight
        assert all(d == expected for d in decisions), decisions  # the others join the level
        now += 0.1


# -- whole supervisors: outages, answers, intensity ---------------------------------------------
OUTAGE = info(ErrorCategory.CONNECTION, "ConnectionRefusedError")
FAULT = info(ErrorCategory.CRASH, "KeyError")


class OutageMachine(RuleBasedStateMachine):
    """A dependency of ``c0`` goes down and comes back while requests keep arriving."""

    @initialize(
        restarts=st.integers(0, 2),
        levels=st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 2)),
        max_r=st.integers(0, 3),
    )
    def setup(self, restarts, levels, max_r):
        policy = LevelPolicy(
            basic_attempts=levels[0],
            enhanced_attempts=levels[1],
            component_attempts=levels[2],
            outage_restarts=restarts,
            quiet_period_s=30.0,
        )
        spec = Supervisor(
            "s",
            max_restarts=max_r,
            within_s=60,
            health_interval_s=0,
            # (a start is never slow enough to time out here: a hung start is a fault)
            children=[
                Child("c0", Worker, levels=policy, start_timeout_s=1e6),
                Child("c1", Worker),
            ],
        )
        self.outage_restarts = restarts
        self.down = True
        self.rt = Runtime(spec, handler=lambda child, message: not self.down)
        self.rt.failure = OUTAGE
        self.rt.begin()
        self.asked: list[str] = []
        self.spawns = len(self.rt.effects("spawn"))

    @rule()
    def a_request_fails(self):
        ident = f"r{len(self.asked)}"
        message, sender = request(ident, deadline=self.rt.now + 5.0)
        self.asked.append(sender.address)
        if self.down:
            if "c0" in self.rt.alive:
                self.rt.fail("c0", message, OUTAGE, sender, sender.deadline)
            else:  # it is starting: the request waits in it, and fails once it runs
                self.rt.handle("c0", message, sender, None)
        else:
            self.rt.log.append(("answer", sender.address, ("ok", message)))

    @rule(dt=st.sampled_from([0.01, 0.1, 0.5, 2.0, 6.0]))
    def time_passes(self, dt):
        self.rt.advance(dt)

    @rule(defer=st.booleans())
    def instances_start_slowly(self, defer):
        self.rt.defer_starts = defer  # what reaches a starting instance waits in it

    @rule()
    def starting_instances_finish(self):
        for child in list(self.rt.starting):
            self.rt.finish_start(child)

    @rule()
    def the_dependency_comes_back(self):
        self.down = False

    @rule()
    def it_goes_down_again(self):
        self.down = True

    @invariant()
    def an_outage_never_escalates(self):
        assert not self.rt.effects("escalate")

    @invariant()
    def restarts_stay_within_the_outage_budget(self):
        restarts = len(self.rt.effects("spawn")) - self.spawns
        assert restarts <= self.outage_restarts  # one episode: the quiet period never passes

    @invariant()
    def every_request_has_at_most_one_answer(self):
        for caller in self.asked:
            assert len(self.rt.answers_to(caller)) <= 1, caller

    def teardown(self):
        self.rt.defer_starts = False
        self.starting_instances_finish()
        self.rt.settle()
        for caller in self.asked:  # and, once everything settled, exactly one
            assert len(self.rt.answers_to(caller)) == 1, caller


OutageMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestOutage = OutageMachine.TestCase


@settings(max_examples=150, deadline=None)
@given(
    max_r=st.integers(0, 3),
    period=st.sampled_from([1.0, 10.0]),
    steps=st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 0.25, 2.0])), max_size=20),
)
def test_faults_escalate_only_when_restart_intensity_is_exceeded(max_r, period, steps):
    """Requests that always fail (a fault): restarts never exceed the intensity, and the
    supervisor gives up exactly when the next restart would exceed it."""
    spec = Supervisor(
        "s",
        max_restarts=max_r,
        within_s=period,
        health_interval_s=0,
        children=[Child("c", Worker, levels=LevelPolicy(basic_attempts=0, enhanced_attempts=0))],
    )
    rt = Runtime(spec, handler=lambda child, message: False)
    rt.begin()
    for n, (crash, gap) in enumerate(steps):  # times are sums of exact binary fractions
        rt.advance(gap)
        if rt.effects("escalate"):
            break
        if crash:
            rt.crash("c")
        else:
            message, sender = request(f"q{n}")
            rt.fail("c", message, FAULT, sender)
        rt.settle(limit=1.0)
    restarts = [e[3] for e in rt.effects("spawn")][1:]  # after the first start
    for t in restarts:  # restarts in any window stay within the intensity
        assert len([u for u in restarts if t <= u <= t + period]) <= max_r
    for _, _, when in rt.effects("escalate"):  # given up when one more would have exceeded it
        assert len([t for t in restarts if t >= when - period]) == max_r


def test_a_failure_of_the_old_instance_reported_while_the_new_one_starts_reaches_it():
    """A message the previous instance failed, reported after its successor was spawned,
    goes to that successor (it used to wait for a restart that never came)."""
    restart_at_once = LevelPolicy(basic_attempts=0, enhanced_attempts=0)
    spec = Supervisor(
        "s", health_interval_s=0, children=[Child("c", Worker, levels=restart_at_once)]
    )
    rt = Runtime(spec)
    rt.begin()
    old = rt.alive["c"]
    rt.defer_starts = True
    a, a_sender = request("a")
    rt.fail("c", a, FAULT, a_sender)  # level 3: the instance is replaced
    assert "c" in rt.starting  # the successor is spawned, and still starting
    b, b_sender = request("b")
    rt.feed(Failed("c", old, FAULT, b, b_sender, now=rt.now))  # in flight at the old one
    rt.finish_start("c")
    rt.settle()
    assert rt.answers_to(a_sender.address) == [("ok", a)]
    assert rt.answers_to(b_sender.address) == [("ok", b)]
