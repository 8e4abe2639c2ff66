"""Warm standbys: crash-to-serving with a spare instance, without one, and raw Thespian.

1. Crash-to-serving, SIGKILL on ``multiproc`` (an exception in process): from the crash to
   the restarted actor having answered the message it was handling, as in bench_core.
   Three sides alternate in blocks in one run: ``Child(..., standby=True)``, the same child
   without a spare, and raw Thespian recreating the actor and sending the message again
   (its documented way). The goal: with a spare, p50 at most half of raw Thespian's.
2. Failure -> served, per recovery level 1-5 on both bases (bench_levels' measurement),
   with spares against without, the two sides alternating in halves. Before each sample both
   wait as long as a new spare takes to be asked for (and with spares on real processes,
   until they are up: the steady state). Levels 1, 2 and 5 do not use the spare (no
   instance is replaced, or the whole tree is made anew): there the ratio is noise.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import psutil
from _report import Row, percentile, print_rows
from bench_core import managed_crash_latencies, on_one_cpu, raw_crash_latencies
from bench_levels import level_latencies

from stalwart.supervisors._standby import SPARE_AFTER_S

CRASHES = 36  # per side
BLOCKS = 3  # the sides alternate in blocks: this machine's speed drifts for seconds at a time
LEVEL_SAMPLES = {"simple": 12, "multiproc": 8}  # per side, in two halves
LEVEL5_SAMPLES = 4
SIDES = ("standby", "no standby", "raw Thespian")


class SpareWaiter:
    """Waits, before a sample, for the steady state: the spares made after the last takeover
    are up. A spare is a process the supervisor ``b`` forked that was never an instance the
    root knew of (a replaced instance may linger a little while, forwarding)."""

    def __init__(self, spares: int) -> None:
        self.spares = spares
        self.instances: set[int] = set()

    def __call__(self, system: Any) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(self.spare_pids(system)) < self.spares:
            time.sleep(0.005)

    def spare_pids(self, system: Any) -> set[int]:
        try:
            status = system.status()
            if any(not e.pid for e in status if e.path.startswith("b/")):
                return set()  # (an instance the root has not heard start yet)
            self.instances |= {e.pid for e in status if e.path.startswith("b/")}
            sup = psutil.Process(status["b"].pid)
            alive = {p.pid for p in sup.children() if p.status() != psutil.STATUS_ZOMBIE}
        except (psutil.Error, KeyError):  # (the tree is restarting)
            return set()
        return alive - self.instances


def crash_latencies(base: str) -> dict[str, list[float]]:
    """The three sides' crash-to-serving latencies, in alternating blocks."""
    found: dict[str, list[float]] = {side: [] for side in SIDES}
    with on_one_cpu(base):
        for _ in range(BLOCKS):
            spare_up = SpareWaiter(1)  # (the spare made after the last takeover is up)
            found["standby"] += managed_crash_latencies(base, CRASHES // BLOCKS, True, spare_up)
            found["raw Thespian"] += raw_crash_latencies(base, CRASHES // BLOCKS)
            found["no standby"] += managed_crash_latencies(base, CRASHES // BLOCKS, False)
    return found


def crash_rows(base: str, label: str) -> list[Row]:
    found = crash_latencies(base)
    rows = []
    for q in (50, 95, 99):
        ours = 1000 * percentile(found["standby"], q)
        for peer in ("raw Thespian", "no standby"):
            goal = 0.5 if peer == "raw Thespian" and q == 50 else None
            rows.append(
                Row(
                    f"crash-to-serving p{q}, {label}, standby",
                    ours,
                    peer,
                    1000 * percentile(found[peer], q),
                    "ms",
                    goal=goal,
                )
            )
    no_spare = [1000 * percentile(found["no standby"], q) for q in (50, 95, 99)]
    rows.append(
        Row(
            f"crash-to-serving p50, {label}, no standby",
            no_spare[0],
            "raw Thespian",
            1000 * percentile(found["raw Thespian"], 50),
            "ms",
        )
    )
    return rows


def settle_for(base: str, standby: bool) -> Callable[[Any], None]:
    """Before each sample, both sides wait as long as a new spare takes to be asked for;
    with spares on real processes, until they are up too."""
    spares = SpareWaiter(2) if standby and base != "simple" else None

    def settle(system: Any) -> None:
        time.sleep(SPARE_AFTER_S)
        if spares is not None:
            spares(system)

    return settle


def level_rows() -> list[Row]:
    """Per base and level, the two sides alternate in two halves (the machine drifts)."""
    rows = []
    for base in ("simple", "multiproc"):
        for level in range(1, 6):
            half = (LEVEL5_SAMPLES if level == 5 else LEVEL_SAMPLES[base]) // 2
            found: dict[bool, list[float]] = {True: [], False: []}
            seen = set()
            for standby in (True, False, False, True):
                latencies, _, level_seen = level_latencies(
                    base, level, standby, half, settle_for(base, standby)
                )
                found[standby] += latencies
                seen.add(level_seen)
            note = "" if seen == {level} else f" (recovered at levels {sorted(seen)})"
            for q in (50, 95, 99):
                rows.append(
                    Row(
                        f"{base}, level {level}, standby: failure -> served p{q}{note}",
                        1000 * percentile(found[True], q),
                        "no standby",
                        1000 * percentile(found[False], q),
                        "ms",
                    )
                )
    return rows


def run() -> None:
    quiet = logging.getLogger("Thespian")  # raw Thespian logs every actor exception
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    rows = crash_rows("simple", "in-process exception")
    os.environ["BENCH_KILL"] = "1"
    try:
        rows += crash_rows("multiproc", "SIGKILL on multiproc")
    finally:
        os.environ.pop("BENCH_KILL", None)
    print_rows(f"standby: crash-to-serving over {CRASHES} crashes per side", rows)
    print_rows("standby: failure -> served per recovery level", level_rows())


if __name__ == "__main__":
    run()
