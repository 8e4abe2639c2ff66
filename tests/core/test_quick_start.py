"""An actor process forked by one of Stalwart's own starts with less work, and the same
result: Thespian's signal handlers in place, ``setproctitle`` looked up once, ``prctl``
through a C library loaded once (the process's name and its death with its parent)."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path
from typing import Any

from thespian.system import multiprocCommon

from stalwart import Child, ManagedActor, Supervisor
from stalwart.actors._runtime import ACTOR_PROCESS_PREFIX
from tests.support import process_gone, sigkill, wait_for

_WATCHED = (signal.SIGTERM, signal.SIGCHLD, signal.SIGUSR2, signal.SIGHUP)


class Look(ManagedActor):
    """Answers with what its own process has."""

    def receiveMsg_str(self, msg: str, sender: Any) -> None:
        handlers = [signal.getsignal(s) for s in _WATCHED]
        self.reply(
            sender,
            {
                "pid": os.getpid(),
                "handled": [callable(h) for h in handlers],
                "setproctitle": "setproctitle" in sys.modules,
                "c_signal": multiprocCommon.set_signal_handler is not signal.signal,
                "name": Path(f"/proc/{os.getpid()}/comm").read_text().strip(),
            },
        )


def test_an_actor_process_starts_with_thespians_handlers_and_its_name(make_system):
    system = make_system(
        Supervisor("s", children=[Supervisor("inner", children=[Child("a", Look)])]),
        base="multiproc",
    )
    seen = system.ask("s/inner/a", "look")
    assert seen["handled"] == [True] * len(_WATCHED)  # set by the C function, as before
    assert seen["c_signal"] and seen["setproctitle"]  # its parent had made them cheaper
    if importlib.util.find_spec("setproctitle") is None:  # (looked up once, answered at once)
        assert sys.modules.get("setproctitle", "absent") == "absent"  # not in this process
    assert seen["name"] == ACTOR_PROCESS_PREFIX + "a"  # prctl through the loaded library
    parent = system.status()["s/inner"].pid
    sigkill(parent)  # and it dies with its parent (the other prctl)
    wait_for(lambda: process_gone(seen["pid"]), timeout=15)


def test_the_programs_own_process_keeps_thespians_signal_function(make_system):
    system = make_system(Supervisor("s", children=[Child("a", Look)]), base="multiproc")
    assert system.ask("s/a", "look")["c_signal"]
    assert multiprocCommon.set_signal_handler is signal.signal  # the test's own process
