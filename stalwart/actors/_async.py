"""Async handlers: ``async def receiveMsg_X`` in a ``ManagedActor``.

A coroutine handler runs on its actor's own thread, on an asyncio event loop that
the actor runs in short turns: when the handler starts, when a message it waits
for arrives (the reply to ``await self.ask(...)``), and when an asyncio timer or
socket it waits on is due. So its code never runs beside another handler of the
same actor, and every asyncio API works inside it.

While a handler awaits, the actor goes on with other messages: its replies, health
checks, confirmations. Its users' messages wait their turn: at most
``max_concurrency`` handlers (default 1) run at once, and the rest start in the
order they came. A failure in a coroutine is a failure like any other; a
coroutine still running when its actor stops or is restarted is cancelled (its
``finally`` blocks run) and its message goes to the next instance.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, ClassVar, overload

from ._asks import Asks, ReplyT
from ._timers import WAKE
from .messages import Told

if TYPE_CHECKING:
    from ._order import Lane
    from ._tracing import Tracing

POLL_S = 0.002  # while a coroutine waits on a socket: how often the actor looks at it
_SPINS = 64  # loop iterations in one turn; a coroutine that never waits yields after them
_HOLD_S = 5e-4  # with a turn cut short: how soon the next one runs (messages go between)

_LOOPS = threading.local()


def actor_loop() -> asyncio.AbstractEventLoop:
    """The event loop the async handlers of this thread's actors run on (one per thread)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_LOOPS, "loop", None)
    if loop is None or loop.is_closed():
        loop = _LOOPS.loop = asyncio.new_event_loop()
    return loop


def close_actor_loop() -> None:
    """Close this thread's loop, if it has one (the in-process base's actor thread ends)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_LOOPS, "loop", None)
    if loop is not None and not loop.is_running() and not loop.is_closed():
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    _LOOPS.loop = None


class Turn:
    """One message on its way through a handler that had to wait (or was made to)."""

    __slots__ = (
        "envelope",
        "failure_id",
        "handler",
        "is_async",
        "lane",
        "msg",
        "outbox",
        "sender",
        "seq",
        "span",
        "task",
        "told",
    )

    def __init__(
        self,
        handler: Callable[..., Any],
        is_async: bool,
        msg: Any,
        sender: Any,
        failure_id: int | None,
        lane: Lane | None,
        seq: int,
        envelope: tuple[Any, Any],
        told: bool,
    ) -> None:
        self.handler = handler
        self.is_async = is_async
        self.msg = msg
        self.sender = sender
        self.failure_id = failure_id
        self.lane = lane
        self.seq = seq
        self.envelope = envelope  # what a successor gets if this one is cut short
        self.told = told  # a tell of a channel: confirmed once done
        self.outbox: list[Any] | None = None
        self.task: asyncio.Task[Any] | None = None
        self.span: Any = None  # OpenTelemetry: the message's span, ended with the turn


class _InTurn:
    """Awaits ``coro`` with its actor's context set around each of its steps."""

    __slots__ = ("actor", "coro", "turn")

    def __init__(self, actor: Any, turn: Turn, coro: Coroutine[Any, Any, Any]) -> None:
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


async def _run(actor: Any, turn: Turn, coro: Coroutine[Any, Any, Any]) -> Any:
    return await _InTurn(actor, turn, coro)


class AsyncHandlers:
    """Mixin for ``ManagedActor``: runs coroutine handlers and makes messages wait their turn."""

    max_concurrency: ClassVar[int] = 1
    """How many handlers of this actor may be under way at once (an ``async`` one that
    awaits counts until it returns). 1: one at a time, in the order messages came."""

    if TYPE_CHECKING:
        _sw_msg: Any
        _sw_sender: Any
        _sw_failure_id: int | None
        _sw_outbox: list[Any] | None
        _sw_after: Callable[[], None] | None
        _sw_held: list[tuple[Any, Any]]
        _sw_table: dict[type, Any]
        _sw_fast: dict[type, Any]
        _sw_faults: int
        _sw_tracing: Tracing | None
        path: str

        def after(self, delay: float, payload: Any, key: Any = None) -> Any: ...
        def cancel(self, key: Any) -> None: ...
        def _sw_flush_outbox(self) -> None: ...
        def _sw_roll_back(self) -> None: ...
        def _sw_report(
            self, msg: Any, sender: Any, exc: BaseException, fid: Any = None
        ) -> None: ...
        def _sw_retry_done(self, failure_id: int | None) -> None: ...
        def _sw_confirm(self) -> None: ...
        def _sw_post(self, address: Any, reply: Any) -> None: ...
        def _sw_running(self) -> bool: ...
        def _sw_saved_state(self) -> bool: ...
        def _sw_checkpoints_each(self) -> bool: ...
        def _sw_call(
            self,
            path: str,
            msg: Any,
            timeout: float | None,
            on_reply: Callable[[Any], None] | None,
            on_error: Callable[[Any], None] | None,
            request_id: str | None = None,
            deadline: float = 0.0,
            context: str = "",
        ) -> str: ...

    def _sw_init_turns(self) -> None:
        self._sw_turns: dict[asyncio.Task[Any], Turn] = {}
        self._sw_backlog: deque[Turn] = deque()
        self._sw_turn_now: Turn | None = None
        self._sw_lane_at: tuple[Lane, int] | None = None  # the channel message being handled
        self._sw_envelope: tuple[Any, Any] | None = None  # ... and how it came
        self._sw_opening: Any = None  # OpenTelemetry: the span of the message being dispatched

    def _sw_busy(self) -> bool:
        """Handlers are under way or waiting: every message goes through the queue."""
        return bool(self._sw_turns or self._sw_backlog)

    def _sw_defer(
        self, handler: Callable[..., Any], is_async: bool, msg: Any, sender: Any, fid: int | None
    ) -> None:
        """Start ``handler`` as a turn now if there is room, else queue it behind the others."""
        lane, seq = self._sw_lane_at or (None, 0)
        envelope = self._sw_envelope or (msg, sender)
        told = lane is not None and type(envelope[0]) is Told
        turn = Turn(handler, is_async, msg, sender, fid, lane, seq, envelope, told)
        if self._sw_opening is not None:  # (tracing) the turn ends the message's span
            turn.span, self._sw_opening = self._sw_opening, None
        if lane is not None:
            lane.pending.add(seq)
        self._sw_table = {}  # every message goes the long way while turns are under way
        if len(self._sw_turns) < max(1, self.max_concurrency) and not self._sw_backlog:
            self._sw_begin(turn)
        else:
            self._sw_backlog.append(turn)

    def _sw_begin(self, turn: Turn) -> None:
        tracing = self._sw_tracing if turn.span is not None else None
        if not turn.is_async:  # a plain handler that had to wait its turn: it runs now
            before = self._sw_enter(turn, counts_calls=True)
            token = tracing.enter(turn.span) if tracing is not None else None
            try:
                turn.handler(self, turn.msg, turn.sender)
            except Exception as exc:
                error: Exception | None = exc
            else:
                error = None
            finally:
                if tracing is not None:
                    tracing.leave(token)
            self._sw_leave(turn, before)
            self._sw_end_turn(turn, error)
            return
        loop = actor_loop()
        before = self._sw_enter(turn)
        try:
            coro = turn.handler(self, turn.msg, turn.sender)
        except Exception as exc:
            self._sw_leave(turn, before)
            self._sw_end_turn(turn, exc)
            return
        self._sw_leave(turn, before)
        context = tracing.task_context(turn.span) if tracing is not None else None
        task = loop.create_task(_run(self, turn, coro), context=context)
        turn.task = task
        self._sw_turns[task] = turn
        task.add_done_callback(self._sw_task_done)
        self._sw_pump()

    def _sw_enter(self, turn: Turn, counts_calls: bool = False) -> tuple[Any, ...]:
        before = (
            self._sw_msg,
            self._sw_sender,
            self._sw_failure_id,
            self._sw_outbox,
            self._sw_turn_now,
            self._sw_lane_at,
        )
        self._sw_msg, self._sw_sender = turn.msg, turn.sender
        # calls made by a coroutine count for its retry through the coroutine itself
        self._sw_failure_id = turn.failure_id if counts_calls else None
        if turn.outbox is None and self._sw_checkpoints_each():
            turn.outbox = []
        self._sw_outbox = turn.outbox
        self._sw_turn_now = turn
        self._sw_lane_at = (turn.lane, turn.seq) if turn.lane is not None else None
        return before

    def _sw_leave(self, turn: Turn, before: tuple[Any, ...]) -> None:
        turn.outbox = self._sw_outbox
        (
            self._sw_msg,
            self._sw_sender,
            self._sw_failure_id,
            self._sw_outbox,
            self._sw_turn_now,
            self._sw_lane_at,
        ) = before

    def _sw_task_done(self, task: asyncio.Task[Any]) -> None:
        turn = self._sw_turns.pop(task, None)
        if turn is None:
            return
        if task.cancelled():
            self._sw_cut_short(turn)
            return
        self._sw_end_turn(turn, task.exception())

    def _sw_cut_short(self, turn: Turn) -> None:
        """A cancelled turn: its message goes to the next instance (or is refused at a stop)."""
        if turn.outbox:  # what it answered before it was cancelled still goes out
            for address, reply in turn.outbox:
                self._sw_post(address, reply)
        self._sw_held.append(turn.envelope)
        if turn.span is not None and self._sw_tracing is not None:
            self._sw_tracing.end(turn.span, None, cut_short=True)

    def _sw_end_turn(self, turn: Turn, exc: BaseException | None) -> None:
        before = self._sw_enter(turn, counts_calls=True)
        try:
            lane = turn.lane
            if lane is not None:
                lane.pending.discard(turn.seq)
                if turn.told:
                    lane.owed = True
            if exc is not None:
                self._sw_flush_outbox()
                if self._sw_saved_state():
                    self._sw_roll_back()
                self._sw_report(turn.msg, turn.sender, exc, turn.failure_id)
            else:
                after = self._sw_after
                if after is not None:
                    after()
            self._sw_flush_outbox()  # (a checkpoint took them already, if one was made)
        finally:
            self._sw_leave(turn, before)
        if turn.span is not None and self._sw_tracing is not None:
            self._sw_tracing.end(turn.span, exc)
        if lane is not None and turn.told:
            self._sw_confirm()
        if exc is None and turn.failure_id is not None:
            self._sw_retry_done(turn.failure_id)
        self._sw_next()

    def _sw_next(self) -> None:
        """Start what waits, as room allows; back to the fast path once nothing does."""
        backlog = self._sw_backlog
        while backlog and len(self._sw_turns) < max(1, self.max_concurrency):
            if not self._sw_running():
                return
            self._sw_begin(backlog.popleft())
        if not self._sw_busy() and self._sw_running() and not self._sw_faults:
            self._sw_table = self._sw_fast

    # -- answers when handlers overlap -------------------------------------------------
    def _sw_overtakes(self) -> bool:
        """The message being answered overtook an earlier one of its channel still under
        way: its answer must not confirm that one (its sender takes an answer as a
        confirmation of everything it sent before)."""
        at = self._sw_lane_at
        if at is None:
            return False
        lane, seq = at
        return bool(lane.pending) and min(lane.pending) < seq

    # -- the loop's turns ---------------------------------------------------------------
    def _sw_pump(self) -> None:
        """Run the event loop until nothing is ready (bounded), then ask to be woken."""
        loop = actor_loop()
        if loop.is_running():  # a turn further up this thread's stack runs it
            return
        for _ in range(_SPINS):
            loop.call_soon(loop.stop)
            loop.run_forever()
            if not getattr(loop, "_ready", True):
                break
        self._sw_arm_loop(loop)

    def _sw_arm_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._sw_turns:
            self.cancel("async")
            return
        delay: float | None = None
        if getattr(loop, "_ready", True):
            delay = _HOLD_S
        else:
            selector = getattr(loop, "_selector", None)
            if selector is None or len(selector.get_map()) > 1:  # (one is the loop's own)
                delay = POLL_S
            timers = [h.when() for h in getattr(loop, "_scheduled", ()) if not h.cancelled()]
            if timers:
                due = max(0.0, min(timers) - loop.time())
                delay = due if delay is None else min(delay, due)
        if delay is None:
            self.cancel("async")  # woken by the message it waits for
        else:
            self.after(delay, (WAKE, "async"), key="async")

    def _sw_cancel_turns(self) -> None:
        """Stopping or restarting: cancel the coroutines (not the one stopping it) and hand
        what waits to the next instance."""
        current = self._sw_turn_now
        for task, turn in list(self._sw_turns.items()):
            if turn is not current:
                task.cancel()
        waiting, self._sw_backlog = self._sw_backlog, deque()
        for turn in waiting:
            self._sw_held.append(turn.envelope)
            if turn.span is not None and self._sw_tracing is not None:
                self._sw_tracing.end(turn.span, None, cut_short=True)
        if self._sw_turns:
            self._sw_pump()

    # -- inside a coroutine -------------------------------------------------------------
    @overload
    async def ask(self, path: str, msg: Asks[ReplyT], timeout: float = 5.0) -> ReplyT: ...
    @overload
    async def ask(self, path: str, msg: Any, timeout: float = 5.0) -> Any: ...
    async def ask(self, path: str, msg: Any, timeout: float = 5.0) -> Any:
        """Ask the actor at ``path`` and await its reply (inside an ``async`` handler).

        Raises what ``call``'s ``on_error`` would get: :class:`~stalwart.Timeout`,
        :class:`~stalwart.UnknownPath`, :class:`~stalwart.BreakerOpen`, the callee's error.
        While it waits, this actor handles other messages. Typed like ``System.ask``: a
        message deriving from :class:`~stalwart.Asks` ``[T]`` gives a ``T``.
        """
        future: asyncio.Future[Any] = actor_loop().create_future()

        def answered(value: Any) -> None:
            if not future.done():
                future.set_result(value)

        def failed(error: Any) -> None:
            if not future.done():
                future.set_exception(error)

        self._sw_call(path, msg, timeout, answered, failed)
        return await future
