"""Async handlers: ``async def receiveMsg_X`` in a ``ManagedActor``.

A coroutine handler runs on its actor's own thread, on an asyncio event loop that
the actor runs in short turns: when the handler starts, after each message the actor
handles meanwhile (the reply to ``await self.ask(...)`` among them), and when an
asyncio timer, a socket or an executor job it waits on may be done. So its code never
runs beside another handler of the same actor, and every asyncio API works inside it.

While a handler awaits, the actor goes on with other messages: its replies, health
checks, confirmations. Its users' messages wait their turn: at most
``max_concurrency`` handlers (default 1) run at once, and the rest start in the
order they came. A failure in a coroutine is a failure like any other; a
coroutine still running when its actor stops or is restarted is cancelled (its
``finally`` blocks run) and its message goes to the next instance.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, cast, overload

from ._asks import Asks, ReplyT
from ._async_loop import STATE, actor_loop, in_turn, spin
from ._timers import WAKE
from .messages import Told

if TYPE_CHECKING:
    from ._order import Lane
    from ._tracing import Tracing

POLL_S = 0.002  # while a coroutine waits on a socket or an executor job: how often to look
IDLE_POLL_S = 0.05  # ... on anything else (another thread may complete it): at the latest
_HOLD_S = 5e-4  # with a turn cut short: how soon the next one runs (messages go between)
# what an actor whose handlers never awaited reads as its turns: read-only and empty (only
# the first coroutine's start adds a turn, to a dict of the actor's own)
_NO_TURNS: dict[Any, Any] = cast("dict[Any, Any]", MappingProxyType({}))


class Turn:
    """One message on its way through a handler that had to wait (or was made to)."""

    __slots__ = (
        "began",
        "envelope",
        "failure_id",
        "handler",
        "internal",
        "is_async",
        "lane",
        "msg",
        "outbox",
        "sender",
        "seq",
        "span",
        "stopping",
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
        internal: bool = False,
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
        self.internal = internal  # the framework's (a retry that waited its turn)
        self.stopping = False  # it stopped its actor: its message is done
        self.outbox: list[Any] | None = None
        self.span: Any = None  # OpenTelemetry: the message's span, ended with the turn
        self.began = 0.0  # (perf_counter) when its handler started


class _Start:
    """A waiting plain handler to start once the loop's turn is over."""

    __slots__ = ("turn",)

    def __init__(self, turn: Turn) -> None:
        self.turn = turn


class AsyncHandlers:
    """Mixin for ``ManagedActor``: runs coroutine handlers and makes messages wait their turn."""

    max_concurrency: ClassVar[int] = 1
    """How many handlers of this actor may be under way at once (an ``async`` one that
    awaits counts until it returns). 1: one at a time, in the order messages came."""

    _sw_turns: dict[asyncio.Task[Any], Turn] = _NO_TURNS  # (its own dict from the first)
    _sw_backlog: deque[Turn] | tuple[()] = ()  # (a deque once a turn waits)
    _sw_turn_now: Turn | None = None
    _sw_queued_now = False  # a handler that waited its turn runs now
    _sw_lane_at: tuple[Lane, int] | None = None  # the channel message being handled
    _sw_envelope: tuple[Any, Any] | None = None  # ... and how it came
    _sw_opening: Any = None  # OpenTelemetry: the span of the message being dispatched

    if TYPE_CHECKING:
        _sw_msg: Any
        _sw_sender: Any
        _sw_failure_id: int | None
        _sw_outbox: list[Any] | None
        _sw_after: Callable[[], None] | None
        _sw_held: list[tuple[Any, Any]] | tuple[()]
        _sw_table: Mapping[type, Any]
        _sw_fast: Mapping[type, Any]
        _sw_faults: int
        _sw_tracing: Tracing | None
        path: str

        def after(self, delay: float, payload: Any, key: Any = None) -> Any: ...
        def cancel(self, key: Any) -> None: ...
        def _sw_flush_outbox(self) -> None: ...
        def _sw_roll_back(self) -> None: ...
        def _sw_took(self, kind: type, seconds: float) -> None: ...
        def _sw_report(
            self, msg: Any, sender: Any, exc: BaseException, fid: Any = None
        ) -> None: ...
        def _sw_retry_done(self, failure_id: int | None) -> None: ...
        def _sw_confirm(self) -> None: ...
        def _sw_post(self, address: Any, reply: Any) -> None: ...
        def _sw_hold(self, item: tuple[Any, Any]) -> None: ...
        def _sw_running(self) -> bool: ...
        def _sw_saved_state(self) -> bool: ...
        def _sw_checkpoints_each(self) -> bool: ...
        def _sw_settle_again(self) -> None: ...
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
        """(Nothing to set up: the turns' state is made when a handler first waits.)"""

    def _sw_busy(self) -> bool:
        """Handlers are under way or waiting: every message goes through the queue."""
        return bool(self._sw_turns or self._sw_backlog)

    def _sw_must_wait(self) -> bool:
        """A message that comes now waits its turn (not one taken from the queue)."""
        return bool(self._sw_turns or self._sw_backlog) and not self._sw_queued_now

    def _sw_room(self) -> bool:
        return len(self._sw_turns) < max(1, self.max_concurrency)

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
        if self._sw_queued_now:  # (from a turn taken from the queue: it keeps its place)
            if self._sw_room():
                self._sw_begin(turn)
            else:
                self._sw_enqueue(turn, first=True)
        elif self._sw_room() and not self._sw_backlog:
            self._sw_begin(turn)
        else:
            self._sw_enqueue(turn)

    def _sw_enqueue(self, turn: Turn, first: bool = False) -> None:
        """Put ``turn`` at the back of the queue (at the front if ``first``)."""
        backlog = self._sw_backlog
        if not isinstance(backlog, deque):
            backlog = self._sw_backlog = deque()
        if first:
            backlog.appendleft(turn)
        else:
            backlog.append(turn)

    def _sw_wait_turn(self, handler: Callable[..., Any], msg: Any, sender: Any) -> None:
        """A framework message that must not run beside a handler under way (a retry rolls
        the state back): it runs first once the handlers under way are done."""
        turn = Turn(handler, False, msg, sender, None, None, 0, (msg, sender), False, True)
        self._sw_table = {}
        self._sw_enqueue(turn, first=True)

    def _sw_begin(self, turn: Turn) -> None:
        tracing = self._sw_tracing if turn.span is not None else None
        turn.began = time.perf_counter()
        if not turn.is_async:  # a handler that had to wait its turn: it runs now
            before = self._sw_enter(turn, counts_calls=True)
            queued, self._sw_queued_now = self._sw_queued_now, True
            token = tracing.enter(turn.span) if tracing is not None else None
            error: BaseException | None = None
            try:
                turn.handler(self, turn.msg, turn.sender)
            except Exception as exc:
                error = exc
            finally:
                if tracing is not None:
                    tracing.leave(token)
                self._sw_queued_now = queued
                self._sw_leave(turn, before)
            self._sw_end_turn(turn, error)
            return
        before = self._sw_enter(turn)
        try:
            coro = turn.handler(self, turn.msg, turn.sender)
        except Exception as exc:
            self._sw_leave(turn, before)
            self._sw_end_turn(turn, exc)
            return
        self._sw_leave(turn, before)
        context = tracing.task_context(turn.span) if tracing is not None else None
        task = actor_loop().create_task(in_turn(self, turn, coro), context=context)
        turns = self._sw_turns
        if turns is _NO_TURNS:
            turns = self._sw_turns = {}
        turns[task] = turn
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
            STATE.step,
        )
        self._sw_msg, self._sw_sender = turn.msg, turn.sender
        # calls made by a coroutine count for its retry through the coroutine itself
        self._sw_failure_id = turn.failure_id if counts_calls else None
        if turn.outbox is None and self._sw_checkpoints_each():
            turn.outbox = []
        self._sw_outbox = turn.outbox
        self._sw_turn_now = turn
        self._sw_lane_at = (turn.lane, turn.seq) if turn.lane is not None else None
        STATE.step = (self, turn)
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
            STATE.step,
        ) = before

    def _sw_task_done(self, task: asyncio.Task[Any]) -> None:
        """(A loop callback: the turn is closed once the loop's turn is over.)"""
        turn = self._sw_turns.pop(task, None)
        if turn is None:  # cut short already
            return
        if task.cancelled():  # by the handler itself, not by a stop: a failure like any other
            error: BaseException | None = asyncio.CancelledError("the handler was cancelled")
        else:
            error = task.exception()
        STATE.ended.append((self, turn, error))

    def _sw_end_turn(self, turn: Turn, exc: BaseException | None) -> None:
        if turn.internal:
            self._sw_next()
            self._sw_settle_again()
            return
        if turn.stopping or not self._sw_running():  # it stopped its actor, or was cut short
            outbox, turn.outbox = turn.outbox, None
            for address, reply in outbox or ():
                self._sw_post(address, reply)
            self._sw_end_span(turn, exc)
            return
        before = self._sw_enter(turn, counts_calls=True)
        lane = turn.lane
        try:
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
                self._sw_took(type(turn.msg), time.perf_counter() - turn.began)
                after = self._sw_after
                if after is not None:
                    after()
            self._sw_flush_outbox()  # (a checkpoint took them already, if one was made)
        finally:
            self._sw_leave(turn, before)
        self._sw_end_span(turn, exc)
        if lane is not None and turn.told:
            self._sw_confirm()
        if exc is None and turn.failure_id is not None:
            self._sw_retry_done(turn.failure_id)
        self._sw_next()
        self._sw_settle_again()

    def _sw_next(self) -> None:
        """Start what waits, in order, as room allows; back to the fast path once none waits.

        A plain handler (or a retry) that waited is started by the loop's pump once this
        returns, and takes the next when it ends: a long queue never grows the stack."""
        backlog = self._sw_backlog
        while isinstance(backlog, deque) and backlog and self._sw_room() and self._sw_running():
            turn = backlog.popleft()
            if turn.is_async:
                self._sw_begin(turn)
                continue
            STATE.ended.append((self, _Start(turn), None))
            if not STATE.pumping:
                self._sw_pump()
            return
        if not self._sw_busy() and self._sw_running() and not self._sw_faults:
            self._sw_table = self._sw_fast

    def _sw_end_span(self, turn: Turn, exc: BaseException | None, cut: bool = False) -> None:
        if turn.span is not None and self._sw_tracing is not None:
            self._sw_tracing.end(turn.span, exc, cut_short=cut)
            turn.span = None

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
        """Run the event loop until nothing is ready, close the turns that ended (outside
        the loop), again while that starts more; then ask to be woken for the next turn."""
        loop = actor_loop()
        if STATE.pumping or loop.is_running():  # a turn further up this stack runs it
            return
        STATE.pumping = True
        try:
            while True:
                spin(loop)
                ended, STATE.ended = STATE.ended, []
                if not ended:
                    break
                for actor, turn, error in ended:  # (outside the loop: it is not running)
                    if isinstance(turn, _Start):
                        actor._sw_begin_waiting(turn.turn)
                    else:
                        actor._sw_end_turn(turn, error)
        finally:
            STATE.pumping = False
        self._sw_arm_loop()

    def _sw_begin_waiting(self, turn: Turn) -> None:
        if self._sw_running():
            self._sw_begin(turn)

    def _sw_arm_loop(self) -> None:
        if not self._sw_turns:
            self.cancel("async")
            return
        loop = actor_loop()
        if loop.has_ready() or STATE.ended:
            delay = _HOLD_S
        elif loop.executor_jobs or loop.watches_sockets():
            delay = POLL_S
        else:
            delay = IDLE_POLL_S
        timer = loop.next_timer_in()
        if timer is not None:
            delay = min(delay, timer)
        self.after(delay, (WAKE, "async"), key="async")

    def _sw_cancel_turns(self) -> None:
        """Stopping or restarting: the turn that stops it is done as far as its channel goes;
        the others are cancelled (their cleanup runs as far as one turn of the loop takes
        it) and their messages, then those waiting, go to the next instance."""
        current = self._sw_turn_now
        cut = []
        for task, turn in list(self._sw_turns.items()):
            if turn is current:
                turn.stopping = True
                if turn.lane is not None:
                    turn.lane.pending.discard(turn.seq)
                    turn.lane.owed = turn.lane.owed or turn.told
                continue
            del self._sw_turns[task]
            task.cancel()
            cut.append(turn)
        for turn in cut:
            outbox, turn.outbox = turn.outbox, None
            for address, reply in outbox or ():  # what it answered before still goes out
                self._sw_post(address, reply)
            self._sw_hold(turn.envelope)
            self._sw_end_span(turn, None, cut=True)
        waiting, self._sw_backlog = self._sw_backlog, ()
        for turn in waiting:
            self._sw_hold(turn.envelope)
            self._sw_end_span(turn, None, cut=True)
        if cut:
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
