"""A pid Stalwart recorded earlier is never signalled once another process has it.

The kernel hands freed pids out again: with ``pid_max`` at 32768 and a busy host,
within seconds. Stalwart SIGKILLs by pid in three places (a supervisor stopping a
child that does not exit, the root clearing the subtree of a supervisor that died,
``inject_fault(..., "kill")``); each must leave alone a process that is not its
system's, whatever its pid.

The reuse here is real: as root, ``/proc/sys/kernel/ns_last_pid`` makes the next
process this namespace forks take the pid a terminated actor had.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from stalwart import Child, Supervisor
from stalwart.actors._runtime import kill_system_process
from tests.support import Counter, Ping, process_gone, sigkill_actor, wait_for

_LAST_PID = "/proc/sys/kernel/ns_last_pid"
_SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
_TRIES = 200  # another process may take the pid between writing ns_last_pid and forking


def _outsider(session: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(_SLEEPER, start_new_session=session)


def _outsider_with_pid(pid: int) -> subprocess.Popen[bytes]:
    """A process of its own session that has ``pid``."""
    if os.geteuid() != 0 or not os.access(_LAST_PID, os.W_OK):
        pytest.skip(f"reusing a pid on purpose needs root and a writable {_LAST_PID}")
    for _ in range(_TRIES):
        with open(_LAST_PID, "w") as fh:
            fh.write(str(pid - 1))
        proc = _outsider(session=True)
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
    pytest.skip(f"pid {pid} went to other processes {_TRIES} times (a very busy host)")


def test_only_a_process_of_this_session_is_killed():
    outside, inside = _outsider(session=True), _outsider(session=False)
    try:
        assert kill_system_process(outside.pid) is False
        assert outside.poll() is None  # still running
        assert kill_system_process(inside.pid) is True
        assert inside.wait(timeout=10) == -signal.SIGKILL
        assert kill_system_process(os.getpid()) is False  # never itself
        assert kill_system_process(0) is False  # (0 would be its process group)
        assert kill_system_process(inside.pid) is False  # gone (reaped): nothing to signal
    finally:
        for proc in (outside, inside):
            proc.kill()
            proc.wait()


def test_the_root_clearing_a_dead_supervisors_subtree_spares_a_process_that_reused_a_pid(
    make_system,
):
    mid = Supervisor(
        "mid", children=[Child("idle", Counter, passivate_after_s=0.2), Child("busy", Counter)]
    )
    system = make_system(Supervisor("top", children=[mid]), base="multiproc")
    assert system.ask("top/mid/idle", Ping(5)) == 5
    old = int(wait_for(lambda: system.status()["top/mid/idle"].pid))
    wait_for(lambda: system.status()["top/mid/idle"].state == "passivated", timeout=30)
    wait_for(lambda: process_gone(old))
    assert system.status()["top/mid/idle"].pid == 0  # it has no process while passivated
    outsider = _outsider_with_pid(old)
    try:
        sigkill_actor(system, "top/mid")  # the root clears what ran under it, by pid
        assert system.ask("top/mid/busy", Ping(7), timeout=30) == 7  # the new mid runs
        assert system.ask("top/mid/idle", Ping(1), timeout=30) == 6  # from its checkpoint
        assert outsider.poll() is None, "the root SIGKILLed a process that only had an old pid"
    finally:
        outsider.kill()
        outsider.wait()
