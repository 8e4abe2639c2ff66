"""The kernel's indexes of its children: whatever is set on the records in whatever order,
it marks exactly the children up or starting that go down, and the one it stops first is
the latest started of them (reverse start order, as OTP stops); it marks exactly the
children down that are to restart or stop; it reads the children in line to start
(starting, or down and not waiting) in start order, each once, as often as it is read;
and a supervisor's next start, read from that line, starts what a look at every child in
start order would (the rule before the index, kept here as the model)."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart import Child, Supervisor
from stalwart.supervisors import SupervisorState
from stalwart.supervisors._kernel import lifecycle
from stalwart.supervisors._kernel.commands import Spawn
from stalwart.supervisors._kernel.state import DOWN, REMOVED, STARTING, STOPPING, UP
from stalwart.supervisors._plan import Slot
from tests.support import Worker

NAMES = [f"c{i}" for i in range(6)]
PHASES = (DOWN, STARTING, UP, STOPPING, REMOVED)

changes = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.sampled_from(("phase", "restart_pending", "stop_for_good", "waiting")),
        st.integers(0, len(PHASES) - 1),
    ),
    max_size=60,
)


def new_state() -> SupervisorState:
    spec = Supervisor("s", children=[Child(name, Worker) for name in NAMES])
    return SupervisorState("s", spec, can_kill=True, seed=7)


def apply(state: SupervisorState, name: str, field: str, value: int) -> None:
    record = state.children[name]
    if field == "phase":
        record.phase = PHASES[value]
    elif field == "waiting":
        record.waiting = "passivated" if value % 2 else ""
    else:
        setattr(record, field, bool(value % 2))


def read(state: SupervisorState, most: int = len(NAMES) + 1) -> list[str]:
    """The names of the children in line the index reads, at most ``most``."""
    taken: list = []
    seen = []
    while len(seen) < most and (found := state.index.next_in_line(taken)) is not None:
        seen.append(found.name)
    state.index.put_back(taken)
    return seen


@settings(max_examples=300, deadline=None)
@given(changes)
def test_the_first_child_stopped_is_the_latest_started_of_those_marked(steps):
    state = new_state()
    records = [state.children[name] for name in NAMES]
    for step in steps:
        apply(state, *step)
        expected = {
            r.name
            for r in records
            if (r.restart_pending or r.stop_for_good) and r.phase in (UP, STARTING)
        }
        assert set(state.index.marked) == expected
        if expected:
            latest = state.index.latest_marked()
            assert latest is max((state.children[n] for n in expected), key=lambda r: r.seq)


@settings(max_examples=300, deadline=None)
@given(changes, st.lists(st.integers(1, len(NAMES) + 1), max_size=8))
def test_the_children_in_line_are_read_in_start_order_and_those_down_marked(steps, reads):
    state = new_state()
    records = [state.children[name] for name in NAMES]
    for step, most in zip(steps, reads + [0] * len(steps), strict=False):
        apply(state, *step)
        marked_down = {
            r.name for r in records if (r.restart_pending or r.stop_for_good) and r.phase == DOWN
        }
        assert set(state.index.marked_down) == marked_down
        assert set(state.index.ready) == {
            r.name for r in records if r.phase == DOWN and not r.waiting
        }
        line = [  # (in start order)
            r.name for r in records if r.phase == STARTING or (r.phase == DOWN and not r.waiting)
        ]
        for _ in range(2):  # (a read that stops early leaves the index as it was)
            assert read(state, most or len(NAMES) + 1) == line[: most or len(line)]


def test_a_child_removed_from_its_supervisor_is_read_no_more():
    state = new_state()
    gone = state.children["c2"]
    gone.stop_for_good = True
    state.remove(gone)
    assert read(state) == [n for n in NAMES if n != "c2"]
    assert "c2" not in state.index.marked_down


def test_the_last_child_down_is_still_read_once_it_starts_and_one_going_down_after_all_ran():
    state = new_state()
    for name in NAMES[1:]:
        state.children[name].phase = UP
    state.children["c0"].phase = STARTING  # (the last of those down starts)
    assert read(state) == ["c0"]
    state.children["c0"].phase = UP  # (all run: what was read is forgotten)
    assert read(state) == []
    state.children["c3"].phase = DOWN
    state.children["c1"].phase = STOPPING
    state.children["c1"].phase = DOWN
    assert read(state) == ["c1", "c3"]


def test_a_child_that_waits_leaves_the_line_and_comes_back_in_its_place():
    state = new_state()
    state.children["c1"].waiting = "passivated"
    assert read(state) == ["c0", "c2", "c3", "c4", "c5"]
    assert "c1" not in state.index.ready
    state.children["c1"].waiting = ""
    assert read(state) == NAMES


# -- the next start, against the rule it replaced -------------------------------------------------
def model_start_next(s: SupervisorState, out: list) -> None:
    """The rule before the index: every child down or starting, sorted in start order."""
    everyone = [*s.index.by_phase[DOWN].values(), *s.index.by_phase[STARTING].values()]
    starting = None
    for c in sorted(everyone, key=lambda c: c.seq):
        group = c.slot.group or c.name
        if starting is not None and group != starting:
            return
        if c.phase == STARTING:
            starting = group
        elif not c.waiting and lifecycle.dependencies_up(s, c):
            lifecycle.start_child(s, c, out)
            starting = group


def grouped_spec() -> Supervisor:
    return Supervisor(
        "s",
        children=[
            Child("a", Worker),
            Child("b", Worker, replicas=3, depends_on=["a"]),
            Child("c", Worker),
            Child("d", Worker, replicas=2),
            Child("e", Worker, depends_on=["c"]),
            Child("f", Worker),
        ],
    )


GROUPED = ["a", "b.0", "b.1", "b.2", "c", "d.0", "d.1", "e", "f"]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.sampled_from(GROUPED),
                st.sampled_from(("phase", "restart_pending", "stop_for_good", "waiting")),
                st.integers(0, len(PHASES) - 1),
            ),
            st.just(("start", "", 0)),
            st.tuples(st.just("add"), st.just(""), st.integers(0, 99)),
        ),
        max_size=50,
    )
)
def test_the_next_start_is_what_a_look_at_every_child_in_start_order_finds(steps):
    state = SupervisorState("s", grouped_spec(), can_kill=True, seed=7)
    for name, field, value in steps:
        if name == "add":  # (a child added at run time: last in start order)
            extra = f"x{value}"
            if extra not in state.children:
                state.add_slot(Slot(extra, Child(extra, Worker), None, ()), dynamic=True)
        elif name == "start":
            ours, model = copy.deepcopy(state), copy.deepcopy(state)
            ours_out: list = []
            model_out: list = []
            lifecycle.start_next(ours, 0.0, ours_out)
            model_start_next(model, model_out)
            started = [c.child for c in ours_out if isinstance(c, Spawn)]
            assert started == [c.child for c in model_out if isinstance(c, Spawn)]
            assert [(c.name, c.phase, c.incarnation) for c in ours.order] == [
                (c.name, c.phase, c.incarnation) for c in model.order
            ]
            lifecycle.start_next(state, 0.0, [])
        else:
            apply(state, name, field, value)
