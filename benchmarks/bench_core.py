"""ManagedActor against raw Thespian actors on the same base, in the same run.

1. Throughput: actor-to-actor round trips (a driver pings an echo actor N times).
2. Crash-to-serving latency: from a failure to the restarted actor having answered
   the message it was handling. In-process the failure is an exception; on
   ``multiprocTCPBase`` it is a SIGKILL of the actor's process. Raw Thespian
   recovers the way its documentation suggests: the parent sees ``PoisonMessage``
   (after Thespian's own retry) or ``ChildActorExited``, creates a new actor and
   sends the message again. A SIGKILL lands alike on both sides: into a process at
   least ``VICTIM_AGE_S`` old, ``KILL_AFTER_S`` into its handler.

In-process measurements run on one CPU, the same for both sides (the last this
process may use): on a shared machine the cores differ in speed by a third from
minute to minute, and a single-threaded run would otherwise measure which core it
landed on.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
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
from stalwart.actors._runtime import new_system
from stalwart.supervisors._bases import free_port, sweep_session

RESTART_FIRST = LevelPolicy(
    basic_attempts=0, enhanced_attempts=0, component_attempts=1000, quiet_period_s=0.001
)
ROUND_TRIPS = {"simple": 30_000, "multiproc": 2_000}
ROUNDS = 4  # per process, alternating: this machine's speed drifts for seconds at a time
CRASHES = 60
# A SIGKILL lands the same way on both sides: into a victim process at least VICTIM_AGE_S
# old, KILL_AFTER_S into its handler. The kernel tears a killed process down before anyone
# hears of its death, and that takes longer the longer ago it was forked (its pages' records
# leave the caches: 1.0 ms 10 ms after the fork here, 1.6 ms after 50 ms, 2.1 ms after 0.3 s)
VICTIM_AGE_S = 0.3
KILL_AFTER_S = 0.05
BLOCKS = 3  # crashes alternate between the two sides in blocks, for the same reason
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
_MADE_BY = os.getpid()  # (actor processes forked from this one share it, and leave it be)
atexit.register(lambda: os.getpid() == _MADE_BY and shutil.rmtree(MARKERS, ignore_errors=True))


def reset_markers() -> None:
    for name in os.listdir(MARKERS):
        os.unlink(os.path.join(MARKERS, name))
    FAILED_AT.clear()


TOKENS = itertools.count()


def first_instance(ident: int, instance: object) -> bool:
    """True while ``instance`` is the first (in any process) to have seen message ``ident``.

    The victims fail every attempt of their first instance at a message, so Thespian's
    own retry on the same instance fails too, and only a new instance answers it.
    """
    token = instance.__dict__.setdefault("_bench_token", f"{os.getpid()}-{next(TOKENS)}")
    marker = os.path.join(MARKERS, str(ident))
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        with open(marker) as fh:
            return fh.read() == token
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return True


def fail_first_attempt(ident: int) -> None:
    """The victims' shared behaviour: the first instance dies (killed) or raises."""
    if os.environ.get("BENCH_KILL"):
        time.sleep(5)  # the bench kills the process in here
    FAILED_AT.setdefault(ident, time.monotonic())
    raise RuntimeError("the first instance fails")


class SidProbe(Actor):
    def receiveMessage(self, msg: Any, sender: Any) -> None:
        self.send(sender, os.getsid(0))


class RawVictim(Actor):
    """Its first instance fails at a message (raises, or is killed); a new one answers."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, Slow):
            if first_instance(msg.id, self):
                if os.environ.get("BENCH_KILL"):
                    self.send(sender, ("pid", os.getpid()))
                fail_first_attempt(msg.id)
            self.send(sender, Served(msg.id, time.monotonic()))


class RawParent(Actor):
    """Recreates its victim on PoisonMessage / ChildActorExited and sends the message again.
    The next message goes to the instance that answered the last (made ahead by "ready")."""

    victim: Any = None

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == "ready":
            self.victim = self.createActor(RawVictim)
            self.send(sender, "ready")
        elif isinstance(msg, Kill):
            self.asker, self.current = sender, msg.id
            if self.victim is None:
                self.victim = self.createActor(RawVictim)
            self.send(self.victim, Slow(msg.id))
        elif isinstance(msg, tuple) and msg[0] == "pid":
            self.send(self.asker, msg)
        elif isinstance(msg, (PoisonMessage, ChildActorExited)):
            if isinstance(msg, ChildActorExited) and msg.childAddress != self.victim:
                return  # the instance it replaced after a PoisonMessage, now gone
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
        if first_instance(msg.id, self):
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
    # on loopback, with the transport settings Stalwart's systems use, so that both sides
    # run on the same transport and the figure compares the actor layers
    return new_system("multiproc", {"Admin Port": free_port()}, "127.0.0.1")


def close_raw(asys: ActorSystem, base: str) -> None:
    """Shut a raw system down and make sure none of its processes is left."""
    sid = asys.ask(asys.createActor(SidProbe), "sid", 5) if base != "simple" else 0
    asys.shutdown()
    if sid:
        sweep_session(sid)


SETTLE_S = 3.0  # steady state: connections used only at start-up have closed


def paired_throughput(base: str, n: int) -> tuple[list[float], list[float]]:
    """Both sides in one process, each round of one followed by a round of the other."""
    asys = raw_system(base)
    tree = Supervisor("b", children=[Child("echo", ManagedEcho), Child("driver", ManagedDriver)])
    try:
        echo, driver = asys.createActor(RawEcho), asys.createActor(RawDriver)
        with start(tree, base=base, report_path=None) as system:
            asys.ask(driver, Go(100, target=echo), 30)
            system.ask("b/driver", Go(100, "b/echo"), timeout=30)
            time.sleep(SETTLE_S)
            raws, ours = [], []
            for _ in range(ROUNDS):
                raws.append(asys.ask(driver, Go(n, target=echo), 120).per_second)
                ours.append(system.ask("b/driver", Go(n, "b/echo"), timeout=120).per_second)
            return raws, ours
    finally:
        close_raw(asys, base)


def throughput_in_subprocess(base: str) -> tuple[list[float], list[float]]:
    out = subprocess.run(
        [sys.executable, __file__, "--throughput", base, str(ROUND_TRIPS[base])],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    raws, ours = json.loads(out.stdout.strip().splitlines()[-1])
    return raws, ours


def raw_crash_latencies(base: str, count: int) -> list[float]:
    reset_markers()
    asys = raw_system(base)
    latencies = []
    try:
        parent = asys.createActor(RawParent)
        asys.ask(parent, "ready", 10)
        for i in range(count):
            if base != "simple":
                time.sleep(VICTIM_AGE_S)  # (the victim was made before the last answer)
            asys.tell(parent, Kill(i))
            if base == "simple":
                served = asys.listen(10)
                latencies.append(served.at - FAILED_AT[i])
                continue
            _, pid = asys.listen(10)
            time.sleep(KILL_AFTER_S)  # (it is in the handler, which sleeps until killed)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            served = asys.listen(10)
            latencies.append(served.at - killed_at)
    finally:
        close_raw(asys, base)
    return latencies


def managed_crash_latencies(
    base: str,
    count: int,
    standby: bool = False,
    settle: Callable[[Any], None] | None = None,
) -> list[float]:
    """Crash-to-serving of a managed victim (``standby``: keeping a warm spare), each
    SIGKILL once ``settle(system)`` has returned (on the multi-process bases)."""
    reset_markers()
    victim = Child("victim", ManagedVictim, levels=RESTART_FIRST, standby=standby)
    tree = Supervisor(
        "b", max_restarts=10_000, within_s=1, children=[victim, Child("caller", Caller)]
    )
    latencies = []
    with start(tree, base=base, report_path=None) as system:
        for i in range(count):
            if base == "simple":
                served = system.ask("b/caller", Go(i), timeout=30)
                latencies.append(served.at - FAILED_AT[i])
                continue
            if settle is not None:
                settle(system)
            pid = serving_pid(system, "b/victim")
            wait_until_aged(pid)
            result: list[Any] = []

            def ask(i: int = i, result: list[Any] = result) -> None:
                result.append(system.ask("b/caller", Go(i), timeout=30))

            asker = threading.Thread(target=ask)
            asker.start()
            time.sleep(KILL_AFTER_S)  # (it is in the handler, which sleeps until killed)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            asker.join()
            latencies.append(result[0].at - killed_at)
    return latencies


def serving_pid(system: Any, path: str) -> int:
    """The process of ``path``'s instance, once the root has heard it started (a sample
    ends with the new instance's answer, which may come before that)."""
    deadline = time.monotonic() + 10
    while not (pid := system.status()[path].pid) and time.monotonic() < deadline:
        time.sleep(0.002)
    return pid


def wait_until_aged(pid: int) -> None:
    """Wait until process ``pid`` is ``VICTIM_AGE_S`` old (its start is known to 10 ms)."""
    import psutil

    age = time.time() - psutil.Process(pid).create_time()
    if age < VICTIM_AGE_S:
        time.sleep(VICTIM_AGE_S - age)


@contextlib.contextmanager
def on_one_cpu(base: str) -> Iterator[None]:
    """In-process runs: this process on one CPU (the same each time) while inside."""
    allowed = os.sched_getaffinity(0)
    if base == "simple":
        os.sched_setaffinity(0, {max(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def crash_latencies(base: str) -> tuple[list[float], list[float]]:
    """Both sides' crash-to-serving latencies, measured in alternating blocks."""
    raw: list[float] = []
    ours: list[float] = []
    with on_one_cpu(base):
        for _ in range(BLOCKS):
            raw += raw_crash_latencies(base, CRASHES // BLOCKS)
            ours += managed_crash_latencies(base, CRASHES // BLOCKS)
    return raw, ours


def run() -> None:
    quiet = logging.getLogger("Thespian")  # raw Thespian logs every actor exception
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    rows: list[Row | Figure] = []
    for base in ("simple", "multiproc"):
        raws, ourses = [], []
        for _ in range(REPEATS):  # each in a fresh process
            raw_rounds, our_rounds = throughput_in_subprocess(base)
            raws += raw_rounds
            ourses += our_rounds
        raw, ours = statistics.median(raws), statistics.median(ourses)
        goal = 0.90 if base == "simple" else 0.95
        rows.append(
            Row(
                f"round trips/s, {base} base (median of {REPEATS}x{ROUNDS})",
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
    raw, ours = crash_latencies("simple")
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
        raw, ours = crash_latencies("multiproc")
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
        base, n = sys.argv[2], int(sys.argv[3])
        with on_one_cpu(base):
            print(json.dumps(paired_throughput(base, n)))
    else:
        run()
