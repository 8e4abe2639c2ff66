"""The escalation ladder and restart intensity as a state machine (no actors)."""

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from stalwart import LevelPolicy
from stalwart.supervisors import Ladder, RestartIntensity, decide


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class LadderMachine(RuleBasedStateMachine):
    @initialize(
        budgets=st.tuples(*[st.integers(1, 3)] * 4),
        quiet=st.sampled_from([1.0, 5.0]),
        max_restarts=st.integers(0, 4),
        within=st.sampled_from([2.0, 10.0]),
    )
    def setup(self, budgets, quiet, max_restarts, within):
        self.clock = Clock()
        self.policy = LevelPolicy(
            basic_attempts=budgets[0],
            enhanced_attempts=budgets[1],
            component_attempts=budgets[2],
            system_attempts=budgets[3],
            quiet_period_s=quiet,
        )
        self.ladder = Ladder(self.policy, self.clock)
        self.intensity = RestartIntensity(max_restarts, within, self.clock)
        self.last_level = 0
        self.used = 0  # attempts at last_level
        self.last_event = None
        self.granted = []  # times of restarts that were allowed

    @rule()
    def failure(self):
        quiet_passed = (
            self.last_event is not None
            and self.clock.now - self.last_event >= self.policy.quiet_period_s
        )
        action = decide(self.ladder, self.intensity)
        if quiet_passed or self.last_level == 0:
            assert action.level == 1, "a quiet period (or a first failure) starts at level 1"
        else:
            assert action.level in (self.last_level, self.last_level + 1), "levels never skip"
            if action.level == self.last_level and self.last_level < 5:
                assert self.used < self.policy.budget(self.last_level)
        assert 1 <= action.level <= 5
        self.used = self.used + 1 if action.level == self.last_level and not quiet_passed else 1
        self.last_level = action.level
        self.last_event = self.clock.now
        if action.level in (3, 4) and not action.escalate:
            self.granted.append(self.clock.now)

    @rule()
    def success(self):
        self.ladder.on_success()
        if self.last_level:
            self.last_event = self.clock.now

    @rule(dt=st.sampled_from([0.1, 0.5, 1.0, 3.0, 6.0]))
    def wait(self, dt):
        self.clock.now += dt

    @invariant()
    def restarts_in_any_window_stay_within_the_intensity(self):
        within, limit = self.intensity.within_s, self.intensity.max_restarts
        for t in self.granted:
            in_window = [u for u in self.granted if t <= u < t + within]
            assert len(in_window) <= limit

    @invariant()
    def level_is_bounded(self):
        assert 0 <= self.ladder.current <= 5


LadderMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
TestLadder = LadderMachine.TestCase


def test_a_crash_starts_at_level_three():
    ladder = Ladder(LevelPolicy())
    assert ladder.on_failure(minimum=3).level == 3


def test_zero_attempts_skips_a_level():
    ladder = Ladder(LevelPolicy(basic_attempts=0, enhanced_attempts=0))
    assert ladder.on_failure().level == 3


def test_intensity_refuses_once_spent_and_allows_again_after_the_period():
    clock = Clock()
    intensity = RestartIntensity(2, 10.0, clock)
    assert intensity.try_restart() and intensity.try_restart()
    assert not intensity.try_restart()
    clock.now = 10.0
    assert intensity.try_restart()


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
    clock = Clock()
    alone, together = Ladder(policy, clock), Ladder(policy, clock)
    seen_alone, seen = 0, [0] * messages
    for _ in range(rounds):
        expected = alone.on_failure(seen=seen_alone)
        seen_alone = alone.round
        decisions = []
        for i in range(messages):  # every message fails once in the round, one after another
            decisions.append(together.on_failure(seen=seen[i]))
            seen[i] = together.round
        assert decisions[0] == expected  # the first to fail moves the ladder on
        if expected.level > 2:
            break  # a restart is one event for the actor, whatever was in flight
        assert all(d == expected for d in decisions), decisions  # the others join the level
        clock.now += 0.1


def test_without_rounds_every_failure_uses_an_attempt():
    ladder = Ladder(LevelPolicy(basic_attempts=2, enhanced_attempts=2), Clock())
    assert [ladder.on_failure().level for _ in range(5)] == [1, 1, 2, 2, 3]
