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


class Offload(msgspec.Struct, frozen=True):
    """Sum ``n`` numbers in a worker thread (``asyncio.to_thread``)."""

    n: int


class Bump(msgspec.Struct, frozen=True):
    n: int


class Bumps(msgspec.Struct, frozen=True):
    pass


class Quit(msgspec.Struct, frozen=True):
    pass


class Politely(msgspec.Struct, frozen=True):
    """Like ``Step``, but its cleanup after a cancellation awaits too."""

    name: str


class NestedLoop(msgspec.Struct, frozen=True):
    """A plain handler that runs an event loop of its own (``asyncio.run``)."""

    n: int


class FanWaitFor(msgspec.Struct, frozen=True):
    """``Fan``, each ask under ``asyncio.wait_for`` (a task of its own)."""

    names: tuple[str, ...]


class Add(msgspec.Struct, frozen=True):
    item: str
    fail_once: bool = False
    wait: bool = False


class Items(msgspec.Struct, frozen=True):
    pass


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
        self.bumps: list[int] = []

    async def receiveMsg_Offload(self, msg: Offload, sender: Any) -> None:
        self.reply(sender, await asyncio.to_thread(sum, range(msg.n)))

    def receiveMsg_Bump(self, msg: Bump, sender: Any) -> None:
        self.bumps.append(msg.n)

    def receiveMsg_Bumps(self, msg: Bumps, sender: Any) -> None:
        self.reply(sender, list(self.bumps))

    async def receiveMsg_Quit(self, msg: Quit, sender: Any) -> None:
        await asyncio.sleep(0)
        self.tell("t/recorder", Note(f"quit-{self.incarnation}"))
        self.stop()

    async def receiveMsg_Politely(self, msg: Politely, sender: Any) -> None:
        self.tell("t/recorder", Note(f"{msg.name}-start"))
        try:
            await self.ask("t/gate", Hold(msg.name), timeout=60)
        except asyncio.CancelledError:
            self.tell("t/recorder", Note(f"{msg.name}-cancelled"))
            await asyncio.sleep(0.01)  # e.g. close a connection politely
            raise
        self.reply(sender, msg.name)

    def receiveMsg_NestedLoop(self, msg: NestedLoop, sender: Any) -> None:
        async def double() -> int:
            await asyncio.sleep(0)
            return 2 * msg.n

        self.reply(sender, asyncio.run(double()))

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

    async def receiveMsg_FanWaitFor(self, msg: FanWaitFor, sender: Any) -> None:
        asks = (asyncio.wait_for(self.ask("t/gate", Hold(n), timeout=5), 10) for n in msg.names)
        self.reply(sender, list(await asyncio.gather(*asks)))

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


FAILED_ONCE: set[str] = set()  # (in this process: survives the ledger's roll-backs)


class Ledger(ManagedActor):
    """Checkpointed; a retry goes back to the last checkpoint (``retry_from_checkpoint``)."""

    def on_start(self) -> None:
        self.items: list[str] = list(self.restored_state or [])

    def snapshot(self) -> Any:
        return list(self.items)

    async def receiveMsg_Add(self, msg: Add, sender: Any) -> None:
        self.items.append(msg.item)
        if msg.wait:
            self.tell("t/recorder", Note(f"{msg.item}-waits"))
            await self.ask("t/gate", Hold(msg.item), timeout=30)
        else:
            await asyncio.sleep(0)
        if msg.fail_once and msg.item not in FAILED_ONCE:
            FAILED_ONCE.add(msg.item)
            raise ConnectionResetError("the backend hiccuped")
        self.reply(sender, list(self.items))

    def receiveMsg_Items(self, msg: Items, sender: Any) -> None:
        self.reply(sender, list(self.items))
