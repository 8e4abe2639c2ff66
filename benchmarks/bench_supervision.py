"""Supervision under the failures it exists for: a dependency outage, a slow handler.

1. Outage: a dependency refuses connections for 10 s while a client sends a request
   every 0.05 s; how long callers wait for their answer (with a breaker, and with the
   defaults alone), and whether the tree stayed up. The peer is the caller's own
   timeout: what a caller would wait if the tree kept requests until it gave up.
2. Questions while a handler runs (in-process base): ``System.status()`` while one
   actor's handler holds the actor thread for 2 s, against the same question when
   idle. Raw Thespian's in-process base answers nothing until the handler returns.
"""

from __future__ import annotations

import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
from _report import Figure, Row, percentile, print_rows

from stalwart import Breaker, Child, ManagedActor, StalwartError, Supervisor, start

OUTAGE_S = 10.0
EVERY_S = 0.05
TIMEOUT_S = 5.0
BUSY_S = 2.0


class Pay(msgspec.Struct, frozen=True):
    n: int


class Hold(msgspec.Struct, frozen=True):
    seconds: float


class Gateway(ManagedActor):
    def receiveMsg_Pay(self, msg: Pay, sender: Any) -> None:
        if Path(self.options["down_flag"]).exists():
            raise ConnectionRefusedError("the gateway refused the connection")
        self.reply(sender, msg.n)


class Busy(ManagedActor):
    def receiveMsg_Hold(self, msg: Hold, sender: Any) -> None:
        time.sleep(msg.seconds)  # a slow handler (the thing measured around)
        self.reply(sender, True)


def outage_latencies(base: str) -> dict[str, Any]:
    """Answer latencies during an outage, per path, and whether the tree stayed up."""
    with tempfile.TemporaryDirectory() as folder:
        flag = Path(folder) / "down"
        options = {"down_flag": str(flag)}
        tree = Supervisor(
            "b",
            children=[
                Child("pay", Gateway, options=options, breaker=Breaker(recovery_timeout=2.0)),
                Child("bill", Gateway, options=options),
            ],
        )
        took: dict[str, list[float]] = {"b/pay": [], "b/bill": []}
        with start(tree, base=base, report_path=None) as system, ThreadPoolExecutor(64) as pool:

            def ask(path: str, n: int) -> None:
                began = time.monotonic()
                try:
                    system.ask(path, Pay(n), timeout=TIMEOUT_S)
                except StalwartError:
                    pass
                took[path].append(time.monotonic() - began)

            flag.write_text("down")
            began, n = time.monotonic(), 0
            while time.monotonic() - began < OUTAGE_S:
                n += 1
                for path in took:
                    pool.submit(ask, path, n)
                time.sleep(EVERY_S)
            pool.shutdown(wait=True)
            up = not system.stopped
    return {"took": took, "up": up}


def status_latencies() -> tuple[list[float], list[float]]:
    """``status()`` latencies while idle, and while a handler holds the actor thread."""
    tree = Supervisor("b", children=[Child("busy", Busy), Child("other", Busy)])
    with start(tree, report_path=None) as system:
        idle = []
        for _ in range(200):
            began = time.perf_counter()
            system.status()
            idle.append(time.perf_counter() - began)
        busy: list[float] = []
        holder = threading.Thread(target=lambda: system.ask("b/busy", Hold(BUSY_S), BUSY_S * 3))
        holder.start()
        time.sleep(0.1)  # the handler is under way (measured around, not synchronised on)
        while holder.is_alive() and len(busy) < 200:
            began = time.perf_counter()
            system.status()
            busy.append(time.perf_counter() - began)
            time.sleep(0.005)
        holder.join()
    return idle, busy


def run() -> None:
    rows: list[Row | Figure] = []
    for base in ("simple", "multiproc"):
        result = outage_latencies(base)
        for path, label in (("b/pay", "with a breaker"), ("b/bill", "defaults alone")):
            took = result["took"][path]
            for q in (50, 99):
                rows.append(
                    Row(
                        f"outage, {base}, {label}: answer p{q}",
                        1000 * percentile(took, q),
                        "caller's timeout",
                        1000 * TIMEOUT_S,
                        "ms",
                    )
                )
        rows.append(Figure(f"outage, {base}: the tree stayed up", float(result["up"]), "1=yes"))
    print_rows(
        f"supervision: a dependency down for {OUTAGE_S:g}s, a request every {EVERY_S}s", rows
    )

    idle, busy = status_latencies()
    rows = [
        Row(
            f"status() p{q} while a handler runs {BUSY_S:g}s, in-process",
            1000 * percentile(busy, q),
            "idle",
            1000 * percentile(idle, q),
            "ms",
        )
        for q in (50, 95)
    ]
    rows.append(
        Figure(
            "status() slowest while the handler runs",
            1000 * max(busy),
            "ms",
            f"goal < 100 ms; raw Thespian: no answer for up to {BUSY_S:g}s",
        )
    )
    print_rows("supervision: questions while a handler runs (in-process base)", rows)


if __name__ == "__main__":
    run()
