"""Pipelined messaging on multiproc: a driver keeps W requests in flight to an echo actor in
another process, raw Thespian (multiprocTCPBase) against Stalwart, alternating in one run.

- actor driver: a raw Thespian driver actor sending ints to a raw echo, against a
  ``ManagedActor`` driver that ``tell``s the echo's path and gets ``reply``s; each answer
  sends the next, so W stay out. Stalwart's sends of one turn travel in one envelope.
- System driver: ``asys.tell``/``asys.listen`` from outside against ``System.ask_async``
  with W coroutines (every ask goes through the root: two hops each way).

Then a short cProfile of the Stalwart echo at W=128: where the remaining time goes.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import statistics
import time
from typing import Any

import msgspec
from _report import Row, print_rows
from bench_core import close_raw
from thespian.actors import Actor

from stalwart import Child, ManagedActor, Supervisor, start
from stalwart.actors._runtime import new_system
from stalwart.supervisors._bases import free_port

WINDOWS = (1, 16, 128)
MESSAGES = {1: 600, 16: 3_000, 128: 6_000}
ROUNDS = 2  # alternating pairs; the best of each side is kept (the machine is shared)
GOALS = {1: 1.0, 16: 4.0, 128: 10.0}


class Go(msgspec.Struct, frozen=True):
    n: int
    w: int
    target: Any = None


class Profile(msgspec.Struct, frozen=True):
    on: bool


class RawEcho(Actor):  # type: ignore[misc]
    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, int):
            self.send(sender, msg)


class RawDriver(Actor):  # type: ignore[misc]
    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, int):
            self.got += 1
            if self.sent < self.n:
                self.send(sender, self.sent)
                self.sent += 1
            elif self.got == self.n:
                self.send(self.asker, self.n / (time.perf_counter() - self.t0))
        elif isinstance(msg, Go):
            self.asker, self.n, self.got, self.sent = sender, msg.n, 0, 0
            self.t0 = time.perf_counter()
            for _ in range(msg.w):
                self.send(msg.target, self.sent)
                self.sent += 1


class Echo(ManagedActor):
    profile: cProfile.Profile | None = None

    def receiveMsg_int(self, msg: int, sender: Any) -> None:
        self.reply(sender, msg)

    def receiveMsg_Profile(self, msg: Profile, sender: Any) -> None:
        if msg.on:
            self.profile = cProfile.Profile()
            self.profile.enable()
            self.reply(sender, "")
            return
        assert self.profile is not None
        self.profile.disable()
        out = io.StringIO()
        pstats.Stats(self.profile, stream=out).sort_stats("tottime").print_stats(12)
        self.reply(sender, out.getvalue())


class Driver(ManagedActor):
    def receiveMsg_Go(self, msg: Go, sender: Any) -> None:
        self.asker, self.n, self.got, self.sent = sender, msg.n, 0, 0
        self.t0 = time.perf_counter()
        for _ in range(msg.w):
            self.tell("p/echo", self.sent)
            self.sent += 1

    def receiveMsg_int(self, msg: int, sender: Any) -> None:
        self.got += 1
        if self.sent < self.n:
            self.tell("p/echo", self.sent)
            self.sent += 1
        elif self.got == self.n:
            self.reply(self.asker, self.n / (time.perf_counter() - self.t0))


TREE = Supervisor("p", children=(Child("echo", Echo), Child("driver", Driver)))


def raw_from_outside(asys: Any, echo: Any, n: int, w: int) -> float:
    began = time.perf_counter()
    sent = got = 0
    while sent < min(w, n):
        asys.tell(echo, sent)
        sent += 1
    while got < n:
        assert asys.listen(30) is not None
        got += 1
        if sent < n:
            asys.tell(echo, sent)
            sent += 1
    return n / (time.perf_counter() - began)


def system_asks(system: Any, n: int, w: int) -> float:
    async def driver() -> list[Any]:
        window = asyncio.Semaphore(w)

        async def one(i: int) -> Any:
            async with window:
                return await system.ask_async("p/echo", i, timeout=120)

        return await asyncio.gather(*(one(i) for i in range(n)))

    began = time.perf_counter()
    assert asyncio.run(driver()) == list(range(n))
    return n / (time.perf_counter() - began)


def measure(asys: Any, system: Any) -> list[Row]:
    echo, driver = asys.createActor(RawEcho), asys.createActor(RawDriver)
    asys.ask(driver, Go(200, 16, echo), 60)  # warm up both sides
    system.ask("p/driver", Go(200, 16), timeout=60)
    rows = []
    for w in WINDOWS:
        n = MESSAGES[w]
        raws, ours, raw_out, ours_out = [], [], [], []
        for _ in range(ROUNDS):
            raws.append(asys.ask(driver, Go(n, w, echo), 120))
            ours.append(system.ask("p/driver", Go(n, w), timeout=120))
            raw_out.append(raw_from_outside(asys, echo, n // 2, w))
            ours_out.append(system_asks(system, n // 2, w))
        rows.append(
            Row(
                f"W={w}, actor driver",
                max(ours),
                "raw Thespian driver actor",
                max(raws),
                "msg/s",
                better="higher",
                goal=GOALS[w],
            )
        )
        rows.append(
            Row(
                f"W={w}, System.ask_async",
                max(ours_out),
                "raw asys.tell/listen",
                max(raw_out),
                "msg/s",
                better="higher",
            )
        )
    return rows


def profile_echo(system: Any) -> str:
    system.ask("p/echo", Profile(True), timeout=30)
    system.ask("p/driver", Go(MESSAGES[128], 128), timeout=120)
    return str(system.ask("p/echo", Profile(False), timeout=30))


def run() -> None:
    asys = new_system("multiproc", {"Admin Port": free_port()}, "127.0.0.1")
    try:
        with start(TREE, base="multiproc", report_path=None) as system:
            rows = measure(asys, system)
            profiled = profile_echo(system)
    finally:
        close_raw(asys, "multiproc")
    print_rows("pipeline: W messages in flight on multiproc", rows)
    print("\nwhere the Stalwart echo spends its time at W=128 (cProfile, top functions):")
    lines = [line for line in profiled.splitlines() if line.strip()]
    print("\n".join(lines[:22]))
    print(f"(median ratio over the windows: {statistics.median(r.ratio for r in rows):.1f})")


if __name__ == "__main__":
    run()
