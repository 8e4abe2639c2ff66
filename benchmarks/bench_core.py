"""ManagedActor against raw Thespian actors on the same base, in the same run.

1. Throughput: actor-to-actor round trips (a driver pings an echo actor N times).
2. Crash-to-serving latency: from a failure to the restarted actor having answered
   the message it was handling. In-process the failure is an exception; on
   ``multiprocTCPBase`` it is a SIGKILL of the actor's process. Raw Thespian
   recovers the way its documentation suggests: the parent sees ``PoisonMessage``
   (after Thespian's own retry) or ``ChildActorExited``, creates a new actor and
   sends the message again.
"""

from __future__ import annotations

import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import msgspec
from _report import Figure, Row, percentile, print_rows
from thespian.actors import (
    Actor,
    ActorExitRequest,
    ActorSystem,
    ChildActorExited,
    PoisonMessage,
)

from stalwart import Child, LevelPolicy, ManagedActor, Supervisor, start
from stalwart.supervisors._bases import LOG_DEFS, bound_to, free_port, sweep_session

RESTART_FIRST = LevelPolicy(
    basic_attempts=0, enhanced_attempts=0, component_attempts=1000, quiet_period_s=0.001
)
ROUND_TRIPS = {"simple": 50_000, "multiproc": 3_000}
CRASHES = 60
REPEATS = 5


class Ping(msgspec.Struct, frozen=True):
    pass


class Pong(msgspec.Struct, frozen=True):
    pass


class Go(msgspec.Struct, frozen=True):
    n: int
    path: str = ""
    target: Any = None


class Rate(msgspec.Struct, frozen=True):
    per_second: float


class Slow(msgspec.Struct, frozen=True):
    id: int


class Served(msgspec.Struct, frozen=True):
    id: int
    at: float


class Kill(msgspec.Struct, frozen=True):
    """Raw driver: create a victim and send it a message; the bench kills it."""

    id: int


# -- raw Thespian ----------------------------------------------------------------------
class RawEcho(Actor):
    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, Ping):
            self.send(sender, Pong())


class RawDriver(Actor):
    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, Pong):
            self.left -= 1
            if self.left:
                self.send(sender, Ping())
            else:
                self.send(self.asker, Rate(self.n / (time.perf_counter() - self.t0)))
        elif isinstance(msg, Go):
            self.asker, self.n, self.left = sender, msg.n, msg.n
            self.t0 = time.perf_counter()
            self.send(msg.target, Ping())


FAILED_AT: dict[int, float] = {}
MARKERS = tempfile.mkdtemp(prefix="stalwart-bench-")


def reset_markers() -> None:
    for name in os.listdir(MARKERS):
        os.unlink(os.path.join(MARKERS, name))
    FAILED_AT.clear()


def first_attempt(ident: int) -> bool:
    """True the first time any instance (in any process) sees message ``ident``."""
    try:
        os.close(os.open(os.path.join(MARKERS, str(ident)), os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False


def fail_first_attempt(ident: int) -> None:
    """The victims' shared behaviour: the first attempt dies (killed) or raises."""
    if os.environ.get("BENCH_KILL"):
        time.sleep(5)  # the bench kills the process in here
    FAILED_AT.setdefault(ident, time.monotonic())
    raise RuntimeError("first attempt fails")


class SidProbe(Actor):
    def receiveMessage(self, msg: Any, sender: Any) -> None:
        self.send(sender, os.getsid(0))


class RawVictim(Actor):
    """Fails the first attempt at a message (raises, or is killed); answers the next."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, Slow):
            if first_attempt(msg.id):
                if os.environ.get("BENCH_KILL"):
                    self.send(sender, ("pid", os.getpid()))
                fail_first_attempt(msg.id)
            self.send(sender, Served(msg.id, time.monotonic()))


class RawParent(Actor):
    """Recreates its victim on PoisonMessage / ChildActorExited and sends the message again."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, Kill):
            self.asker, self.current = sender, msg.id
            self.victim = self.createActor(RawVictim)
            self.send(self.victim, Slow(msg.id))
        elif isinstance(msg, tuple) and msg[0] == "pid":
            self.send(self.asker, msg)
        elif isinstance(msg, (PoisonMessage, ChildActorExited)):
            if isinstance(msg, PoisonMessage):
                self.send(self.victim, ActorExitRequest())
            self.victim = self.createActor(RawVictim)
            self.send(self.victim, Slow(self.current))
        elif isinstance(msg, Served):
            self.send(self.asker, msg)


# -- Stalwart ------------------------------------------------------------------------------
class ManagedEcho(ManagedActor):
    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> None:
        self.reply(sender, Pong())


class ManagedDriver(ManagedActor):
    def receiveMsg_Go(self, msg: Go, sender: Any) -> None:
        self.asker, self.n, self.left = sender, msg.n, msg.n
        self.t0 = time.perf_counter()
        self.tell(msg.path, Ping())

    def receiveMsg_Pong(self, msg: Pong, sender: Any) -> None:
        self.left -= 1
        if self.left:
            self.send(sender, Ping())
        else:
            self.reply(self.asker, Rate(self.n / (time.perf_counter() - self.t0)))


class ManagedVictim(ManagedActor):
    def receiveMsg_Slow(self, msg: Slow, sender: Any) -> None:
        if first_attempt(msg.id):
            fail_first_attempt(msg.id)
        self.reply(sender, Served(msg.id, time.monotonic()))


class Caller(ManagedActor):
    def receiveMsg_Go(self, msg: Go, sender: Any) -> None:
        self.call(
            "b/victim", Slow(msg.n), timeout=30, on_reply=lambda served: self.reply(sender, served)
        )

    def receiveMsg_Served(self, msg: Served, sender: Any) -> None:
        pass


# -- runs ---------------------------------------------------------------------------------------
def raw_system(base: str) -> ActorSystem:
    if base == "simple":
        return ActorSystem("simpleSystemBase", {}, logDefs=False, transientUnique=True)
    with bound_to("127.0.0.1"):
        return ActorSystem(
            "multiprocTCPBase", {"Admin Port": free_port()}, logDefs=LOG_DEFS, transientUnique=True
        )


def close_raw(asys: ActorSystem, base: str) -> None:
    """Shut a raw system down and make sure none of its processes is left."""
    sid = asys.ask(asys.createActor(SidProbe), "sid", 5) if base != "simple" else 0
    asys.shutdown()
    if sid:
        sweep_session(sid)


SETTLE_S = 3.0  # steady state: connections used only at start-up have closed


def raw_throughput(base: str, n: int) -> float:
    asys = raw_system(base)
    try:
        echo, driver = asys.createActor(RawEcho), asys.createActor(RawDriver)
        asys.ask(driver, Go(100, target=echo), 30)
        time.sleep(SETTLE_S)
        return float(asys.ask(driver, Go(n, target=echo), 120).per_second)
    finally:
        close_raw(asys, base)


def managed_throughput(base: str, n: int) -> float:
    tree = Supervisor("b", children=[Child("echo", ManagedEcho), Child("driver", ManagedDriver)])
    with start(tree, base=base, report_path=None) as system:
        system.ask("b/driver", Go(100, "b/echo"), timeout=30)
        time.sleep(SETTLE_S)
        return float(system.ask("b/driver", Go(n, "b/echo"), timeout=120).per_second)


def throughput_in_subprocess(side: str, base: str) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--throughput", side, base, str(ROUND_TRIPS[base])],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def raw_crash_latencies(base: str) -> list[float]:
    reset_markers()
    asys = raw_system(base)
    latencies = []
    try:
        parent = asys.createActor(RawParent)
        for i in range(CRASHES):
            asys.tell(parent, Kill(i))
            if base == "simple":
                served = asys.listen(10)
                latencies.append(served.at - FAILED_AT[i])
                continue
            _, pid = asys.listen(10)
            time.sleep(0.01)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            served = asys.listen(10)
            latencies.append(served.at - killed_at)
    finally:
        close_raw(asys, base)
    return latencies


def managed_crash_latencies(base: str) -> list[float]:
    reset_markers()
    tree = Supervisor(
        "b",
        max_restarts=10_000,
        within_s=1,
        children=[Child("victim", ManagedVictim, levels=RESTART_FIRST), Child("caller", Caller)],
    )
    latencies = []
    with start(tree, base=base, report_path=None) as system:
        for i in range(CRASHES):
            if base == "simple":
                served = system.ask("b/caller", Go(i), timeout=30)
                latencies.append(served.at - FAILED_AT[i])
                continue
            pid = system.status()["b/victim"].pid
            result: list[Any] = []

            def ask(i: int = i, result: list[Any] = result) -> None:
                result.append(system.ask("b/caller", Go(i), timeout=30))

            asker = threading.Thread(target=ask)
            asker.start()
            time.sleep(0.05)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            asker.join()
            latencies.append(result[0].at - killed_at)
    return latencies


def run() -> None:
    quiet = logging.getLogger("Thespian")  # raw Thespian logs every actor exception
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    rows: list[Row | Figure] = []
    for base in ("simple", "multiproc"):
        raws, ourses = [], []
        for _ in range(REPEATS):
            # each measurement in a fresh process, alternating: in one long-lived process
            # the later systems run measurably slower whichever kind they are
            raws.append(throughput_in_subprocess("raw", base))
            ourses.append(throughput_in_subprocess("ours", base))
        raw, ours = statistics.median(raws), statistics.median(ourses)
        goal = 0.90 if base == "simple" else 0.95
        rows.append(
            Row(
                f"round trips/s, {base} base (median of {REPEATS})",
                ours,
                "raw Thespian",
                raw,
                "msg/s",
                better="higher",
                goal=goal,
            )
        )
    print_rows("core: ManagedActor throughput", rows)

    rows = []
    os.environ.pop("BENCH_KILL", None)
    raw = raw_crash_latencies("simple")
    ours = managed_crash_latencies("simple")
    for q in (50, 95):
        rows.append(
            Row(
                f"crash-to-serving p{q}, in-process exception",
                1000 * percentile(ours, q),
                "raw Thespian",
                1000 * percentile(raw, q),
                "ms",
                goal=1.5,
            )
        )
    os.environ["BENCH_KILL"] = "1"
    try:
        raw = raw_crash_latencies("multiproc")
        ours = managed_crash_latencies("multiproc")
    finally:
        os.environ.pop("BENCH_KILL", None)
    for q in (50, 95):
        rows.append(
            Row(
                f"crash-to-serving p{q}, SIGKILL on multiproc",
                1000 * percentile(ours, q),
                "raw Thespian",
                1000 * percentile(raw, q),
                "ms",
                goal=1.5,
            )
        )
    print_rows(f"core: crash-to-serving latency over {CRASHES} crashes", rows)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--throughput"]:
        side, base, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        measure = raw_throughput if side == "raw" else managed_throughput
        print(measure(base, n))
    else:
        run()
