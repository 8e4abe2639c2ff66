"""Many actors: 100,000 in one process and 200 in processes of their own start, each
answers for itself, and shutdown leaves no thread or process behind; an idle actor
carries a few attributes, not empty containers."""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

from stalwart import Child, ManagedActor, Supervisor
from stalwart.actors._lazy import made_on_use
from stalwart.supervisors._bases import session_processes
from tests.support import wait_for


class WhoAreYou(msgspec.Struct, frozen=True):
    pass


class Device(ManagedActor):
    """An idle actor that answers with its path, its process and how it got its modules."""

    def receiveMsg_WhoAreYou(self, msg: WhoAreYou, sender: Any) -> None:
        stalwart = sys.modules["stalwart"]
        self.reply(sender, (self.path, os.getpid(), id(stalwart)))


def devices(count: int, per_group: int, groups_per_shard: int) -> Supervisor:
    """``count`` devices, as the guide lays them out: replicas in groups, groups in shards."""
    groups = count // per_group
    shards = groups // groups_per_shard
    return Supervisor(
        "devices",
        children=[
            Supervisor(
                f"shard{s}",
                children=[
                    Supervisor(f"group{g}", children=[Child("d", Device, replicas=per_group)])
                    for g in range(groups_per_shard)
                ],
            )
            for s in range(shards)
        ],
    )


def device_paths(count: int, per_group: int, groups_per_shard: int) -> list[str]:
    paths = []
    for n in range(count):
        group, i = divmod(n, per_group)
        shard, g = divmod(group, groups_per_shard)
        paths.append(f"devices/shard{shard}/group{g}/d.{i}")
    return paths


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def hundred_thousand_actors() -> None:
    """100,000 devices start, a sample answers, the summary counts them, and shutdown
    leaves no thread or process behind (run in an interpreter of its own, below)."""
    from stalwart import start

    threads_before = set(threading.enumerate())
    shape = (100_000, 50, 20)
    system = start(devices(*shape), start_timeout_s=900, report_path=None)
    try:
        summary = system.summary("devices")
        assert summary.kinds == {"supervisor": 1 + 100 + 2000, "actor": 100_000}, summary
        assert summary.counts == {"running": summary.total} and summary.unhealthy == ()
        paths = device_paths(*shape)
        sample = [paths[0], *random.Random(7).sample(paths[1:-1], 1000), paths[-1]]
        for path in sample:
            answered_path, pid, _ = system.ask(path, WhoAreYou(), timeout=60)
            assert (answered_path, pid) == (path, os.getpid()), (path, answered_path, pid)
    finally:
        system.shutdown()
    assert system.stopped
    wait_for(lambda: set(threading.enumerate()) <= threads_before, timeout=30)
    children = psutil.Process().children(recursive=True)
    assert [p for p in children if p.status() != psutil.STATUS_ZOMBIE] == []
    print("100000 answered and stopped")


@pytest.mark.slow
def test_a_hundred_thousand_actors_start_each_answers_and_shutdown_leaves_nothing():
    # In an interpreter of its own: the test process keeps no heap of 100,000 actors,
    # which every multi-process system started after it would fork.
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.core.test_many_actors import hundred_thousand_actors as run; run()",
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().endswith("100000 answered and stopped"), run.stdout


@pytest.mark.slow
def test_two_hundred_actor_processes_each_answer_and_none_outlives_the_system(make_system):
    """On the multi-process base every actor has a process of its own, forked from its
    supervisor with the modules already loaded: each sees the very module objects the
    system's owner imported (the same addresses), none imported them again."""
    shape = (200, 20, 10)
    system = make_system(devices(*shape), base="multiproc", start_timeout_s=300)
    answers = {p: system.ask(p, WhoAreYou(), timeout=60) for p in device_paths(*shape)}
    assert all(answer[0] == path for path, answer in answers.items())
    pids = {pid for _, pid, _ in answers.values()}
    assert len(pids) == 200 and os.getpid() not in pids
    assert {module for _, _, module in answers.values()} == {id(sys.modules["stalwart"])}
    sid = system._sid
    system.shutdown()
    assert [pid for pid in pids if alive(pid)] == []
    assert session_processes(sid) == []


def test_an_idle_actor_holds_a_few_attributes_and_no_empty_container(make_system):
    system = make_system(devices(20, 10, 2))
    assert system.ask("devices/shard0/group1/d.3", WhoAreYou())[0] == "devices/shard0/group1/d.3"
    actors = [o for o in gc.get_objects() if type(o) is Device]
    idle = [a for a in actors if a.path != "devices/shard0/group1/d.3"]
    assert len(actors) == 20 and len(idle) == 19
    for actor in idle:
        held = vars(actor)
        # ten at most: an eleventh doubles the dict an instance's attributes take (once it
        # is a dict of its own), 192 bytes more an actor
        assert len(held) <= 10, sorted(held)
        empty = [k for k, v in held.items() if isinstance(v, (list, dict, set)) and not v]
        assert empty == []
    assert idle[0].log.name == f"stalwart.actor.{idle[0].path.replace('/', '.')}"


class Holder:
    items: list[int] = made_on_use(list)


def test_a_container_made_on_use_belongs_to_its_instance_and_behaves_as_an_attribute():
    a, b = Holder(), Holder()
    assert "items" not in vars(a)
    a.items.append(1)
    assert a.items == [1] and b.items == [] and a.items is not b.items
    b.items = [7]
    assert b.items == [7]
    del b.items
    assert b.items == []  # made again on the next read


class SeesTheCollector(ManagedActor):
    """Notes, as it starts and as it stops, whether the cyclic garbage collector is on."""

    def on_start(self) -> None:
        self.note(f"start {gc.isenabled()}")

    def on_stop(self) -> None:
        self.note(f"stop {gc.isenabled()}")

    def note(self, line: str) -> None:
        with open(self.options["note"], "a") as out:
            out.write(line + "\n")


@pytest.mark.parametrize("on_before", [True, False])
def test_an_in_process_start_and_stop_pause_the_collector_and_leave_it_as_it_was(
    make_system, tmp_path, on_before
):
    note = tmp_path / "note"
    tree = Supervisor("t", children=[Child("a", SeesTheCollector, options={"note": str(note)})])
    was = gc.isenabled()
    try:
        if not on_before:
            gc.disable()
        system = make_system(tree)
        assert gc.isenabled() is on_before  # as it was, once started
        system.shutdown()
        # the tree came and went by reference counts
        assert note.read_text().splitlines() == ["start False", "stop False"]
        assert gc.isenabled() is on_before  # and the collector is as it was
    finally:
        if was:
            gc.enable()
