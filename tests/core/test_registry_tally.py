"""The root's registry keeps its entries counted by what a summary reads of them (kind,
state, level, breaker, stopped for good), so ``System.summary()`` and the dashboard's
poll of a large tree read the tally, not every entry. Whatever changes an entry (the
supervisors' reports, a forgotten subtree, a direct assignment), the tally is the count
of the entries as they are; a summary of everything says what one of the top says."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart import Child, Supervisor
from stalwart.supervisors._registry import Registry
from stalwart.supervisors._status import summarize
from stalwart.supervisors.messages import Registered, StateNote, Unavailable
from tests.support import StopSelf, Worker, wait_for

TREE = Supervisor(
    "top",
    children=[
        Child("a", Worker),
        Supervisor("sub", children=[Child("w", Worker, replicas=3)]),
        Child("b", Worker),
    ],
)
PATHS = ["top", "top/a", "top/sub", "top/sub/w.0", "top/sub/w.1", "top/sub/w.2", "top/b"]
STATES = ["running", "restarting", "crashed", "stopping", "passivated", "hung"]

paths = st.sampled_from([*PATHS, "top/new", "top/sub/late"])
changes = st.one_of(
    st.tuples(st.just("register"), paths, st.integers(0, 5)),
    st.tuples(st.just("unavailable"), paths, st.sampled_from(STATES), st.booleans()),
    st.tuples(st.just("note"), paths, st.sampled_from(STATES), st.integers(0, 5)),
    st.tuples(st.just("breaker"), paths, st.sampled_from(["", "closed", "open", "half_open"])),
    st.tuples(st.just("drop_under"), st.sampled_from(["top", "top/sub"])),
    st.tuples(st.just("forget"), paths),
    st.tuples(st.just("plan"), st.sampled_from(["top", "top/sub"])),
    st.tuples(st.just("assign"), paths, st.sampled_from(STATES), st.integers(0, 5)),
    st.tuples(st.just("all_stopped")),
)


def apply(registry: Registry, change: tuple) -> None:
    kind, *args = change
    if kind == "register":
        path, level = args
        registry.register(Registered(path, f"@{path}", 7, 1, "actor", level=level))
    elif kind == "unavailable":
        path, state, removed = args
        registry.unavailable(Unavailable(path, state, removed=removed))
    elif kind == "note":
        path, state, level = args
        registry.note_state(StateNote(path, state, level, 0, ""))
    elif kind == "breaker":
        path, state = args
        registry.note_breaker(path, state, 50)
    elif kind == "drop_under":
        registry.drop_under(args[0])
    elif kind == "forget":
        registry.forget([args[0]], "gone")
    elif kind == "plan":
        registry.plan_child(args[0], 2, Child("late", Worker))
    elif kind == "assign":  # (the root's own assignments, as when it marks a handler hung)
        path, state, level = args
        entry = registry.entries.get(path)
        if entry is not None:
            entry.state, entry.level = state, level
            entry.removed = not entry.removed
    else:
        registry.all_stopped()


@settings(max_examples=300, deadline=None)
@given(st.lists(changes, max_size=40))
def test_the_tally_counts_the_entries_as_they_are_after_any_changes(steps):
    registry = Registry()
    registry.plan(TREE)
    for change in steps:
        apply(registry, change)
        truth = Counter(e.looks() for e in registry.entries.values())
        assert registry.tally == truth and all(n > 0 for n in registry.tally.values())
        assert registry.any_removed() == any(e.removed for e in registry.entries.values())
    whole = summarize(registry, None, 100, "running", "")
    top = summarize(registry, "top", 100, "running", "")
    if "top" in registry.entries and all(p.startswith("top") for p in registry.entries):
        assert (whole.counts, whole.kinds, whole.unhealthy_total) == (
            top.counts,
            top.kinds,
            top.unhealthy_total,
        )
        assert [s.path for s in whole.unhealthy] == [s.path for s in top.unhealthy]


def test_an_entry_forgotten_is_counted_no_more_though_it_changes_later():
    registry = Registry()
    registry.plan(TREE)
    entry = registry.entries["top/b"]
    registry.forget(["top/b"], "removed")
    entry.state = "running"  # (a stale reference held somewhere)
    assert sum(registry.tally.values()) == len(registry.entries) == len(PATHS) - 1


def test_a_whole_system_summary_follows_a_live_tree_as_its_top_does(make_system, base):
    system = make_system(
        Supervisor("shop", children=[Child("a", Worker), Child("t", Worker, restart="temporary")]),
        base=base,
    )
    before = system.summary()  # (the system's own actors are in it too)
    assert before.counts == {"running": before.total} and before.unhealthy_total == 0
    system.tell("shop/t", StopSelf())  # a temporary child that stopped: not restarted
    wait_for(lambda: system.summary("shop").counts.get("stopped") == 1)
    whole = system.summary()
    assert whole.counts == {"running": before.total - 1, "stopped": 1}
    assert whole.kinds == before.kinds and whole.total == before.total
    assert [s.path for s in whole.unhealthy] == ["shop/t"] and whole.unhealthy_total == 1


def test_a_registration_that_comes_before_its_paths_plan_is_kept():
    """On real processes, the declared child of a supervisor added at run time registers
    from that supervisor's process, and can reach the root before the plan of it sent by
    the supervisor above (the fork was quicker than that message): the plan must not undo
    the registration, or the child looks as if it were still starting until it restarts."""
    registry = Registry()
    registry.plan(Supervisor("top", children=[Supervisor("teams", children=[])]))
    team = Supervisor("blue", children=[Child("w", Worker)])
    registry.register(Registered("top/teams/blue/w", "@w", 7, 1, "actor"))  # (first)
    registry.plan_child("top/teams", 1, team)
    assert registry.address_of("top/teams/blue/w") == "@w"
    assert registry.entries["top/teams/blue/w"].state == "running"
    assert registry.entries["top/teams/blue"].state != "running"  # (it has not registered)
    assert sum(registry.tally.values()) == len(registry.entries)
