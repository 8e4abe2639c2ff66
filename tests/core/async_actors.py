"""Actors with ``async def`` handlers for tests/core/test_async.py (every process imports them)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from stalwart import ManagedActor


class Hold(msgspec.Struct, frozen=True):
    """Answered only once the gate is opened."""

    name: str


class Open(msgspec.Struct, frozen=True):
    pass


class Note(msgspec.Struct, frozen=True):
    text: str


class Notes(msgspec.Struct, frozen=True):
    pass


class Step(msgspec.Struct, frozen=True):
    """Record ``name-start``, wait at the gate, record ``name-end``; answer ``name``."""

    name: str


class Plain(msgspec.Struct, frozen=True):
    """A plain (sync) handler's message: recorded at once."""

    name: str


class Flaky(msgspec.Struct, frozen=True):
    """Fails with a connection error the first ``fails`` times, then answers."""

    fails: int


class Nap(msgspec.Struct, frozen=True):
    seconds: float


class Fetch(msgspec.Struct, frozen=True):
    """Read a line from a TCP server on loopback with asyncio streams."""

    port: int


class Fan(msgspec.Struct, frozen=True):
    """Ask the gate for each name at once; answer the list of answers."""

    names: tuple[str, ...]


class Gate(ManagedActor):
    """Holds every ``Hold`` until ``Open``; after that answers at once."""

    def on_start(self) -> None:
        self.waiting: list[Any] = []
        self.opened = False

    def receiveMsg_Hold(self, msg: Hold, sender: Any) -> None:
        if self.opened:
            self.reply(sender, msg.name)
        else:
            self.waiting.append((sender, msg.name))

    def receiveMsg_Open(self, msg: Open, sender: Any) -> None:
        self.opened = True
        for waiting, name in self.waiting:
            self.reply(waiting, name)
        self.waiting = []


class Recorder(ManagedActor):
    def on_start(self) -> None:
        self.notes: list[str] = []

    def receiveMsg_Note(self, msg: Note, sender: Any) -> None:
        self.notes.append(msg.text)

    def receiveMsg_Notes(self, msg: Notes, sender: Any) -> None:
        self.reply(sender, list(self.notes))


class Stepper(ManagedActor):
    """One handler at a time (the default)."""

    def on_start(self) -> None:
        self.tries = 0

    async def receiveMsg_Step(self, msg: Step, sender: Any) -> None:
        self.tell("t/recorder", Note(f"{msg.name}-start"))
        try:
            await self.ask("t/gate", Hold(msg.name), timeout=60)
        except asyncio.CancelledError:
            self.tell("t/recorder", Note(f"{msg.name}-cancelled"))
            raise
        self.tell("t/recorder", Note(f"{msg.name}-end"))
        self.reply(sender, msg.name)

    async def receiveMsg_Fan(self, msg: Fan, sender: Any) -> None:
        asks = (self.ask("t/gate", Hold(name), timeout=30) for name in msg.names)
        self.reply(sender, list(await asyncio.gather(*asks)))

    def receiveMsg_Plain(self, msg: Plain, sender: Any) -> None:
        self.tell("t/recorder", Note(msg.name))
        self.reply(sender, msg.name)

    async def receiveMsg_Flaky(self, msg: Flaky, sender: Any) -> None:
        await asyncio.sleep(0)
        self.tries += 1
        if self.tries <= msg.fails:
            raise ConnectionRefusedError(f"the backend refused try {self.tries}")
        self.reply(sender, self.tries)

    async def receiveMsg_Nap(self, msg: Nap, sender: Any) -> None:
        await asyncio.sleep(msg.seconds)
        self.reply(sender, "rested")

    async def receiveMsg_Fetch(self, msg: Fetch, sender: Any) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", msg.port)
        try:
            line = await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()
        self.reply(sender, line.decode().strip())


class Overlapping(Stepper):
    """Up to three handlers at once."""

    max_concurrency = 3
