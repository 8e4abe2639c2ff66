"""asyncio: ``System.ask_async`` against sync asks from a thread pool, and what an
``async def`` handler costs against a plain one.

- throughput: ASKS asks to one echo actor, all out at once from one event loop,
  against the same number of ``System.ask`` from a pool of THREADS threads;
- round trip: one ask at a time to a handler that answers at once, ``async def``
  against plain.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _report import Row, print_rows

from stalwart import Child, ManagedActor, Supervisor, start

ASKS = 10_000
THREADS = 64
ROUND_TRIPS = {"simple": 5_000, "multiproc": 1_000}
ROUNDS = 3


class Echo(ManagedActor):
    def receiveMsg_int(self, msg: int, sender: Any) -> None:
        self.reply(sender, msg)


class AsyncEcho(ManagedActor):
    async def receiveMsg_int(self, msg: int, sender: Any) -> None:
        self.reply(sender, msg)


TREE = Supervisor("a", children=(Child("echo", Echo), Child("async-echo", AsyncEcho)))


def ask_async_per_second(system: Any) -> float:
    async def all_at_once() -> list[Any]:
        return await asyncio.gather(
            *(system.ask_async("a/echo", i, timeout=600) for i in range(ASKS))
        )

    began = time.perf_counter()
    answers = asyncio.run(all_at_once())
    took = time.perf_counter() - began
    assert answers == list(range(ASKS))
    return ASKS / took


def thread_pool_per_second(system: Any) -> float:
    began = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(lambda i: system.ask("a/echo", i, timeout=600), range(ASKS)))
    took = time.perf_counter() - began
    assert answers == list(range(ASKS))
    return ASKS / took


def round_trip_us(system: Any, path: str, n: int) -> float:
    began = time.perf_counter()
    for i in range(n):
        system.ask(path, i)
    return (time.perf_counter() - began) / n * 1e6


def run() -> None:
    rows: list[Row] = []
    for base in ("simple", "multiproc"):
        with start(TREE, base=base, report_path=None) as system:
            round_trip_us(system, "a/echo", 100)  # warm up
            round_trip_us(system, "a/async-echo", 100)
            ours = ask_async_per_second(system)
            peer = thread_pool_per_second(system)
            rows.append(
                Row(
                    f"{ASKS:,} asks at once, {base}",
                    ours,
                    f"System.ask from {THREADS} threads",
                    peer,
                    "asks/s",
                    better="higher",
                    goal=1.0,
                )
            )
            n = ROUND_TRIPS[base]
            sync, coro = [], []
            for _ in range(ROUNDS):
                sync.append(round_trip_us(system, "a/echo", n))
                coro.append(round_trip_us(system, "a/async-echo", n))
            rows.append(
                Row(
                    f"round trip to an async def handler, {base}",
                    statistics.median(coro),
                    "plain handler",
                    statistics.median(sync),
                    "µs",
                )
            )
    print_rows("asyncio: ask_async and async handlers", rows)


if __name__ == "__main__":
    run()
