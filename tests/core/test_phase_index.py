"""The kernel's index of children to stop: whatever is set on the records in whatever
order, it marks exactly the children up or starting that go down, and the one it stops
first is the latest started of them (reverse start order, as OTP stops)."""

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


@settings(max_examples=300, deadline=None)
@given(changes)
def test_the_first_child_stopped_is_the_latest_started_of_those_marked(steps):
    spec = Supervisor("s", children=[Child(name, Worker) for name in NAMES])
    state = SupervisorState("s", spec, can_kill=True, seed=7)
    records = [state.children[name] for name in NAMES]
    for name, field, value in steps:
        record = state.children[name]
        if field == "phase":
            record.phase = PHASES[value]
        else:
            setattr(record, field, bool(value % 2))
        expected = {
            r.name
            for r in records
            if (r.restart_pending or r.stop_for_good) and r.phase in (UP, STARTING)
        }
        assert set(state.index.marked) == expected
        if expected:
            latest = state.index.latest_marked()
            assert latest is max((state.children[n] for n in expected), key=lambda r: r.seq)
