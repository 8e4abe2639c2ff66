"""The kernel's indexes of its children: whatever is set on the records in whatever order,
it marks exactly the children up or starting that go down, and the one it stops first is
the latest started of them (reverse start order, as OTP stops); it marks exactly the
children down that are to restart or stop; and it reads the children down or starting in
start order, each once, as often as it is read."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart import Child, Supervisor
from stalwart.supervisors import SupervisorState
from stalwart.supervisors._kernel.state import DOWN, REMOVED, STARTING, STOPPING, UP
from tests.support import Worker

NAMES = [f"c{i}" for i in range(6)]
PHASES = (DOWN, STARTING, UP, STOPPING, REMOVED)

changes = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.sampled_from(("phase", "restart_pending", "stop_for_good")),
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
    else:
        setattr(record, field, bool(value % 2))


def read(state: SupervisorState, most: int = len(NAMES) + 1) -> list[str]:
    """The names of the children down or starting the index reads, at most ``most``."""
    taken: list = []
    seen = []
    while len(seen) < most and (found := state.index.next_waiting(taken)) is not None:
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
def test_the_children_down_or_starting_are_read_in_start_order_and_those_down_marked(steps, reads):
    state = new_state()
    records = [state.children[name] for name in NAMES]
    for step, most in zip(steps, reads + [0] * len(steps), strict=False):
        apply(state, *step)
        marked_down = {
            r.name for r in records if (r.restart_pending or r.stop_for_good) and r.phase == DOWN
        }
        assert set(state.index.marked_down) == marked_down
        waiting = [r.name for r in records if r.phase in (DOWN, STARTING)]  # (in start order)
        for _ in range(2):  # (a read that stops early leaves the index as it was)
            assert read(state, most or len(NAMES) + 1) == waiting[: most or len(waiting)]


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
