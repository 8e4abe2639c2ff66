"""Thespian's debug text about each message is built only when a debug line is kept, in
Stalwart's own processes; the program's own process keeps Thespian's ``identify()``.

Patching Thespian's classes is for a whole process, so the checks of the patched classes run
in an interpreter of their own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from thespian.system.transport import ReceiveEnvelope, TransmitIntent

from stalwart import Child, ManagedActor, Supervisor

ROOT = Path(__file__).resolve().parents[2]


def in_fresh_interpreter(code: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


class Counted:
    """A message that counts how often its text was made."""

    made = 0

    def __str__(self) -> str:
        Counted.made += 1
        return "counted-message"


def deferred_then_formatted() -> None:
    """Prints how often the message's text was made after ``identify()``, then after each
    way a debug line formats it, and whether the text reads as Thespian's."""
    from stalwart.actors._debug_text import debug_text_when_logged

    before = str(ReceiveEnvelope("sender", Counted()).identify())
    debug_text_when_logged()
    debug_text_when_logged()  # (a second call changes nothing)
    Counted.made = 0
    envelope, intent = ReceiveEnvelope("sender", Counted()), TransmitIntent("target", Counted())
    texts = envelope.identify(), intent.identify()
    made = [Counted.made]
    line = "ACTOR got %s; attempting %s" % texts  # noqa: UP031  (as thesplog formats it)
    made.append(Counted.made)
    print(made, str(envelope) == before == "%s" % texts[0], "counted-message" in line)  # noqa: UP031


def test_a_messages_debug_text_is_made_only_when_a_line_with_it_is_formatted():
    code = (
        "from tests.core.test_debug_text import deferred_then_formatted; deferred_then_formatted()"
    )
    assert in_fresh_interpreter(code) == "[0, 2] True True"


class Identify(ManagedActor):
    def receiveMsg_str(self, msg: str, sender: Any) -> None:
        self.reply(sender, hasattr(ReceiveEnvelope.identify, "_sw_built_by"))


def test_actor_processes_defer_it_and_the_programs_own_keeps_thespians(
    make_system: Any, base: str
) -> None:
    system = make_system(Supervisor("s", children=[Child("a", Identify)]), base=base)
    assert system.ask("s/a", "deferred?") is (base != "simple")
    assert not hasattr(ReceiveEnvelope.identify, "_sw_built_by")  # the test's own process
