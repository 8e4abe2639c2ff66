"""A supervisor's mail for the root is handled in the order it was sent.

Thespian's TCP transport can deliver a transmit it had to retry after a later one to the
same address; on the multi-process bases each supervisor numbers its envelopes for the
root, and the root puts them back in order (``stalwart/supervisors/_in_order.py``).
"""

from __future__ import annotations

import os
import signal

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from stalwart import Child, Supervisor
from stalwart.supervisors._in_order import GAP_S, InOrderLines, malformed
from stalwart.supervisors.messages import EventNote, InOrder, StateNote
from tests.support import Ping, Worker, wait_for


def envelope(seq: int, origin: str = "app", incarnation: int = 1, instance: int = 0) -> InOrder:
    instance = instance or incarnation  # (one instance per incarnation unless told)
    return InOrder(origin, incarnation, instance, seq, ((origin, seq),))


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


def test_an_incarnation_number_that_comes_again_is_a_new_instance_and_loses_nothing():
    # a supervisor that died before it registered is started again, by its restarted
    # parent, with the same incarnation number: its mail is a line of its own
    lines = InOrderLines()
    old, new = {"incarnation": 5, "instance": 11}, {"incarnation": 5, "instance": 22}
    out = handled(lines.arrive(envelope(1, **old), None, 0.0)[0])
    assert lines.arrive(envelope(3, **old), None, 0.1) == ([], True)  # 2 never comes
    out += handled(lines.arrive(envelope(1, **new), None, 0.2)[0])
    out += handled(lines.arrive(envelope(3, **new), None, 0.3)[0])
    out += handled(lines.arrive(envelope(2, **new), None, 0.4)[0])
    assert out == [("app", 1), ("app", 3), ("app", 1), ("app", 2), ("app", 3)]


def test_what_a_dead_supervisor_left_waiting_is_released_with_the_ones_under_it():
    lines = InOrderLines()
    for origin in ("app", "app/sub", "apple"):
        assert lines.arrive(envelope(2, origin), None, 0.0)[1]
    assert handled(lines.release_under("app")) == [("app", 2), ("app/sub", 2)]
    assert set(lines.lines) == {"apple"}  # (a path that only starts alike stays)
    ready, _ = lines.arrive(envelope(1, "app"), None, 0.1)  # a late one: handled, not held
    assert handled(ready) == [("app", 1)]


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
    tell_root(system, InOrder("test-line", 1, 1, 2, (StateNote("app/w", "running", 0, 0),)))
    tell_root(system, InOrder("test-line", 1, 1, 1, (StateNote("app/w", "retrying", 1, 0),)))
    tell_root(system, InOrder("test-line", 1, 1, 3, (Marker("third"),)))
    wait_for(lambda: marked(system, "third"))
    assert {s.path: s.state for s in system.status()}["app/w"] == "running"


def test_the_root_goes_on_without_an_envelope_that_never_comes_and_takes_it_late(make_system, base):
    system = make_system(Supervisor("app", children=[Child("w", Worker)]), base=base)
    tell_root(system, InOrder("gap-line", 1, 1, 2, (Marker("second"),)))
    wait_for(lambda: marked(system, "second"), timeout=GAP_S + 30)
    tell_root(system, InOrder("gap-line", 1, 1, 1, (Marker("first"),)))
    wait_for(lambda: marked(system, "first"))  # late, but not lost


def noted(system) -> list | None:
    events = system.events()
    return events if any(e.kind == "note" for e in events) else None


def test_what_a_killed_supervisor_left_waiting_is_handled_before_its_death(make_system):
    system = make_system(Supervisor("app", children=[Child("w", Worker)]), base="multiproc")
    victim = system.status()["app"]
    # an envelope of the supervisor's that overtook one which never comes: the root holds
    # it (for up to 2 s) until the supervisor dies, and then records it first
    sent = EventNote("note", "app/w", detail="sent before it died")
    tell_root(system, InOrder("app", victim.incarnation + 1, 7, 5, (sent,)))
    tell_root(system, Marker("taken"))  # (the root has the envelope once this is handled)
    wait_for(lambda: marked(system, "taken"))
    os.kill(victim.pid, signal.SIGKILL)
    events = wait_for(lambda: noted(system))
    shown = [(e.seq, e.kind, e.path) for e in events]
    note = next(e.seq for e in events if e.kind == "note")
    crash = next(e.seq for e in events if e.kind == "crash" and e.path == "app")
    assert note < crash, shown


@given(
    st.one_of(st.none(), st.text(max_size=3), st.integers(-3, 3), st.booleans(), st.floats()),
    st.sampled_from(["origin", "incarnation", "instance", "seq", "items"]),
)
def test_a_malformed_envelope_is_refused_naming_its_field(value, field):
    fields = {"origin": "app", "incarnation": 1, "instance": 1, "seq": 1, "items": ()}
    fields[field] = value
    msg = InOrder(**fields)
    wrong = malformed(msg)
    fine = {"origin": str, "items": tuple}.get(field, int)
    ok = isinstance(value, fine) and not isinstance(value, bool)
    ok = ok and (field != "seq" or value >= 1)
    assert (wrong == "") == ok, (field, value, wrong)
    assert ok or wrong.startswith(field)


def test_the_root_keeps_a_malformed_envelope_as_a_dead_letter_and_carries_on(make_system, base):
    system = make_system(Supervisor("app", children=[Child("w", Worker)]), base=base)
    tell_root(system, InOrder("app", 1, 1, "three", (Marker("never"),)))
    letter = wait_for(lambda: next(iter(system.dead_letters()), None))
    assert "malformed InOrder envelope: seq must be int, got str" in letter.error
    assert not marked(system, "never")
    assert system.ask("app/w", Ping(2)).n == 2
