"""The learned retry timeout: a high quantile with a floor, bounded, never below a success."""

from hypothesis import given
from hypothesis import strategies as st

from stalwart.strategies import LearnedTimeout, TimeoutRule
from stalwart.strategies._learned_timeout import FRESH, MARGIN, quantile

durations = st.lists(st.floats(0.0, 100.0), max_size=80)
rules = st.builds(
    TimeoutRule,
    percentile=st.floats(1.0, 100.0),
    factor=st.floats(1.0, 10.0),
    min_s=st.floats(0.001, 5.0),
    max_s=st.floats(5.0, 120.0),
)


def learned(rule, steps, handler, prior=None, longest=0.0):
    t = LearnedTimeout(rule, prior, longest)
    for s in steps:
        t.observe_step(s)
    t.observe_handler(handler)
    return t


@given(rules, durations, durations, st.floats(0.01, 200.0))
def test_the_timeout_is_never_below_a_success_seen_nor_above_the_ceiling(
    rule, steps, handler, ceiling
):
    t = learned(rule, steps, handler)
    value = t.value(ceiling)
    assert value <= ceiling
    for seen in [*steps, *handler[-64:]]:
        assert value >= min(ceiling, seen)


@given(rules, durations, durations, st.floats(0.01, 200.0))
def test_the_learned_quantile_stays_within_its_bounds_unless_a_success_took_longer(
    rule, steps, handler, ceiling
):
    t = learned(rule, steps, handler)
    value = t.value(ceiling)
    if not steps and not handler:
        assert value == ceiling  # nothing known: the child's own retry_timeout_s
        return
    assert value >= min(ceiling, rule.min_s)
    assert value <= max(rule.max_s, t.longest_s * MARGIN)


@given(st.floats(0.1, 50.0), st.lists(st.floats(0.0, 0.01), max_size=FRESH - 1))
def test_what_earlier_runs_learned_holds_until_this_run_has_its_own_samples(prior, fresh):
    rule = TimeoutRule(min_s=0.01)
    t = learned(rule, fresh, [], prior=prior)
    assert t.value(1000.0) >= prior
    for _ in range(FRESH):
        t.observe_step(0.001)
    # the run's own successes (all under 10 ms) decide now: the prior no longer counts
    # (their p99 times the factor, 3)
    assert t.value(1000.0) <= 0.01 * rule.factor < prior


def test_a_slow_handler_lifts_a_timeout_learned_from_fast_retries():
    # the failure this exists for: fast recoveries taught a 5 ms wait, then the handler's
    # usual 0.4 s made every retry "get no answer"
    t = LearnedTimeout(TimeoutRule(min_s=0.001))
    for _ in range(20):
        t.observe_step(0.002)
    assert t.value(30.0) < 0.05
    t.observe_handler([0.001] * 60 + [0.4] * 4)
    assert t.value(30.0) >= 0.4 * MARGIN
    # an instance's next report replaces its last: the longest success is still kept
    t.observe_handler([0.001] * 64)
    assert t.value(30.0) >= 0.4 * MARGIN


def test_the_quantile_is_a_nearest_rank_one():
    values = [float(i) for i in range(1, 101)]
    assert quantile(values, 99) == 99.0
    assert quantile(values, 100) == 100.0
    assert quantile([3.0], 50) == 3.0
