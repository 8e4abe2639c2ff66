"""A crash of a child that keeps a spare, told to its callers by its supervisor at once.

Its callers (actors that have sent to it) hand what the crash lost straight to the spare
named in the notice, with a note of it to the supervisor (see
``stalwart.supervisors._crash_notices``). Real processes, real SIGKILLs: the request is
handled once, by the spare; a request that kills every instance it reaches is set aside
after two deaths, as after any crash; when the supervisor does not restart the child at
once, the spare drops what it was handed and the supervisor hands the notes on.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from stalwart import Child, LevelPolicy, ManagedActor, Supervisor
from stalwart.actors._children import CountChildren
from stalwart.actors.messages import LostRequest
from tests.support import sigkill, wait_for

RESTART_AT_ONCE = LevelPolicy(basic_attempts=0, enhanced_attempts=0)
RESTART_SET_AT_ONCE = LevelPolicy(basic_attempts=0, enhanced_attempts=0, component_attempts=0)


class Work(msgspec.Struct, frozen=True):
    n: int
    marks: str  # one line per time an instance starts on it: "<n> <pid>"
    hold: bool = False  # its first handling waits (to be killed) while marks + ".hold" is there
    kills: bool = False  # it kills the process handling it, every time (a poison)


class Done(msgspec.Struct, frozen=True):
    n: int
    pid: int


class Go(msgspec.Struct, frozen=True):
    work: Work


class Worker(ManagedActor):
    def receiveMsg_Work(self, msg: Work, sender: Any) -> None:
        first = all(n != msg.n for n, _ in handled(Path(msg.marks)))
        with open(msg.marks, "a") as fh:
            fh.write(f"{msg.n} {os.getpid()}\n")
        if msg.kills:
            os.kill(os.getpid(), signal.SIGKILL)
        hold = Path(msg.marks + ".hold")
        while msg.hold and first and hold.exists():  # (the test kills it in here)
            time.sleep(0.005)
        self.reply(sender, Done(msg.n, os.getpid()))


class Relay(ManagedActor):
    """Calls ``s/g/w`` for the System; answers what it got (an error as a tuple)."""

    def receiveMsg_Go(self, msg: Go, sender: Any) -> None:
        self.call(
            "s/g/w",
            msg.work,
            timeout=60,
            on_reply=lambda done: self.reply(sender, done),
            on_error=lambda exc: self.reply(sender, ("error", type(exc).__name__, str(exc))),
        )


def tree(strategy: str = "one_for_one", policy: LevelPolicy = RESTART_AT_ONCE) -> Supervisor:
    """``s/g/w`` keeps a spare, beside ``s/g/v``; ``s/relay`` calls it (from outside its
    restart set)."""
    group = Supervisor(
        "g",
        strategy=strategy,
        max_restarts=100,
        children=[Child("w", Worker, standby=True, levels=policy), Child("v", Worker)],
    )
    return Supervisor("s", children=[group, Child("relay", Relay)])


def handled(marks: Path) -> list[tuple[int, int]]:
    """``(n, pid)`` of each time an instance started on a request, in order."""
    if not marks.exists():
        return []
    return [tuple(map(int, line.split())) for line in marks.read_text().splitlines()]  # type: ignore[misc]


def spare_pid(system: Any) -> int:
    """The pid of ``s/g/w``'s spare once it is up (0 until then): a process its supervisor
    forked under the child's name that is no instance the root knows of."""
    import psutil

    status = system.status()
    known = {e.pid for e in status if e.path.startswith("s/")}
    if 0 in known:
        return 0
    spares = []
    for p in psutil.Process(status["s/g"].pid).children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.name() == "sw:w" and p.pid not in known:
                spares.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return spares[0] if len(spares) == 1 else 0


def relayed(system: Any, work: Work) -> tuple[threading.Thread, list[Any]]:
    """Ask ``s/relay`` to call ``s/g/w`` with ``work``, in the background."""
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(system.ask("s/relay", Go(work), 90)))
    thread.start()
    return thread, got


def ready(system: Any, marks: Path) -> tuple[int, int]:
    """The relay has called ``s/g/w`` once (its supervisor knows to tell it of a crash),
    and the spare is up: ``(the instance's pid, the spare's)``."""
    first = system.ask("s/relay", Go(Work(0, str(marks))), 30)
    assert isinstance(first, Done), first
    return first.pid, wait_for(lambda: spare_pid(system))


def killed_while_handling(system: Any, marks: Path, active: int) -> list[Any]:
    """Relay request 1 to ``active``, SIGKILL it while it handles it; what the relay got."""
    Path(str(marks) + ".hold").touch()
    thread, got = relayed(system, Work(1, str(marks), hold=True))
    wait_for(lambda: (1, active) in handled(marks))  # (the handler is running)
    sigkill(active)
    thread.join(90)
    return got


def poisoned(system: Any, marks: Path) -> list[int]:
    """Relay request 1, which kills every instance it reaches; it is answered
    ``PoisonMessageError``: the processes that died on it."""
    thread, got = relayed(system, Work(1, str(marks), kills=True))
    thread.join(90)
    assert len(got) == 1 and got[0][:2] == ("error", "PoisonMessageError"), got
    return [pid for n, pid in handled(marks) if n == 1]


def test_a_request_a_crash_lost_is_handled_once_by_the_spare(make_system, tmp_path):
    marks = tmp_path / "marks"
    system = make_system(tree(), base="multiproc")
    active, spare = ready(system, marks)
    got = killed_while_handling(system, marks, active)

    assert got == [Done(1, spare)]  # answered by the spare...
    assert handled(marks) == [(0, active), (1, active), (1, spare)]  # ...which ran it once
    assert system.ask("s/relay", Go(Work(2, str(marks))), 30) == Done(2, spare)
    status = system.status()
    assert status["s/g/w"].restarts == 1 and status["s/g/w"].pid == spare


def test_a_request_that_kills_every_instance_is_set_aside_after_two(make_system, tmp_path):
    """The first death hands it straight to the spare; the spare dies on it too: it is set
    aside as a poison message (``PoisonMessageError``), as after any crash, and the path
    serves the next request."""
    marks = tmp_path / "marks"
    system = make_system(tree(), base="multiproc")
    active, spare = ready(system, marks)

    runs = poisoned(system, marks)
    # two instances died on it (a third, when the relay's note reached the supervisor only
    # after the spare's death: see test_a_poison_whose_note_comes_late_takes_one_more_instance)
    assert runs[:2] == [active, spare] and len(runs) in (2, 3), runs
    after = system.ask("s/relay", Go(Work(2, str(marks))), 30)
    assert isinstance(after, Done) and after.pid not in runs
    assert system.status()["s/g/w"].restarts == len(runs)


def test_a_spare_not_taken_at_once_leaves_the_request_to_its_supervisor(make_system, tmp_path):
    """``one_for_all`` at once: the crash restarts the whole set, so the spare starts only
    once its sibling has stopped, in a later turn. What the relay handed it straight away is
    not its to take; the supervisor hands the relay's note on, and the request is handled
    once by the new instance."""
    marks = tmp_path / "marks"
    system = make_system(tree("one_for_all", RESTART_SET_AT_ONCE), base="multiproc")
    active, _ = ready(system, marks)
    got = killed_while_handling(system, marks, active)

    assert len(got) == 1 and isinstance(got[0], Done) and got[0].pid != active, got
    assert [pid for n, pid in handled(marks) if n == 1] == [active, got[0].pid]
    assert wait_for(lambda: system.status()["s/g/w"].pid == got[0].pid)


class Release(msgspec.Struct, frozen=True):
    pass


class SlowNotes(Relay):
    """A relay whose notes of requests it hands straight to a spare reach the supervisor
    only when told (``Release``): a busy caller, or a slow link. It answers ``Release``
    once the supervisor has answered a question sent after the notes (which it sees
    after them)."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[tuple[Any, Any]] = []

    def send(self, target: Any, msg: Any) -> None:
        if isinstance(msg, LostRequest) and msg.direct:
            self.notes.append((target, msg))
            return
        super().send(target, msg)

    def receiveMsg_Release(self, msg: Release, sender: Any) -> None:
        for target, note in self.notes:
            super().send(target, note)
        self.notes = []
        self.call("s/g", CountChildren(), 30, on_reply=lambda _: self.reply(sender, "released"))


def slow_notes_tree() -> Supervisor:
    group = Supervisor(
        "g", max_restarts=100, children=[Child("w", Worker, standby=True, levels=RESTART_AT_ONCE)]
    )
    return Supervisor("s", children=[group, Child("relay", SlowNotes)])


def test_a_note_that_comes_after_the_spare_died_is_not_handed_on(make_system, tmp_path):
    """The spare answered the request it was handed and died later, and the next spare
    serves, before the relay's note reaches the supervisor: the note is dropped (the
    request was the dead spare's), and the request is not handled again."""
    marks = tmp_path / "marks"
    system = make_system(slow_notes_tree(), base="multiproc")
    active, spare = ready(system, marks)
    got = killed_while_handling(system, marks, active)
    assert got == [Done(1, spare)]
    sigkill(spare)  # (the next spare takes over)
    wait_for(lambda: system.status()["s/g/w"].restarts == 2 and system.status()["s/g/w"].pid)

    assert system.ask("s/relay", Release(), 30) == "released"

    assert system.ask("s/relay", Go(Work(2, str(marks))), 30).pid not in (active, spare)
    assert [pid for n, pid in handled(marks) if n == 1] == [active, spare]


def test_a_poison_whose_note_comes_late_takes_one_more_instance(make_system, tmp_path):
    """The relay's note of the poison it handed to the spare is late: the spare's death on
    it is not counted, so the relay hands it over again through the supervisor, the next
    instance dies on it too, and it is set aside then (three deaths, not two). The note,
    when it comes, changes nothing."""
    marks = tmp_path / "marks"
    system = make_system(slow_notes_tree(), base="multiproc")
    active, spare = ready(system, marks)

    runs = poisoned(system, marks)
    # (two when the root's update overtook the notice: the supervisor handed it over)
    assert runs[:2] == [active, spare] and len(runs) in (2, 3), runs
    assert system.ask("s/relay", Release(), 30) == "released"
    after = system.ask("s/relay", Go(Work(2, str(marks))), 30)
    assert isinstance(after, Done) and after.pid not in runs
    assert [pid for n, pid in handled(marks) if n == 1] == runs


class CallTo(msgspec.Struct, frozen=True):
    path: str
    work: Work


class Caller(ManagedActor):
    def receiveMsg_CallTo(self, msg: CallTo, sender: Any) -> None:
        self.call(msg.path, msg.work, timeout=30, on_reply=lambda done: self.reply(sender, done))


def test_the_supervisor_tells_of_a_crash_only_the_callers_that_are_left(make_system, tmp_path):
    """Callers that go (Pool keys terminated) leave the supervisor's list of those it tells
    of a crash, as do older instances of a caller; the others stay. (In process, where the
    supervisor's own record can be read.)"""
    import gc

    from stalwart import Pool
    from stalwart.supervisors._supervisor import SupervisorActor

    marks = str(tmp_path / "marks")
    tree = Supervisor(
        "watched",  # (a path no other test uses: actors of earlier systems may linger)
        children=[
            Child("svc", Worker, standby=True),
            Pool("callers", template=Child("caller", Caller)),
        ],
    )
    system = make_system(tree, base="simple")
    for i in range(5):
        system.start_child("watched/callers", f"k{i}")
        assert isinstance(
            system.ask(f"watched/callers/k{i}", CallTo("watched/svc", Work(i, marks))), Done
        )
    [supervisor] = [
        o for o in gc.get_objects() if isinstance(o, SupervisorActor) and o.path == "watched"
    ]
    watchers = lambda: set(supervisor.crash_notices.watchers.get("svc", {}))  # noqa: E731
    assert watchers() == {f"watched/callers/k{i}" for i in range(5)}

    for i in range(4):
        system.terminate_child("watched/callers", f"k{i}")  # (a Pool's key goes with it)

    assert wait_for(lambda: watchers() == {"watched/callers/k4"}), watchers()


def pidfds_of(pid: int) -> set[int]:
    """The processes process ``pid`` holds a pidfd of (read from /proc/<pid>/fdinfo)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:  # (closed meanwhile)
            continue
        for line in text.splitlines():
            if line.startswith("Pid:") and "pidfd" in os.readlink(f"/proc/{pid}/fd/{fd}"):
                found.add(int(line.split()[1]))
    return found


def test_the_supervisor_watches_the_process_of_a_child_that_keeps_a_spare(make_system, tmp_path):
    """Its wait watches a pidfd of the instance (it hears of the exit sooner than through
    Thespian's notice); the next instance is watched once it serves, the dead one no more,
    a child without a spare is not watched, and a process forked later holds none."""
    if not hasattr(os, "pidfd_open"):
        import pytest

        pytest.skip("os.pidfd_open is missing (Linux 5.3 and later, Python 3.9)")
    marks = tmp_path / "marks"
    system = make_system(tree(), base="multiproc")
    active, spare = ready(system, marks)
    supervisor = system.status()["s/g"].pid
    sibling = system.status()["s/g/v"].pid
    assert active in pidfds_of(supervisor) and sibling not in pidfds_of(supervisor)

    sigkill(active)

    assert system.ask("s/relay", Go(Work(1, str(marks))), 30) == Done(1, spare)
    assert wait_for(lambda: spare in pidfds_of(supervisor) and active not in pidfds_of(supervisor))
    new_spare = wait_for(lambda: spare_pid(system))
    assert pidfds_of(new_spare) == set()  # (forked from the supervisor: it closed its copies)
