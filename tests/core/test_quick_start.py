"""An actor process forked by one of Stalwart's own starts with less work, and the same
result: Thespian's signal handlers in place, ``setproctitle`` looked up once, ``prctl``
through a C library loaded once (the process's name and its death with its parent)."""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import signal
import sys
from pathlib import Path
from typing import Any

from thespian.system import multiprocCommon

from stalwart import Child, ManagedActor, Supervisor
from stalwart.actors._runtime import ACTOR_PROCESS_PREFIX

_WATCHED = (signal.SIGTERM, signal.SIGCHLD, signal.SIGUSR2, signal.SIGHUP)
_PR_GET_PDEATHSIG = 2
AT_FORK: dict[str, bool] = {}  # what a process forked after this module was imported had


def _note_at_fork() -> None:
    AT_FORK["c_signal"] = (
        multiprocCommon.set_signal_handler is importlib.import_module("_signal").signal
    )
    AT_FORK["setproctitle"] = "setproctitle" in sys.modules


os.register_at_fork(after_in_child=_note_at_fork)  # (before the actor runs a line of its own)


class Look(ManagedActor):
    """Answers with what its own process had as it was forked, and has now."""

    def receiveMsg_str(self, msg: str, sender: Any) -> None:
        death = ctypes.c_int(0)
        ctypes.CDLL(None).prctl(_PR_GET_PDEATHSIG, ctypes.byref(death), 0, 0, 0)
        self.reply(
            sender,
            {
                "at_fork": dict(AT_FORK),
                "handled": [callable(signal.getsignal(s)) for s in _WATCHED],
                "name": Path(f"/proc/{os.getpid()}/comm").read_text().strip(),
                "dies_with_parent": death.value,
            },
        )


def test_an_actor_process_starts_as_its_parent_prepared_it(make_system):
    system = make_system(
        Supervisor("s", children=[Supervisor("inner", children=[Child("a", Look)])]),
        base="multiproc",
    )
    seen = system.ask("s/inner/a", "look")
    assert seen["at_fork"] == {"c_signal": True, "setproctitle": True}  # its parent's doing
    assert seen["handled"] == [True] * len(_WATCHED)  # Thespian's handlers, as before
    assert seen["name"] == ACTOR_PROCESS_PREFIX + "a"  # prctl through the loaded library
    assert seen["dies_with_parent"] == signal.SIGKILL  # (the other prctl)


def test_the_programs_own_process_keeps_thespians_signal_function(make_system):
    system = make_system(Supervisor("s", children=[Child("a", Look)]), base="multiproc")
    assert system.ask("s/a", "look")["at_fork"]["c_signal"]
    assert multiprocCommon.set_signal_handler is signal.signal  # the test's own process
    if importlib.util.find_spec("setproctitle") is None:  # looked up once in actor processes
        assert "setproctitle" not in sys.modules  # and never in this one
