"""Actors for the tests of children started at run time (importable by actor processes)."""

from __future__ import annotations

from typing import Any

import msgspec

from stalwart import Child, ManagedActor, StartChild, TerminateChild
from tests.core.otp_actors import OtpChild
from tests.support import Worker


class StartWorker(msgspec.Struct, frozen=True):
    """Start a ``Worker`` named ``name`` under ``supervisor``; the answer is its path (or the
    error the supervisor answered with)."""

    supervisor: str
    name: str
    restart: str = "permanent"


class StopWorker(msgspec.Struct, frozen=True):
    """Terminate the child ``name`` of ``supervisor``; the answer is "stopped"."""

    supervisor: str
    name: str


class StartSession(msgspec.Struct, frozen=True):
    """Start the instance ``key`` of the Pool at ``pool`` (awaiting the answer)."""

    pool: str
    key: str


class Starter(ManagedActor):
    """Starts and stops children with the calls an actor has (callbacks and ``await``)."""

    def receiveMsg_StartWorker(self, msg: StartWorker, sender: Any) -> None:
        spec = Child(msg.name, Worker, restart=msg.restart)  # type: ignore[arg-type]
        self.start_child(
            msg.supervisor,
            spec,
            on_reply=lambda path: self.reply(sender, path),
            on_error=lambda error: self.reply_error(sender, error),
        )

    def receiveMsg_StopWorker(self, msg: StopWorker, sender: Any) -> None:
        self.call(
            msg.supervisor,
            TerminateChild(msg.name),
            on_reply=lambda _: self.reply(sender, "stopped"),
            on_error=lambda error: self.reply_error(sender, error),
        )

    async def receiveMsg_StartSession(self, msg: StartSession, sender: Any) -> None:
        path = await self.ask(msg.pool, StartChild(key=msg.key, options={"by": self.path}))
        self.reply(sender, path)


class Options(msgspec.Struct, frozen=True):
    """Ask a ``Session`` for its options."""


class Where(msgspec.Struct, frozen=True):
    """Ask a ``Session`` for its instance's address."""


class Note(msgspec.Struct, frozen=True):
    """Tell a ``Session`` to add ``n`` to what it handled (no answer)."""

    n: int


class Session(OtpChild):
    """One instance of a Pool: answers ``Options`` with what it was started with."""

    def receiveMsg_Options(self, msg: Options, sender: Any) -> None:
        self.reply(sender, dict(self.options))

    def receiveMsg_Where(self, msg: Where, sender: Any) -> None:
        self.reply(sender, self.myAddress)

    def receiveMsg_Note(self, msg: Note, sender: Any) -> None:
        self.handled.append(msg.n)


class ChildCall(msgspec.Struct, frozen=True):
    """Make the child call ``call`` (``start_child``...) to ``supervisor`` with ``args``;
    the answer is ``("ok", value)`` or ``("error", its type's name, its text)``."""

    call: str
    supervisor: str
    args: tuple[Any, ...] = ()


class Calls(ManagedActor):
    """Makes the child calls an actor has, with whatever arguments it is given."""

    def receiveMsg_ChildCall(self, msg: ChildCall, sender: Any) -> None:
        getattr(self, msg.call)(
            msg.supervisor,
            *msg.args,
            on_reply=lambda value: self.reply(sender, ("ok", value)),
            on_error=lambda error: self.reply(sender, ("error", type(error).__name__, str(error))),
        )


class HeldStart(ManagedActor):
    """Marks ``options["started"]`` as it starts, then starts only once the file
    ``options["hold"]`` is gone (a start that a test keeps in progress)."""

    def on_start(self) -> None:
        import os
        import time

        started, hold = self.options.get("started"), self.options.get("hold")
        if started:
            with open(str(started), "a") as marks:
                marks.write(f"{self.incarnation}\n")
        while hold and os.path.exists(str(hold)):
            time.sleep(0.01)


class KillsItsPool(ManagedActor):
    """Writes its pid to ``options["marks"]`` as it starts, then SIGKILLs its parent's
    process: a start request that kills the supervisor that takes it."""

    def on_start(self) -> None:
        import os
        import signal

        with open(str(self.options["marks"]), "a") as marks:
            marks.write(f"{os.getpid()}\n")
        os.kill(os.getppid(), signal.SIGKILL)


class StartWithId(msgspec.Struct, frozen=True):
    """Start ``key`` of the Pool at ``pool`` with the request id ``request_id``; the
    answer is ``("ok", path)`` or ``("error", its type's name)``."""

    pool: str
    key: str
    request_id: str


class IdCaller(ManagedActor):
    """Makes ``start_child`` calls with request ids of its choosing."""

    def receiveMsg_StartWithId(self, msg: StartWithId, sender: Any) -> None:
        self.call(
            msg.pool,
            StartChild(key=msg.key),
            timeout=30,
            on_reply=lambda path: self.reply(sender, ("ok", path)),
            on_error=lambda error: self.reply(sender, ("error", type(error).__name__)),
            request_id=msg.request_id,
        )


class Trap(ManagedActor):
    """Writes ``start <key>`` to ``options["marks"]`` as it starts, then waits while the file
    ``options["hold"]`` exists; writes ``stop <key>`` as it is stopped, then, with
    ``options["kills"]``, SIGKILLs its parent's process (a ``terminate_child`` that kills the
    supervisor doing it)."""

    def on_start(self) -> None:
        import os
        import time

        self._mark("start")
        hold = self.options.get("hold")
        while hold and os.path.exists(str(hold)):
            time.sleep(0.01)

    def on_stop(self) -> None:
        import os
        import signal

        self._mark("stop")
        if self.options.get("kills"):
            os.kill(os.getppid(), signal.SIGKILL)

    def _mark(self, what: str) -> None:
        marks = self.options.get("marks")
        if marks:
            with open(str(marks), "a") as lines:
                lines.write(f"{what} {self.path.rsplit('/', 1)[-1]}\n")
