"""Children started at run time: how many a second, against the goal and raw Thespian.

``System.start_child`` of Pool instances, one after another, each answered once the
instance has run ``on_start`` and is registered (so the next message to it is
delivered); and the same from inside an actor (``self.start_child``, no trip through
the root for the answer). The peer, in the same run on the same base: raw Thespian, an
actor that creates children with ``createActor`` one after another, each answering a
first message before the next is created. Goals: 5,000 starts/s in one process, 100/s
with a process per actor. On real processes the Pool is measured without spares and with
``spares=2`` (each start takes an instance forked ahead); each side starts a few instances
before it is timed. Last, the latency of one start at a time on real processes (a pause
before each, as a login comes now and then), with spares against without, alternating in
blocks: a spare takes the fork and the new process's setup off the caller's wait.

A Pool whose instances checkpoint, in one process: a start and a first ask of 1,000 keys
once 1,000 run, against the same once 19,000 run (a start reads its own path's
checkpoints, whatever the number of others: the ratio stays near 1).

In one process, ``System.start_child`` waits for the actor thread twice a start (the
request's handover and the answer's). What a handover between two threads costs on this
machine is measured beside it: a bare round trip (a queue one way, a lock the other), and
the same starts, each with the program on two CPUs and confined to one
(``sched_setaffinity``), in processes of their own.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from typing import Any

import msgspec
from _report import Figure, Row, percentile, print_rows
from bench_core import close_raw, raw_system
from thespian.actors import Actor, ActorExitRequest

from stalwart import Child, ManagedActor, Pool, Supervisor, start

GOALS = {"simple": 5_000.0, "multiproc": 100.0}
COUNTS = {"simple": 3_000, "multiproc": 100}
WARM_UP = 5  # starts before the clock runs (the tree has just started)
SPARES = {"simple": (0,), "multiproc": (0, 2)}
LATENCY_STARTS = 20  # per side and block, one at a time
LATENCY_BLOCKS = 2
PAUSE_S = 0.15  # before each start (what a spare needs to be made again, and more)


class Noop(ManagedActor):
    """An instance that does nothing but start."""


class Hello(msgspec.Struct, frozen=True):
    pass


class Kept(ManagedActor):
    """An instance that checkpoints what it counts."""

    def on_start(self) -> None:
        self.n = (self.restored_state or 0) + 1

    def snapshot(self) -> Any:
        return self.n

    def receiveMsg_Hello(self, msg: Hello, sender: Any) -> None:
        self.n += 1
        self.reply(sender, self.n)


class StartMany(msgspec.Struct, frozen=True):
    pool: str
    first: int
    count: int


class Starter(ManagedActor):
    """Starts ``count`` instances one after another; answers with the rate."""

    def receiveMsg_StartMany(self, msg: StartMany, sender: Any) -> None:
        began = time.perf_counter()

        def next_one(i: int) -> None:
            if i == msg.first + msg.count:
                self.reply(sender, msg.count / (time.perf_counter() - began))
                return
            self.start_child(msg.pool, f"a{i}", timeout=60, on_reply=lambda _path: next_one(i + 1))

        next_one(msg.first)


class RawChild(Actor):  # type: ignore[misc]
    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == "hello":
            self.send(sender, "ready")


class RawParent(Actor):  # type: ignore[misc]
    """Creates ``n`` children one after another, each answering before the next."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, tuple) and msg[0] == "go":
            self.asker, self.left, self.began = sender, msg[1], time.perf_counter()
            self.total, self.children = msg[1], []
            self.create()
        elif msg == "ready":
            self.left -= 1
            if self.left:
                self.create()
            else:
                rate = self.total / (time.perf_counter() - self.began)
                for child in self.children:
                    self.send(child, ActorExitRequest())
                self.send(self.asker, rate)

    def create(self) -> None:
        child = self.createActor(RawChild)
        self.children.append(child)
        self.send(child, "hello")


def raw_rate(base: str, count: int) -> float:
    asys = raw_system(base)
    try:
        rate: float = asys.ask(asys.createActor(RawParent), ("go", count), 600)
        return rate
    finally:
        close_raw(asys, base)


def our_rate(base: str, count: int, spares: int, from_actor: bool) -> float:
    """Instances per second started by ``System.start_child`` (or by an actor's
    ``self.start_child``), in a tree of their own (on real processes a start costs more
    the more processes the Pool already has)."""
    template = Child("instance", Noop, restart="temporary")
    pool = Pool("pool", template=template, spares=spares)
    tree = Supervisor("b", children=[pool, Child("starter", Starter)])
    with start(tree, base=base, report_path=None, store=None, correlator=None) as system:
        if from_actor:
            system.ask("b/starter", StartMany("b/pool", 0, WARM_UP), timeout=600)
            rate: float = system.ask("b/starter", StartMany("b/pool", WARM_UP, count), 600)
            return rate
        for i in range(WARM_UP):
            system.start_child("b/pool", f"w{i}", timeout=60)
        began = time.perf_counter()
        for i in range(count):
            system.start_child("b/pool", f"s{i}", timeout=60)
        return count / (time.perf_counter() - began)


def start_latencies(spares: int, first: int) -> list[float]:
    """Seconds each of ``LATENCY_STARTS`` starts took, one at a time, on ``multiproc``."""
    pool = Pool("pool", template=Child("instance", Noop, restart="temporary"), spares=spares)
    took = []
    with start(Supervisor("b", children=[pool]), base="multiproc", report_path=None) as system:
        for i in range(first, first + LATENCY_STARTS):
            time.sleep(PAUSE_S)
            began = time.perf_counter()
            system.start_child("b/pool", f"s{i}", timeout=60)
            took.append(time.perf_counter() - began)
    return took


def latency_rows() -> list[Row | Figure]:
    sides: dict[int, list[float]] = {0: [], 2: []}
    for block in range(LATENCY_BLOCKS):
        for spares in (2, 0) if block % 2 else (0, 2):
            sides[spares] += start_latencies(spares, block * LATENCY_STARTS)
    rows: list[Row | Figure] = []
    for q in (50, 95):
        ours, peer = (percentile(sides[n], q) * 1e3 for n in (2, 0))
        name = f"multiproc: one start at a time, p{q}, Pool spares=2"
        rows.append(Row(name, ours, "no spares", peer, "ms"))
    return rows


def crowded_us(running: tuple[int, int] = (1_000, 19_000), timed: int = 1_000) -> list[float]:
    """Microseconds a start and a first ask take, ``timed`` keys in a row, once each number
    of ``running`` keys runs (instances that checkpoint, in one process)."""
    pool = Pool("pool", template=Child("instance", Kept))
    took, started = [], 0
    with start(Supervisor("b", children=[pool]), report_path=None) as system:
        for count in running:
            while started < count:
                system.start_child("b/pool", f"k{started}", timeout=60)
                started += 1
            began = time.perf_counter()
            for _ in range(timed):
                system.ask(system.start_child("b/pool", f"k{started}", timeout=60), Hello())
                started += 1
            took.append((time.perf_counter() - began) / timed * 1e6)
    return took


def crowded_rows() -> list[Row | Figure]:
    few, many = crowded_us()
    name = "simple: a start and an ask, 20,000 keys running"
    return [Row(name, many, "2,000 running", few, "us")]


def thread_round_trip_us(count: int = 20_000) -> float:
    """Microseconds for one round trip between two threads: a queue one way, a lock back."""
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def serve() -> None:
        while (lock := inbox.get()) is not None:
            lock.release()

    server = threading.Thread(target=serve)
    server.start()
    began = time.perf_counter()
    for _ in range(count):
        lock = threading.Lock()
        lock.acquire()
        inbox.put(lock)
        lock.acquire()
    took = time.perf_counter() - began
    inbox.put(None)
    server.join()
    return took / count * 1e6


def handoff_figures(one_cpu: bool) -> dict[str, float]:
    """The round trip and the in-process start rate, in a process of their own (on one
    CPU if ``one_cpu``)."""
    args = [sys.executable, __file__, "--handoff"] + (["--one-cpu"] if one_cpu else [])
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=600)
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def handoff_rows() -> list[Row | Figure]:
    if len(os.sched_getaffinity(0)) < 2:
        return [Figure("handoffs: this program has one CPU only", 0, "", "not measured")]
    two, one = handoff_figures(False), handoff_figures(True)
    return [
        Row(
            "round trip between two threads, two CPUs",
            two["round_trip_us"],
            "one CPU",
            one["round_trip_us"],
            "us",
        ),
        Row(
            "simple: System.start_child, two CPUs",
            two["starts"],
            "one CPU",
            one["starts"],
            "/s",
            "higher",
        ),
    ]


def run() -> None:
    rows: list[Row | Figure] = []
    for base in ("simple", "multiproc"):
        count, goal = COUNTS[base], GOALS[base]
        ours = {
            (spares, actor): our_rate(base, count, spares, actor)
            for spares in SPARES[base]
            for actor in (False, True)
        }
        raw = raw_rate(base, count)
        for (spares, actor), rate in ours.items():
            label = "self.start_child" if actor else "System.start_child"
            name = f"{base}: {label}" + (f" (Pool spares={spares})" if spares else "")
            rows.append(Row(name, rate, "goal", goal, "/s", "higher", 1.0))
            rows.append(Row(name, rate, "raw createActor", raw, "/s", "higher"))
    print_rows("children: dynamic starts per second (one after another)", rows)
    print_rows("children: the latency of one start on real processes", latency_rows())
    print_rows("children: what a handover between threads costs here", handoff_rows())
    print_rows("children: a Pool of instances that checkpoint, crowded", crowded_rows())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--handoff"]:
        if "--one-cpu" in sys.argv:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        figures = {
            "round_trip_us": thread_round_trip_us(),
            "starts": our_rate("simple", COUNTS["simple"], 0, False),
        }
        print(json.dumps(figures))
    else:
        run()
