"""A supervisor's mail for the root is handled in the order it was sent.

Thespian's TCP transport can deliver a transmit it had to retry after a later one to the
same address; on the multi-process bases each supervisor numbers its envelopes for the
root, and the root puts them back in order (``stalwart/supervisors/_in_order.py``).
"""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from stalwart import Child, Supervisor
from stalwart.supervisors._in_order import GAP_S, InOrderLines
from stalwart.supervisors.messages import InOrder, StateNote
from tests.support import Worker, wait_for


def envelope(seq: int, origin: str = "app", incarnation: int = 1) -> InOrder:
    return InOrder(origin, incarnation, seq, ((origin, seq),))


def handled(ready) -> list:
    return [item for items, _ in ready for item in items]


def held(lines: InOrderLines) -> dict:
    line = lines.lines.get("app")
    return line.held if line is not None else {}


@given(st.permutations(range(1, 9)), st.permutations(range(1, 6)))
def test_envelopes_arriving_in_any_order_are_handled_once_each_in_the_order_sent(ours, others):
    lines = InOrderLines()
    out = []
    for i in range(max(len(ours), len(others))):  # the two lines interleave
        for seq_list, origin in ((ours, "a"), (others, "b")):
            if i < len(seq_list):
                ready, _ = lines.arrive(envelope(seq_list[i], origin), None, now=0.0)
                out += handled(ready)
    assert [s for o, s in out if o == "a"] == list(range(1, 9))
    assert [s for o, s in out if o == "b"] == list(range(1, 6))
    assert lines.skipped == 0


@given(st.permutations(range(1, 9)), st.sets(st.integers(1, 8)))
def test_an_envelope_that_never_comes_is_waited_for_once_and_nothing_else_is_lost(order, missing):
    lines = InOrderLines()
    out = []
    clock = 0.0
    for seq in order:
        if seq in missing:
            continue
        clock += 0.01
        ready, _ = lines.arrive(envelope(seq), None, now=clock)
        out += handled(ready)
    waited, left = lines.overdue("app", now=clock)  # not yet: the gap is waited for first
    assert waited == [] and (left > 0) == bool(held(lines))
    ready, left = lines.overdue("app", now=clock + GAP_S)
    out += handled(ready)
    assert left == 0.0 and not held(lines)
    arrived = sorted(set(range(1, 9)) - missing)
    assert sorted(s for _, s in out) == arrived  # each once, none held for ever
    assert [s for _, s in out] == arrived  # in order: only missing ones were skipped
    late = sorted(missing)
    for seq in late:  # a missing one that still comes is handled as it arrives
        out += handled(lines.arrive(envelope(seq), None, now=clock + GAP_S)[0])
    assert sorted(s for _, s in out) == list(range(1, 9))


def test_a_new_instance_lets_what_its_predecessor_held_go_first():
    lines = InOrderLines()
    assert lines.arrive(envelope(2, incarnation=1), None, 0.0) == ([], True)
    ready, _ = lines.arrive(envelope(1, incarnation=2), None, 0.1)
    assert handled(ready) == [("app", 2), ("app", 1)]
    ready, _ = lines.arrive(envelope(3, incarnation=1), None, 0.2)  # the old one, late
    assert handled(ready) == [("app", 3)]
    ready, _ = lines.arrive(envelope(2, incarnation=2), None, 0.3)
    assert handled(ready) == [("app", 2)]


class Marker(msgspec.Struct, frozen=True):
    """A message the root has no handler for: it shows up as a dead letter once handled."""

    note: str


def tell_root(system, msg) -> None:
    system._transport.tell(system._root, msg)


def marked(system, note: str) -> bool:
    return any(getattr(d.message, "note", None) == note for d in system.dead_letters())


def test_the_root_handles_a_numbered_envelope_only_after_those_sent_before_it(make_system, base):
    system = make_system(Supervisor("app", children=[Child("w", Worker)]), base=base)
    # sent 1: retrying, 2: running, 3: the marker; they arrive 2, 1, 3
    tell_root(system, InOrder("test-line", 1, 2, (StateNote("app/w", "running", 0, 0),)))
    tell_root(system, InOrder("test-line", 1, 1, (StateNote("app/w", "retrying", 1, 0),)))
    tell_root(system, InOrder("test-line", 1, 3, (Marker("third"),)))
    wait_for(lambda: marked(system, "third"))
    assert {s.path: s.state for s in system.status()}["app/w"] == "running"


def test_the_root_goes_on_without_an_envelope_that_never_comes_and_takes_it_late(make_system, base):
    system = make_system(Supervisor("app", children=[Child("w", Worker)]), base=base)
    tell_root(system, InOrder("gap-line", 1, 2, (Marker("second"),)))
    wait_for(lambda: marked(system, "second"), timeout=GAP_S + 30)
    tell_root(system, InOrder("gap-line", 1, 1, (Marker("first"),)))
    wait_for(lambda: marked(system, "first"))  # late, but not lost
