"""``Pool(..., spares=N)``: instances made ahead for keys not yet started.

A start hands the new instance to a spare made before it was asked for (on ``multiproc``:
a process forked and ready; in process: an actor created), with the key's options; another
spare follows. Spares are no children, are replaced when they die, and stop with the Pool.
Spares are told apart by their pid (``multiproc``) or by the token each instance draws
when it is created (in process).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart import Breaker, Child, Pool, SpecError, Supervisor, TreeFileError, load_tree
from tests.core.test_standby import MADE, Add, Spared, Who, identity, processes_under
from tests.support import process_gone, sigkill, wait_for

SPARES = 2


def pool_tree(spares: int = SPARES) -> Supervisor:
    template = Child("session", Spared, options={"plan": "free"})
    return Supervisor("app", children=[Pool("sessions", template=template, spares=spares)])


def ready_spares(system: Any, base: str, started: set[str]) -> set[str]:
    """The identities of the Pool's spares that are ready (all ``SPARES`` of them, or none
    while one is still being made): in process, the instances made and not yet started."""
    if base == "simple":
        spares = {t for t in MADE if t not in started}
    else:  # a ready spare is named after the template; an instance, after its key
        spares = {str(p) for p in processes_under(system, "app/sessions", "session")}
    return spares if len(spares) == SPARES else set()


@pytest.fixture(autouse=True)
def no_tokens_before() -> None:
    MADE.clear()


def test_each_new_instance_is_a_spare_made_before_it_was_asked_for(make_system, base):
    system = make_system(pool_tree(), base=base)
    started: set[str] = set()
    for key in ("alice", "bob", "carol"):
        spares = wait_for(lambda: ready_spares(system, base, started))
        path = system.start_child("app/sessions", key, {"plan": key})
        me = system.ask(path, Add(1))
        assert identity(me, base) in spares  # a spare made ahead became the instance...
        assert me.handled == [1] and me.incarnation == 1
        assert system.ask(path, Who()) == me
        started.add(identity(me, base))
    # ...with its key's options, and another spare was made in its place
    assert [c.name for c in system.which_children("app/sessions")] == ["alice", "bob", "carol"]
    assert system.count_children("app/sessions").active == 3  # spares are no children
    assert wait_for(lambda: ready_spares(system, base, started)).isdisjoint(started)


STARTED: list[str] = []  # in process: the token of each Watched instance that started


class Watched(Spared):
    def on_start(self) -> None:
        super().on_start()
        STARTED.append(self.token)


def test_a_breaker_in_front_of_an_instance_is_never_a_spare(make_system, base):
    STARTED.clear()
    template = Child("session", Watched, breaker=Breaker())
    tree = Supervisor("app", children=[Pool("sessions", template=template, spares=SPARES)])
    system = make_system(tree, base=base)
    spares = wait_for(lambda: ready_spares(system, base, set()))
    path = system.start_child("app/sessions", "alice")
    me = system.ask(path, Add(1))  # through the breaker, to the actor behind it
    assert identity(me, base) in spares and me.handled == [1]
    status = system.status()
    assert status[path].kind == "breaker" and status[f"{path}.protected"].state == "running"
    if base == "simple":  # the breaker is no instance of the template
        assert [me.token] == STARTED
    else:
        assert status[f"{path}.protected"].pid == me.pid
        assert str(status[path].pid) not in spares | {str(me.pid)}


def test_an_instance_restarted_after_a_crash_starts_on_a_spare_from_its_checkpoint(
    make_system,
):
    system = make_system(pool_tree(), base="multiproc")
    first = system.ask(system.start_child("app/sessions", "alice"), Add(1))
    spares = wait_for(lambda: ready_spares(system, "multiproc", {str(first.pid)}))

    sigkill(first.pid)
    served = system.ask("app/sessions/alice", Add(2), timeout=30)  # held while it restarts

    assert str(served.pid) in spares
    assert served.handled == [1, 2] and served.incarnation == first.incarnation + 1


def test_a_spare_killed_while_idle_is_replaced_quietly(make_system):
    system = make_system(pool_tree(), base="multiproc")
    spares = wait_for(lambda: ready_spares(system, "multiproc", set()))
    killed = min(spares, key=int)

    sigkill(int(killed))

    def replaced() -> set[str]:
        now = ready_spares(system, "multiproc", set())
        return now if killed not in now else set()

    assert len(wait_for(replaced)) == SPARES
    assert system.ask(system.start_child("app/sessions", "alice"), Add(1)).handled == [1]
    assert not [e for e in system.events() if e.kind in ("crash", "failure")]


def test_a_start_right_after_its_spares_died_gets_a_live_instance(make_system):
    system = make_system(pool_tree(), base="multiproc")
    spares = wait_for(lambda: ready_spares(system, "multiproc", set()))
    for pid in spares:  # (Thespian may report only one of two exits at once)
        sigkill(int(pid))
    wait_for(lambda: all(process_gone(int(pid)) for pid in spares))

    me = system.ask(system.start_child("app/sessions", "alice"), Add(1), timeout=30)

    assert str(me.pid) not in spares and me.handled == [1] and me.incarnation == 1
    assert system.status()["app/sessions/alice"].restarts == 0
    assert not [e for e in system.events() if e.kind in ("crash", "failure", "restarted")]


def test_shutdown_stops_the_spares_of_a_pool(make_system):
    system = make_system(pool_tree(), base="multiproc")
    spares = wait_for(lambda: ready_spares(system, "multiproc", set()))
    system.shutdown()
    assert all(process_gone(int(pid)) for pid in spares)


def test_a_pool_without_spares_forks_on_demand(make_system):
    system = make_system(pool_tree(spares=0), base="multiproc")
    me = system.ask(system.start_child("app/sessions", "alice"), Add(1))
    assert me.handled == [1]
    assert processes_under(system, "app/sessions", "session") == set()  # none made ahead


# -- the option ------------------------------------------------------------------------------
@given(st.one_of(st.integers(max_value=-1), st.floats(), st.text(), st.none(), st.booleans()))
def test_spares_must_be_a_whole_number_of_zero_or_more(value: Any) -> None:
    with pytest.raises(
        SpecError, match=r"sessions: spares: (must be an integer >= 0|expected int)"
    ):
        Pool("sessions", template=Child("session", Spared), spares=value)


def test_spares_need_an_actor_template_forked_where_the_pool_runs() -> None:
    with pytest.raises(SpecError, match=r"sessions: spares: needs an actor template"):
        Pool("sessions", template=Supervisor("group"), spares=1)
    with pytest.raises(SpecError, match=r"sessions: spares: not with a template that requires"):
        Pool("sessions", template=Child("session", Spared, requires={"gpu": 1}), spares=1)
    assert Pool("sessions", template=Supervisor("group")).spares == 0


TREE_FILE = """
[supervisor]
name = "app"
[[supervisor.children]]
name = "sessions"
spares = {value}
  [supervisor.children.template]
  name = "session"
  actor = "tests.core.test_standby:Spared"
"""


def test_a_tree_file_sets_spares(tmp_path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(TREE_FILE.format(value="3"))
    bad.write_text(TREE_FILE.format(value="-1"))
    pool = load_tree(good).tree.children[0]
    assert isinstance(pool, Pool) and pool.spares == 3
    with pytest.raises(TreeFileError, match=r"spares: must be an integer >= 0"):
        load_tree(bad)
