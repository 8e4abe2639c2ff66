"""Actors for the plugin's tests (importable by actor processes)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import msgspec

from stalwart import ManagedActor


class Arm(msgspec.Struct, frozen=True):
    """Set a timer of ``seconds`` that rings once."""

    seconds: float


class Rang(msgspec.Struct, frozen=True):
    """Ask how many timers have rung."""


class Alarm(ManagedActor):
    """Rings (counts) when a timer it set with ``self.after`` fires."""

    def on_start(self) -> None:
        self.rang = 0

    def receiveMsg_Arm(self, msg: Arm, sender: Any) -> None:
        self.after(msg.seconds, "ring")
        self.reply(sender, "armed")

    def receiveMsg_WakeupMessage(self, msg: Any, sender: Any) -> None:
        if msg.payload == "ring":
            self.rang += 1

    def receiveMsg_Rang(self, msg: Rang, sender: Any) -> None:
        self.reply(sender, self.rang)


class Careless(ManagedActor):
    """Starts a helper process it never stops: it outlives the actor and its system."""

    def on_start(self) -> None:
        self.helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])

    def receiveMsg_Rang(self, msg: Rang, sender: Any) -> None:
        self.reply(sender, self.helper.pid)


STARTED: list[Any] = []  # systems started by the inner tests of test_fixtures, for the outer
