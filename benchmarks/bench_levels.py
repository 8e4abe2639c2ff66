"""Failure to serving again, per recovery level, on both bases.

Each sample is one request whose handler fails at once, ``n`` times, with a level policy
that makes level L the one that recovers it (1: a retry in place; 2: a retry after backoff;
3: the actor restarted; 4: its restart set restarted; 5: the root restarting the whole
tree, because the supervisor's restart intensity is spent). The figure is the time from
sending the request to its answer, which is the time from the failure to the path serving
again plus one round trip; at level 5 the request itself is answered with the error
(the tree it was in is gone), and the time runs to the next request's answer. The peer is
the same request when nothing fails.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from _report import Row, percentile, print_rows

from stalwart import Child, LevelPolicy, ManagedActor, StalwartError, Supervisor, start
from stalwart.strategies import Fixed

SAMPLES = {"simple": 30, "multiproc": 20}
LEVEL5_SAMPLES = 8  # (each restarts the whole tree)
QUIET_S = 0.05


class Serve(msgspec.Struct, frozen=True):
    counter: str  # a file counting the attempts (shared by every instance)
    failures: int  # fail this many times, then answer


class Flaky(ManagedActor):
    def receiveMsg_Serve(self, msg: Serve, sender: Any) -> None:
        if msg.failures:
            with open(msg.counter, "a+") as fh:
                fh.write("x")
                fh.seek(0)
                attempt = len(fh.read())
            if attempt <= msg.failures:
                raise RuntimeError(f"fault {attempt} of {msg.failures}")
        self.reply(sender, os.getpid())


def policies() -> dict[int, tuple[LevelPolicy, int, int]]:
    """Per level: the policy that makes it the recovering level, the failures, and the
    supervisor's ``max_restarts``."""
    # (the ladder forgets a failure after a quiet period: each sample starts at level 1)
    quick = {"basic_delay_s": 0.01, "backoff": Fixed(0.05), "quiet_period_s": QUIET_S}
    return {
        1: (LevelPolicy(**quick), 1, 3),
        2: (LevelPolicy(basic_attempts=1, **quick), 2, 3),
        3: (LevelPolicy(basic_attempts=0, enhanced_attempts=0, **quick), 1, 1000),
        4: (
            LevelPolicy(basic_attempts=0, enhanced_attempts=0, component_attempts=0, **quick),
            1,
            1000,
        ),
        5: (LevelPolicy(basic_attempts=0, enhanced_attempts=0, **quick), 1, 0),
    }


def serve_again(system: Any) -> None:
    """Ask until the path answers (while the whole tree restarts)."""
    while True:
        try:
            system.ask("b/f", Serve("", 0), timeout=1)
            return
        except StalwartError:
            time.sleep(0.001)


def level_latencies(
    base: str,
    level: int,
    standby: bool = False,
    samples: int = 0,
    settle: Callable[[Any], None] | None = None,
) -> tuple[list[float], list[float], int]:
    """Seconds to the answer of a failing request, of a plain one, and the recovering
    level seen in the events (0 if none). ``standby``: both children keep a warm spare;
    ``samples``: that many (0: the default for the base and level); ``settle(system)``
    runs before each sample."""
    policy, failures, max_restarts = policies()[level]
    tree = Supervisor(
        "b",
        strategy="one_for_all",
        max_restarts=max_restarts,
        children=[
            Child("f", Flaky, levels=policy, standby=standby),
            Child("g", Flaky, standby=standby),
        ],
    )
    failing, plain = [], []
    with (
        tempfile.TemporaryDirectory() as folder,
        start(tree, base=base, report_path=None, root_within_s=0.001) as system,
    ):
        system.ask("b/f", Serve("", 0), timeout=30)
        for i in range(samples or (LEVEL5_SAMPLES if level == 5 else SAMPLES[base])):
            began = time.perf_counter()
            system.ask("b/f", Serve("", 0), timeout=30)
            plain.append(time.perf_counter() - began)
            counter = str(Path(folder) / f"c{i}")
            began = time.perf_counter()
            try:
                system.ask("b/f", Serve(counter, failures), timeout=30)
            except StalwartError:  # (level 5: the caller is told; the next one is served)
                serve_again(system)
            failing.append(time.perf_counter() - began)
            time.sleep(2 * QUIET_S)  # the ladder's quiet period, between samples
            if settle is not None:
                settle(system)
        levels = [e.level for e in system.events() if e.kind in ("recovered", "level5")]
        seen = max(levels, default=0)
    return failing, plain, seen


def run() -> None:
    rows: list[Row] = []
    for base in ("simple", "multiproc"):
        for level in range(1, 6):
            failing, plain, seen = level_latencies(base, level)
            note = "" if seen == level else f" (recovered at level {seen})"
            for q in (50, 95, 99):
                rows.append(
                    Row(
                        f"{base}, level {level}: failure -> served p{q}{note}",
                        1000 * percentile(failing, q),
                        "no failure",
                        1000 * percentile(plain, q),
                        "ms",
                    )
                )
    print_rows("recovery levels: a failing request's answer, per level that recovers it", rows)


if __name__ == "__main__":
    run()
