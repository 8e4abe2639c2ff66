"""The example's actors (a module of their own, so that member nodes can import them)."""

from __future__ import annotations

import os
from typing import Any

import msgspec

from stalwart import ManagedActor


class Train(msgspec.Struct, frozen=True):
    step: int


class Trained(msgspec.Struct, frozen=True):
    steps: tuple[int, ...]
    node: str
    pid: int


class Trainer(ManagedActor):
    """Remembers the steps it trained; its checkpoint follows it to another node.

    Training a step is idempotent: an ask that timed out may still be handled (a request
    in flight when a node dies is handed to the next instance), so a caller that asks
    again after a timeout must not get the step trained twice.
    """

    def on_start(self) -> None:
        self.steps: list[int] = list(self.restored_state or [])

    def snapshot(self) -> Any:
        return self.steps

    def receiveMsg_Train(self, msg: Train, sender: Any) -> None:
        if msg.step not in self.steps:
            self.steps.append(msg.step)
        self.reply(
            sender, Trained(tuple(self.steps), os.environ.get("STALWART_NODE", ""), os.getpid())
        )
