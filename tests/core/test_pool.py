"""``Pool``: instances of one template started by key (OTP's ``simple_one_for_one``), with
``max_children`` and ``idle_timeout_s``, on real actor systems on both bases."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any

import msgspec
import psutil
import pytest

from stalwart import (
    ActorStopped,
    Child,
    LevelPolicy,
    ManagedActor,
    PoisonMessageError,
    Pool,
    PoolFull,
    RecoveryRequest,
    StalwartError,
    StartFailed,
    Supervisor,
    Timeout,
    UnknownPath,
)
from stalwart.actors._runtime import DeadEnvelope
from tests.core.dynamic_actors import (
    Calls,
    ChildCall,
    HeldStart,
    IdCaller,
    KillsItsPool,
    Note,
    Options,
    Session,
    StartWithId,
    Trap,
    Where,
)
from tests.core.otp_support import crash, running, wait_restarted
from tests.support import (
    GetLog,
    Ping,
    Work,
    Worker,
    process_gone,
    sigkill,
    sigkill_actor,
    wait_for,
)

IDLE_S = 0.4


def pool_tree(**pool):
    template = Child("session", Session, options={"plan": "free", "region": "eu"})
    return Supervisor("app", children=[Pool("sessions", template=template, **pool)])


def test_messages_to_a_key_reach_its_instance_started_with_its_options(make_system, base):
    system = make_system(pool_tree(), base=base)
    path = system.start_child("app/sessions", "alice", {"plan": "pro"})
    assert path == "app/sessions/alice"
    assert system.ask(path, Options()) == {"plan": "pro", "region": "eu"}
    system.start_child("app/sessions", "bob")
    assert system.ask("app/sessions/bob", Options()) == {"plan": "free", "region": "eu"}
    assert system.status()["app/sessions/alice"].state == "running"


def test_an_instance_that_dies_is_restarted_and_its_messages_wait_for_it(make_system, base):
    system = make_system(pool_tree(), base=base)
    system.start_child("app/sessions", "alice")
    before = running(system, "app/sessions/alice")
    crash(system, base, "app/sessions/alice")
    assert system.ask("app/sessions/alice", Ping(1), timeout=10).n == 1  # held, then handled
    wait_restarted(system, before)


def test_max_children_refuses_one_more_until_one_goes(make_system, base):
    system = make_system(pool_tree(max_children=2), base=base)
    system.start_child("app/sessions", "a")
    system.start_child("app/sessions", "b")
    with pytest.raises(PoolFull, match="app/sessions runs max_children=2"):
        system.start_child("app/sessions", "c")
    system.terminate_child("app/sessions", "a")
    assert system.start_child("app/sessions", "c") == "app/sessions/c"
    # (recorded at the instance's path: an incident open there ends with it)
    terminated = [e.path for e in system.events() if e.kind == "child-terminated"]
    assert terminated == ["app/sessions/a"]


def test_an_idle_instance_is_stopped_and_its_key_refused_while_a_busy_one_stays(make_system, base):
    system = make_system(pool_tree(idle_timeout_s=IDLE_S), base=base)
    system.start_child("app/sessions", "busy")
    system.start_child("app/sessions", "idle")
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.is_set():
            system.ask("app/sessions/busy", Ping(), timeout=10)

    talker = threading.Thread(target=keep_busy)
    talker.start()
    try:
        wait_for(lambda: [e for e in system.events() if e.kind == "idle-stop"], timeout=30)
    finally:
        stop.set()
        talker.join()
    stopped = [e.path for e in system.events() if e.kind == "idle-stop"]
    assert stopped == ["app/sessions/idle"]
    # (while it stops, it answers ActorStopped; once it is gone, its path is unknown)
    wait_for(lambda: [i.name for i in system.which_children("app/sessions")] == ["busy"])
    with pytest.raises(UnknownPath, match=r"stopped after 0.4s without a message"):
        system.ask("app/sessions/idle", Ping())
    # started again by its key, it is a new instance
    assert system.start_child("app/sessions", "idle") == "app/sessions/idle"
    assert system.ask("app/sessions/idle", Ping(2)).n == 2


class HungStart(ManagedActor):
    """Never finishes starting (killed by its supervisor at ``start_timeout_s``)."""

    def on_start(self) -> None:
        time.sleep(60)


def live_children(pid):
    """The processes ``pid`` forked that still run (not exited, nor waiting to be reaped)."""
    return [c.pid for c in psutil.Process(pid).children() if not process_gone(c.pid)]


def test_an_instance_that_does_not_finish_starting_is_refused_and_the_pool_stays(make_system):
    template = Child("session", HungStart, start_timeout_s=0.5)
    system = make_system(
        Supervisor("app", children=[Pool("sessions", template=template)]), base="multiproc"
    )
    before = system.status()["app/sessions"]

    with pytest.raises(StartFailed, match=r"did not finish starting within 0\.5s"):
        system.start_child("app/sessions", "alice", timeout=30)
    # its process, which never told its supervisor its pid, is killed (not left to sleep)
    wait_for(lambda: live_children(before.pid) == [])

    after = system.status()["app/sessions"]
    assert (after.pid, after.restarts, after.state) == (before.pid, 0, "running")
    assert system.which_children("app/sessions") == []  # an instance keeps no spec
    assert not [e for e in system.events() if "internal error" in (e.detail or "")]


def test_keys_that_come_and_go_leave_nothing_behind_and_incarnations_still_grow(make_system):
    """A Pool of sessions that start and end by the thousand keeps nothing per ended key
    (its supervisor's incarnation floors and spawned names, the System's known paths,
    Thespian's registry), a key started again gets a higher incarnation than it had, and a
    fresh key's first start is no restart."""
    from stalwart.supervisors._supervisor import SupervisorActor

    tree = Supervisor("web", children=[Pool("sessions", template=Child("s", Worker))])
    system = make_system(tree)
    first = system.ask(system.start_child("web/sessions", "again"), Ping(1)).incarnation
    system.terminate_child("web/sessions", "again")
    for i in range(3000):
        system.terminate_child("web/sessions", system.start_child("web/sessions", f"u{i}")[13:])
    path = system.start_child("web/sessions", "again")
    assert system.ask(path, Ping(1)).incarnation > first  # (for the system's lifetime)
    assert [e for e in system.events() if e.kind == "restarted"] == []
    registry = system._asys._systemBase.actorRegistry
    assert None not in registry.values()
    (pool,) = (
        ref.instance
        for ref in registry.values()
        if isinstance(ref.instance, SupervisorActor) and ref.instance.path == "web/sessions"
    )
    assert set(pool.state.floors) == {"web/sessions/again"} and pool.spawned == {"again"}
    assert len(system._known) <= 2 * 10 + 1024 + 1  # (read again from the root once doubled)


def test_an_ended_key_leaves_no_learned_timeout_in_its_supervisor(make_system):
    """A key that failed once has learned a retry timeout; an ended key's goes with it (a
    Pool whose sessions fail now and then kept one for every key that ever ran)."""
    from stalwart.supervisors._supervisor import SupervisorActor

    quick = LevelPolicy(basic_attempts=1, basic_delay_s=0.001, quiet_period_s=0.02)
    template = Child("s", Worker, levels=quick)
    system = make_system(Supervisor("web", children=[Pool("sessions", template=template)]))
    for i in range(30):
        path = system.start_child("web/sessions", f"u{i}")
        assert system.ask(path, Work(1, fail_times=1), timeout=10).attempts == 2
        if i:
            system.terminate_child("web/sessions", f"u{i}")
    (pool,) = (
        ref.instance
        for ref in system._asys._systemBase.actorRegistry.values()
        if isinstance(ref.instance, SupervisorActor) and ref.instance.path == "web/sessions"
    )
    assert {key.partition("|")[0] for key in pool.state.timeouts} == {"web/sessions/u0"}


def test_an_ended_key_started_again_gets_higher_incarnations_below_it_too(make_system, base):
    """A Pool of supervisors: the worker of a key that ended, started again, runs a higher
    incarnation than it ever had (its old instance's messages are never taken for its new
    one's), and as a fresh start, no restart; so too after the Pool itself is restarted."""
    from tests.core.otp_actors import OtpChild
    from tests.core.otp_support import crash, incarnations, wait_restarted

    team = Supervisor("team", children=[Child("w", OtpChild)], max_restarts=100)
    pool = Pool("teams", template=team, max_restarts=100)
    system = make_system(Supervisor("top", children=[pool], max_restarts=100), base=base)
    path = system.start_child("top/teams", "blue") + "/w"
    running_incarnation(system, path)  # (each crash below waits for a newer one than this)
    for _ in range(2):
        wait_restarted(system, crash_and_keep(system, base, path, crash, incarnations))
    highest = system.status()[path].incarnation
    assert highest >= 3
    system.terminate_child("top/teams", "blue")
    system.start_child("top/teams", "blue")
    assert running_incarnation(system, path) > highest
    restarted = [e for e in system.events() if e.kind == "restarted" and e.path == path]
    assert len(restarted) == 2  # (the two crashes; the fresh start is none)
    highest = system.status()[path].incarnation
    system.terminate_child("top/teams", "blue")
    system.request_recovery(RecoveryRequest("top/teams", 3, "a test restarts the Pool"))
    wait_for(lambda: system.status()["top/teams"].state == "running")
    system.start_child("top/teams", "blue")
    assert running_incarnation(system, path) > highest


def running_incarnation(system, path):
    """The incarnation of ``path`` once it runs: a supervisor started at run time answers
    once its children run, and on real processes their registrations, sent by another
    process, may reach the root after that answer (a message to them waits for them)."""
    wait_for(lambda: system.status()[path].state == "running")
    return system.status()[path].incarnation


def crash_and_keep(system, base, path, crash, incarnations):
    before = incarnations(system, path)
    crash(system, base, path)
    return before


def test_the_root_keeps_no_subscription_of_an_ended_key(make_system):
    """Keys that call another path once and end leave no subscription behind at the root
    (it would keep one for every key that ever ran)."""
    from stalwart.supervisors._root import ROOTS
    from tests.support import Client, Relay

    pool = Pool("clients", template=Child("c", Client))
    system = make_system(Supervisor("top", children=[Child("db", Worker), pool]))
    for i in range(20):
        path = system.start_child("top/clients", f"k{i}")
        assert system.ask(path, Relay("top/db", Ping(i))).ok
        system.terminate_child("top/clients", f"k{i}")
    registry = ROOTS[system._clock_id].registry
    assert not any(key.startswith("top/clients/") for key in registry._subscribed_by)
    watching = {key for subs in registry._subscribers.values() for key in subs}
    assert not any(key.startswith("top/clients/") for key in watching)


class Add(msgspec.Struct, frozen=True):
    n: int


class Total(msgspec.Struct, frozen=True):
    pass


class Unanswered(msgspec.Struct, frozen=True):
    pass


class Unanswers(msgspec.Struct, frozen=True):
    """How many ``Unanswered`` it got."""


class CallIt(msgspec.Struct, frozen=True):
    """Call ``path`` with ``msg`` (answered at once; the outcome is kept)."""

    path: str
    msg: Any
    timeout: float


class Outcomes(msgspec.Struct, frozen=True):
    pass


class Tally(ManagedActor):
    """Adds what it is told, checkpointed after each message."""

    def on_start(self) -> None:
        self.total = (self.restored_state or {}).get("total", 0)

    def snapshot(self) -> Any:
        return {"total": self.total}

    def receiveMsg_Add(self, msg: Add, sender: Any) -> None:
        self.total += msg.n

    def receiveMsg_Total(self, msg: Total, sender: Any) -> None:
        self.reply(sender, self.total)

    def receiveMsg_Unanswered(self, msg: Unanswered, sender: Any) -> None:
        self.unanswered = self.__dict__.get("unanswered", 0) + 1  # (its caller times out)

    def receiveMsg_Unanswers(self, msg: Unanswers, sender: Any) -> None:
        self.reply(sender, self.__dict__.get("unanswered", 0))


class Via(msgspec.Struct, frozen=True):
    """Tell ``path`` ``count`` Adds; answered with how many routes the front keeps."""

    path: str
    count: int = 1


class Front(ManagedActor):
    """Sends to paths it is told of (a router in front of sessions)."""

    def receiveMsg_Via(self, msg: Via, sender: Any) -> None:
        for _ in range(msg.count):
            self.tell(msg.path, Add(1))
        self.reply(sender, len(self.__dict__.get("_sw_routes", {})))

    def receiveMsg_CallIt(self, msg: CallIt, sender: Any) -> None:
        kept = self.__dict__.setdefault("outcomes", [])
        self.call(
            msg.path,
            msg.msg,
            msg.timeout,
            on_reply=kept.append,
            on_error=lambda e: kept.append(type(e).__name__),
        )
        self.reply(sender, True)

    def receiveMsg_Outcomes(self, msg: Outcomes, sender: Any) -> None:
        self.reply(sender, list(self.__dict__.get("outcomes", [])))


def test_senders_keep_no_route_to_an_ended_key(make_system, base):
    """An actor and the root forget their route to a key once it has ended (they kept one
    for every key they ever sent to)."""
    from stalwart.supervisors._root import ROOTS

    pool = Pool("sessions", template=Child("s", Tally))
    system = make_system(Supervisor("web", children=[Child("front", Front), pool]), base=base)
    for i in range(30):
        path = system.start_child("web/sessions", f"u{i}")
        system.ask("web/front", Via(path))
        assert wait_for(lambda p=path: system.ask(p, Total()) == 1)  # (handled: confirmed)
        system.terminate_child("web/sessions", f"u{i}")
    assert wait_for(lambda: system.ask("web/front", Via("web/front/none", 0)) == 0)
    if base == "simple":  # (the root is in this process)
        root = ROOTS[system._clock_id]
        assert not [p for p in root._sw_routes if p.startswith("web/sessions/")]
    again = system.start_child("web/sessions", "u0")  # (its senders reach it again)
    system.ask("web/front", Via(again))
    assert wait_for(lambda: system.ask(again, Total()) == 1)


def test_a_child_restarted_from_its_checkpoint_takes_what_a_forgetting_sender_sends(
    make_system, base
):
    """A route forgotten when its path stopped for good numbers past it when made again:
    the child restarted from its checkpoint (with the marks of what it handled) takes the
    new tells as new, not as ones it has handled."""
    tree = Supervisor("web", children=[Child("front", Front), Child("tally", Tally)])
    system = make_system(tree, base=base)
    system.ask("web/front", Via("web/tally", 5))
    assert wait_for(lambda: system.ask("web/tally", Total()) == 5)
    system.terminate_child("web", "tally")
    assert wait_for(lambda: system.ask("web/front", Via("web/front/none", 0)) == 0)
    system.restart_child("web", "tally")
    assert system.ask("web/tally", Total()) == 5  # (from its checkpoint)
    system.ask("web/front", Via("web/tally", 2))
    assert wait_for(lambda: system.ask("web/tally", Total()) == 7)


def test_a_sender_whose_call_was_out_when_a_key_ended_reaches_it_started_again(make_system, base):
    """A call still out when its key ended kept the sender's route (stopped); the root
    forgot the key, so nothing told the sender it came back: what it sent then failed as
    sent to a path stopped for good."""
    pool = Pool("sessions", template=Child("s", Tally))
    system = make_system(Supervisor("web", children=[Child("front", Front), pool]), base=base)
    key = system.start_child("web/sessions", "k")
    system.ask("web/front", CallIt(key, Unanswered(), 2.0))
    assert wait_for(lambda: system.ask(key, Unanswers()) == 1)  # (the call is out at the key)
    system.terminate_child("web/sessions", "k")
    assert wait_for(lambda: system.ask("web/front", Outcomes())) == ["Timeout"]
    system.start_child("web/sessions", "k")
    system.ask("web/front", Via(key, 3))
    assert wait_for(lambda: system.ask(key, Total()) == 3)
    system.ask("web/front", CallIt(key, Total(), 10))
    assert wait_for(lambda: system.ask("web/front", Outcomes())[1:]) == [3]
    assert system.dead_letters() == []


def test_what_reached_a_gone_instance_goes_to_its_successor_not_to_a_key_started_afresh(
    make_system, base
):
    """A message that reached an instance already gone (Thespian hands it back to the root
    as a ``DeadEnvelope``) goes on to the instance that restarted in its place, which has
    its state and its marks of what it handled. It never goes to a key ended and started
    afresh: that instance handles only what was sent to it (on real processes, a request
    resent after a SIGKILL once reached the new life a second time, a late copy of the
    one the restarted instance had answered)."""
    system = make_system(pool_tree(), base=base)
    path = system.start_child("app/sessions", "k")
    first = system.ask(path, Where())
    crash(system, base, path)
    wait_restarted(system, {path: 1})
    tell_root = system._transport.tell
    tell_root(system._root, DeadEnvelope(first, Note(1)))  # (handled by the root in order)
    assert system.ask(path, GetLog()) == [1]  # the restarted instance took it
    second = system.ask(path, Where())
    system.terminate_child("app/sessions", "k")
    system.start_child("app/sessions", "k")
    for gone in (first, second):
        tell_root(system._root, DeadEnvelope(gone, Note(2)))
    assert system.ask(path, GetLog()) == []


def test_a_tell_to_a_child_stopped_for_good_is_one_dead_letter(make_system, base):
    """A sender's stopped route asks the root again before it sends; what the answer
    (stopped still) leaves held becomes a dead letter at once, never sent round again."""
    tree = Supervisor("web", children=[Child("front", Front), Child("tally", Tally)])
    system = make_system(tree, base=base)
    system.ask("web/front", Via("web/tally", 1))
    system.terminate_child("web", "tally")
    for _ in range(2):  # (the second finds the route stopped: it asks again, once)
        system.ask("web/front", Via("web/tally", 1))
    letters = wait_for(lambda: len(system.dead_letters()) >= 2 and system.dead_letters())
    assert [d.path for d in letters] == ["web/tally", "web/tally"]
    assert all("stopped for good" in d.error for d in letters)
    assert system.ask("web/front", Via("web/front/none", 0)) >= 0  # (it still answers)


def _in_background(run: Any) -> tuple[threading.Thread, list[Any]]:
    """``run()`` on a thread of its own; the list gets what it returned or raised."""
    got: list[Any] = []

    def call() -> None:
        try:
            got.append(run())
        except StalwartError as error:
            got.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    return caller, got


def _start_in_background(system: Any, pool: str, key: str) -> tuple[threading.Thread, list[Any]]:
    """``start_child(pool, key)`` on a thread of its own; the list gets its answer."""
    return _in_background(lambda: system.start_child(pool, key, timeout=60))


def _held_pool(tmp_path: Any) -> tuple[Supervisor, Any, Any]:
    started, hold = tmp_path / "started", tmp_path / "hold"
    options = {"started": str(started), "hold": str(hold)}
    template = Child("session", HeldStart, options=options)
    return Supervisor("s", children=[Pool("sessions", template=template)]), started, hold


def test_a_start_the_pool_had_taken_when_it_was_killed_is_done_by_its_next_instance(
    make_system, tmp_path
):
    """A ``start_child`` the Pool had taken (its instance was starting) when the Pool's
    process was SIGKILLed is done by the restarted Pool: the caller gets the key's path
    (it waited for its answer until it timed out, the request dropped)."""
    tree, started, hold = _held_pool(tmp_path)
    hold.touch()
    system = make_system(tree, base="multiproc")
    caller, got = _start_in_background(system, "s/sessions", "g")
    wait_for(started.exists)  # (the Pool took it: the instance is starting)
    sigkill_actor(system, "s/sessions")
    hold.unlink()
    caller.join(90)
    assert got == ["s/sessions/g"]
    assert [c.name for c in system.which_children("s/sessions")] == ["g"]
    assert started.read_text().split() == ["1", "1"]  # (the first died with its Pool)


def _bytes_waiting(pid: int) -> int:
    """What the kernel holds unread for the sockets of process ``pid``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    waiting = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[9] in inodes:
                    waiting += int(fields[4].split(":")[1], 16)
    return waiting


def test_a_start_sent_to_a_pool_that_dies_before_reading_it_is_done_once(make_system, tmp_path):
    """A ``start_child`` sent to the Pool's process while it was stopped, and the Pool
    SIGKILLed before it read anything: the restarted Pool does it, once, and the caller
    gets the key's path."""
    tree, started, _ = _held_pool(tmp_path)
    system = make_system(tree, base="multiproc")
    pid = int(wait_for(lambda: system.status()["s/sessions"].pid))
    os.kill(pid, signal.SIGSTOP)
    try:
        caller, got = _start_in_background(system, "s/sessions", "g")
        wait_for(lambda: _bytes_waiting(pid))  # (something reached it, unread)
    finally:
        sigkill(pid)
    caller.join(90)
    assert got == ["s/sessions/g"]
    assert [c.name for c in system.which_children("s/sessions")] == ["g"]
    assert started.read_text().split() == ["1"]


def test_starts_under_way_when_their_pool_is_killed_each_get_their_own_answer(make_system):
    """Three ``start_child`` calls at once, the Pool SIGKILLed 0 to 25 ms after them: each
    caller gets its own key's path, never ``AlreadyStarted`` for the start it made (a copy
    of a request the killed Pool had taken reached the next one too) nor a ``Timeout``."""
    template = Child("session", Session)
    pool = Pool("sessions", template=template)
    system = make_system(Supervisor("s", children=[pool], max_restarts=100), base="multiproc")
    for round_, delay in enumerate((0.0, 0.005, 0.01, 0.025)):
        keys = [f"k{round_}-{i}" for i in range(3)]
        before = running(system, "s/sessions")
        calls = [_start_in_background(system, "s/sessions", key) for key in keys]
        time.sleep(delay)  # (the scenario: the kill lands at some point of the starts)
        sigkill_actor(system, "s/sessions")
        for caller, _ in calls:
            caller.join(90)
        got = [answer for _, answers in calls for answer in answers]
        assert got == [f"s/sessions/{key}" for key in keys], f"killed after {delay}s"
        wait_restarted(system, before)


def test_a_start_that_kills_its_pool_twice_is_set_aside_as_a_poison(make_system, tmp_path):
    """A start whose instance kills the Pool that takes it: the next Pool takes it once
    more and dies too; the third does not get it, and the caller gets
    ``PoisonMessageError`` (OTP has no such rule: there the caller's ``call`` exits)."""
    marks = tmp_path / "marks"
    template = Child("session", KillsItsPool, options={"marks": str(marks)})
    system = make_system(
        Supervisor("s", children=[Pool("sessions", template=template)]), base="multiproc"
    )
    with pytest.raises(PoisonMessageError):
        system.start_child("s/sessions", "bad", timeout=60)
    assert len(marks.read_text().split()) == 2
    assert system.which_children("s/sessions") == []
    assert system.status()["s"].incarnation == 1  # (two restarts: within its intensity)


def test_a_start_sent_again_with_its_request_id_gets_the_same_answer(make_system, base):
    """``call(..., request_id=...)`` makes a resend recognisable: the Pool answers a copy
    with what it answered first, and a new id for the same key gets ``AlreadyStarted``."""
    pool = Pool("sessions", template=Child("session", Session))
    tree = Supervisor("s", children=[pool, Child("caller", IdCaller)])
    system = make_system(tree, base=base)
    first = StartWithId("s/sessions", "g", "start-g")
    assert system.ask("s/caller", first) == ("ok", "s/sessions/g")
    assert system.ask("s/caller", first) == ("ok", "s/sessions/g")
    again = StartWithId("s/sessions", "g", "start-g-again")
    assert system.ask("s/caller", again) == ("error", "AlreadyStarted")
    assert [c.name for c in system.which_children("s/sessions")] == ["g"]


def test_a_start_handed_to_a_pool_that_is_then_stopped_for_good_is_answered(make_system, tmp_path):
    """The Pool killed while a start was under way, its next instance doing it again, and
    that Pool terminated for good meanwhile: the caller gets an answer (the key's path, or
    ``ActorStopped``), never a ``Timeout``."""
    tree, started, hold = _held_pool(tmp_path)
    hold.touch()
    system = make_system(tree, base="multiproc")
    caller, got = _start_in_background(system, "s/sessions", "g")
    wait_for(started.exists)
    sigkill_actor(system, "s/sessions")
    wait_for(lambda: started.read_text().split() == ["1", "1"])  # (the next Pool took it)
    stopper = threading.Thread(target=system.terminate_child, args=("s", "sessions"))
    stopper.start()
    hold.unlink()
    stopper.join(60)
    caller.join(90)
    assert got == ["s/sessions/g"] or (len(got) == 1 and isinstance(got[0], ActorStopped))
    assert "s/sessions" not in system.status()


@pytest.mark.parametrize("caller", ["system", "actor"])
def test_a_start_held_for_a_pool_that_is_down_is_answered_when_it_is_terminated(
    make_system, tmp_path, caller
):
    """The Pool killed while a start was under way, and down (its restart waits for its
    sibling ``dep`` to finish starting) when it is terminated for good: the start that waited
    for it is answered ``ActorStopped``, whoever made it."""
    started, hold, dep_hold = tmp_path / "started", tmp_path / "hold", tmp_path / "dep-hold"
    options = {"started": str(started), "hold": str(hold)}
    pool = Pool("sessions", template=Child("session", HeldStart, options=options))
    dep = Child("dep", HeldStart, options={"hold": str(dep_hold)})
    tree = Supervisor("s", children=[dep, pool, Child("calls", Calls)], max_restarts=100)
    hold.touch()
    system = make_system(tree, base="multiproc")
    if caller == "system":
        thread, got = _start_in_background(system, "s/sessions", "g")
    else:
        call = ChildCall("start_child", "s/sessions", ("g",))
        thread, got = _in_background(lambda: system.ask("s/calls", call, 90))
    wait_for(started.exists)  # (the Pool took it)
    dep_hold.touch()
    sigkill_actor(system, "s/dep")  # (its next instance stays starting)
    wait_for(lambda: system.status()["s/dep"].state != "running")
    sigkill_actor(system, "s/sessions")
    wait_for(lambda: system.status()["s/sessions"].state != "running")
    system.terminate_child("s", "sessions")
    thread.join(90)
    dep_hold.unlink()
    if caller == "system":
        assert len(got) == 1 and isinstance(got[0], ActorStopped), got
    else:
        assert len(got) == 1 and got[0][:2] == ("error", "ActorStopped"), got


def test_requests_under_way_at_two_deaths_of_a_supervisor_in_a_row_are_set_aside(
    make_system, tmp_path
):
    """A supervisor handles several requests at once: a slow ``start_child`` and a
    ``terminate_child`` whose child kills the supervisor as it stops. Both are handed to the
    next instance, which dies the same way: each is answered ``PoisonMessageError`` (which
    one killed it cannot be told), the child's stop ran twice, and the supervisor above
    stayed within its restart intensity."""
    marks, hold = tmp_path / "marks", tmp_path / "hold"
    inner = Child("d", Trap, options={"marks": str(marks), "kills": True})
    tree = Supervisor("s", children=[Supervisor("inner", children=[inner], max_restarts=100)])
    system = make_system(tree, base="multiproc")
    hold.touch()
    slow = Child("h", Trap, options={"marks": str(marks), "hold": str(hold)})
    starting, started = _in_background(lambda: system.start_child("s/inner", slow, timeout=60))
    wait_for(lambda: marks.exists() and "start h" in marks.read_text())
    stopping, stopped = _in_background(lambda: system.terminate_child("s/inner", "d", timeout=60))
    stopping.join(90)
    hold.unlink()
    starting.join(90)
    assert len(stopped) == 1 and isinstance(stopped[0], PoisonMessageError), stopped
    assert len(started) == 1 and isinstance(started[0], PoisonMessageError), started
    assert marks.read_text().split("\n").count("stop d") == 2
    assert system.status()["s"].incarnation == 1


def test_a_supervisor_keeps_no_request_once_answered_and_no_answer_to_a_question(make_system):
    """What a supervisor remembers of the requests it took: none under way once answered
    (the System's too, whose answers leave with the supervisor's mail to the root), and
    only the answers of requests that changed something."""
    import gc

    from stalwart.supervisors._supervisor import SupervisorActor

    pool = Pool("sessions", template=Child("session", Session))
    # (a path no other test uses: actors of earlier systems in this process may linger)
    system = make_system(Supervisor("memo", children=[pool]), base="simple")
    for i in range(20):
        system.start_child("memo/sessions", f"k{i}")
        system.which_children("memo/sessions")
        system.count_children("memo/sessions")
    [actor] = [
        o for o in gc.get_objects() if isinstance(o, SupervisorActor) and o.path == "memo/sessions"
    ]
    assert actor.taken.pending == {}
    assert list(actor.taken.answers.values()) == [f"memo/sessions/k{i}" for i in range(20)]


def test_a_start_that_kills_the_top_supervisor_is_not_sent_again_and_the_system_runs_on(
    make_system, tmp_path
):
    """The top supervisor's death restarts the whole tree (level 5, counted against the
    root's intensity, 1 by default): a request it had taken is not sent to the next tree's,
    or one that killed it would stop the system the second time. The call times out, the
    child it asked for was started once, and the tree runs on."""
    marks = tmp_path / "marks"
    killer = Child("x", KillsItsPool, options={"marks": str(marks)})
    system = make_system(Supervisor("s", children=[Child("a", Session)]), base="multiproc")
    with pytest.raises(Timeout):
        system.start_child("s", killer, timeout=5)
    assert len(marks.read_text().split()) == 1
    running(system, "s", "s/a")
    assert [c.name for c in system.which_children("s")] == ["a"]


def test_a_start_a_pool_had_taken_when_its_parent_was_killed_is_done_by_the_next_pool(
    make_system, tmp_path
):
    """The Pool's parent killed (the Pool dies with it) while the Pool starts a key: the
    Pool of the restarted parent starts it, and the call gets the key's path."""
    tree, started, hold = _held_pool(tmp_path)
    system = make_system(Supervisor("top", children=[tree]), base="multiproc")
    hold.touch()
    caller, got = _start_in_background(system, "top/s/sessions", "g")
    wait_for(started.exists)
    sigkill_actor(system, "top/s")
    hold.unlink()
    caller.join(90)
    assert got == ["top/s/sessions/g"]
    assert [c.name for c in system.which_children("top/s/sessions")] == ["g"]
