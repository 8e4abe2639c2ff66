"""Many actors: 100,000 idle actors in one process, and 200 actor processes.

1. In process: a tree of 100,000 idle actors (100 shards of 20 groups of 50 replicas,
   as docs/guide-actors.md lays them out) starts; its RSS growth per actor after a
   collection; ``System.summary()``, a page of ``System.status()``, ``GET /api/dashboard``
   over HTTP (the page's poll) and the whole ``status()``; the orderly shutdown. Peer: raw
   Thespian on the same base, a tree of the same shape (each parent creates its children)
   of actors that do nothing, and its orderly stop (``ActorExitRequest`` to the top, which
   Thespian passes down to every actor). The goals are absolute: 10 s, 4 KiB, 10 s, 50 ms.
2. In process, flat: 100,000 children of one supervisor, declared in its spec (started
   one after another, stopped latest first), and a Pool of 100,000 instances started one
   after another from an actor (``self.start_child``; a Pool stops its instances all at
   once). Peer: one raw Thespian parent creating as many children, and its
   ``ActorExitRequest``.
3. ``multiproc``: 200 actor processes (10 groups of 20); start, each process's memory as
   USS and PSS (``memory_full_info``; RSS counts the pages forked processes share), and
   shutdown. Peers: 200 raw Thespian actors on the same base, and a bare ``fork`` of the
   same parent (what a process costs before anything runs in it).

Each side runs in a fresh process (``python benchmarks/bench_scale.py <part>`` prints its
figures as JSON), so one side's heap does not weigh on the other's.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import psutil
from _report import Figure, Row, print_rows
from thespian.actors import Actor

from stalwart import Child, ManagedActor, Pool, Supervisor, start

SHAPE = (100, 20, 50)  # shards, groups per shard, replicas per group: 100,000 actors
POOL_SIZE = 100_000  # instances of one Pool (one flat supervisor)
PROCESSES = (10, 20)  # groups, replicas per group: 200 actor processes
POLLS = 15
TOUCHED = "devices/shard0/group0/d.0"
HERE = Path(__file__).resolve().parent


class WhoAreYou(msgspec.Struct, frozen=True):
    pass


class Touch(msgspec.Struct, frozen=True):
    """A message the root passes on (so the tree is read again by the next question)."""


class Device(ManagedActor):
    """An idle actor; it answers with its process id."""

    def receiveMsg_WhoAreYou(self, msg: WhoAreYou, sender: Any) -> None:
        self.reply(sender, os.getpid())

    def receiveMsg_Touch(self, msg: Touch, sender: Any) -> None:
        pass


class Leaf(Actor):  # type: ignore[misc]
    """Raw Thespian: an actor that does nothing (it answers with its process id)."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == "pid":
            self.send(sender, os.getpid())


class Node(Actor):  # type: ignore[misc]
    """Raw Thespian: creates its children (``shape``: how many at each level below)."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, tuple):
            kind = Node if len(msg) > 1 else Leaf
            self.children = [self.createActor(kind) for _ in range(msg[0])]
            for child in self.children if len(msg) > 1 else ():
                self.send(child, msg[1:])
            self.send(sender, len(self.children))


class StartMany(msgspec.Struct, frozen=True):
    count: int


class Starter(ManagedActor):
    """Starts ``count`` instances of ``flat/pool`` one after another; answers when done."""

    def receiveMsg_StartMany(self, msg: StartMany, sender: Any) -> None:
        def next_one(i: int) -> None:
            if i == msg.count:
                self.reply(sender, i)
            else:
                self.start_child(
                    "flat/pool", f"u{i}", timeout=60, on_reply=lambda _: next_one(i + 1)
                )

        next_one(0)


class Flat(Actor):  # type: ignore[misc]
    """Raw Thespian: creates ``n`` children of its own, answering once they are made."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, int):
            self.children = [self.createActor(Leaf) for _ in range(msg)]
            self.send(sender, len(self.children))


def devices(shards: int, groups: int, replicas: int) -> Supervisor:
    return Supervisor(
        "devices",
        children=[
            Supervisor(
                f"shard{s}",
                children=[
                    Supervisor(f"group{g}", children=[Child("d", Device, replicas=replicas)])
                    for g in range(groups)
                ],
            )
            for s in range(shards)
        ],
    )


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def timed(fn: Any, repeat: int = 1) -> float:
    """The median of ``repeat`` runs of ``fn``, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- the parts, each run in a process of its own ------------------------------------------------
def ours_in_process() -> dict[str, float]:
    count = SHAPE[0] * SHAPE[1] * SHAPE[2]
    tree = devices(*SHAPE)
    before = rss()
    t0 = time.perf_counter()
    system = start(tree, start_timeout_s=900, shutdown_timeout_s=900, report_path=None)
    started = time.perf_counter() - t0
    grown = rss() - before
    server = system.serve_api()
    url = f"{server.url}/api/dashboard"

    def poll() -> None:
        with urllib.request.urlopen(url, timeout=30) as answer:
            json.loads(answer.read())

    def poll_after_a_change() -> None:
        system.tell(TOUCHED, Touch())  # (the root handles it: the
        poll()  # tree is read again, not taken from the last read)

    poll()  # (the first one reads the slow figures in the background)
    time.sleep(1.5)
    figures = {
        "count": count,
        "start_s": started,
        "kib_per_actor": grown / count / 1024,
        "summary_s": timed(lambda: (system.tell(TOUCHED, Touch()), system.summary()), POLLS),
        "page_s": timed(lambda: (system.tell(TOUCHED, Touch()), system.status(limit=100)), POLLS),
        "dashboard_s": timed(poll, POLLS),
        "dashboard_changed_s": timed(poll_after_a_change, POLLS),
        "status_all_s": timed(lambda: system.status(), 3),
        "answers": float(system.ask("devices/shard99/group19/d.49", WhoAreYou()) == os.getpid()),
    }
    figures["stop_s"] = timed(system.shutdown)
    return figures


def raw_in_process() -> dict[str, float]:
    from thespian.actors import ActorExitRequest, ActorSystem

    count = SHAPE[0] * SHAPE[1] * SHAPE[2]
    asys = ActorSystem("simpleSystemBase", transientUnique=True, logDefs=False)
    top = asys.createActor(Node)
    before = rss()
    t0 = time.perf_counter()
    asys.ask(top, SHAPE, 900)
    asys.tell(top, "settle")  # (runs what the creations queued until nothing is left)
    started = time.perf_counter() - t0
    grown = rss() - before
    stopped = timed(lambda: asys.tell(top, ActorExitRequest()))
    asys.shutdown()
    return {
        "count": count,
        "start_s": started,
        "kib_per_actor": grown / count / 1024,
        "stop_s": stopped,
    }


def ours_pool() -> dict[str, float]:
    pool = Pool("pool", template=Child("instance", Device, restart="temporary"))
    tree = Supervisor("flat", children=[pool, Child("starter", Starter)])
    system = start(tree, shutdown_timeout_s=900, report_path=None)
    t0 = time.perf_counter()
    system.ask("flat/starter", StartMany(POOL_SIZE), timeout=900)
    started = time.perf_counter() - t0
    return {"start_s": started, "stop_s": timed(system.shutdown)}


def ours_flat() -> dict[str, float]:
    children = [Child(f"d{i}", Device) for i in range(POOL_SIZE)]
    t0 = time.perf_counter()
    system = start(
        Supervisor("flat", children=children),
        start_timeout_s=900,
        shutdown_timeout_s=900,
        report_path=None,
    )
    started = time.perf_counter() - t0
    return {"start_s": started, "stop_s": timed(system.shutdown)}


def raw_pool() -> dict[str, float]:
    from thespian.actors import ActorExitRequest, ActorSystem

    asys = ActorSystem("simpleSystemBase", transientUnique=True, logDefs=False)
    top = asys.createActor(Flat)
    t0 = time.perf_counter()
    asys.ask(top, POOL_SIZE, 900)
    asys.tell(top, "settle")
    started = time.perf_counter() - t0
    stopped = timed(lambda: asys.tell(top, ActorExitRequest()))
    asys.shutdown()
    return {"start_s": started, "stop_s": stopped}


def memory_of(pids: list[int]) -> tuple[float, float]:
    """Median USS and PSS of the processes ``pids``, in KiB."""
    infos = [psutil.Process(pid).memory_full_info() for pid in pids]
    return (
        statistics.median(i.uss for i in infos) / 1024,
        statistics.median(i.pss for i in infos) / 1024,
    )


def ours_processes() -> dict[str, float]:
    groups, replicas = PROCESSES
    tree = Supervisor(
        "devices",
        children=[
            Supervisor(f"group{g}", children=[Child("d", Device, replicas=replicas)])
            for g in range(groups)
        ],
    )
    t0 = time.perf_counter()
    system = start(tree, base="multiproc", start_timeout_s=300, report_path=None)
    started = time.perf_counter() - t0
    paths = [f"devices/group{g}/d.{i}" for g in range(groups) for i in range(replicas)]
    pids = [system.ask(p, WhoAreYou(), timeout=60) for p in paths]
    time.sleep(1.0)  # (let the processes settle after their first message)
    uss, pss = memory_of(pids)
    sid = system._sid
    stopped = timed(system.shutdown)
    from stalwart.supervisors._bases import session_processes

    return {
        "processes": len(set(pids)),
        "start_s": started,
        "uss_kib": uss,
        "pss_kib": pss,
        "stop_s": stopped,
        "left": len(session_processes(sid)),
    }


def raw_processes() -> dict[str, float]:
    from thespian.actors import ActorSystem

    from stalwart.supervisors._bases import free_port

    count = PROCESSES[0] * PROCESSES[1]
    asys = ActorSystem(
        "multiprocTCPBase",
        {"Admin Port": free_port("127.0.0.1")},
        logDefs={"version": 1, "disable_existing_loggers": False},
    )
    try:
        t0 = time.perf_counter()
        actors = [asys.createActor(Leaf) for _ in range(count)]
        pids = [asys.ask(a, "pid", 60) for a in actors]
        started = time.perf_counter() - t0
        time.sleep(1.0)
        uss, pss = memory_of(pids)
    finally:
        stopped = timed(asys.shutdown)
    forks = []
    for _ in range(5):  # a bare fork of this very process, which then only waits
        pid = os.fork()
        if pid == 0:
            time.sleep(3)
            os._exit(0)
        forks.append(pid)
    time.sleep(1.0)
    fork_uss, fork_pss = memory_of(forks)
    for pid in forks:
        os.waitpid(pid, 0)
    return {
        "start_s": started,
        "uss_kib": uss,
        "pss_kib": pss,
        "stop_s": stopped,
        "fork_uss_kib": fork_uss,
        "fork_pss_kib": fork_pss,
    }


PARTS = {
    "ours-simple": ours_in_process,
    "raw-simple": raw_in_process,
    "ours-pool": ours_pool,
    "ours-flat": ours_flat,
    "raw-pool": raw_pool,
    "ours-multiproc": ours_processes,
    "raw-multiproc": raw_processes,
}


def part(name: str) -> dict[str, float]:
    """Run part ``name`` in a fresh process; its figures."""
    import stalwart

    here = str(Path(stalwart.__file__).resolve().parents[1])  # (the same Stalwart as this one)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), name],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=HERE.parent,
        env={**os.environ, "PYTHONPATH": path},
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def run() -> None:
    ours, raw = part("ours-simple"), part("raw-simple")
    n = f"{int(ours['count']):,}"
    ms = 1000.0
    rows: list[Row | Figure] = [
        Row(f"start {n} idle actors", ours["start_s"], "goal", 10.0, "s", goal=1.0),
        Row(f"start {n} idle actors", ours["start_s"], "raw Thespian", raw["start_s"], "s"),
        Row(
            "memory per actor (RSS growth / count)",
            ours["kib_per_actor"],
            "goal",
            4.0,
            "KiB",
            goal=1.0,
        ),
        Row(
            "memory per actor (RSS growth / count)",
            ours["kib_per_actor"],
            "raw Thespian",
            raw["kib_per_actor"],
            "KiB",
        ),
        Row(f"orderly shutdown of {n}", ours["stop_s"], "goal", 10.0, "s", goal=1.0),
        Row(f"orderly shutdown of {n}", ours["stop_s"], "raw Thespian", raw["stop_s"], "s"),
        Row(
            "GET /api/dashboard, idle tree", ours["dashboard_s"] * ms, "goal", 50.0, "ms", goal=1.0
        ),
        Row(
            "GET /api/dashboard, right after a change",
            ours["dashboard_changed_s"] * ms,
            "goal",
            50.0,
            "ms",
            goal=1.0,
        ),
        Row(
            "System.summary(), read again",
            ours["summary_s"] * ms,
            "whole status()",
            ours["status_all_s"] * ms,
            "ms",
        ),
        Row(
            "System.status(limit=100), read again",
            ours["page_s"] * ms,
            "whole status()",
            ours["status_all_s"] * ms,
            "ms",
        ),
    ]
    print_rows(f"scale: {n} idle actors in one process (raw Thespian: the same tree)", rows)

    flat, pool, raw = part("ours-flat"), part("ours-pool"), part("raw-pool")
    n = f"{POOL_SIZE:,}"
    rows = []
    for what, ours in ((f"{n} children in the spec", flat), (f"a Pool of {n}", pool)):
        rows += [
            Row(f"start {what}", ours["start_s"], "raw Thespian", raw["start_s"], "s"),
            Row(f"orderly shutdown, {what}", ours["stop_s"], "goal", 10.0, "s", goal=1.0),
            Row(f"orderly shutdown, {what}", ours["stop_s"], "raw Thespian", raw["stop_s"], "s"),
        ]
    print_rows(f"scale: {n} children of one supervisor (raw: of one parent)", rows)

    ours, raw = part("ours-multiproc"), part("raw-multiproc")
    rows = [
        Row("USS per actor process", ours["uss_kib"], "raw Thespian", raw["uss_kib"], "KiB"),
        Row("PSS per actor process", ours["pss_kib"], "raw Thespian", raw["pss_kib"], "KiB"),
        Row("USS per actor process", ours["uss_kib"], "bare fork", raw["fork_uss_kib"], "KiB"),
        Row("start 200 actor processes", ours["start_s"], "raw Thespian", raw["start_s"], "s"),
        Row("shutdown", ours["stop_s"], "raw Thespian", raw["stop_s"], "s"),
        Figure(
            "actor processes / left after shutdown",
            ours["processes"],
            "",
            f"{int(ours['left'])} left",
        ),
    ]
    print_rows("scale: 200 actor processes on multiproc", rows)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.path.insert(0, str(HERE))
        print(json.dumps(PARTS[sys.argv[1]]()))
    else:
        run()
