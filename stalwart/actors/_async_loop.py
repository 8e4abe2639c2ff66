"""The event loop an actor's ``async`` handlers run on, and how each of their steps runs in
the context of the message it handles.

One loop per thread (the in-process base runs every actor on one thread; on the
multi-process bases each actor has its process). It never runs by itself: the actor
runs it in short turns (:func:`spin`) and is woken for the next one (see
``AsyncHandlers._sw_arm_loop``). Every task created while a handler's step runs
(``asyncio.gather``, ``wait_for``, ``create_task``) runs its steps in that handler's
context too, so a ``self.ask`` or ``self.reply`` in it belongs to the same message.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Generator
from typing import Any

_SPINS = 64  # loop iterations in one turn; a coroutine that never waits yields after them


class _ThreadState(threading.local):
    def __init__(self) -> None:
        self.loop: ActorLoop | None = None
        self.step: tuple[Any, Any] | None = None  # (actor, turn) whose step runs now
        self.ended: list[tuple[Any, Any, BaseException | None]] = []  # turns to close
        self.pumping = False


STATE = _ThreadState()


class ActorLoop(asyncio.SelectorEventLoop):
    """A selector loop that counts its executor jobs (``to_thread``, ``getaddrinfo``...):
    their results arrive from other threads, so the actor looks at it often meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.executor_jobs = 0
        self.set_task_factory(_task_in_turn)

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Any, *args: Any
    ) -> asyncio.Future[Any]:
        future = super().run_in_executor(executor, func, *args)
        self.executor_jobs += 1
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, _: asyncio.Future[Any]) -> None:
        self.executor_jobs -= 1

    def watches_sockets(self) -> bool:
        """A socket other than the loop's own wake-up pipe is registered."""
        return len(self._selector.get_map()) > 1  # type: ignore[attr-defined]

    def has_ready(self) -> bool:
        return bool(self._ready)  # type: ignore[attr-defined]

    def next_timer_in(self) -> float | None:
        """Seconds until the earliest asyncio timer, if any."""
        timers = [h.when() for h in self._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
        return max(0.0, min(timers) - self.time()) if timers else None


def actor_loop() -> ActorLoop:
    """The event loop the async handlers of this thread's actors run on."""
    loop = STATE.loop
    if loop is None or loop.is_closed():
        loop = STATE.loop = ActorLoop()
    return loop


def spin(loop: ActorLoop) -> None:
    """Run ``loop`` until nothing is ready (at most ``_SPINS`` iterations)."""
    for _ in range(_SPINS):
        loop.call_soon(loop.stop)
        loop.run_forever()
        if not loop.has_ready():
            return


def close_actor_loop() -> None:
    """Close this thread's loop, if it has one (the in-process base's actor thread ends)."""
    loop = STATE.loop
    STATE.loop = None
    if loop is None or loop.is_running() or loop.is_closed():
        return
    for task in asyncio.all_tasks(loop):
        task.cancel()
    with contextlib.suppress(Exception):  # (what was cancelled may complain: it has ended)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


class _InTurn:
    """Awaits ``coro`` with its actor's context set around each of its steps."""

    __slots__ = ("actor", "coro", "turn")

    def __init__(self, actor: Any, turn: Any, coro: Coroutine[Any, Any, Any]) -> None:
        self.actor, self.turn, self.coro = actor, turn, coro

    def __await__(self) -> Generator[Any, Any, Any]:
        actor, turn, coro = self.actor, self.turn, self.coro
        value: Any = None
        error: BaseException | None = None
        while True:
            before = actor._sw_enter(turn)
            try:
                step = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                actor._sw_leave(turn, before)
            try:
                value, error = (yield step), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation, or what the loop threw in
                value, error = None, exc


async def in_turn(actor: Any, turn: Any, coro: Coroutine[Any, Any, Any]) -> Any:
    """``coro``, each step of it run as ``actor`` handling ``turn``."""
    return await _InTurn(actor, turn, coro)


def _task_in_turn(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    step = STATE.step
    if step is not None and getattr(coro, "cr_code", None) is not in_turn.__code__:
        coro = in_turn(step[0], step[1], coro)
    return asyncio.Task(coro, loop=loop, **kwargs)
