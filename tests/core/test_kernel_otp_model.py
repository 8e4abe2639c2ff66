"""The kernel against a reference model of Erlang/OTP's supervisor (no actors run).

With ``LevelPolicy.otp()`` the kernel claims OTP's semantics exactly. The model
below is written from OTP's ``supervisor.erl`` and its test suite
(``lib/stdlib/test/supervisor_SUITE.erl``): ``do_restart`` per restart type and exit
reason, ``add_restart`` (the restart is counted, then the restarts within the
period, window start included, must number at most MaxR), and ``restart/2`` per
strategy (one_for_all terminates the others in reverse start order and starts all
in start order, rest_for_one does so for the failed child and those started after
it; temporary siblings are terminated and dropped). Hypothesis drives both with
the same child exits and clock, and they must agree on who runs, who was
restarted, in what order, and when the supervisor gives up.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from stalwart import Child, LevelPolicy, Supervisor
from tests.core.kernel_harness import Runtime
from tests.support import Worker

OTP = LevelPolicy.otp()


class OtpSupervisor:
    """OTP's supervisor for static children, as supervisor.erl defines it."""

    def __init__(self, strategy: str, max_r: int, period: float, restart: list[str]) -> None:
        self.strategy, self.max_r, self.period = strategy, max_r, period
        self.names = [f"c{i}" for i in range(len(restart))]
        self.restart = dict(zip(self.names, restart))
        self.running = set(self.names)  # all start at init, in order
        self.removed: set[str] = set()  # temporary children that exited: their spec is gone
        self.restarts: list[float] = []
        self.terminated = False
        self.started: list[str] = []  # starts after init, in order
        self.stopped: list[str] = []  # terminations by the supervisor, in order

    def exit(self, name: str, normal: bool, now: float) -> None:
        """``name`` exited by itself (``normal``) or crashed."""
        self.running.discard(name)
        kind = self.restart[name]
        if kind == "temporary":
            self.removed.add(name)
            return
        if kind == "transient" and normal:
            return  # kept, not running
        self.restarts = [t for t in self.restarts if t >= now - self.period] + [now]
        if len(self.restarts) > self.max_r:
            self.terminated = True
            return
        alive = [n for n in self.names if n not in self.removed]
        if self.strategy == "one_for_one":
            group = [name]
        elif self.strategy == "one_for_all":
            group = alive
        else:
            group = [n for n in alive if self.names.index(n) >= self.names.index(name)]
        for other in reversed(group):
            if other in self.running:
                self.stopped.append(other)
                self.running.discard(other)
        for other in group:
            if self.restart[other] == "temporary" and other != name:
                self.removed.add(other)  # terminated with the group, not restarted
            else:
                self.started.append(other)
                self.running.add(other)


class KernelAgainstOtp(RuleBasedStateMachine):
    @initialize(
        strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
        max_r=st.integers(0, 3),
        period=st.sampled_from([1.0, 5.0, 30.0]),
        restart=st.lists(
            st.sampled_from(["permanent", "transient", "temporary"]), min_size=1, max_size=4
        ),
    )
    def setup(self, strategy, max_r, period, restart):
        children = [
            Child(f"c{i}", Worker, restart=kind, levels=OTP) for i, kind in enumerate(restart)
        ]
        spec = Supervisor(
            "s",
            strategy=strategy,
            max_restarts=max_r,
            within_s=period,
            health_interval_s=0,
            children=children,
        )
        self.model = OtpSupervisor(strategy, max_r, period, restart)
        self.rt = Runtime(spec)
        self.rt.begin()
        assert [e[1] for e in self.rt.effects("spawn")] == self.model.names  # start order
        self.rt.log.clear()

    def done(self) -> bool:
        return self.model.terminated

    @rule(data=st.data(), normal=st.booleans())
    def a_child_exits(self, data, normal):
        if self.done() or not self.model.running:
            return
        name = data.draw(st.sampled_from(sorted(self.model.running)))
        self.rt.log.clear()
        self.model.stopped.clear()
        self.model.started.clear()
        self.model.exit(name, normal, self.rt.now)
        if normal:
            self.rt.stop_itself(name)
        else:
            self.rt.crash(name)
        self.rt.settle()
        if self.model.terminated:
            assert self.rt.effects("escalate"), "OTP's supervisor gives up here"
            return
        assert not self.rt.effects("escalate")
        # the same children were terminated, in reverse start order, and started, in order
        assert [e[1] for e in self.rt.effects("stop")] == self.model.stopped
        assert [e[1] for e in self.rt.effects("spawn")] == self.model.started

    @rule(dt=st.sampled_from([0.2, 1.0, 3.0, 10.0]))
    def time_passes(self, dt):
        if not self.done():
            self.rt.advance(dt)

    @invariant()
    def the_same_children_run(self):
        if not self.done():
            assert set(self.rt.alive) == self.model.running


KernelAgainstOtp.TestCase.settings = settings(
    max_examples=300, stateful_step_count=25, deadline=None
)
TestKernelAgainstOtp = KernelAgainstOtp.TestCase


def test_shutdown_stops_children_one_at_a_time_in_reverse_start_order():
    spec = Supervisor(
        "s",
        health_interval_s=0,
        children=[Child("a", Worker), Child("b", Worker, depends_on=["a"]), Child("c", Worker)],
    )
    rt = Runtime(spec)
    rt.begin()
    assert [e[1] for e in rt.effects("spawn")] == ["a", "b", "c"]
    rt.log.clear()
    from stalwart.supervisors._kernel.events import RetireRequested

    rt.feed(RetireRequested(now=rt.now))
    assert [e[1] for e in rt.effects("stop")] == ["c", "b", "a"]
    assert rt.log[-1] == ("finish",)


def test_children_start_one_after_another_each_once_the_one_before_runs():
    spec = Supervisor("s", health_interval_s=0, children=[Child("a", Worker), Child("b", Worker)])
    started: list[str] = []
    rt = Runtime(spec, start_ok=lambda child, inc: started.append(child) or True)
    rt.pending.clear()
    from stalwart.supervisors import decide
    from stalwart.supervisors._kernel.events import Begin

    _, commands = decide(rt.state, Begin(now=0.0))
    spawned = [c.child for c in commands if type(c).__name__ == "Spawn"]
    assert spawned == ["a"]  # b waits until a has started, as in OTP
