"""A pid Stalwart recorded earlier is never signalled once another process has it.

The kernel hands freed pids out again: with ``pid_max`` at 32768 and a busy host,
within seconds. Stalwart SIGKILLs by pid where a process must go (the root clearing the
subtree of a supervisor that died, ``inject_fault(..., "kill")``, a supervisor stopping a
child that does not exit); each must leave alone a process that only took an old pid,
whether it is another program's or one the same system started later.

The reuse here is real: as root, ``/proc/sys/kernel/ns_last_pid`` makes the next
process forked in this pid namespace take the pid a passivated actor had.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Any

import msgspec
import psutil
import pytest

from stalwart import Child, ManagedActor, Supervisor
from stalwart.actors._runtime import child_process_gone, kill_system_process, process_started
from tests.support import Counter, Ping, sigkill_actor, wait_for

_LAST_PID = "/proc/sys/kernel/ns_last_pid"
_SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
_TRIES = 200  # another process may take the pid between writing ns_last_pid and forking


def _can_reuse_pids() -> bool:
    return os.geteuid() == 0 and os.access(_LAST_PID, os.W_OK)


def _sleeper_with_pid(pid: int, session: bool) -> subprocess.Popen[bytes] | None:
    """A process that has ``pid`` (None if other processes kept taking it)."""
    for _ in range(_TRIES):
        with open(_LAST_PID, "w") as fh:
            fh.write(str(pid - 1))
        proc = subprocess.Popen(_SLEEPER, start_new_session=session)
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
    return None


class WhoAreYou(msgspec.Struct, frozen=True):
    pass


class Take(msgspec.Struct, frozen=True):
    pid: int


class Alive(msgspec.Struct, frozen=True):
    pass


class Idler(Counter):
    """Counts, and tells its pid; idle, it is passivated."""

    def receiveMsg_WhoAreYou(self, msg: WhoAreYou, sender: Any) -> None:
        self.reply(sender, os.getpid())


class Taker(ManagedActor):
    """Starts a process of the system's own session that has a given pid."""

    def on_start(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def receiveMsg_Take(self, msg: Take, sender: Any) -> None:
        self.proc = _sleeper_with_pid(msg.pid, session=False)
        self.reply(sender, self.proc is not None and os.getsid(0))

    def receiveMsg_Alive(self, msg: Alive, sender: Any) -> None:
        alive = self.proc is not None and self.proc.poll() is None
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.reply(sender, alive)


def test_only_the_process_that_started_then_in_this_session_is_killed():
    outside = subprocess.Popen(_SLEEPER, start_new_session=True)
    inside = subprocess.Popen(_SLEEPER)
    try:
        assert kill_system_process(outside.pid, process_started(outside.pid)) is False
        assert outside.poll() is None  # another session: still running
        started = process_started(inside.pid)
        assert kill_system_process(inside.pid, started + 1) is False  # a later process
        assert kill_system_process(inside.pid, 0.0) is False  # (not known: never)
        assert inside.poll() is None
        assert kill_system_process(inside.pid, started) is True
        assert inside.wait(timeout=10) == -signal.SIGKILL
        assert kill_system_process(inside.pid, started) is False  # gone (reaped)
        assert kill_system_process(os.getpid(), process_started(os.getpid())) is False
        assert kill_system_process(0, 1.0) is False  # (0 would be its process group)
    finally:
        for proc in (outside, inside):
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("whose", ["another program's", "the system's own"])
def test_the_root_clearing_a_dead_supervisors_subtree_spares_a_process_that_reused_a_pid(
    make_system, whose
):
    if not _can_reuse_pids():
        pytest.skip(f"reusing a pid on purpose needs root and a writable {_LAST_PID}")
    mid = Supervisor(
        "mid", children=[Child("idle", Idler, passivate_after_s=0.2), Child("busy", Idler)]
    )
    tree = Supervisor("top", children=[mid, Child("taker", Taker)])
    system = make_system(tree, base="multiproc")
    assert system.ask("top/mid/idle", Ping(5)) == 5
    old = system.ask("top/mid/idle", WhoAreYou())
    wait_for(lambda: system.status()["top/mid/idle"].state == "passivated", timeout=30)
    wait_for(lambda: not psutil.pid_exists(old), timeout=15)  # exited and reaped
    assert system.status()["top/mid/idle"].pid == 0  # no process while passivated
    outsider = None
    if whose == "the system's own":
        session = system.ask("top/taker", Take(old), timeout=60)
        if not session:
            pytest.skip(f"pid {old} went to other processes {_TRIES} times (a very busy host)")
        assert session == os.getsid(system.status()["top/mid/busy"].pid)  # the same session
    else:
        outsider = _sleeper_with_pid(old, session=True)
        if outsider is None:
            pytest.skip(f"pid {old} went to other processes {_TRIES} times (a very busy host)")
    try:
        sigkill_actor(system, "top/mid")  # the root clears what ran under it, by pid
        assert system.ask("top/mid/busy", Ping(7), timeout=30) == 7  # the new mid runs
        assert system.ask("top/mid/idle", Ping(1), timeout=30) == 6  # from its checkpoint
        if outsider is None:
            assert system.ask("top/taker", Alive()), "the root SIGKILLed its own sleeper"
        else:
            assert outsider.poll() is None, "the root SIGKILLed another program's process"
    finally:
        if outsider is not None:
            outsider.kill()
            outsider.wait()


def test_a_supervisor_tells_a_live_child_from_a_dead_one_and_from_a_process_not_its_own(
    tmp_path,
):
    """``child_process_gone``, which supervisors ask of their children's pids: a live child
    is not gone; one that exited (a zombie, then reaped) is; so is a live process that is
    not its child. A process name holding ``)`` and spaces does not confuse the reading."""
    named = tmp_path / "a) Z 1 (b"  # (its name, as /proc/<pid>/stat shows it)
    named.symlink_to(sys.executable)
    child = subprocess.Popen(
        [str(named), "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time;"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            "print(p.pid, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    grandchild = 0
    try:
        assert child_process_gone(child.pid) is False
        grandchild = int(other.stdout.readline())  # live, but another process's child
        assert psutil.pid_exists(grandchild)
        assert child_process_gone(grandchild) is True
        child.kill()
        wait_for(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, timeout=10)
        assert child_process_gone(child.pid) is True  # exited, not yet reaped
        child.wait()
        assert child_process_gone(child.pid) is True  # reaped
    finally:
        if grandchild:
            with contextlib.suppress(ProcessLookupError):
                os.kill(grandchild, signal.SIGKILL)
        for proc in (child, other):
            proc.kill()
            proc.wait()
        if other.stdout is not None:
            other.stdout.close()
