"""RetryBudget: retries stay a share of recent calls, shared by every caller of a service."""

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart.strategies import RetryBudget, retry
from tests.strategies.fakes import Clock


def grant_all(budget, n):
    return sum(budget.try_retry() for _ in range(n))


def test_the_floor_allows_min_retries_per_s_times_the_window_with_no_calls():
    budget = RetryBudget(ratio=0.2, min_retries_per_s=1, window_s=10, clock=Clock())
    assert grant_all(budget, 15) == 10
    assert budget.stats().rejected == 5


def test_retries_are_a_share_of_recent_calls():
    budget = RetryBudget(ratio=0.5, min_retries_per_s=0, window_s=10, clock=Clock())
    for _ in range(10):
        budget.record_call()
    assert grant_all(budget, 8) == 5
    stats = budget.stats()
    assert (stats.calls, stats.retries, stats.rejected, stats.available) == (10, 5, 3, 0.0)


def test_calls_and_retries_leave_the_window_as_time_passes():
    clock = Clock()
    budget = RetryBudget(ratio=1.0, min_retries_per_s=0, window_s=10, clock=clock)
    for _ in range(4):
        budget.record_call()
    assert grant_all(budget, 4) == 4
    clock.now = 5.0
    assert not budget.try_retry()  # still within the window
    clock.now = 10.5  # the first slot has left the window
    assert budget.stats().calls == 0
    assert not budget.try_retry()
    budget.record_call()
    assert budget.try_retry()


def test_a_long_silence_empties_the_window():
    clock = Clock()
    budget = RetryBudget(ratio=1.0, min_retries_per_s=0, window_s=10, clock=clock)
    for _ in range(100):
        budget.record_call()
    clock.now = 3600.0
    assert budget.stats().calls == 0
    assert not budget.try_retry()


def test_calls_recorded_from_many_threads_are_all_counted():
    budget = RetryBudget(clock=Clock())
    start = threading.Barrier(4)

    def record():
        start.wait()
        for _ in range(20_000):
            budget.record_call()

    threads = [threading.Thread(target=record) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.stats().calls == 80_000


def test_retries_granted_from_many_threads_never_exceed_the_budget():
    budget = RetryBudget(ratio=0.0, min_retries_per_s=5, window_s=10, clock=Clock())
    granted = []
    start = threading.Barrier(4)

    def ask():
        start.wait()
        granted.append(grant_all(budget, 100))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 50


def test_an_exhausted_budget_raises_the_original_error_at_once():
    budget = RetryBudget(ratio=0.0, min_retries_per_s=0.1, window_s=10, clock=Clock())  # 1 retry
    calls = []

    @retry(max_attempts=5, delay=0, budget=budget)
    def fetch():
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        fetch()
    assert len(calls) == 2  # the one retry the budget held
    calls.clear()
    with pytest.raises(ConnectionError) as info:
        fetch()
    assert len(calls) == 1
    assert any("retry budget exhausted" in note for note in info.value.__notes__)
    assert fetch.statistics.budget_exhausted


def test_one_budget_is_shared_by_every_caller_of_a_service():
    budget = RetryBudget(ratio=0.0, min_retries_per_s=0.2, window_s=10, clock=Clock())  # 2
    calls = []

    def failing(name):
        def call():
            calls.append(name)
            raise ConnectionError(name)

        return retry(max_attempts=3, delay=0, budget=budget)(call)

    for fn in (failing("a"), failing("b")):
        with pytest.raises(ConnectionError):
            fn()
    assert calls == ["a", "a", "a", "b"]


def test_each_call_deposits_once_however_many_attempts_it_makes():
    budget = RetryBudget(ratio=1.0, min_retries_per_s=0, window_s=10, clock=Clock())
    state = {"n": 0}

    @retry(max_attempts=3, delay=0, budget=budget)
    def sometimes():
        state["n"] += 1
        if state["n"] % 2:
            raise ConnectionError("odd")
        return state["n"]

    sometimes()
    assert budget.stats().calls == 1 and budget.stats().retries == 1


def test_bad_configuration_names_the_field():
    with pytest.raises(ValueError, match=r"RetryBudget\.ratio"):
        RetryBudget(ratio=-1)
    with pytest.raises(ValueError, match=r"RetryBudget\.window_s"):
        RetryBudget(window_s=0)


class ReferenceBudget:
    """The rule written plainly: every event kept with its slot, the window recounted."""

    def __init__(self, ratio, floor_per_s, window_s, slots):
        self.ratio, self.floor, self.slots = ratio, floor_per_s * window_s, slots
        self.slot_s = window_s / slots
        self.calls, self.retries = [], []

    def _recent(self, events, now):
        current = int(now // self.slot_s)
        return sum(1 for slot in events if slot > current - self.slots)

    def record_call(self, now):
        self.calls.append(int(now // self.slot_s))

    def try_retry(self, now):
        if self._recent(self.retries, now) + 1 <= (
            self.ratio * self._recent(self.calls, now) + self.floor
        ):
            self.retries.append(int(now // self.slot_s))
            return True
        return False


events = st.lists(
    st.one_of(
        st.just(("call", 0)),
        st.just(("retry", 0)),
        st.tuples(st.just("wait"), st.integers(min_value=1, max_value=40)),
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(
    events=events,
    ratio=st.sampled_from([0.0, 0.1, 0.25, 1.0]),
    floor=st.sampled_from([0.0, 0.2, 1.0]),
)
def test_budget_matches_a_reference_model(events, ratio, floor):
    clock = Clock()
    budget = RetryBudget(ratio=ratio, min_retries_per_s=floor, window_s=10, slots=10, clock=clock)
    model = ReferenceBudget(ratio, floor, 10, 10)
    for kind, quarters in events:
        if kind == "wait":
            clock.now += quarters / 4  # slot boundaries fall on whole seconds
        elif kind == "call":
            budget.record_call()
            model.record_call(clock.now)
        else:
            assert budget.try_retry() == model.try_retry(clock.now)
