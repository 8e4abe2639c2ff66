"""What the delivery guarantees cost: checkpointed round trips, and serving again after a kill.

1. Round trips with a checkpoint after each message (the default for an actor that
   defines ``snapshot``; its answer leaves only once the state is safe: on the
   multi-process bases, in its checkpoint file) against the same actor without a
   snapshot, in the same tree and run, rounds alternating.
2. Crash-to-serving on multiproc: a checkpointed actor is SIGKILLed right after
   acknowledging a request; how long until it answers again from its restored
   state, for a small state and a 1 MB one.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from typing import Any

import msgspec
from _report import Figure, Row, percentile, print_rows
from bench_core import Go, ManagedDriver, Ping, Pong

from stalwart import Child, ManagedActor, Supervisor, start

ROUND_TRIPS = {"simple": 20_000, "multiproc": 2_000}
ROUNDS = 6
KILLS = 40


class Count(msgspec.Struct, frozen=True):
    """Ask an actor how many pings it has answered."""


class Plain(ManagedActor):
    """Counts what it answers; keeps no checkpoint."""

    def on_start(self) -> None:
        self.n = self.restored_state or 0
        self.ballast = bytes(int(self.options.get("ballast", 0)))

    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> None:
        self.n += 1
        self.reply(sender, Pong())

    def receiveMsg_Count(self, msg: Count, sender: Any) -> None:
        self.reply(sender, self.n)


class Checkpointed(Plain):
    """The same, with its count (and ballast) checkpointed after each message."""

    def snapshot(self) -> Any:
        return (self.n, self.ballast) if self.ballast else self.n

    def on_start(self) -> None:
        state = self.restored_state
        super().on_start()
        if isinstance(state, tuple):
            self.n, self.ballast = state


def round_trips(base: str) -> tuple[float, float]:
    """Median µs per round trip: (checkpointed, plain)."""
    tree = Supervisor(
        "d",
        children=[
            Child("plain", Plain),
            Child("kept", Checkpointed),
            Child("driver", ManagedDriver),
        ],
    )
    n = ROUND_TRIPS[base]
    with start(tree, base=base, report_path=None) as system:
        for path in ("d/plain", "d/kept"):  # warm up: connections, caches
            system.ask("d/driver", Go(100, path), timeout=60)
        kept, plain = [], []
        for _ in range(ROUNDS):
            plain.append(1e6 / system.ask("d/driver", Go(n, "d/plain"), timeout=300).per_second)
            kept.append(1e6 / system.ask("d/driver", Go(n, "d/kept"), timeout=300).per_second)
    return statistics.median(kept), statistics.median(plain)


def crash_to_serving(ballast: int) -> list[float]:
    """Seconds from a SIGKILL right after an answer to the next answer, per kill."""
    tree = Supervisor(
        "d",
        max_restarts=10 * KILLS,
        children=[Child("kept", Checkpointed, options={"ballast": ballast})],
    )
    took = []
    with start(tree, base="multiproc", report_path=None) as system:
        for i in range(KILLS):
            system.ask("d/kept", Ping(), timeout=30)
            before = system.ask("d/kept", Count(), timeout=30)
            while not (pid := system.status()["d/kept"].pid):  # 0 until it is registered
                time.sleep(0.001)
            began = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            after = system.ask("d/kept", Count(), timeout=30)
            took.append(time.perf_counter() - began)
            assert after == before, (i, before, after)  # nothing acknowledged was lost
    return took


def run() -> None:
    rows: list[Row | Figure] = []
    for base in ("simple", "multiproc"):
        kept, plain = round_trips(base)
        rows.append(
            Row(
                f"round trip, checkpoint after each message, {base}",
                kept,
                "no checkpoint",
                plain,
                "µs",
                goal=1.3,
            )
        )
    print_rows("delivery: what a checkpoint after each message costs", rows)
    rows = []
    for label, ballast in (("small state", 0), ("1 MB state", 1 << 20)):
        took = crash_to_serving(ballast)
        rows.append(
            Figure(
                f"SIGKILL after an answer -> answering again, {label}",
                1000 * percentile(took, 50),
                "ms p50",
                f"p99 {1000 * percentile(took, 99):.1f} ms over {KILLS} kills, none lost",
            )
        )
    print_rows("delivery: crash-to-serving from the checkpoint file, multiproc", rows)


if __name__ == "__main__":
    run()
