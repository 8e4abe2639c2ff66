import random

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart.strategies import (
    AnyBackoff,
    Exponential,
    Fibonacci,
    Fixed,
    Linear,
    Random,
    chain,
    schedule_from,
)

positive = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
factors = st.floats(min_value=1.0, max_value=5.0, allow_nan=False)
attempts = st.integers(min_value=1, max_value=60)

bases = st.one_of(
    st.builds(Fixed, positive),
    st.builds(Linear, positive, positive),
    st.builds(Exponential, positive, factors),
    st.builds(Fibonacci, positive),
    st.builds(Random, st.just(0.0), positive),
)
jitters = st.sampled_from(["none", "full", "equal", "decorrelated"])


def take(schedule, n, seed=0):
    it = schedule.delays(random.Random(seed))
    return [next(it) for _ in range(n)]


def test_fixed_linear_fibonacci_values():
    assert [Fixed(0.5).base_delay(a) for a in (1, 2, 9)] == [0.5, 0.5, 0.5]
    assert [Linear(1, 2).base_delay(a) for a in (1, 2, 3)] == [1, 3, 5]
    assert [Fibonacci(1).base_delay(a) for a in range(1, 8)] == [1, 1, 2, 3, 5, 8, 13]
    assert [Exponential(0.1, 2).base_delay(a) for a in (1, 2, 3)] == pytest.approx([0.1, 0.2, 0.4])


def test_chain_runs_each_step_for_its_attempts_then_the_last_forever():
    c = chain((Fixed(1), 3), Exponential(1, 2))
    assert [c.base_delay(a) for a in range(1, 8)] == [1, 1, 1, 1, 2, 4, 8]


def test_chain_rejects_a_bare_schedule_before_the_last_step():
    with pytest.raises(ValueError, match="last step"):
        chain(Fixed(1), (Fixed(2), 2))


def test_sum_adds_a_random_component_within_its_bounds():
    s = Fixed(1) + Random(0, 0.5)
    assert all(1.0 <= d <= 1.5 for d in take(s, 200))


@given(bases, jitters, attempts, st.integers(0, 2**32))
def test_delays_are_never_negative(schedule, jitter, n, seed):
    s = schedule.jittered(jitter, cap=1000.0)
    assert all(d >= 0 for d in take(s, n, seed))


@given(bases, jitters, st.floats(min_value=0.0, max_value=10.0), attempts, st.integers(0, 2**32))
def test_capped_schedules_never_exceed_the_cap(schedule, jitter, cap, n, seed):
    assert all(d <= cap for d in take(schedule.capped(cap).jittered(jitter, cap), n, seed))


@given(positive, factors, attempts)
def test_exponential_is_non_decreasing_before_jitter(initial, factor, n):
    delays = [Exponential(initial, factor).base_delay(a) for a in range(1, n + 1)]
    assert delays == sorted(delays)


@given(positive, factors, attempts, st.integers(0, 2**32))
def test_full_and_equal_jitter_stay_within_their_bounds(initial, factor, attempt, seed):
    base = Exponential(initial, factor).capped(50.0)
    d = base.base_delay(attempt)
    full = base.jittered("full").next_delay(attempt, 0.0, random.Random(seed))
    equal = base.jittered("equal").next_delay(attempt, 0.0, random.Random(seed))
    assert 0.0 <= full <= d
    assert d / 2 <= equal <= d


@given(st.floats(min_value=0.01, max_value=5.0), st.floats(0.0, 50.0), st.integers(0, 2**32))
def test_decorrelated_jitter_stays_between_base_and_three_times_previous(base, previous, seed):
    s = Fixed(base).jittered("decorrelated", cap=1000.0)
    d = s.next_delay(2, previous, random.Random(seed))
    assert base <= d <= max(base, 3 * max(previous, base)) + 1e-9


def test_seeded_generators_give_identical_sequences():
    s = Exponential(0.1).capped(5).jittered("decorrelated", 5)
    assert take(s, 30, seed=42) == take(s, 30, seed=42)
    assert take(s, 30, seed=42) != take(s, 30, seed=43)


def test_schedules_round_trip_through_json_for_tree_specs():
    s = chain((Fixed(0.1), 3), Exponential(0.1, 2.0).capped(5).jittered("full"))
    decoded = msgspec.json.decode(msgspec.json.encode(s), type=AnyBackoff)
    assert decoded == s


def test_familiar_arguments_build_the_expected_schedule():
    assert schedule_from(1.0, 1.0) == Fixed(1.0)
    assert schedule_from(1.0, 2.0) == Exponential(1.0, 2.0)
    capped = schedule_from(1.0, 2.0, max_delay=3.0)
    assert [capped.base_delay(a) for a in (1, 2, 3, 4)] == [1, 2, 3, 3]
    jittered = schedule_from(1.0, 2.0, jitter=True)
    assert all(0 <= jittered.next_delay(3, 0, random.Random(s)) <= 4 for s in range(50))
