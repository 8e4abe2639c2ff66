"""Actors and helpers shared by the tests (importable by actor processes)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
from thespian.actors import Actor

from stalwart import LevelPolicy, ManagedActor
from stalwart.actors._memory import resident_buffer as touched
from stalwart.actors.messages import Acked, Batch, Reply, Request
from stalwart.testing import wait_until

FAST = LevelPolicy(
    basic_attempts=1,
    basic_delay_s=0.001,
    enhanced_attempts=1,
    component_attempts=1,
    quiet_period_s=60.0,
)
RESTART_FIRST = LevelPolicy(
    basic_attempts=0,
    enhanced_attempts=0,
    component_attempts=1,
    quiet_period_s=60.0,
)


class Ping(msgspec.Struct, frozen=True):
    n: int = 0


class Pong(msgspec.Struct, frozen=True):
    n: int
    path: str
    pid: int
    incarnation: int
    state: Any = None


class Work(msgspec.Struct, frozen=True):
    id: int
    fail_times: int = 0  # how many times this id fails before it succeeds (-1: always)
    error: str = "runtime"  # a fault in the actor; "connection" is an outage
    sleep_s: float = 0.0
    fail_while: str = ""  # fails while this file exists
    counter: str = ""  # count attempts in this file (shared by every instance) instead of memory


class Done(msgspec.Struct, frozen=True):
    id: int
    attempts: int
    pid: int
    incarnation: int


class Crash(msgspec.Struct, frozen=True):
    code: int = 9


class GetLog(msgspec.Struct, frozen=True):
    pass


class StopSelf(msgspec.Struct, frozen=True):
    pass


class AnswerThenStop(msgspec.Struct, frozen=True):
    """Asks the actor to answer, then stop itself in the same handler."""


class Never(msgspec.Struct, frozen=True):
    pass


class Unhandled(msgspec.Struct, frozen=True):
    x: int = 0


ERRORS = {
    "connection": lambda i: ConnectionError(f"backend refused work {i}"),
    "value": lambda i: ValueError(f"bad input {i}"),
    "value-locked": lambda i: ValueError(f"database is locked for input {i}"),
    "value-timed-out": lambda i: ValueError(f"input {i} timed out"),
    "runtime": lambda i: RuntimeError(f"flaky {i}"),
}


def journal(path: str | None, line: str) -> None:
    """Append ``line`` to a file shared by all processes (for ordering checks)."""
    if path:
        with open(path, "a") as fh:
            fh.write(f"{time.monotonic():.6f} {line}\n")


def read_journal(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.split(" ", 1)[1] for line in path.read_text().splitlines()]


class Worker(ManagedActor):
    """Answers Ping; fails Work as told; remembers what it handled (checkpointed)."""

    def on_start(self) -> None:
        self.handled: list[int] = list((self.restored_state or {}).get("handled", []))
        self.attempts: dict[int, int] = dict((self.restored_state or {}).get("attempts", {}))
        journal(self.options.get("journal"), f"start {self.path}")
        flag = self.options.get("fail_start_flag")
        if flag and os.path.exists(flag):
            if self.options.get("fail_start_error") == "connection":  # an outage keeps it down
                raise ConnectionRefusedError(f"{self.path} cannot reach its database")
            raise RuntimeError(f"{self.path} cannot start: flag {flag} is set")
        once = self.options.get("fail_start_once")
        if once and os.path.exists(once):
            os.unlink(once)
            raise RuntimeError(f"{self.path} cannot start this once: {once} was set")

    def on_stop(self) -> None:
        journal(self.options.get("journal"), f"stop {self.path}")

    def snapshot(self) -> Any:
        return {"handled": self.handled, "attempts": self.attempts}

    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> None:
        self.reply(
            sender,
            Pong(msg.n, self.path, os.getpid(), self.incarnation, {"handled": list(self.handled)}),
        )

    def receiveMsg_Work(self, msg: Work, sender: Any) -> None:
        n = self.attempts.get(msg.id, 0) + 1
        self.attempts[msg.id] = n
        if msg.counter:
            with open(msg.counter, "a+") as fh:
                fh.write("x")
                fh.seek(0)
                n = len(fh.read())
        if msg.sleep_s:
            time.sleep(msg.sleep_s)
        if (
            msg.fail_times < 0
            or n <= msg.fail_times
            or (msg.fail_while and os.path.exists(msg.fail_while))
        ):
            raise ERRORS[msg.error](msg.id)
        self.handled.append(msg.id)
        self.reply(sender, Done(msg.id, n, os.getpid(), self.incarnation))

    def receiveMsg_Crash(self, msg: Crash, sender: Any) -> None:
        os._exit(msg.code)

    def receiveMsg_GetLog(self, msg: GetLog, sender: Any) -> None:
        self.reply(sender, list(self.handled))

    def receiveMsg_StopSelf(self, msg: StopSelf, sender: Any) -> None:
        self.stop()

    def receiveMsg_AnswerThenStop(self, msg: AnswerThenStop, sender: Any) -> None:
        self.handled.append(-1)
        self.reply(sender, "stopping")
        self.stop()

    def receiveMsg_Never(self, msg: Never, sender: Any) -> None:
        pass  # never answers


def wait_for(predicate: Any, timeout: float = 10.0, explain: Any = None) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with its last value (and
    what ``explain()`` says then, if given: what the failure needs to be understood)."""
    try:
        return wait_until(predicate, timeout)
    except AssertionError as exc:
        if explain is None:
            raise
        raise AssertionError(f"{exc}\n{explain()}") from None


class Relay(msgspec.Struct, frozen=True):
    path: str
    message: Any
    timeout: float = 5.0
    request_id: str | None = None


class Relayed(msgspec.Struct, frozen=True):
    ok: bool
    value: Any = None
    error: str = ""
    detail: str = ""


class Append(msgspec.Struct, frozen=True):
    value: int


class Client(ManagedActor):
    """Calls other actors by path on request and reports what came back."""

    def on_start(self) -> None:
        self.seen: list[int] = list(self.restored_state or [])

    def snapshot(self) -> Any:
        return self.seen

    def receiveMsg_Relay(self, msg: Relay, sender: Any) -> None:
        self.call(
            msg.path,
            msg.message,
            msg.timeout,
            on_reply=lambda r: self.reply(sender, Relayed(True, r)),
            on_error=lambda e: self.reply(sender, Relayed(False, None, type(e).__name__, str(e))),
            request_id=msg.request_id,
        )

    def receiveMsg_Append(self, msg: Append, sender: Any) -> None:
        self.seen.append(msg.value)

    def receiveMsg_GetLog(self, msg: GetLog, sender: Any) -> None:
        self.reply(sender, list(self.seen))


class Burst(msgspec.Struct, frozen=True):
    """Ask the root to restart ``path`` at level 3, then at once send it ``count`` Appends."""

    path: str
    count: int


class Burster(ManagedActor):
    def receiveMsg_Burst(self, msg: Burst, sender: Any) -> None:
        from stalwart import RecoveryRequest

        self.send(self.root, RecoveryRequest(msg.path, 3, "burst"))
        for i in range(msg.count):
            self.tell(msg.path, Append(i))
        self.reply(sender, "sent")

    def receiveMsg_RecoveryResult(self, msg: Any, sender: Any) -> None:
        self.result = msg


class LateBurst(msgspec.Struct, frozen=True):
    """Sleep ``delay_s`` in the handler, then send ``count`` Appends to ``path``."""

    path: str
    count: int
    delay_s: float


class LateBurster(ManagedActor):
    """Busy while its target is replaced: what it sends next goes to the old address."""

    def receiveMsg_LateBurst(self, msg: LateBurst, sender: Any) -> None:
        time.sleep(msg.delay_s)
        for i in range(msg.count):
            self.tell(msg.path, Append(i))
        self.reply(sender, "sent")


class RestartLater(msgspec.Struct, frozen=True):
    path: str
    delay_s: float


class Restarter(ManagedActor):
    """Asks the root for a level-3 restart of ``path`` after ``delay_s``."""

    def receiveMsg_RestartLater(self, msg: RestartLater, sender: Any) -> None:
        self.after(msg.delay_s, msg.path)
        self.reply(sender, "armed")

    def receiveMsg_WakeupMessage(self, msg: Any, sender: Any) -> None:
        from stalwart import RecoveryRequest

        self.send(self.root, RecoveryRequest(msg.payload, 3, "restart later"))

    def receiveMsg_RecoveryResult(self, msg: Any, sender: Any) -> None:
        pass


class NeedsAdjust(msgspec.Struct, frozen=True):
    id: int


class Adjustable(ManagedActor):
    """Fails a NeedsAdjust until its on_adjust hook has run (a smaller batch, say)."""

    def on_start(self) -> None:
        self.adjusted = False

    def on_adjust(self, failure: Any, attempt: int) -> None:
        self.adjusted = True

    def receiveMsg_NeedsAdjust(self, msg: NeedsAdjust, sender: Any) -> None:
        if not self.adjusted:
            raise ConnectionError(f"batch too large for request {msg.id}")
        self.adjusted = False
        self.reply(sender, msg.id)


class Counter(ManagedActor):
    """Counts; its state is checkpointed (durable when the tree says so). It cannot start
    while the file named by ``options["fail_start_flag"]`` exists."""

    def on_start(self) -> None:
        flag = self.options.get("fail_start_flag")
        if flag and os.path.exists(flag):
            raise RuntimeError(f"{self.path} cannot start: flag {flag} is set")
        self.count = self.restored_state or 0

    def snapshot(self) -> Any:
        return self.count

    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> None:
        self.count += msg.n
        self.reply(sender, self.count)


class Charge(msgspec.Struct, frozen=True):
    order: int


class Charged(msgspec.Struct, frozen=True):
    order: int
    by: str


class GetOrders(msgspec.Struct, frozen=True):
    pass


class Payments(ManagedActor):
    """Charges through a provider that is down while ``options["down_flag"]`` exists."""

    def on_start(self) -> None:
        self.orders: list[int] = list(self.restored_state or [])
        self.calls = 0

    def snapshot(self) -> Any:
        return self.orders

    def receiveMsg_Charge(self, msg: Charge, sender: Any) -> None:
        self.calls += 1
        flag = self.options.get("down_flag")
        if flag and os.path.exists(flag):
            self.reply_error(sender, ConnectionError(f"provider down (order {msg.order})"))
            return
        self.orders.append(msg.order)
        self.reply(sender, Charged(msg.order, self.path))

    def receiveMsg_GetOrders(self, msg: GetOrders, sender: Any) -> None:
        self.reply(sender, {"orders": list(self.orders), "calls": self.calls})


class Shop(ManagedActor):
    """Takes orders and charges them at ``options["payments"]``; a failed charge is a failure."""

    def receiveMsg_Charge(self, msg: Charge, sender: Any) -> None:
        def charged(reply: Any) -> None:
            self.reply(sender, reply)

        def failed(error: Any) -> None:
            self.failed_orders = getattr(self, "failed_orders", 0) + 1
            raise ConnectionError(f"could not charge order {msg.order}: {error}")

        self.call(self.options["payments"], msg, timeout=5, on_reply=charged, on_error=failed)

    def receiveMsg_GetLog(self, msg: GetLog, sender: Any) -> None:
        self.reply(sender, sorted(self.degraded))


class HealthChecks(msgspec.Struct, frozen=True):
    """Ask a ``Sick`` actor how many health checks this instance has answered."""


class Sick(ManagedActor):
    """Unhealthy while its flag file exists; counts the healing attempts (on_retry) and the
    health checks it answered."""

    def on_start(self) -> None:
        self.heals = 0
        self.checks = 0

    def health(self) -> bool | str:
        self.checks += 1
        flag = self.options.get("sick_flag")
        return "feeling unwell" if flag and os.path.exists(flag) else True

    def on_retry(self, failure: Any) -> None:
        self.heals += 1

    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> None:
        self.reply(sender, self.heals)

    def receiveMsg_HealthChecks(self, msg: HealthChecks, sender: Any) -> None:
        self.reply(sender, self.checks)


GATES: dict[str, threading.Event] = {}  # in-process tests: handlers wait on these


class Wait(msgspec.Struct, frozen=True):
    gate: str


class WhereAmI(msgspec.Struct, frozen=True):
    pass


class Gated(ManagedActor):
    """In-process: ``Wait`` blocks its handler until the test opens the gate; records the
    thread every handler and timer runs on, and uses a sqlite connection opened in on_start."""

    def on_start(self) -> None:
        import sqlite3

        self.threads = {threading.current_thread().name}
        self.db = sqlite3.connect(":memory:")  # usable only on the thread that opened it
        self.db.execute("CREATE TABLE seen (n INTEGER)")
        self.after(0.01, "tick")

    def receiveMsg_Wait(self, msg: Wait, sender: Any) -> None:
        GATES[msg.gate].wait()
        self.reply(sender, "done")

    def receiveMsg_WakeupMessage(self, msg: Any, sender: Any) -> None:
        self.threads.add(threading.current_thread().name)

    def receiveMsg_WhereAmI(self, msg: WhereAmI, sender: Any) -> None:
        self.threads.add(threading.current_thread().name)
        self.db.execute("INSERT INTO seen VALUES (1)")
        count = self.db.execute("SELECT count(*) FROM seen").fetchone()[0]
        self.reply(sender, (sorted(self.threads), count))


class StartTicking(msgspec.Struct, frozen=True):
    every_s: float
    silent: str  # a path that never answers


class Ticker(ManagedActor):
    """Runs its own timer and, meanwhile, waits on a call that is never answered."""

    def on_start(self) -> None:
        self.ticks = 0
        self.call_error = ""
        self.every_s = 0.0

    def receiveMsg_StartTicking(self, msg: StartTicking, sender: Any) -> None:
        self.every_s = msg.every_s
        self.after(msg.every_s, "tick")
        self.call(msg.silent, Never(), 0.3, on_error=self.failed)
        self.reply(sender, "started")

    def failed(self, exc: Exception) -> None:
        self.call_error = type(exc).__name__

    def receiveMsg_WakeupMessage(self, msg: Any, sender: Any) -> None:
        if msg.payload == "tick":
            self.ticks += 1
            self.after(self.every_s, "tick")

    def receiveMsg_GetLog(self, msg: GetLog, sender: Any) -> None:
        self.reply(sender, {"ticks": self.ticks, "call_error": self.call_error})


class Allocate(msgspec.Struct, frozen=True):
    """Hold ``nbytes`` more of real memory: in plain attributes, or in the actor's cache."""

    nbytes: int
    where: str = "attr"  # or "cache"
    priority: int = 0


class Held(msgspec.Struct, frozen=True):
    attr_bytes: int
    cache_bytes: int
    cache_entries: int
    allocations: int
    pid: int
    incarnation: int


class Holding(msgspec.Struct, frozen=True):
    pass


class Hog(ManagedActor):
    """Holds real memory; its cache is a TieredCache; ``on_memory_pressure`` frees nothing.

    Checkpoints how many allocations it has made (the buffers themselves are not kept).
    """

    def on_start(self) -> None:
        from stalwart.memory import TieredCache

        self.allocations = int(self.restored_state or 0)
        self.buffers: list[bytearray] = []
        self.cache: TieredCache[int, bytearray] = TieredCache(
            floor_bytes=int(self.options.get("floor_bytes", 0)), max_age_s=3600
        )
        self.pressure: list[int] = []

    def snapshot(self) -> Any:
        return self.allocations

    def on_memory_pressure(self, level: Any) -> int | None:
        self.pressure.append(int(level))
        return int(self.options.get("hook_reports", 0)) or None

    def receiveMsg_Allocate(self, msg: Allocate, sender: Any) -> None:
        self.allocations += 1
        buf = touched(msg.nbytes)
        if msg.where == "cache":
            self.cache.set(self.allocations, buf, priority=msg.priority)
        else:
            self.buffers.append(buf)
        self.reply(sender, self.held())

    def receiveMsg_Holding(self, msg: Holding, sender: Any) -> None:
        self.reply(sender, self.held())

    def receiveMsg_GetLog(self, msg: GetLog, sender: Any) -> None:
        self.reply(sender, list(self.pressure))

    def held(self) -> Held:
        return Held(
            sum(len(b) for b in self.buffers),
            self.cache.nbytes,
            len(self.cache),
            self.allocations,
            os.getpid(),
            self.incarnation,
        )


class Pay(msgspec.Struct, frozen=True):
    n: int


class Gateway(ManagedActor):
    """Charges at an external gateway that refuses connections while ``options["down_flag"]``
    exists (a dependency outage: restarting this actor does not help)."""

    def receiveMsg_Pay(self, msg: Pay, sender: Any) -> None:
        if os.path.exists(self.options["down_flag"]):
            raise ConnectionRefusedError("the payment gateway refused the connection")
        self.reply(sender, msg.n)


# -- synchronising on what the system does, not on time -----------------------------------


def wait_for_file(path: str | Path, timeout: float = 60.0) -> None:
    """Block until ``path`` exists (a barrier between the test and a handler in any process)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was not created within {timeout}s")
        time.sleep(0.005)


def pids_in(marker: str | Path) -> list[int]:
    """The pids a ``HeldWork`` or ``GatedBurst`` handler wrote to its ``started`` marker."""
    marker = Path(marker)
    return [int(line) for line in marker.read_text().split()] if marker.exists() else []


def sigkill(pid: int) -> None:
    """SIGKILL ``pid`` and wait until it is gone."""
    assert pid > 0  # (0 would be the test's own process group)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: process_gone(pid), timeout=15)


def sigkill_actor(system: Any, path: str) -> int:
    """SIGKILL the process of the actor at ``path`` from outside (OTP's ``exit(Pid, kill)``),
    once the root knows it (an answer of a new instance can come before its registration)."""
    try:
        pid = int(wait_for(lambda: _system_pid(system, system.status()[path].pid)))
    except AssertionError as late:  # (say what the root knew of the path, and its events)
        entry = system.status()[path]
        told = [(e.kind, e.detail) for e in system.events() if e.path == path][-8:]
        raise AssertionError(
            f"{late}: {path} {entry.state}, incarnation {entry.incarnation}, pid {entry.pid}"
            f" (the system's session {system._sid}); its last events: {told}"
        ) from None
    sigkill(pid)
    return pid


def _system_pid(system: Any, pid: int) -> int:
    """``pid`` if it is a process of ``system`` (its admin's session), else 0: a pid the
    status still shows for an instance that just died may be another process's by now."""
    try:
        return pid if pid and os.getsid(pid) == system._sid else 0
    except ProcessLookupError:
        return 0


def process_gone(pid: int) -> bool:
    """The process is gone (or a zombie: dead, not yet reaped by its parent)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def queued_requests(queue_file: str | Path) -> int:
    """How many requests a ``QueueForLater`` fallback still holds in ``queue_file``.

    Read from the breaker's SQLite file, which is part of what ``QueueForLater`` promises
    (durable storage); 0 once every queued request has been replayed and answered.
    """
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{queue_file}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])


class HeldWork(msgspec.Struct, frozen=True):
    """Work whose handler says it has begun and then waits for the test to let it finish:
    it appends its pid to the file ``started``, then blocks until the file ``release``
    exists (use on ``base="multiproc"``, where a blocked handler holds up one process)."""

    id: int
    started: str
    release: str


class BarrierWorker(Worker):
    """A ``Worker`` that also takes ``HeldWork`` (counted and logged as ``Work`` is)."""

    def receiveMsg_HeldWork(self, msg: HeldWork, sender: Any) -> None:
        n = self.attempts.get(msg.id, 0) + 1
        self.attempts[msg.id] = n
        with open(msg.started, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        wait_for_file(msg.release)
        self.handled.append(msg.id)
        self.reply(sender, Done(msg.id, n, os.getpid(), self.incarnation))


class GatedBurst(msgspec.Struct, frozen=True):
    """Append this process's pid to ``started``, wait until ``release`` exists, then send
    ``count`` Appends to ``path`` (from the address learned before the wait)."""

    path: str
    count: int
    started: str
    release: str


class GatedBurster(LateBurster):
    """Busy in one handler, for exactly as long as the test wants, while its target is
    replaced: what it sends after the wait goes to the old address."""

    def receiveMsg_GatedBurst(self, msg: GatedBurst, sender: Any) -> None:
        with open(msg.started, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        wait_for_file(msg.release)
        for i in range(msg.count):
            self.tell(msg.path, Append(i))
        self.reply(sender, "sent")


class CallThenPing(msgspec.Struct, frozen=True):
    """Call ``path`` with ``message`` as ``request_id``, and Ping ``path`` right behind it."""

    path: str
    message: Any
    request_id: str
    timeout: float = 20.0


class Resender(ManagedActor):
    """Sends a request and a Ping behind it to the same actor, and replies once the Pong is
    back: by then the callee has taken the request in, since the messages one actor sends
    another arrive in the order they were sent. The request's own answer is kept for
    ``GetLog`` (as a ``Relayed``)."""

    def on_start(self) -> None:
        self.answers: list[Relayed] = []

    def receiveMsg_CallThenPing(self, msg: CallThenPing, sender: Any) -> None:
        self.call(
            msg.path,
            msg.message,
            msg.timeout,
            on_reply=lambda r: self.answers.append(Relayed(True, r)),
            on_error=lambda e: self.answers.append(Relayed(False, None, type(e).__name__, str(e))),
            request_id=msg.request_id,
        )
        self.call(
            msg.path,
            Ping(),
            msg.timeout,
            on_reply=lambda pong: self.reply(sender, "taken in"),
            on_error=lambda e: self.reply(sender, Relayed(False, None, type(e).__name__, str(e))),
        )

    def receiveMsg_GetLog(self, msg: GetLog, sender: Any) -> None:
        self.reply(sender, list(self.answers))


class Say(msgspec.Struct, frozen=True):
    """Print ``kib`` KiB to stdout and as much to stderr, ending with ``last``."""

    kib: int
    last: str


class Chatter(ManagedActor):
    """Prints as told, then answers how many bytes it printed (it blocks if nobody reads)."""

    def receiveMsg_Say(self, msg: Say, sender: Any) -> None:
        import sys

        line = "x" * 1023 + "\n"
        for stream in (sys.stdout, sys.stderr):
            for _ in range(msg.kib):
                stream.write(line)
            stream.write(f"{msg.last}\n")
            stream.flush()
        self.reply(sender, 2 * msg.kib * 1024)


class Spawn(msgspec.Struct, frozen=True):
    """Start a helper process (it waits on its stdin); the answer is its pid."""


class Spawner(ManagedActor):
    """Starts helper processes in its own session (as a worker pool would); ends them on stop."""

    def on_start(self) -> None:
        self.helpers: list[Any] = []

    def receiveMsg_Spawn(self, msg: Spawn, sender: Any) -> None:
        import subprocess
        import sys

        code = "import sys; sys.stdin.read()"
        helper = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
        self.helpers.append(helper)
        self.reply(sender, helper.pid)

    def on_stop(self) -> None:
        for helper in self.helpers:
            helper.kill()
            helper.wait()


class Deposit(msgspec.Struct, frozen=True):
    """Add ``amount`` to a ``Ledger``; ``id`` makes it idempotent (applied once)."""

    id: int
    amount: int = 1


class Balance(msgspec.Struct, frozen=True):
    """Ask a ``Ledger`` for ``(total, applied ids in order, ids seen twice)``."""


class Ledger(ManagedActor):
    """Idempotent deposits, checkpointed after each; ``options["ballast"]`` bytes ride along
    in the state (to checkpoint a large state)."""

    def on_start(self) -> None:
        state = self.restored_state or {}
        self.total: int = state.get("total", 0)
        self.applied: list[int] = list(state.get("applied", []))
        self.twice: list[int] = list(state.get("twice", []))
        self.seen = set(self.applied)
        self.ballast = state.get("ballast") or bytes(int(self.options.get("ballast", 0)))

    def snapshot(self) -> Any:
        return {
            "total": self.total,
            "applied": self.applied,
            "twice": self.twice,
            "ballast": self.ballast,
        }

    def receiveMsg_Deposit(self, msg: Deposit, sender: Any) -> None:
        if msg.id in self.seen:
            self.twice.append(msg.id)
        else:
            self.seen.add(msg.id)
            self.applied.append(msg.id)
            self.total += msg.amount
        self.reply(sender, self.total)

    def receiveMsg_Balance(self, msg: Balance, sender: Any) -> None:
        self.reply(sender, (self.total, list(self.applied), list(self.twice)))


class Deliver(msgspec.Struct, frozen=True):
    """To an ``AnswerProbe``: send ``message`` to ``to``, ``times`` times (twice: a duplicate,
    as a sender's resend of what it has no confirmation of makes one)."""

    to: Any
    message: Any
    times: int = 1


class Heard(msgspec.Struct, frozen=True):
    """Ask an ``AnswerProbe`` for the answers and confirmations it received, each with
    (the text of) the address that sent it."""


class AnswerProbe(Actor):  # type: ignore[misc]
    """A raw Thespian actor that sends what it is told to, and keeps the answers
    (``Reply``) and confirmations (``Acked``) that come back, with their senders."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        heard = self.__dict__.setdefault("heard", [])
        if isinstance(msg, Deliver):
            for _ in range(msg.times):
                self.send(msg.to, msg.message)
        elif isinstance(msg, Heard):
            self.send(sender, list(heard))
        else:
            items = msg.items if isinstance(msg, Batch) else (msg,)
            heard.extend((m, str(sender)) for m in items if isinstance(m, (Reply, Acked)))


class AppendThenFail(msgspec.Struct, frozen=True):
    """Append ``item`` to a ``Notebook``'s list, then fail ``fail_times`` times."""

    item: int
    fail_times: int = 1


class GetItems(msgspec.Struct, frozen=True):
    pass


class Notebook(ManagedActor):
    """Keeps a list (checkpointed); its handler changes the list before it may fail."""

    def on_start(self) -> None:
        self.items: list[int] = list(self.restored_state or [])
        self.attempts: dict[int, int] = getattr(self, "attempts", {})  # kept across restores

    def snapshot(self) -> Any:
        return self.items

    def receiveMsg_AppendThenFail(self, msg: AppendThenFail, sender: Any) -> None:
        self.items.append(msg.item)  # changed before the failure
        n = self.attempts[msg.item] = self.attempts.get(msg.item, 0) + 1
        if n <= msg.fail_times:
            raise ConnectionResetError(f"attempt {n} at {msg.item} failed")
        self.reply(sender, list(self.items))

    def receiveMsg_GetItems(self, msg: GetItems, sender: Any) -> None:
        self.reply(sender, list(self.items))


class SlowStarter(ManagedActor):
    """Its ``on_start`` waits while the file ``options["hold"]`` exists (up to 60 s)."""

    def on_start(self) -> None:
        deadline = time.monotonic() + 60
        while os.path.exists(self.options["hold"]) and time.monotonic() < deadline:
            time.sleep(0.01)

    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> None:
        self.reply(sender, Pong(msg.n, self.path, os.getpid(), self.incarnation, {}))


class Note(msgspec.Struct, frozen=True):
    """Add ``value`` to an ``OrderLog``; with ``started``, the first time create that file
    and sleep ``sleep_s`` (a handler to be killed in)."""

    value: int
    started: str = ""
    sleep_s: float = 0.0


class NoteAsked(msgspec.Struct, frozen=True):
    """Add ``value`` to an ``OrderLog`` and answer how many it holds."""

    value: int


class OrderLog(ManagedActor):
    """Keeps (and checkpoints) every value it was sent, in the order it handled them."""

    def on_start(self) -> None:
        self.values: list[int] = list(self.restored_state or [])

    def snapshot(self) -> Any:
        return self.values

    def receiveMsg_Note(self, msg: Note, sender: Any) -> None:
        if msg.started and not os.path.exists(msg.started):  # (only the first time)
            Path(msg.started).touch()
            time.sleep(msg.sleep_s)
        self.values.append(msg.value)

    def receiveMsg_NoteAsked(self, msg: NoteAsked, sender: Any) -> None:
        self.values.append(msg.value)
        self.reply(sender, len(self.values))

    def receiveMsg_GetLog(self, msg: GetLog, sender: Any) -> None:
        self.reply(sender, list(self.values))


class MisdirectToSupervisor(msgspec.Struct, frozen=True):
    """Have a ``Misdirecting`` actor send its supervisor ``NoteAsked(value)`` as a request
    numbered for ``to`` (as a late message at a reused port would come)."""

    value: int
    to: str


class Misdirecting(ManagedActor):
    def receiveMsg_MisdirectToSupervisor(self, msg: MisdirectToSupervisor, sender: Any) -> None:
        request = Request(
            f"misdirected-{msg.value}", NoteAsked(msg.value), self.myAddress, chan="m.", seq=1
        )
        self.send(self.supervisor, msgspec.structs.replace(request, base=1, to=msg.to))
        self.reply(sender, "sent")


def run_soak(script: str, *args: str, timeout: float) -> tuple[Any, dict[str, str]]:
    """Run ``benchmarks/<script>`` with ``args``; its process and the figures it printed
    (``  label   value`` lines) by label."""
    import re
    import subprocess
    import sys

    benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
    run = subprocess.run(
        [sys.executable, script, *args],
        cwd=benchmarks,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    pairs = (re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in run.stdout.splitlines())
    figures = {pair[0]: pair[1] for pair in pairs if len(pair) == 2}  # (not the event lists)
    return run, figures
