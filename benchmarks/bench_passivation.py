"""Passivation: the memory idle actors give back, and what a message to one costs.

1. In process (``simple``): 1,000 actors that opted in (``passivate_after_s``), each
   holding a session of about 4 KiB, plus one that stays active. RSS after a collection
   (and ``malloc_trim``) with all of them running, then once all are passivated (their old instances gone):
   the memory returned per 1,000 passivated actors. Then the latency of an ask that
   reactivates a passivated actor, p50 and p99, beside an ask to the active actor in the
   same run (ratio).
2. ``multiproc``: 40 such actors, a process each: what each passivated actor's process
   gave back (its USS, unique to it) and what its supervisor's process holds more (the
   kept states); reactivation (a process started, the state handed over) beside an ask to
   an active actor.

3. In process: a Pool with 20,000 passivated instances (one session each, gone idle): how
   many new instances an actor starts a second (``self.start_child``, one after another),
   beside the same Pool with none passivated.

Each part runs in a fresh process (``python benchmarks/bench_passivation.py <part>``
prints its figures as JSON), so one part's heap does not weigh on the other's.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil
from _report import Figure, Row, percentile, print_rows
from bench_children import Noop, Starter, StartMany

from stalwart import Child, ManagedActor, Pool, Supervisor, start
from stalwart.actors._memory import _malloc_trim

IN_PROCESS = 1_000
PROCESSES = 40
POOL_PASSIVATED = 20_000  # instances of one Pool passivated before the timed starts
POOL_STARTS = 3_000
AFTER_S = 2.0  # passivate_after_s: long enough to measure them all running first
HERE = Path(__file__).resolve().parent


class Fill(msgspec.Struct, frozen=True):
    pass


class Get(msgspec.Struct, frozen=True):
    pass


class Session(ManagedActor):
    """A session: about 4 KiB of state, kept across passivation, and an index of it that
    it builds as it starts (working memory, not checkpointed)."""

    def on_start(self) -> None:
        self.items: list[str] = self.restored_state or []
        self.index = {item: i for i, item in enumerate(self.items)}

    def snapshot(self) -> Any:
        return self.items

    def receiveMsg_Fill(self, msg: Fill, sender: Any) -> None:
        self.items = [f"{self.path}:{i:04d}:{'x' * 40}" for i in range(48)]
        self.index = {item: i for i, item in enumerate(self.items)}

    def receiveMsg_Get(self, msg: Get, sender: Any) -> None:
        self.reply(sender, len(self.items))


def tree(n: int) -> Supervisor:
    children = [Child(f"s{i}", Session, passivate_after_s=AFTER_S) for i in range(n)]
    return Supervisor("app", children=[*children, Child("active", Session)])


def rss() -> int:
    """RSS after a collection and ``malloc_trim`` (what the memory tiers do: freed heap goes
    back to the OS)."""
    gc.collect()
    trim = _malloc_trim()
    if trim:
        trim(0)
    return int(psutil.Process().memory_info().rss)


def all_passivated(system: Any, n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while system.summary().counts.get("passivated", 0) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all {n} passivated: {system.summary().counts}")
        time.sleep(0.1)


def latencies(system: Any, paths: list[str]) -> tuple[list[float], list[float]]:
    """Seconds per ask that reactivates each of ``paths``, and per ask to the active one."""
    cold, warm = [], []
    for path in paths:
        began = time.perf_counter()
        assert system.ask(path, Get(), 30) == 48
        cold.append(time.perf_counter() - began)
        began = time.perf_counter()
        system.ask("app/active", Get(), 30)
        warm.append(time.perf_counter() - began)
    return cold, warm


def fill(system: Any, n: int) -> None:
    for i in range(n):
        system.tell(f"app/s{i}", Fill())
    system.tell("app/active", Fill())
    for i in range(n):  # (each answers once its Fill is handled: same sender, in order)
        assert system.ask(f"app/s{i}", Get(), 30) == 48


def in_process() -> dict[str, float]:
    # (no recovery store: the 1,000 events of passivation would be rows in it)
    with start(tree(IN_PROCESS), report_path=None, memory=None, store=None) as system:
        fill(system, IN_PROCESS)
        running = rss()
        all_passivated(system, IN_PROCESS)
        time.sleep(2.5)  # the old instances leave once nothing reached them for a second
        passivated = rss()
        cold, warm = latencies(system, [f"app/s{i}" for i in range(0, IN_PROCESS, 5)])
    return {
        "freed_per_1000": (running - passivated) * 1000 / IN_PROCESS,
        "cold_p50": percentile(cold, 50),
        "cold_p99": percentile(cold, 99),
        "warm_p50": percentile(warm, 50),
        "warm_p99": percentile(warm, 99),
    }


def uss(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_full_info().uss)
    except psutil.NoSuchProcess:
        return 0


def processes() -> dict[str, float]:
    options: dict[str, Any] = {"report_path": None, "memory": None, "store": None}
    with start(tree(PROCESSES), base="multiproc", **options) as system:
        fill(system, PROCESSES)
        status = system.status()
        pids = [status[f"app/s{i}"].pid for i in range(PROCESSES)]
        supervisor = status["app"].pid
        held = [uss(pid) for pid in pids]
        supervisor_before = uss(supervisor)
        all_passivated(system, PROCESSES)
        deadline = time.monotonic() + 30
        while any(psutil.pid_exists(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        gone = [size for pid, size in zip(pids, held) if not psutil.pid_exists(pid)]
        supervisor_after = uss(supervisor)
        cold, warm = latencies(system, [f"app/s{i}" for i in range(PROCESSES)])
    return {
        "freed_per_process": sum(gone) / max(1, len(gone)),
        "exited": len(gone),
        "supervisor_per_actor": (supervisor_after - supervisor_before) / PROCESSES,
        "cold_p50": percentile(cold, 50),
        "cold_p99": percentile(cold, 99),
        "warm_p50": percentile(warm, 50),
        "warm_p99": percentile(warm, 99),
    }


def pool_starts(passivated: int) -> dict[str, float]:
    """New Pool instances started a second, with ``passivated`` instances passivated."""
    template = Child("session", Noop, restart="temporary", passivate_after_s=0.5)
    pool = Supervisor("b", children=[Pool("pool", template=template), Child("starter", Starter)])
    with start(pool, report_path=None, shutdown_timeout_s=600) as system:
        if passivated:
            system.ask("b/starter", StartMany("b/pool", 0, passivated), timeout=600)
            deadline = time.monotonic() + 120
            while system.summary("b/pool").counts.get("passivated", 0) < passivated:
                if time.monotonic() > deadline:
                    raise RuntimeError("the Pool's instances were not passivated in 120 s")
                time.sleep(0.2)
        rate = system.ask("b/starter", StartMany("b/pool", passivated, POOL_STARTS), timeout=600)
    return {"rate": float(rate)}


PARTS = {
    "in_process": in_process,
    "processes": processes,
    "pool_idle": lambda: pool_starts(0),
    "pool_passivated": lambda: pool_starts(POOL_PASSIVATED),
}


def part(name: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), name],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=HERE.parent,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run() -> None:
    one = part("in_process")
    many = part("processes")
    idle, passive = part("pool_idle"), part("pool_passivated")
    ms = 1000.0
    print_rows(
        f"Passivation: {IN_PROCESS:,} actors in one process, {PROCESSES} actor processes",
        [
            Figure(
                "in process: RSS returned per 1,000 passivated",
                one["freed_per_1000"] / 2**20,
                "MiB",
                "after gc; their states stay with their supervisor",
            ),
            Row(
                "in process: ask that reactivates, p50",
                one["cold_p50"] * ms,
                "active actor",
                one["warm_p50"] * ms,
                "ms",
            ),
            Row(
                "in process: ask that reactivates, p99",
                one["cold_p99"] * ms,
                "active actor",
                one["warm_p99"] * ms,
                "ms",
            ),
            Figure(
                "multiproc: memory returned per passivated actor",
                many["freed_per_process"] / 2**20,
                "MiB",
                f"USS of its process; {many['exited']:.0f} of {PROCESSES} exited",
            ),
            Figure(
                "multiproc: its supervisor holds more per actor",
                many["supervisor_per_actor"] / 2**10,
                "KiB",
                "the kept state (USS)",
            ),
            Row(
                "multiproc: ask that reactivates, p50",
                many["cold_p50"] * ms,
                "active actor",
                many["warm_p50"] * ms,
                "ms",
            ),
            Row(
                "multiproc: ask that reactivates, p99",
                many["cold_p99"] * ms,
                "active actor",
                many["warm_p99"] * ms,
                "ms",
            ),
            Row(
                f"in process: Pool starts/s, {POOL_PASSIVATED:,} instances passivated",
                passive["rate"],
                "none passivated",
                idle["rate"],
                "/s",
                "higher",
            ),
        ],
    )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(json.dumps(PARTS[sys.argv[1]]()))
    else:
        run()
