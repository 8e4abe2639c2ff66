"""Warm standbys: ``Child(..., standby=True)`` keeps a spare instance that takes over a restart.

A crash (a SIGKILL on ``multiproc``, a failure that restarts the actor in process) is
answered by the spare made before it, started from the checkpoint of the moment it takes
over; a new spare follows. Instances are told apart by their pid (a process each) or by
the token each one draws when it is created (in process).
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import Any

import msgspec
import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart import (
    Child,
    LevelPolicy,
    ManagedActor,
    SpecError,
    Supervisor,
    TreeFileError,
    load_tree,
)
from tests.support import process_gone, sigkill, wait_for

RESTART_AT_ONCE = LevelPolicy(basic_attempts=0, enhanced_attempts=0)
RESTART_SET_AT_ONCE = LevelPolicy(basic_attempts=0, enhanced_attempts=0, component_attempts=0)
TOKENS = itertools.count(1)
MADE: list[str] = []  # the token of every instance made in this process, in order


class Add(msgspec.Struct, frozen=True):
    n: int
    fail_on: str = ""  # the token of the instance that fails on it (its level 3 restart)


class Who(msgspec.Struct, frozen=True):
    pass


class Me(msgspec.Struct, frozen=True):
    token: str
    pid: int
    handled: list[int]
    incarnation: int


class Spared(ManagedActor):
    """Keeps the numbers it was given (checkpointed); says which instance it is."""

    def __init__(self) -> None:
        super().__init__()
        self.token = f"{os.getpid()}-{next(TOKENS)}"
        MADE.append(self.token)

    def on_start(self) -> None:
        self.handled: list[int] = list((self.restored_state or {}).get("handled", []))

    def snapshot(self) -> Any:
        return {"handled": self.handled}

    def me(self) -> Me:
        return Me(self.token, os.getpid(), list(self.handled), self.incarnation)

    def receiveMsg_Add(self, msg: Add, sender: Any) -> None:
        if msg.fail_on == self.token:
            raise RuntimeError(f"instance {self.token} fails on {msg.n}")
        self.handled.append(msg.n)
        self.reply(sender, self.me())

    def receiveMsg_Who(self, msg: Who, sender: Any) -> None:
        self.reply(sender, self.me())


def tree(strategy: str = "one_for_one", policy: LevelPolicy = RESTART_AT_ONCE) -> Supervisor:
    return Supervisor(
        "s",
        strategy=strategy,
        max_restarts=100,
        children=[Child("w", Spared, standby=True, levels=policy), Child("v", Spared)],
    )


def processes_under(system: Any, supervisor: str, name: str) -> set[int]:
    """The live processes the supervisor has forked for child ``name``: its instance and
    its spare, once the spare is ready (it takes the child's process name then)."""
    found = set()
    for p in psutil.Process(system.status()[supervisor].pid).children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.name() == f"sw:{name}":
                found.add(p.pid)
        except psutil.NoSuchProcess:  # (an instance that has just left)
            pass
    return found


def spare_of(system: Any, base: str, path: str, taken: set[str]) -> str:
    """The identity (pid, or token in process) of ``path``'s spare, once there is one that
    is not among ``taken`` (the instances seen so far); "" until then."""
    if base == "simple":
        fresh = [t for t in MADE if t not in taken]
        return fresh[0] if fresh else ""
    status = system.status()
    others = {str(e.pid) for e in status if e.path.startswith("s/") and e.pid}
    fresh = {str(p) for p in processes_under(system, "s", path.rsplit("/", 1)[-1])}
    fresh -= others | taken
    return fresh.pop() if len(fresh) == 1 else ""


def identity(me: Me, base: str) -> str:
    return me.token if base == "simple" else str(me.pid)


def crash(system: Any, base: str, active: Me) -> Me:
    """Crash the active instance of ``s/w``; the answer to the request that follows."""
    if base == "simple":  # the failing request is handled again by the next instance
        return system.ask("s/w", Add(3, fail_on=active.token), timeout=30)  # type: ignore[no-any-return]
    answers: list[Me] = []
    asker = threading.Thread(target=lambda: answers.append(system.ask("s/w", Add(3), timeout=30)))
    sigkill(active.pid)
    asker.start()  # sent while the path is restarting: not lost
    asker.join()
    return answers[0]


@pytest.fixture(autouse=True)
def no_tokens_before() -> None:
    MADE.clear()


def test_the_spare_takes_over_a_crash_with_the_latest_checkpoint(make_system, base):
    system = make_system(tree(), base=base)
    first = system.ask("s/w", Add(1))
    seen = {identity(first, base), identity(system.ask("s/v", Who()), base)}
    spare = wait_for(lambda: spare_of(system, base, "s/w", seen))
    assert system.ask("s/w", Add(2)).handled == [1, 2]  # acknowledged after the spare was made

    served = crash(system, base, first)

    assert identity(served, base) == spare  # the former spare answers...
    assert served.handled == [1, 2, 3]  # ...from the checkpoint of the takeover: nothing lost
    assert served.incarnation == first.incarnation + 1
    assert system.ask("s/w", Who()) == served
    seen |= {spare}
    assert wait_for(lambda: spare_of(system, base, "s/w", seen))  # and a new spare is made
    status = system.status()
    assert status["s/w"].restarts == 1 and status["s/v"].restarts == 0
    assert [c.name for c in system.which_children("s")] == ["w", "v"]  # spares are no children
    assert system.count_children("s").active == 2
    # the event says a spare took over
    took_over = [f"incarnation {served.incarnation} (a spare)"]
    assert wait_for(
        lambda: [e.detail for e in system.events() if e.kind == "restarted"] == took_over
    )


def test_a_restart_set_takes_the_spare_of_its_child_that_keeps_one(make_system, base):
    system = make_system(tree("one_for_all", RESTART_SET_AT_ONCE), base=base)
    first = system.ask("s/w", Add(1))
    sibling = system.ask("s/v", Who())
    seen = {identity(first, base), identity(sibling, base)}
    spare = wait_for(lambda: spare_of(system, base, "s/w", seen))

    served = system.ask("s/w", Add(3, fail_on=first.token), timeout=30)  # a level 4 restart

    assert identity(served, base) == spare and served.handled == [1, 3]
    again = system.ask("s/v", Who())
    assert again.incarnation == sibling.incarnation + 1  # restarted with it, as a new instance
    assert identity(again, base) not in seen | {spare}
    restarts = {
        "s/w": f"incarnation {served.incarnation} (a spare)",
        "s/v": f"incarnation {again.incarnation}",
    }
    assert wait_for(
        lambda: {e.path: e.detail for e in system.events() if e.kind == "restarted"} == restarts
    )


def test_a_spare_killed_while_idle_is_replaced_and_the_active_one_is_untouched(make_system):
    system = make_system(tree(), base="multiproc")
    active = system.ask("s/w", Add(1))
    seen = {str(active.pid), str(system.ask("s/v", Who()).pid)}
    spare = wait_for(lambda: spare_of(system, "multiproc", "s/w", seen))

    sigkill(int(spare))

    replacement = wait_for(lambda: spare_of(system, "multiproc", "s/w", seen | {spare}))
    assert replacement != spare
    assert system.ask("s/w", Add(2)) == Me(active.token, active.pid, [1, 2], active.incarnation)
    assert system.status()["s/w"].restarts == 0
    assert not [e for e in system.events() if e.path == "s/w" and e.kind == "crash"]


def test_shutdown_stops_the_spares(make_system):
    system = make_system(tree(), base="multiproc")
    seen = {str(system.ask(p, Who()).pid) for p in ("s/w", "s/v")}
    spare = int(wait_for(lambda: spare_of(system, "multiproc", "s/w", seen)))
    system.shutdown()
    assert process_gone(spare)


def test_a_child_stopped_for_good_takes_its_spare_with_it(make_system):
    system = make_system(tree(), base="multiproc")
    sibling = system.ask("s/v", Who())
    seen = {str(system.ask("s/w", Who()).pid), str(sibling.pid)}
    spare = int(wait_for(lambda: spare_of(system, "multiproc", "s/w", seen)))
    system.terminate_child("s", "w")
    wait_for(lambda: process_gone(spare))
    assert system.ask("s/v", Who()) == sibling


# -- the option ------------------------------------------------------------------------------
@given(
    st.one_of(
        st.integers(), st.text(), st.floats(allow_nan=False), st.none(), st.lists(st.booleans())
    )
)
def test_standby_must_be_a_bool(value: Any) -> None:
    with pytest.raises(SpecError, match=r"w: standby: expected bool"):
        Child("w", Spared, standby=value)


def test_standby_is_not_for_a_child_placed_by_capabilities() -> None:
    with pytest.raises(SpecError, match=r"w: standby: not with requires"):
        Child("w", Spared, standby=True, requires={"gpu": 1})


def test_standby_is_not_for_a_child_that_passivates() -> None:
    with pytest.raises(SpecError, match=r"w: standby: not with passivate_after_s"):
        Child("w", Spared, standby=True, passivate_after_s=5.0)
    assert Child("w", Spared, standby=True).passivate_after_s is None  # (each alone is fine)
    assert Child("w", Spared, passivate_after_s=5.0).standby is False


TREE_FILE = """
[supervisor]
name = "s"
[[supervisor.children]]
name = "w"
actor = "tests.core.test_standby:Spared"
standby = {value}
"""


def test_a_tree_file_sets_standby(tmp_path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(TREE_FILE.format(value="true"))
    bad.write_text(TREE_FILE.format(value='"on"'))
    child = load_tree(good).tree.children[0]
    assert isinstance(child, Child) and child.standby is True
    with pytest.raises(TreeFileError, match=r"s/w .*standby: Expected `bool`, got `str`"):
        load_tree(bad)
