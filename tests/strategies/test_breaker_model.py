"""The breaker against a small sequential reference model of the documented semantics.

The machine drives one breaker with every kind of caller at once: calls made and finished
at once (``call``, decorator, generator), calls held open on their own threads (admitted
now, finished whenever the machine likes, in any order: the lock-free path's late
outcomes), ``async with`` blocks on one event loop, started and finished in any order,
``with`` blocks, and ``permit()``/``record()`` callers. The clock is a fake one; the
threads only ever run one at a time, so every run is deterministic.
"""

import asyncio
import math
import threading

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from stalwart.strategies import BreakerState, CircuitBreaker, CircuitOpenError, CountWindow


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Abort(BaseException):
    """Ends a call like a cancellation: not an error, so ignored."""


RECORDING = ("closed", "metrics_only")
ENDINGS = ["ok", "fail", "excluded", "abort"]


def ending_error(ending):
    return {"fail": ConnectionError("down"), "excluded": KeyError("x"), "abort": Abort()}.get(
        ending
    )


class Model:
    """A direct, slow transcription of the semantics in the breaker's docstring."""

    def __init__(self, cfg, now):
        self.cfg = cfg
        self.state, self.generation = "closed", 0
        self.window, self.window_gen = [], 0  # (failed, slow) per recorded call
        self.trips, self.reopen_at, self.half_opened_at = 0, 0.0, 0.0
        self.ho_permits = self.ho_successes = self.ho_slow = 0
        self.streak = self.rejected = 0
        self.outcomes, self.changes = [], []
        if cfg["initial"] == "open":
            self.open(now)
        elif cfg["initial"] != "closed":
            self.set_state(cfg["initial"], now)
        self.changes = []  # starting in a state is no change

    def trailing(self):
        n = 0
        for failed, _ in reversed(self.window):
            if not failed:
                break
            n += 1
        return n

    def set_state(self, state, now):
        if self.state in RECORDING:
            self.streak = self.trailing()
        if state != self.state:
            self.changes.append((self.state, state))
        self.state = state
        self.generation += 1
        self.ho_permits = self.ho_successes = self.ho_slow = 0
        if state == "half_open":
            self.half_opened_at = now
        elif state in RECORDING:
            if state == "closed":
                self.trips = 0
            self.streak = 0
            self.window, self.window_gen = [], self.generation

    def open(self, now, wait=None):
        self.trips += 1
        if wait is None:
            wait = min(
                self.cfg["cap"], self.cfg["timeout"] * self.cfg["backoff"] ** (self.trips - 1)
            )
        self.reopen_at = now + wait
        self.set_state("open", now)

    def advance(self, now):
        if self.state == "open" and now >= self.reopen_at:
            self.set_state("half_open", now)
        max_wait = self.cfg["max_wait"]
        if (
            self.state == "half_open"
            and max_wait is not None
            and now >= self.half_opened_at + max_wait
        ):
            self.open(now)

    def acquire(self, now):
        """The permit's generation, or None (rejected)."""
        if self.state in ("closed", "disabled", "metrics_only"):
            return self.generation
        if not (self.state == "open" and now < self.reopen_at):
            self.advance(now)
            if self.state == "half_open" and self.ho_permits < self.cfg["ho_max"]:
                self.ho_permits += 1
                return self.generation
            if self.state in ("closed", "disabled", "metrics_only"):
                return self.generation
        self.rejected += 1
        self.outcomes.append("rejected")
        return None

    def complete(self, generation, ending, duration, now):
        failed = {"ok": False, "fail": True}.get(ending)
        slow = self.cfg["slow_s"] is not None and duration >= self.cfg["slow_s"]
        self.advance(now)
        current = generation == self.generation
        if failed is None:
            self.outcomes.append("ignored")
            if current and self.state == "half_open":
                self.ho_permits -= 1
            return
        self.outcomes.append(("slow_" if slow else "") + ("failure" if failed else "success"))
        if generation == self.window_gen:
            self.window = [*self.window, (failed, slow)][-self.cfg["size"] :]
        if current and self.state == "closed" and (failed or slow):
            self.evaluate(now, failed)
        elif current and self.state == "half_open":
            self.trial(now, failed, slow)

    def evaluate(self, now, failed):
        cfg = self.cfg
        if failed and self.trailing() >= cfg["threshold"]:
            self.open(now)
            return
        n = len(self.window)
        if n < cfg["min_calls"]:
            return
        failures = sum(f for f, _ in self.window)
        slow = sum(s for _, s in self.window)
        slow_rate = cfg["slow_rate"]
        if 100.0 * failures / n >= cfg["rate"] or (
            slow_rate is not None and 100.0 * slow / n >= slow_rate
        ):
            self.open(now)

    def trial(self, now, failed, slow):
        if failed:
            self.streak += 1
            self.open(now)
            return
        self.streak = 0
        self.ho_successes += 1
        self.ho_slow += slow
        if self.ho_successes < self.cfg["successes"]:
            return
        slow_rate = self.cfg["slow_rate"]
        if slow_rate is not None and 100.0 * self.ho_slow / self.ho_successes >= slow_rate:
            self.open(now)
        else:
            self.set_state("closed", now)

    def consecutive_failures(self):
        return self.trailing() if self.state in RECORDING else self.streak


class Held:
    """A sync call on its own thread: admitted when started, finished when told."""

    def __init__(self, breaker, form):
        self.settled, self.release = threading.Event(), threading.Event()
        self.rejected, self.ending = False, "ok"
        body = self.body
        if form == "decorator":
            body = breaker(self.body)
        elif form == "generator":
            body = self.as_list(breaker(self.rows))
        elif form == "with":
            body = self.inside(breaker, self.body)
        else:
            body = self.through(breaker, self.body)
        self.thread = threading.Thread(target=self.run, args=(body,))
        self.thread.start()
        assert self.settled.wait(30)
        if self.rejected:
            self.thread.join(30)

    @staticmethod
    def through(breaker, fn):
        return lambda: breaker.call(fn)

    @staticmethod
    def inside(breaker, fn):
        def run():
            with breaker:
                fn()

        return run

    @staticmethod
    def as_list(gen):
        return lambda: list(gen())

    def body(self):
        self.settled.set()
        self.release.wait(30)
        error = ending_error(self.ending)
        if error is not None:
            raise error

    def rows(self):
        yield 1
        self.body()

    def run(self, body):
        try:
            body()
        except CircuitOpenError:
            self.rejected = True
            self.settled.set()
        except (ConnectionError, KeyError, Abort):
            pass

    def finish(self, ending):
        self.ending = ending
        self.release.set()
        self.thread.join(30)


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
        max_wait=st.sampled_from([None, 2.0, 5.0]),
        slow=st.sampled_from([(None, None), (2.0, None), (2.0, 50.0), (2.0, 100.0)]),
        initial=st.sampled_from([s.value for s in BreakerState]),
        listening=st.booleans(),
    )
    def setup(self, extra_size, extra_permits, slow, listening, **cfg):
        self.clock = Clock()
        cfg["size"] = cfg["threshold"] + extra_size
        cfg["ho_max"] = cfg["successes"] + extra_permits
        cfg["slow_s"], cfg["slow_rate"] = slow
        self.breaker = CircuitBreaker(
            cfg["threshold"],
            cfg["timeout"],
            cfg["successes"],
            window=CountWindow(cfg["size"]),
            failure_rate_threshold=cfg["rate"],
            slow_call_duration_s=cfg["slow_s"],
            slow_call_rate_threshold=cfg["slow_rate"],
            minimum_calls=cfg["min_calls"],
            half_open_max_calls=cfg["ho_max"],
            max_wait_in_half_open_s=cfg["max_wait"],
            open_backoff=cfg["backoff"],
            max_recovery_timeout=None if cfg["cap"] == math.inf else cfg["cap"],
            ignore_on=(LookupError,),
            state=cfg["initial"],
            clock=self.clock,
        )
        self.model = Model(cfg, self.clock.now)
        self.outcomes, self.changes = [], []
        self.listening = listening
        if listening:
            self.breaker.on_outcome(self.heard_outcome)
            self.breaker.on_state_change(self.heard_change)
        self.held = []  # (Held, model generation, start)
        self.blocks = []  # sync `with` blocks of this thread: (model generation, start)
        self.permits = []  # (permit, model generation)
        self.loop = asyncio.new_event_loop()
        self.tasks = []  # (task, finish future, model generation, start)

    def heard_outcome(self, _b, outcome, _duration, _exc):
        self.outcomes.append(outcome.value)

    def heard_change(self, _b, old, new):
        self.changes.append((old.value, new.value))

    def teardown(self):
        for held, *_ in self.held:
            held.finish("ok")
        for task, finish, *_ in self.tasks:
            finish.set_result("ok")
            self.loop.run_until_complete(task)
        self.loop.close()

    # -- callers ---------------------------------------------------------------------------
    @rule(ending=st.sampled_from(ENDINGS), form=st.sampled_from(["call", "decorator", "generator"]))
    def call(self, ending, form):
        def fn():
            error = ending_error(ending)
            if error is not None:
                raise error
            return "done"

        def rows():
            yield fn()

        expected = self.model.acquire(self.clock.now)
        try:
            if form == "call":
                result = self.breaker.call(fn)
            elif form == "decorator":
                result = self.breaker(fn)()
            else:
                (result,) = list(self.breaker(rows)())
            got = "ok"
        except CircuitOpenError:
            got = "rejected"
        except (ConnectionError, KeyError, Abort):
            got = ending
        if expected is None:
            assert got == "rejected"
        else:
            assert got == ending
            if ending == "ok":
                assert result == "done"
            self.model.complete(expected, ending, 0.0, self.clock.now)

    @rule(form=st.sampled_from(["call", "decorator", "generator", "with"]))
    def start_held_call(self, form):
        expected = self.model.acquire(self.clock.now)
        held = Held(self.breaker, form)
        assert held.rejected == (expected is None)
        if expected is not None:
            self.held.append((held, expected, self.clock.now))

    @precondition(lambda self: self.held)
    @rule(data=st.data(), ending=st.sampled_from(ENDINGS))
    def finish_held_call(self, data, ending):
        i = data.draw(st.integers(0, len(self.held) - 1))
        held, generation, start = self.held.pop(i)
        held.finish(ending)
        duration = self.clock.now - start
        self.model.complete(generation, ending, duration, self.clock.now)

    @rule()
    def start_async_with(self):
        expected = self.model.acquire(self.clock.now)
        inside = self.loop.create_future()
        finish = self.loop.create_future()

        async def block():
            try:
                async with self.breaker:
                    inside.set_result(True)
                    error = ending_error(await finish)
                    if error is not None:
                        raise error
            except CircuitOpenError:
                inside.set_result(False)
            except (ConnectionError, KeyError, Abort):
                pass

        task = self.loop.create_task(block())
        admitted = self.loop.run_until_complete(inside)
        assert admitted == (expected is not None)
        if admitted:
            self.tasks.append((task, finish, expected, self.clock.now))
        else:
            self.loop.run_until_complete(task)

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), ending=st.sampled_from(ENDINGS))
    def finish_async_with(self, data, ending):
        i = data.draw(st.integers(0, len(self.tasks) - 1))
        task, finish, generation, start = self.tasks.pop(i)
        finish.set_result(ending)
        self.loop.run_until_complete(task)
        self.model.complete(generation, ending, self.clock.now - start, self.clock.now)

    @rule()
    def enter_with(self):
        expected = self.model.acquire(self.clock.now)
        try:
            self.breaker.__enter__()
            admitted = True
        except CircuitOpenError:
            admitted = False
        assert admitted == (expected is not None)
        if admitted:
            self.blocks.append((expected, self.clock.now))

    @precondition(lambda self: self.blocks)
    @rule(ending=st.sampled_from(ENDINGS))
    def exit_with(self, ending):
        generation, start = self.blocks.pop()
        error = ending_error(ending)
        self.breaker.__exit__(type(error) if error else None, error, None)
        self.model.complete(generation, ending, self.clock.now - start, self.clock.now)

    @rule()
    def take_permit(self):
        expected = self.model.acquire(self.clock.now)
        try:
            permit = self.breaker.permit()
        except CircuitOpenError:
            permit = None
        assert (permit is None) == (expected is None)
        if permit is not None:
            self.permits.append((permit, expected))

    @precondition(lambda self: self.permits)
    @rule(data=st.data(), ending=st.sampled_from(ENDINGS))
    def record_permit(self, data, ending):
        i = data.draw(st.integers(0, len(self.permits) - 1))
        permit, generation = self.permits.pop(i)
        self.breaker.record(permit, ending_error(ending))
        self.model.complete(generation, ending, self.clock.now - permit[1], self.clock.now)

    # -- time, state and listeners ---------------------------------------------------------
    @rule(dt=st.sampled_from([0.5, 1.0, 3.0, 10.0]))
    def advance(self, dt):
        self.clock.now += dt

    @rule()
    def read_state(self):
        self.model.advance(self.clock.now)
        assert self.breaker.state.value == self.model.state

    @rule(
        action=st.sampled_from(
            ["open", "open_for", "half_open", "close", "force_open", "disable", "metrics_only"]
        )
    )
    def manual(self, action):
        now = self.clock.now
        if action == "open":
            self.breaker.open()
            self.model.open(now)
        elif action == "open_for":
            self.breaker.open(for_s=4.0)
            self.model.open(now, 4.0)
        else:
            getattr(self.breaker, action)()
            state = {"force_open": "forced_open", "close": "closed", "disable": "disabled"}.get(
                action, action
            )
            self.model.set_state(state, now)

    @precondition(lambda self: self.listening)
    @rule()
    def stop_listening(self):
        self.breaker.remove_listener(self.heard_outcome)
        self.breaker.remove_listener(self.heard_change)
        self.listening = False
        self.outcomes, self.changes = [], []
        self.model.outcomes, self.model.changes = [], []

    @invariant()
    def agrees_with_the_model(self):
        b, m, now = self.breaker, self.model, self.clock.now
        assert b._state.value == m.state
        c = b.counts()
        assert (c.calls, c.failures, c.slow) == (
            len(m.window),
            sum(f for f, _ in m.window),
            sum(s for _, s in m.window),
        )
        assert b.consecutive_failures == m.consecutive_failures()
        assert b.rejected_calls == m.rejected
        if m.state == "open":
            assert abs(b.remaining_open_s - max(0.0, m.reopen_at - now)) < 1e-9
        if self.listening:
            assert self.outcomes == m.outcomes
            assert self.changes == m.changes
        # health() reads the state, which may make a timed transition
        m.advance(now)
        h = b.health()
        assert 0 <= h <= 100
        if b._state in (BreakerState.OPEN, BreakerState.FORCED_OPEN):
            assert h == 0
        assert b._state.value == m.state


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestBreakerAgainstModel = BreakerMachine.TestCase
