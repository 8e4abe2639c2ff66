"""The breaker against a small reference model of the documented semantics."""

import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from stalwart.strategies import BreakerState, CircuitBreaker, CircuitOpenError, CountWindow


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Model:
    """A direct, slow transcription of the semantics in the breaker's docstring."""

    def __init__(self, threshold, timeout, successes, size, rate, min_calls, ho_max, backoff, cap):
        self.threshold, self.timeout, self.successes = threshold, timeout, successes
        self.size, self.rate, self.min_calls = size, rate, min_calls
        self.ho_max, self.backoff, self.cap = ho_max, backoff, cap
        self.state = "closed"
        self.window = []
        self.trips = 0
        self.opened_at = 0.0
        self.wait = timeout
        self.generation = 0
        self.ho_permits = 0
        self.ho_successes = 0

    def set_state(self, state):
        self.generation += 1
        self.ho_permits = 0
        self.ho_successes = 0
        if state == "closed":
            self.trips = 0
            self.window = []
        self.state = state

    def due(self, now):
        if self.state == "open" and now >= self.opened_at + self.wait:
            self.set_state("half_open")

    def acquire(self, now):
        if self.state in ("closed", "disabled"):
            return self.generation
        self.due(now)
        if self.state == "half_open" and self.ho_permits < self.ho_max:
            self.ho_permits += 1
            return self.generation
        if self.state in ("closed", "disabled"):
            return self.generation
        return None

    def trip(self, now):
        self.trips += 1
        self.wait = min(self.cap, self.timeout * self.backoff ** (self.trips - 1))
        self.opened_at = now
        self.set_state("open")

    def complete(self, generation, outcome, now):
        same = generation == self.generation
        if outcome == "ignored":
            if self.state == "half_open" and same:
                self.ho_permits -= 1
            return
        failed = outcome == "fail"
        if self.state == "closed" and same:
            self.window = ([*self.window, failed])[-self.size :]
            if failed:
                trailing = 0
                for f in reversed(self.window):
                    if not f:
                        break
                    trailing += 1
                if trailing >= self.threshold:
                    self.trip(now)
                    return
                n = len(self.window)
                if n >= self.min_calls and 100.0 * sum(self.window) / n >= self.rate:
                    self.trip(now)
        elif self.state == "half_open" and same:
            if failed:
                self.trip(now)
            else:
                self.ho_successes += 1
                if self.ho_successes >= self.successes:
                    self.set_state("closed")


ERRORS = {"fail": ConnectionError("down"), "ignored": KeyboardInterrupt(), "ok": None}


class BreakerMachine(RuleBasedStateMachine):
    @initialize(
        threshold=st.integers(1, 5),
        timeout=st.sampled_from([0.0, 1.0, 5.0]),
        successes=st.integers(1, 3),
        extra_size=st.integers(0, 6),
        rate=st.sampled_from([30.0, 50.0, 100.0]),
        min_calls=st.integers(1, 8),
        extra_permits=st.integers(0, 2),
        backoff=st.sampled_from([1.0, 2.0]),
        cap=st.sampled_from([math.inf, 8.0]),
    )
    def setup(
        self,
        threshold,
        timeout,
        successes,
        extra_size,
        rate,
        min_calls,
        extra_permits,
        backoff,
        cap,
    ):
        self.clock = Clock()
        size = threshold + extra_size
        ho_max = successes + extra_permits
        self.breaker = CircuitBreaker(
            threshold,
            timeout,
            successes,
            window=CountWindow(size),
            failure_rate_threshold=rate,
            minimum_calls=min_calls,
            half_open_max_calls=ho_max,
            open_backoff=backoff,
            max_recovery_timeout=None if cap == math.inf else cap,
            ignore_on=(),
            clock=self.clock,
        )
        self.model = Model(
            threshold, timeout, successes, size, rate, min_calls, ho_max, backoff, cap
        )
        self.inflight = []  # (model generation or None)

    @rule(outcome=st.sampled_from(["ok", "fail", "ignored"]))
    def call(self, outcome):
        def fn():
            if ERRORS[outcome] is not None:
                raise ERRORS[outcome]
            return "done"

        expected_gen = self.model.acquire(self.clock.now)
        try:
            result = self.breaker.call(fn)
            got = "ok"
        except CircuitOpenError:
            got = "rejected"
        except (ConnectionError, KeyboardInterrupt):
            got = outcome
        if expected_gen is None:
            assert got == "rejected"
        else:
            assert got == outcome
            if outcome == "ok":
                assert result == "done"
            self.model.complete(expected_gen, outcome, self.clock.now)

    @rule()
    def begin(self):
        expected_gen = self.model.acquire(self.clock.now)
        try:
            self.breaker.__enter__()
            admitted = True
        except CircuitOpenError:
            admitted = False
        assert admitted == (expected_gen is not None)
        if admitted:
            self.inflight.append(expected_gen)

    @precondition(lambda self: self.inflight)
    @rule(outcome=st.sampled_from(["ok", "fail", "ignored"]))
    def end(self, outcome):
        gen = self.inflight.pop()
        exc = ERRORS[outcome]
        self.breaker.__exit__(type(exc) if exc else None, exc, None)
        self.model.complete(gen, outcome, self.clock.now)

    @rule(dt=st.sampled_from([0.5, 1.0, 3.0, 10.0]))
    def advance(self, dt):
        self.clock.now += dt

    @rule()
    def read_state(self):
        self.model.due(self.clock.now)
        assert self.breaker.state.value == self.model.state

    @rule(action=st.sampled_from(["force_open", "disable", "reset"]))
    def manual(self, action):
        getattr(self.breaker, action)()
        self.model.set_state(
            {"force_open": "forced_open", "disable": "disabled", "reset": "closed"}[action]
        )
        if action == "reset":
            self.model.trips = 0

    @invariant()
    def agrees_with_the_model(self):
        assert self.breaker._state.value == self.model.state
        if self.model.state == "closed":
            c = self.breaker.counts()
            assert c.calls == len(self.model.window)
            assert c.failures == sum(self.model.window)
        if self.model.state == "open":
            expected = max(0.0, self.model.opened_at + self.model.wait - self.clock.now)
            assert abs(self.breaker.remaining_open_s - expected) < 1e-9
        # health() reads the state, which lets a due open breaker go half-open
        self.model.due(self.clock.now)
        h = self.breaker.health()
        assert 0 <= h <= 100
        if self.breaker._state in (BreakerState.OPEN, BreakerState.FORCED_OPEN):
            assert h == 0
        assert self.breaker._state.value == self.model.state


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestBreakerAgainstModel = BreakerMachine.TestCase
