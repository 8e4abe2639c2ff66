"""The kernel's children requests against a reference model of OTP's supervisor.

Random sequences of ``start_child``, ``terminate_child``, ``restart_child``,
``delete_child``, crashes and normal stops go to the pure kernel (simulated instances,
no actor system) and to a few lines that say what OTP's ``supervisor`` does; after each
step the answers, ``which_children`` and ``count_children`` must agree.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart import (
    Child,
    ChildRunning,
    CountChildren,
    DeleteChild,
    LevelPolicy,
    RestartChild,
    StartChild,
    Supervisor,
    TerminateChild,
    UnknownPath,
    WhichChildren,
)
from stalwart.actors import AlreadyPresent, AlreadyStarted
from stalwart.actors.messages import ErrorReply
from stalwart.supervisors._kernel import events as ev
from tests.core.kernel_harness import Runtime
from tests.support import Worker

NAMES = st.sampled_from(["a", "b", "c"])
RESTARTS = st.sampled_from(["permanent", "transient", "temporary"])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("start"), NAMES, RESTARTS),
        st.tuples(st.sampled_from(["terminate", "restart", "delete", "crash", "stop"]), NAMES),
    ),
    max_size=25,
)


class OtpModel:
    """What OTP's supervisor keeps: each child's restart type and whether it runs."""

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        self.children: dict[str, list] = {}  # name -> [restart, running], in start order

    def start(self, name: str, restart: str) -> object:
        if name in self.children:
            return AlreadyStarted if self.children[name][1] else AlreadyPresent
        self.children[name] = [restart, True]
        return f"s/{name}"

    def terminate(self, name: str) -> object:
        if name not in self.children:
            return UnknownPath
        if self.children[name][0] == "temporary":
            del self.children[name]
        else:
            self.children[name][1] = False
        return None

    def restart(self, name: str) -> object:
        if name not in self.children:
            return UnknownPath
        if self.children[name][1]:
            return ChildRunning
        self.children[name][1] = True
        return f"s/{name}"

    def delete(self, name: str) -> object:
        if name not in self.children:
            return UnknownPath
        if self.children[name][1]:
            return ChildRunning
        del self.children[name]
        return None

    def ended(self, name: str, normal: bool) -> None:
        """The child ended by itself (``normal``: it stopped; else it crashed)."""
        restart = self.children[name][0]
        if restart == "temporary":
            del self.children[name]
        elif restart == "transient" and normal:
            self.children[name][1] = False
        else:
            self.restart_set(name)

    def restart_set(self, name: str) -> None:
        names = list(self.children)
        chosen = {
            "one_for_one": [name],
            "one_for_all": names,
            "rest_for_one": names[names.index(name) :],
        }[self.strategy]
        for other in chosen:
            if self.children[other][0] == "temporary" and other != name:
                del self.children[other]  # a temporary bystander is not restarted
            else:
                self.children[other][1] = True

    def which(self) -> list[tuple[str, str | None]]:
        return [(n, f"s/{n}" if running else None) for n, (_, running) in self.children.items()]


def answer(rt: Runtime, request: object, who: str) -> object:
    rt.feed(ev.ChildRequested(request, who, now=rt.now))
    rt.settle()
    (value,) = rt.answers_to(who)
    if isinstance(value, ErrorReply):
        return type(value.exception())
    return value


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]), STEPS)
def test_children_requests_do_what_otps_supervisor_does(strategy, steps):
    spec = Supervisor("s", strategy=strategy, max_restarts=10_000, levels=LevelPolicy.otp())
    rt = Runtime(spec)
    rt.begin()
    model = OtpModel(strategy)
    for i, (op, name, *rest) in enumerate(steps):
        who = f"caller-{i}"
        if op == "start":
            spec = Child(name, Worker, restart=rest[0])
            expected, got = model.start(name, rest[0]), answer(rt, StartChild(spec), who)
        elif op in ("terminate", "restart", "delete"):
            request = {"terminate": TerminateChild, "restart": RestartChild}.get(op, DeleteChild)
            expected = getattr(model, op)(name)
            got = answer(rt, request(name), who)
        else:
            if name not in model.children or not model.children[name][1]:
                continue
            if op == "crash":
                rt.crash(name)
            else:
                rt.stop_itself(name)
            rt.settle()
            model.ended(name, normal=op == "stop")
            expected = got = None
        assert got == expected, f"step {i} {op} {name}: {got} (OTP: {expected})"
        which = answer(rt, WhichChildren(), f"which-{i}")
        assert [(c.name, c.path) for c in which] == model.which(), f"after step {i}"
        counts = answer(rt, CountChildren(), f"count-{i}")
        running = sum(r for _, r in model.children.values())
        assert (counts.specs, counts.active, counts.workers) == (
            len(model.children),
            running,
            len(model.children),
        )
