"""The memory-pressure actor: sampling cost, reaction time, memory each tier gives back.

1. Sampling cost per tick with 1, 10 and 50 real processes, against the plain way
   (a new ``psutil.Process`` per process per tick, summing RSS); and reading this
   machine's cgroup limits (the process's cgroup and every parent) against reading the
   machine's memory (``psutil.virtual_memory()``).
2. Reaction time: from the sample that crosses a threshold to the cleanup report,
   on real processes (``multiproc``), p50/p95.
3. Memory returned by each tier on a standard workload (four actors, each with a
   40 MiB ``TieredCache``: a quarter of it past its max age, a 10 MiB floor), as a
   fraction of what the caches held, measured as the processes' RSS.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import msgspec
import psutil
from _report import Figure, Row, ns_per_call, percentile, print_rows

from stalwart import Child, ManagedActor, Supervisor, start
from stalwart.actors._memory import resident_buffer as touched
from stalwart.memory import CgroupReader, MemorySampler, TieredCache

MiB = 2**20
REACTIONS = 20


class Fill(msgspec.Struct, frozen=True):
    nbytes: int
    entries: int
    old_share: float = 0.0


class Allocate(msgspec.Struct, frozen=True):
    nbytes: int


class Release(msgspec.Struct, frozen=True):
    pass


class Holder(ManagedActor):
    """Holds a TieredCache (workload 3) or plain buffers (workload 2)."""

    def on_start(self) -> None:
        self.cache: TieredCache[int, bytearray] = TieredCache(max_age_s=60, floor_bytes=10 * MiB)
        self.buffers: list[bytearray] = []

    def receiveMsg_Fill(self, msg: Fill, sender: Any) -> None:
        size = msg.nbytes // msg.entries
        old = int(msg.entries * msg.old_share)
        now = self.cache.clock()
        for i in range(msg.entries):
            self.cache.set(i, touched(size))
            if i < old:
                self.cache._data[i].created = now - 3600  # set long ago: past its max age
        self.reply(sender, self.cache.nbytes)

    def receiveMsg_Allocate(self, msg: Allocate, sender: Any) -> None:
        self.buffers.append(touched(msg.nbytes))
        self.reply(sender, len(self.buffers))

    def receiveMsg_Release(self, msg: Release, sender: Any) -> None:
        self.buffers.clear()
        self.reply(sender, 0)


# -- 1. sampling cost ----------------------------------------------------------------------------
def sampling_rows() -> list[Row | Figure]:
    rows: list[Row | Figure] = []
    sleepers = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(50)
    ]
    try:
        time.sleep(1.0)
        for n in (1, 10, 50):
            pids = [p.pid for p in sleepers[:n]]
            sampler = MemorySampler(1 << 40, pids=lambda pids=pids: pids)
            sampler.sample()

            def plain(pids: list[int] = pids) -> int:
                return sum(psutil.Process(pid).memory_info().rss for pid in pids)

            ours = ns_per_call(sampler.sample, number=max(20, 2000 // n), repeat=5) / 1000
            peer = ns_per_call(plain, number=max(20, 2000 // n), repeat=5) / 1000
            rows.append(
                Row(
                    f"sampling cost per tick, {n} processes", ours, "new psutil.Process", peer, "µs"
                )
            )
    finally:
        for p in sleepers:
            p.kill()
        for p in sleepers:
            p.wait()
    return rows + cgroup_rows()


def cgroup_rows() -> list[Row | Figure]:
    reader = CgroupReader()
    if reader.place is None:
        return [Figure("cgroup limits per tick", float("nan"), "µs", "no memory cgroup here")]
    group = reader.read()
    assert group is not None
    ours = ns_per_call(reader.read, number=2000, repeat=5) / 1000
    peer = ns_per_call(psutil.virtual_memory, number=2000, repeat=5) / 1000
    name = f"cgroup v{group.version} limits per tick, {len(group.levels)} levels"
    return [Row(name, ours, "psutil.virtual_memory()", peer, "µs")]


# -- 2. reaction time -----------------------------------------------------------------------------
def reaction_rows() -> list[Row | Figure]:
    tree = Supervisor("b", children=[Child(f"h{i}", Holder) for i in range(8)])
    with start(tree, base="multiproc", report_path=None, memory_budget="1TiB") as probe:
        time.sleep(1.0)
        rest = probe.memory().sample.used
    budget = int(rest / 0.6)
    interval = 0.05
    reactions = []
    with start(
        tree,
        base="multiproc",
        report_path=None,
        memory_budget=budget,
        memory_interval_s=interval,
        memory={"horizon_s": 0},
    ) as system:
        need = int(budget * 0.76) - system.memory().sample.used
        for _ in range(REACTIONS):
            seen = len(system.memory().cleanups)
            system.ask("b/h0", Allocate(need), timeout=30)
            deadline = time.monotonic() + 30
            while len(system.memory().cleanups) == seen and time.monotonic() < deadline:
                time.sleep(0.01)
            report = system.memory().cleanups[-1]
            # the crossing sample came at most one interval before the tier began
            reactions.append(report.duration_s * 1000)
            system.ask("b/h0", Release(), timeout=30)
            while system.memory().level != 0 and time.monotonic() < deadline:
                time.sleep(0.02)
    return [
        Figure(
            f"reaction, crossing sample to report, p{q} (9 actor processes)",
            percentile(reactions, q),
            "ms",
            f"plus up to one {interval * 1000:.0f} ms sampling interval",
        )
        for q in (50, 95)
    ]


# -- 3. memory returned per tier ---------------------------------------------------------------------
def returned_rows() -> list[Row | Figure]:
    actors = 4
    tree = Supervisor("b", children=[Child(f"h{i}", Holder) for i in range(actors)])
    rows: list[Row | Figure] = []
    with start(tree, base="multiproc", report_path=None, memory_budget="1TiB") as system:
        held = sum(
            system.ask(f"b/h{i}", Fill(40 * MiB, 40, old_share=0.25), timeout=60)
            for i in range(actors)
        )
        for tier in ("warning", "critical", "emergency"):
            report = system.memory_cleanup(tier)
            cached = sum(a.caches for a in report.actors.values())
            rows.append(
                Figure(
                    f"{tier}: RSS returned / cache bytes held",
                    report.freed_bytes / held,
                    "",
                    f"caches reported {cached / held:.0%} freed;"
                    f" {report.freed_bytes / MiB:.0f} of {held / MiB:.0f} MiB",
                )
            )
    return rows


def run() -> None:
    print_rows("memory: sampling", sampling_rows())
    print_rows("memory: reaction time", reaction_rows())
    print_rows("memory: what each tier gives back (standard workload)", returned_rows())


if __name__ == "__main__":
    run()
