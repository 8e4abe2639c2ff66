"""``ManagedActor``: the base class for workloads that live under a supervisor."""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import logging
import os
import pickle
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from ..strategies import classify
from ..strategies._learned_timeout import HANDLER_SAMPLES
from ._async import AsyncHandlers
from ._calls import Caller, OnError, OnReply
from ._children import (
    CHILD_REQUESTS,
    ActivityCheck,
    ActivityReport,
    ChildCalls,
    not_a_supervisor,
)
from ._coalesce import Coalescing
from ._lazy import made_on_use
from ._logs import ACTOR_PATH
from ._memory import CacheSet, collect_garbage, new_cache_set, resident_buffer, rss, set_owner
from ._order import ACK_S, EAGER_ACK_S, GAP_LOOKS, GAP_S, Lane, Lanes
from ._placement import NODE_ENV, fenced, satisfies
from ._runtime import (
    ACTOR_PROCESS_PREFIX,
    ActorExitRequest,
    ActorSystemMessage,
    RuntimeActor,
    WakeupMessage,
    die_with_parent,
    name_process,
    tune_own_process,
)
from ._state_file import StateFile, StateTable, latest, open_state, usable
from ._timers import TICK, WAKE
from ._working_set import make_own_pages_writable
from .errors import ActorStopped, DownstreamError, HandlerError, StalwartError, UnknownMessage
from .messages import (
    Acked,
    AddressUpdate,
    Batch,
    Chaos,
    Checkpoint,
    CrashNotice,
    ErrorReply,
    Failure,
    FailureReport,
    Forwarded,
    GaveUp,
    Handover,
    HandoverDone,
    HealthCheck,
    HealthReport,
    HooksDone,
    Init,
    InjectedFault,
    MemoryFreed,
    MemoryLevel,
    MemoryPressure,
    Placed,
    Proceed,
    Redelivery,
    Release,
    Reply,
    ReplyTo,
    Request,
    Resolved,
    Resync,
    Retire,
    Retired,
    Retry,
    RetryOutcome,
    RouteState,
    RunHooks,
    SendAgain,
    Standby,
    StandbyReady,
    Started,
    StoppedNormally,
    Stray,
    Successor,
    Told,
)

Handler = Callable[[Any, Any, Any], None]
_NO_HANDLERS: Mapping[type, Handler] = MappingProxyType({})  # every message the long way

_PENDING, _RUNNING, _FAILED, _RETIRED, _STOPPED = range(5)
PLACED_WAIT_S = 30.0  # on another node: no word from its supervisor for this long, it leaves
_REPLAY_MEMORY = 256  # request ids (and replies) remembered to answer a replayed request once
_REPLIES_FILED = 64  # the latest answers kept with a checkpoint file, for requests sent again
FORWARD_QUIET_S = 1.0  # a replaced instance leaves once it had nothing to forward this long
LEAVE_WAIT_S = 2.0  # an instance that stopped for good leaves by itself after this long

_INTERNAL: dict[type, str] = {
    Init: "_sw_on_init",
    Proceed: "_sw_on_proceed",
    Retry: "_sw_on_retry",
    Request: "_sw_on_request",
    Told: "_sw_on_told",
    Acked: "_sw_on_acked_msg",
    SendAgain: "_sw_on_send_again_msg",
    Resync: "_sw_on_resync",
    Forwarded: "_sw_on_forwarded",
    GaveUp: "_sw_on_gave_up",
    Handover: "_sw_on_handover",
    CrashNotice: "_sw_on_crash_notice_msg",
    Reply: "_sw_on_reply_msg",
    Resolved: "_sw_on_resolved_msg",
    AddressUpdate: "_sw_on_address_update_msg",
    RouteState: "_sw_on_route_state_msg",
    Retire: "_sw_on_retire",
    Successor: "_sw_on_successor",
    Release: "_sw_on_release",
    RunHooks: "_sw_on_run_hooks",
    HealthCheck: "_sw_on_health_check",
    MemoryPressure: "_sw_on_memory_pressure",
    Batch: "_sw_on_batch",
    Chaos: "_sw_on_chaos",
    WakeupMessage: "_sw_on_wakeup",
    ActorExitRequest: "_sw_on_exit_request",
    ActivityCheck: "_sw_on_activity_check",
    Standby: "_sw_on_standby",
}


def redirectable(msg: Any) -> bool:
    """True for what may go to a path's new instance when its old one is gone.

    That is the workload's own messages, requests and forwarded messages; not the
    framework's instructions to one instance (``Init``, ``Retry``, ``Release``...)
    nor Thespian's notices.
    """
    if isinstance(msg, ActorSystemMessage):
        return False
    return type(msg) not in _INTERNAL or type(msg) in (Request, Forwarded, Told)


def brief_traceback(exc: BaseException, limit: int = 12) -> str:
    """Where ``exc`` came from: file, line and function of its last frames, then the error.

    Cheaper than ``traceback.format_exc`` (no source lines are read), which
    matters on the failure path of a busy actor.
    """
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append(f'  File "{code.co_filename}", line {tb.tb_lineno}, in {code.co_name}')
        tb = tb.tb_next
    lines = [
        "Traceback (most recent call last):",
        *frames[-limit:],
        f"{type(exc).__qualname__}: {exc}",
    ]
    return "\n".join(lines)


def find_handler(actor_cls: type, msg_type: type) -> Handler | None:
    """The ``receiveMsg_<Type>`` method for ``msg_type`` (or one of its bases), if any."""
    for klass in msg_type.__mro__:
        fn = getattr(actor_cls, f"receiveMsg_{klass.__name__}", None)
        if fn is not None:
            return fn  # type: ignore[no-any-return]
    return None


class Unhealthy(Exception):
    """What a ``health()`` that answered with a description said (classified like an error)."""


def hand_on_misdirected(
    actor: Any, msg: Told | Request, sender: Any, forwarded: bool, log: logging.Logger
) -> None:
    """``msg`` is numbered for ``msg.to``, not for ``actor.path``: it goes to the root, which
    sends it to that path's instance now; one that comes back ``forwarded`` is dropped.

    Thespian addresses a process by its port, and a new process may listen on the port of
    one that died: what was on its way to the dead one reaches another actor. Taken as its
    own, it would be handled by the wrong actor and would move that sender's channel on to
    numbers of another path's. (One dropped after coming back: the root's address for its
    path was another process's too; its sender's resend after the death covers it.)
    """
    if forwarded:
        log.error("%s: a message for %s came back to it; dropped", actor.path, msg.to)
        return
    log.warning(
        "%s: a message for %s reached this process (a port its dead instance had);"
        " handed to the root",
        actor.path,
        msg.to,
    )
    actor.send(actor.root, Stray(msg.to, msg, sender))


class ManagedActor(ChildCalls, AsyncHandlers, Caller, Coalescing, RuntimeActor):  # type: ignore[misc]
    """Base class for actors that run under a supervisor.

    Define typed handlers ``receiveMsg_<MessageType>(self, msg, sender)``, plain or
    ``async def`` (see :attr:`max_concurrency` and :meth:`ask`). An
    exception raised in a handler is a *failure*: it is classified and reported,
    with the message and its sender, to the supervisor, which retries, restarts
    or escalates (the five levels). The actor is never left half-dead: it keeps
    handling other messages while its supervisor decides.

    Hooks (override what you need): :meth:`on_start`, :meth:`on_stop`,
    :meth:`on_retry`, :meth:`on_adjust`, :meth:`snapshot`. Helpers:
    :meth:`reply`, :meth:`tell`, :meth:`call`, :meth:`stop`, and the attributes
    ``path``, ``restored_state``, ``incarnation``, ``options``, ``log``.

    Override ``__init__`` only if you must, and call ``super().__init__()``;
    set up state in :meth:`on_start`, which also runs after every restart.
    """

    _sw_handlers: ClassVar[dict[type, Handler]] = {}
    _sw_coroutines: ClassVar[dict[type, Handler]] = {}  # the async handlers found
    # whether leaving also has the runtime stop the actors this one created, and wait for
    # each to say it left (False: on_stop stops those still reachable itself)
    _sw_exit_children: ClassVar[bool] = True
    _sw_own_health: ClassVar[bool] = False  # the class defines health() (see the kernel's)

    # Defaults that an instance only holds once it changes them, and containers made on
    # first use: an idle actor carries a few attributes, not fifty (100,000 actors in one
    # process). Class attributes are never mutated: instances assign their own.
    path = ""
    restored_state: Any = None
    incarnation = 0
    options: dict[str, Any] = made_on_use(dict)
    supervisor: Any = None
    root: Any = None
    degraded: set[str] = made_on_use(set)
    _sw_log: logging.Logger | None = None  # made on first use of ``log``
    _sw_table: Mapping[type, Handler] = _NO_HANDLERS  # the class's handlers once running
    _sw_fast: Mapping[type, Handler] = _sw_handlers  # what _sw_table goes back to (per class)
    _sw_mode = _PENDING
    _sw_after: Callable[[], None] | None = None  # run after each handled message
    _sw_dirty = False
    _sw_held: list[tuple[Any, Any]] | tuple[()] = ()  # (a list once a message is held)
    _sw_takes_over = 0  # as a spare, it took over from this crashed incarnation (see Init)
    _sw_placed: Init | None = None  # on another node: its Init, until told to start
    _sw_successor: Any = None
    _sw_forwarded_at = float("-inf")  # when it last forwarded to its successor
    _sw_taken_at = 0.0  # when it last took a sender's message (time.monotonic(): one clock
    # for the processes of a host, so its supervisor can tell which of them is idlest)
    _sw_handled: OrderedDict[str, Any] = made_on_use(OrderedDict)
    _sw_times: dict[type, deque[float]] = made_on_use(dict)  # latest handler durations
    _sw_also_answer: dict[str, list[Any]] = made_on_use(dict)  # request id -> more addresses
    _sw_last_reply: tuple[str, Any] | None = None
    _sw_checkpoint_each = False  # checkpoint after each message (answers wait for it)
    _sw_outbox: list[tuple[Any, Reply]] | None = None  # answers held for the checkpoint
    _sw_again: list[tuple[Any, Reply]] | None = None  # given again: for the next checkpoint
    _sw_state_file: StateFile | StateTable | None = None  # checkpoints go there first
    _sw_logger_path = ""  # whose logger ``log`` is ("": its own path's)
    _sw_durable = False  # its supervisor also keeps each checkpoint in the store
    _sw_saved: bytes | None = None  # the last checkpoint, for retry_from_checkpoint
    _sw_filed: OrderedDict[str, Any] = made_on_use(OrderedDict)  # answers kept with the file
    _sw_lanes: Lanes = made_on_use(Lanes)  # senders' channels: in order, each message once
    _sw_ack_due = False
    _sw_gap_due = False
    _sw_eager_until = 0.0  # until then, tells are confirmed as each is handled
    _sw_msg: Any = None
    _sw_sender: Any = None
    _sw_failure_id: int | None = None
    _sw_outstanding: dict[int, int] = made_on_use(dict)  # retried messages -> calls still out
    _sw_caches: CacheSet = made_on_use(new_cache_set)  # caches that take part in cleanup
    _sw_faults = 0  # messages still to fail on purpose (chaos)
    _sw_leaked: list[bytearray] = made_on_use(list)  # memory held on purpose (chaos)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._sw_handlers = cls._sw_fast = {}
        cls._sw_coroutines = {}
        cls._sw_own_health = cls.health is not ManagedActor.health

    def __init__(self) -> None:
        die_with_parent()  # a process of its own does not outlive its supervisor's
        super().__init__()

    @property
    def log(self) -> logging.Logger:
        """This actor's logger: ``stalwart.actor.<path, dotted>`` once it has started (a
        Pool's instances share their Pool's: each record names its actor's path)."""
        log = self._sw_log
        if log is None:
            path = self._sw_logger_path or self.path
            name = "stalwart.actor" + (f".{path.replace('/', '.')}" if path else "")
            log = self._sw_log = logging.getLogger(name)
        return log

    @log.setter
    def log(self, logger: logging.Logger) -> None:
        self._sw_log = logger

    # -- hooks --------------------------------------------------------------------
    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict[str, Any], requirements: Any) -> bool:
        """Thespian asks this of each node that could run the actor (``Child.requires``)."""
        return satisfies(capabilities, requirements)

    def on_start(self) -> None:
        """Runs before the first message, and again after every restart.

        ``self.restored_state`` holds the last checkpoint (or ``None``). An
        exception here is a start failure of this actor.
        """

    def on_stop(self) -> None:
        """Runs when the actor is stopped or replaced (release connections, files...)."""

    def on_retry(self, failure: Failure) -> None:
        """Runs before a level 1 or 2 retry of a failed message (e.g. to reconnect)."""

    def on_adjust(self, failure: Failure, attempt: int) -> None:
        """Runs before a level-2 "adjust" retry: change parameters (timeouts, batch size)."""

    def health(self) -> bool | str:
        """Answer ``True`` if all is well; ``False`` or a description of the problem if not.

        Called on every health check of the supervisor; raising counts as unhealthy.
        An unhealthy actor is recovered like a failing one (hooks, then a restart).
        """
        return True

    def on_memory_pressure(self, level: MemoryLevel) -> int | None:
        """Memory is short: free what you can (drop caches, buffers...).

        Runs at every cleanup tier (``WARNING``, ``CRITICAL``, ``EMERGENCY``);
        return the bytes freed if you know them. A ``TieredCache`` this actor
        created is cleaned without this hook.
        """
        return None

    def on_dependency_state(self, path: str, state: str) -> None:
        """A breaker in front of ``path`` (which this actor sends to) changed ``state``.

        ``self.degraded`` already holds the paths whose breakers are open: use it
        to run with reduced functionality.
        """

    def snapshot(self) -> Any:
        """The state to checkpoint; restored as ``restored_state`` after a restart.

        Not overriding it turns checkpointing off. The state must pickle.
        """
        return None

    def restore(self, state: Any) -> None:
        """Go back to ``state``, the last checkpoint (a copy), after a message failed.

        Runs only with ``Child(..., retry_from_checkpoint=True)``: right after the
        failure, and again before each level 1-2 retry. By default it sets
        ``restored_state`` and runs ``on_start`` again: override it when ``on_start``
        does more than read the state (opens connections, starts timers...).
        """
        self.restored_state = state
        self.on_start()

    # -- helpers --------------------------------------------------------------------
    @property
    def trace(self) -> str:
        """The trace id of the request being handled ("" for a plain message).

        Calls made while handling it carry the same trace, and failures are
        reported with it, so an error can be followed across services.
        """
        sender = self._sw_sender
        return sender.trace if type(sender) is ReplyTo else ""

    def _sw_trace(self) -> str:
        sender = self._sw_sender
        return sender.trace if type(sender) is ReplyTo else ""

    def _sw_deadline(self) -> float:
        sender = self._sw_sender
        return sender.deadline if type(sender) is ReplyTo else 0.0

    def reply(self, sender: Any, msg: Any) -> None:
        """Answer the sender of the message being handled (works for ``ask``/``call`` too).

        With a checkpoint after each message (the default when ``snapshot`` is defined),
        the answer to a request travels with the checkpoint and its supervisor sends it
        on once it holds that state: a caller never sees an answer whose state a crash
        right after could lose.
        """
        if type(sender) is ReplyTo:
            self._sw_answer(sender.address, Reply(sender.id, msg))
            self._sw_last_reply = (sender.id, msg)
            if sender.id in self._sw_handled:
                self._sw_handled[sender.id] = msg
            if self._sw_also_answer:
                for address in self._sw_also_answer.pop(sender.id, ()):
                    if address != sender.address:
                        self._sw_answer(address, Reply(sender.id, msg))
        else:
            self.send(sender, msg)

    def _sw_answer(self, address: Any, reply: Reply) -> None:
        if self._sw_lane_at is not None and self._sw_overtakes():
            reply = Reply(reply.id, reply.value, alone=True)
        self._sw_post(address, reply)

    def _sw_post(self, address: Any, reply: Reply) -> None:
        outbox = self._sw_outbox
        if outbox is None:
            self.send(address, reply)
        else:
            outbox.append((address, reply))

    def _sw_keeps_with_supervisor(self) -> bool:
        """True if only its supervisor keeps its checkpoints (it runs on another node): its
        answers and confirmations go out through it, once it holds the state they reflect."""
        return self._sw_checkpoint_each and self._sw_state_file is None

    def _sw_answer_again(self, address: Any, reply: Reply) -> None:
        """Send a remembered answer again (its request came twice).

        It confirms that request alone. Where only the supervisor keeps the checkpoints, the
        one holding its state may still be on its way there, or lost with a partition: the
        answer waits for the next checkpoint (at the end of this turn, or of the coroutines
        under way: never one of a state half changed), so no caller hears of a state that a
        crash right after could lose.
        """
        reply = Reply(reply.id, reply.value, alone=True)
        if self._sw_keeps_with_supervisor() or (
            self._sw_checkpoint_each and self._sw_busy() and reply.id not in self._sw_filed
        ):  # (a coroutine under way files what it answered at its end)
            self._sw_again_later().append((address, reply))
        else:  # filed here already, or no state to keep
            self.send(address, reply)

    def _sw_settle_again(self) -> None:
        """What was given again goes with a checkpoint now (before the next handler runs, or
        at the end of the turn), unless handlers are under way or waiting: a coroutine may
        be half way through changing the state; the checkpoint at the end of its turn takes
        it."""
        if (
            self._sw_again is not None
            and self._sw_mode == _RUNNING
            and not self._sw_busy()
            and self._sw_lane_at is None  # (no lane step taken and not yet handled)
        ):
            self._sw_checkpoint()

    def _sw_again_later(self) -> list[tuple[Any, Reply]]:
        """What waits for the next checkpoint, given again (which makes one due)."""
        again = self._sw_again
        if again is None:
            again = self._sw_again = []
        return again

    def _sw_flush_outbox(self) -> None:
        """No checkpoint follows (a failure): the held answers go out as they are."""
        outbox, self._sw_outbox = self._sw_outbox, None
        for address, reply in outbox or ():
            self.send(address, reply)

    def reply_error(self, sender: Any, error: BaseException) -> None:
        """Answer the sender with an error; ``ask``/``call`` raise it on the other side.

        A :class:`~stalwart.StalwartError` keeps its type; any other exception
        arrives as a :class:`~stalwart.DownstreamError` if retrying may help (a
        connection refused, a timeout...) or a :class:`~stalwart.HandlerError` if not
        (bad input), naming its type and message. A breaker in front of this actor
        counts the first kind as failures.
        """
        if not isinstance(error, StalwartError):
            kind = DownstreamError if classify(error).retryable else HandlerError
            error = kind(f"{self.path}: {type(error).__name__}: {error}", self.path)
        self.reply(sender, ErrorReply.of(error))

    def tell(self, target: Any, msg: Any) -> None:
        """Send ``msg`` to an actor path (``"shop/db"``) or address; no reply expected.

        To a path: this actor's messages to it are handled in the order sent, each
        once, across its restarts; messages to an actor that is restarting wait
        and go once it is back; what its process was handling or had queued when
        it died is sent again. To an address: plain Thespian delivery.
        """
        if isinstance(target, str):
            tracing = self._sw_tracing
            if tracing is not None:  # OpenTelemetry: it carries the current span
                msg = tracing.telling(self, msg)
            self._sw_send_path(target, msg)
        else:
            self.send(target, msg)

    def call(
        self,
        path: str,
        msg: Any,
        timeout: float = 5.0,
        on_reply: OnReply | None = None,
        on_error: OnError | None = None,
        request_id: str | None = None,
    ) -> str:
        """Send a request to ``path``; ``on_reply(reply)`` or ``on_error(exc)`` runs later.

        Exactly one of the two callbacks runs: the reply, or a
        :class:`~stalwart.Timeout`, :class:`~stalwart.UnknownPath`,
        :class:`~stalwart.ActorStopped` ... error. If the callee crashes while
        handling the request, it is sent again to the restarted instance.
        Returns the request id. Without ``on_error``, errors are logged. While a
        breaker in front of ``path`` is open (and has no fallback), ``on_error``
        gets ``BreakerOpen`` at once, without a message being sent.
        Give ``request_id`` to make a resent request recognisable: the callee
        answers a request id once.
        """
        return self._sw_call(path, msg, timeout, on_reply, on_error, request_id)

    def stop(self) -> None:
        """Stop this actor normally (a ``permanent`` child is started again, others are not)."""
        self._sw_send_acks()  # (where its supervisor keeps its state: with its final state)
        self.send(self.supervisor, StoppedNormally(self.path, self.incarnation))
        self._sw_retire(forward=False)

    # -- dispatch ---------------------------------------------------------------------
    def _sw_unpacks(self, target: Any) -> bool:
        """True if ``target`` is a Stalwart actor: its supervisor, the root, a path's
        instance it sends to, or a sender of a channel it handles (batches reach those)."""
        if target == self.supervisor or target == self.root or target == self.myAddress:
            return True
        mine = self.__dict__
        lanes = mine.get("_sw_lanes")
        if lanes is not None and any(lane.reply_to == target for lane in lanes.lanes.values()):
            return True
        routes = mine.get("_sw_routes")
        return routes is not None and any(target in r.addresses for r in routes.values())

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        # what is logged meanwhile carries the path (coroutines started now keep it)
        acting = ACTOR_PATH.set(self.path)
        turn = self._sw_gather()  # what it sends meanwhile leaves together at the end
        try:
            self._sw_receive(msg, sender)
        finally:
            ACTOR_PATH.reset(acting)
            if turn:
                if self._sw_again is not None:
                    self._sw_settle_again()
                if self._sw_ack_due and self._sw_pile and self._sw_mode == _RUNNING:
                    self._sw_acks_along()
                self._sw_scatter()

    def _sw_acks_along(self) -> None:
        """Confirmations due soon to an address this turn sends to go with what it sends
        (one envelope, instead of another message when the confirmation timer fires)."""
        pile = self._sw_pile
        assert pile is not None
        if self._sw_keeps_with_supervisor():  # (they go with its checkpoints)
            return
        for chan, lane in self._sw_lanes.lanes.items():
            if lane.owed and any(address == lane.reply_to for address, _ in pile):
                lane.owed = False
                self.send(lane.reply_to, Acked(self.path, chan, lane.done() - 1))

    def _sw_receive(self, msg: Any, sender: Any) -> None:
        handler = self._sw_table.get(type(msg))
        if handler is not None:
            if self._sw_again is not None:  # (kept with the state before this handler)
                self._sw_settle_again()
            self._sw_msg = msg  # what a call made from here answers to
            self._sw_sender = sender
            if self._sw_checkpoint_each:
                self._sw_outbox = []
            try:
                handler(self, msg, sender)
            except Exception as exc:
                self._sw_flush_outbox()
                if self._sw_saved is not None:
                    self._sw_roll_back()
                self._sw_report(msg, sender, exc)
                return
            after = self._sw_after
            if after is not None:
                after()
            return
        self._sw_receive_other(msg, sender)

    def _sw_receive_other(self, msg: Any, sender: Any) -> None:
        internal = _INTERNAL.get(type(msg))
        if internal is not None:
            getattr(self, internal)(msg, sender)
            if self._sw_turns:  # a reply, a timer, a routing answer: coroutines may go on
                self._sw_pump()
        elif self._sw_mode != _RUNNING:
            self._sw_hold_or_forward(msg, sender)
        else:
            self._sw_dispatch(msg, sender)

    def _sw_hold_or_forward(self, msg: Any, sender: Any) -> None:
        if self._sw_successor is not None:
            self._sw_forwarded_at = time.monotonic()
            self.send(self._sw_successor, Forwarded(msg, sender))
        elif self._sw_mode == _STOPPED:
            self._sw_refuse(msg, sender, ActorStopped(f"{self.path} has stopped", self.path))
        elif self._sw_mode == _FAILED:  # what it held went back; the root finds the next one
            self._sw_forwarded_at = time.monotonic()  # it leaves once strays stop coming
            self.send(self.root, Stray(self.path, msg, sender))
        else:
            self._sw_hold((msg, sender))

    def _sw_hold(self, item: tuple[Any, Any]) -> None:
        """Keep a message (and its sender) until this instance runs, or for its successor."""
        if not isinstance(self._sw_held, list):
            self._sw_held = []
        self._sw_held.append(item)

    def _sw_dispatch(self, msg: Any, sender: Any, failure_id: int | None = None) -> bool:
        """Run the user handler for ``msg``; report a failure; True if it succeeded (False
        too if it waits its turn or is a coroutine: that turn reports when it is done)."""
        handler = self._sw_handlers.get(type(msg))
        is_async = False
        if handler is None:
            handler = self._sw_coroutines.get(type(msg))
            is_async = handler is not None
        if handler is None:
            handler = find_handler(type(self), type(msg))
            if handler is None:
                self._sw_unknown(msg, sender)
                return False
            is_async = inspect.iscoroutinefunction(handler)
            if type(msg) not in _INTERNAL:  # those must always reach the framework first
                known = self._sw_coroutines if is_async else self._sw_handlers
                known[type(msg)] = handler
        if self._sw_again is not None:  # (kept with the state before this handler)
            self._sw_settle_again()
        if is_async or ((self._sw_turns or self._sw_backlog) and not self._sw_queued_now):
            if self._sw_faults:
                self._sw_faults -= 1
                self._sw_report(msg, sender, InjectedFault(f"{self.path}: fault injected"))
                return False
            self._sw_defer(handler, is_async, msg, sender, failure_id)
            return False
        self._sw_msg, self._sw_sender, self._sw_failure_id = msg, sender, failure_id
        if self._sw_checkpoint_each:
            self._sw_outbox = []
        try:
            if self._sw_faults:
                self._sw_faults -= 1
                if not self._sw_faults and not self._sw_busy():
                    self._sw_table = self._sw_fast
                raise InjectedFault(f"{self.path}: fault injected by chaos")
            began = time.perf_counter()
            handler(self, msg, sender)
            took = time.perf_counter() - began
            times = self._sw_times.get(type(msg))  # (inline: this is every message's path)
            if times is None:
                self._sw_took(type(msg), took)
            else:
                times.append(took)
        except Exception as exc:
            self._sw_flush_outbox()
            if self._sw_saved is not None:
                self._sw_roll_back()
            self._sw_report(msg, sender, exc, failure_id)
            return False
        finally:
            self._sw_failure_id = None
        after = self._sw_after
        if after is not None:
            after()
        return True

    def _sw_took(self, kind: type, seconds: float) -> None:
        """A handler of ``kind`` succeeded in ``seconds`` (its supervisor learns retry
        timeouts from these: they go with a failure report)."""
        times = self._sw_times.get(kind)
        if times is None:
            times = self._sw_times[kind] = deque(maxlen=HANDLER_SAMPLES)
        times.append(seconds)

    def _sw_handled_s(self, msg: Any) -> tuple[float, ...]:
        if isinstance(msg, Request):
            msg = msg.message
        return tuple(self._sw_times.get(type(msg), ()))

    def _sw_unknown(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, ActorSystemMessage):
            return  # a runtime notice this actor does not handle
        if isinstance(msg, ErrorReply):  # answering it with another would never end
            self.log.warning("%s: unexpected error reply: %s", self.path, msg.message)
            return
        if type(msg) in CHILD_REQUESTS:  # (sent to a worker's path as if to a supervisor)
            self._sw_reject(sender, not_a_supervisor(self.path, "actor"))
            return
        name = type(msg).__name__
        self.log.warning("%s: no handler for message type %s", self.path, name)
        self._sw_reject(
            sender,
            UnknownMessage(
                f"{self.path}: no handler for message type {name!r} (define receiveMsg_{name})",
                self.path,
            ),
        )

    def _sw_refuse(self, msg: Any, sender: Any, error: Any) -> None:
        """Answer ``msg`` with ``error`` (a request's caller waits on the request's id)."""
        if isinstance(msg, Request):
            sender = ReplyTo(msg.reply_to, msg.id)
        self._sw_reject(sender, error)

    def _sw_reject(self, sender: Any, error: Any) -> None:
        if sender is None or sender == self.myAddress or sender == self.supervisor:
            return
        reply = ErrorReply.of(error)
        if type(sender) is ReplyTo:
            # (it confirms this request alone: what came before may not be kept yet)
            self.send(sender.address, Reply(sender.id, reply, alone=True))
        else:
            self.send(sender, reply)

    def _sw_report(
        self,
        msg: Any,
        sender: Any,
        exc: BaseException,
        failure_id: int | None = None,
        during: str = "message",
    ) -> None:
        info = classify(exc)
        self.log.debug("%s: handler failed: %r", self.path, exc)
        if self._sw_tracing is not None:
            self._sw_tracing.failed(self, exc)
        self.send(
            self.supervisor,
            FailureReport(
                self.path,
                self.incarnation,
                info,
                msg,
                sender,
                brief_traceback(exc),
                failure_id,
                during,
                self._sw_handled_s(msg),
            ),
        )

    def _sw_mark_dirty(self) -> None:
        self._sw_dirty = True

    def _sw_checkpoint(self) -> None:
        try:
            state = self.snapshot()
        except Exception:
            self.log.exception("%s: snapshot() failed; checkpoint skipped", self.path)
            self._sw_flush_outbox()
            again, self._sw_again = self._sw_again, None
            for address, reply in again or ():  # (as the first answers: none can be kept)
                self.send(address, reply)
            return
        self._sw_dirty = False
        replies, self._sw_outbox = tuple(self._sw_outbox or ()), None
        if self._sw_again is not None:  # given again: they go with this state too
            replies += tuple(self._sw_again)
            self._sw_again = None
        if self._sw_saved is not None and self._sw_state_file is None:
            try:
                self._sw_saved = pickle.dumps((state, ()), pickle.HIGHEST_PROTOCOL)
            except Exception:
                self.log.exception("%s: state does not pickle; a retry rolls back less", self.path)
        if self._sw_state_file is not None and self._sw_file(state, replies):
            for address, reply in replies:  # the state they reflect is safe: they can go
                self.send(address, reply)
            if not self._sw_durable:
                return
            replies = ()
        acks = self._sw_take_acks() if self._sw_state_file is None else ()
        checkpoint = Checkpoint(
            self.path,
            self.incarnation,
            state,
            self._sw_last_reply,
            replies,
            acks,
            self._sw_lanes.snapshot(),
        )
        self.send(self.supervisor, checkpoint)

    def _sw_file(self, state: Any, replies: tuple[tuple[Any, Reply], ...]) -> bool:
        """Write the checkpoint file; False (the supervisor keeps it instead) if that fails."""
        assert self._sw_state_file is not None
        filed = self._sw_filed
        for _, reply in replies:
            filed[reply.id] = reply.value
            filed.move_to_end(reply.id)
        while len(filed) > _REPLIES_FILED:
            filed.popitem(last=False)
        try:
            saved = self._sw_state_file.write(
                state, tuple(filed.items()), self._sw_lanes.snapshot()
            )
        except Exception:
            self.log.exception("%s: checkpoint not kept; its supervisor keeps it", self.path)
            with contextlib.suppress(Exception):  # its older file must not win over that
                self._sw_state_file.discard()
            self._sw_state_file = None
            return False
        if self._sw_saved is not None:
            self._sw_saved = saved
        return True

    def _sw_roll_back(self) -> None:
        """retry_from_checkpoint: a failed message leaves nothing for the next to build on."""
        assert self._sw_saved is not None
        try:
            self.restore(pickle.loads(self._sw_saved)[0])
        except Exception:
            self.log.exception("%s: restore() failed after a failure", self.path)

    def _sw_restore_file(self, init: Init) -> None:
        """Take the newest checkpoint an earlier instance filed, if newer than ``init``'s."""
        self._sw_state_file = open_state(init.state_dir, init.path, init.incarnation)
        self._sw_durable = init.durable
        try:  # (its own number too: a predecessor the root never heard of may have had it)
            found = latest(init.state_dir, init.path, init.incarnation + 1)
        except Exception:
            self.log.exception("%s: checkpoint unreadable; the supervisor's is used", self.path)
            return
        if found is None:
            return
        source, state, replies, marks = found
        self._sw_lanes.learn(marks)
        for request_id, reply in replies:  # answered once, whichever state wins
            self._sw_handled.setdefault(request_id, reply)
            self._sw_filed[request_id] = reply
        newer = source > init.restored_from
        if newer or (source == init.restored_from and not init.restored_final):
            self.restored_state = state

    # -- the tree's protocol ------------------------------------------------------------
    def _sw_resolver(self) -> Any:
        return self.root

    def _sw_on_init(self, init: Init, sender: Any) -> None:
        self.path = init.path
        ACTOR_PATH.set(init.path)  # (until receiveMessage puts the previous back)
        self.supervisor = init.supervisor
        self.root = init.root
        self.incarnation = init.incarnation
        self._sw_use_clock(init.clock_id)
        node = os.environ.get(NODE_ENV, "")
        local = init.node == node  # (a pid says nothing across hosts)
        if not local and self._sw_placed is None:  # on another node: it starts when told to
            self._sw_placed = init
            self.send(init.supervisor, Placed(init.path, init.incarnation, os.getpid(), node))
            self.after(PLACED_WAIT_S, (WAKE, "placed", PLACED_WAIT_S))
            return
        if init.hold_limit != self._sw_hold_limit:
            self._sw_hold_limit = init.hold_limit
        if init.tracing and self._sw_tracing is None:
            self._sw_trace_with(init.tracing)
        if init.restored_state is not None or self.restored_state is not None:
            # (None is the class's: an actor's attributes stay few enough for a small dict)
            self.restored_state = init.restored_state
        if init.options:
            self.options = dict(init.options)
        if init.logger_path:  # (an idle actor holds few attributes: see test_many_actors)
            self._sw_logger_path = init.logger_path
        if self._sw_log is not None:  # (one used before it knew its path)
            self._sw_log = None
        for request_id, reply in init.replies:
            self._sw_handled[request_id] = reply
        if init.takes_over:
            self._sw_takes_over = init.takes_over
        if self._sw_held:
            self._sw_own_handovers()
        if init.marks:
            self._sw_lanes.learn(init.marks)
        if init.supervisor_pid and init.supervisor_pid != os.getpid():
            name_process(ACTOR_PROCESS_PREFIX + init.path.rsplit("/", 1)[-1])
            tune_own_process()
            # a process of its own, forked from its supervisor: what it inherited lives
            # as long as it does, so the garbage collector need not scan it again
            gc.freeze()
        checkpointing = type(self).snapshot is not ManagedActor.snapshot
        if checkpointing and init.checkpoint == "message":
            self._sw_after = self._sw_checkpoint
            self._sw_checkpoint_each = True
            # only on its supervisor's node, which forked it: an instance placed on another
            # node keeps its state with its supervisor, which any node can restore
            if local and usable(init.state_dir):
                self._sw_restore_file(init)
            if init.retry_from_checkpoint:  # what a retry goes back to until the next one
                try:
                    self._sw_saved = pickle.dumps((self.restored_state, ()), -1)
                except Exception:
                    self.log.exception("%s: restored state does not pickle", self.path)
        elif checkpointing and isinstance(init.checkpoint, (int, float)):
            self._sw_after = self._sw_mark_dirty
            self.after(float(init.checkpoint), (WAKE, "checkpoint", float(init.checkpoint)))
        previous = set_owner(self)  # caches created in on_start register with this actor
        try:
            if fenced():  # cut off from the leader, which places it elsewhere: never both
                node = os.environ.get(NODE_ENV, "")
                raise ConnectionRefusedError(f"node {node} has fenced itself off its leader")
            self.on_start()
        except Exception as exc:
            set_owner(previous)
            held = tuple(Redelivery(m, s) for m, s in self._sw_held)
            self._sw_held = ()
            self._sw_mode = _FAILED
            self.send(
                self.supervisor,
                Started(
                    self.path,
                    self.incarnation,
                    False,
                    os.getpid(),
                    classify(exc),
                    brief_traceback(exc),
                    (*init.redeliver, *held),
                    os.environ.get(NODE_ENV, ""),
                ),
            )
            if fenced():  # nobody may be left to release it: it leaves by itself
                self._sw_on_release(None, None)
            return
        set_owner(previous)
        self._sw_mode = _RUNNING
        self._sw_table = self._sw_fast
        if self.incarnation > 1 and not init.fresh:  # (after another instance of its path)
            self._sw_eager_until = time.monotonic() + EAGER_ACK_S
        self.send(
            self.supervisor, Started(self.path, self.incarnation, True, os.getpid(), node=node)
        )
        for item in init.redeliver:
            self._sw_redeliver(item.message, item.sender, item.failure_id)
        waiting = self._sw_held
        if waiting:
            self._sw_held = ()
        for waiting_msg, waiting_sender in waiting:
            self.receiveMessage(waiting_msg, waiting_sender)

    def _sw_trace_with(self, channel: str) -> None:
        """OpenTelemetry on: every message this instance handles goes through a span.

        Only this instance changes (its dispatch is wrapped, its fast path left unused): an
        actor of a system that does not trace runs the code it always ran.
        """
        from ._tracing import tracing_for

        tracing = self._sw_tracing = tracing_for(channel)
        self._sw_dispatch = functools.partial(  # type: ignore[method-assign]
            tracing.dispatch, self, self._sw_dispatch
        )
        self._sw_fast = {}

    def _sw_on_standby(self, msg: Standby, sender: Any) -> None:
        """A warm spare: its process is named and what it inherited frozen now, not at the
        takeover; a child's spare (not a Pool's: starts come in runs) makes the pages it
        alone maps writable too (they are its own already: what it wrote, and what its
        supervisor copied for itself after the fork), so its takeover takes no fault on
        them. The ``Init`` that comes then starts it like any new instance."""
        if self._sw_mode != _PENDING or self.path:
            return
        if msg.supervisor_pid and msg.supervisor_pid != os.getpid():
            name_process(ACTOR_PROCESS_PREFIX + msg.path.rsplit("/", 1)[-1])
            gc.freeze()
            if msg.writable:
                make_own_pages_writable()
        self.send(sender, StandbyReady(msg.path, os.getpid()))

    def _sw_on_proceed(self, msg: Proceed, sender: Any) -> None:
        init = self._sw_placed
        if init is not None and self._sw_mode == _PENDING:
            self._sw_on_init(init, sender)

    def _sw_redeliver(self, msg: Any, sender: Any, failure_id: int | None) -> None:
        if type(msg) is Handover:
            self._sw_on_handover(msg, sender)
        elif type(msg) is Told:
            self._sw_on_told(msg, sender)
        elif isinstance(msg, Request):
            self._sw_on_request(msg, sender, failure_id)
        elif self._sw_dispatch(msg, sender, failure_id) and failure_id is not None:
            self._sw_retry_done(failure_id)

    def _sw_on_request(self, req: Request, sender: Any, failure_id: int | None = None) -> None:
        if self._sw_not_mine(req, sender):
            return
        if self._sw_mode != _RUNNING:
            self._sw_hold_or_forward(req, sender)
            return
        if req.seq and failure_id is None:
            self._sw_in_order(req, sender)
        else:
            self._sw_handle_request(req, sender, failure_id)

    # -- each sender's messages in order, once --------------------------------------------
    def _sw_on_told(self, msg: Told, sender: Any) -> None:
        if self._sw_not_mine(msg, sender):
            return
        if self._sw_mode != _RUNNING:
            self._sw_hold_or_forward(msg, sender)
        else:
            self._sw_in_order(msg, sender)

    def _sw_not_mine(self, msg: Told | Request, sender: Any, forwarded: bool = False) -> bool:
        """Whether ``msg`` is numbered for another path, and so not this instance's to handle
        (it is handed on: see :func:`hand_on_misdirected`); one that comes before the instance
        knows its path is looked at once it does."""
        if not msg.to or msg.to == self.path or not self.path:
            return False
        hand_on_misdirected(self, msg, sender, forwarded, self.log)
        return True

    def _sw_in_order(self, msg: Told | Request, sender: Any) -> None:
        """Handle ``msg`` if it is its channel's next; hold it back if it overtook one."""
        self._sw_taken_at = time.monotonic()  # (how long it has been idle: passivation)
        lane = self._sw_lanes.lane(msg.chan, msg.base, msg.reply_to)
        if lane.early and min(lane.early) < lane.expected:
            self._sw_drop_handled(lane)
        if msg.seq == lane.expected:
            self._sw_run_lane(lane, msg, sender)
        elif msg.seq > lane.expected:
            lane.early[msg.seq] = (msg, sender)
            if not self._sw_gap_due:
                self._sw_gap_due = True
                self.after(GAP_S, (WAKE, "gap"), key="gap")
        else:
            self._sw_handle_again(lane, msg, sender)

    def _sw_run_lane(self, lane: Lane, msg: Told | Request, sender: Any) -> None:
        while True:
            if self._sw_again is not None:  # (kept before this message is taken)
                self._sw_settle_again()
            lane.expected = msg.seq + 1
            self._sw_lane_at, self._sw_envelope = (lane, msg.seq), (msg, sender)
            try:
                if isinstance(msg, Request):
                    self._sw_handle_request(msg, sender)
                else:
                    lane.owed = True  # (if it stops itself meanwhile, it confirms as it stops)
                    self.receiveMessage(msg.message, msg.reply_to)
                    self._sw_confirm()
            finally:
                self._sw_lane_at = self._sw_envelope = None
            if self._sw_mode != _RUNNING or not lane.early:
                return
            nxt = lane.early.pop(lane.expected, None)
            if nxt is None:
                return
            msg, sender = nxt

    def _sw_handle_again(self, lane: Lane, msg: Told | Request, sender: Any) -> None:
        """A message its channel had already: a request is answered (once) while its answer
        is remembered, and dropped after (never run twice); a tell is confirmed again (its
        sender did not hear of it). One its lane went on without is handled, late."""
        if msg.seq in lane.skipped:  # late, after its lane went on without it
            lane.skipped.discard(msg.seq)
            self.log.warning("%s: message %d of %s came late", self.path, msg.seq, msg.chan)
            if isinstance(msg, Request):
                self._sw_handle_request(msg, sender)
            else:
                self.receiveMessage(msg.message, msg.reply_to)
        elif isinstance(msg, Request):
            if msg.id in self._sw_handled:  # its answer confirms it alone: this, what came
                lane.owed = True  # before it (lost confirmations are made good)
                self._sw_handle_request(msg, sender)
                self._sw_confirm()
            else:  # handled so long ago that its answer is forgotten (its caller had it)
                self.log.debug("%s: request %s handled long ago; dropped", self.path, msg.id)
        else:
            self.log.debug("%s: tell %s of %s handled already", self.path, msg.seq, msg.chan)
            lane.owed = True
            if self._sw_keeps_with_supervisor():
                self._sw_again_later()  # with the next checkpoint, as the first time
            else:
                self._sw_send_acks()

    def _sw_drop_handled(self, lane: Lane) -> None:
        for seq in [s for s in lane.early if s < lane.expected]:
            self._sw_handle_again(lane, *lane.early.pop(seq))
        nxt = lane.early.pop(lane.expected, None)
        if nxt is not None:
            self._sw_run_lane(lane, *nxt)

    def _sw_on_resync(self, msg: Resync, sender: Any) -> None:
        lane = self._sw_lanes.lanes.get(msg.chan)
        if lane is not None and msg.base > lane.expected and self._sw_mode == _RUNNING:
            lane.expected = msg.base
            self._sw_drop_handled(lane)

    def _sw_confirm(self) -> None:
        """Confirm the tells handled (their checkpoint kept) to their senders: soon, together.

        An actor whose checkpoints only its supervisor keeps (placed on another node)
        confirms through it, with the state they reflect. Just after a restart, each is
        confirmed at once, so a message that kills the process again is the one its
        sender blames.
        """
        if self._sw_keeps_with_supervisor():
            return  # _sw_checkpoint hands them to the supervisor
        if self._sw_eager_until and time.monotonic() < self._sw_eager_until:
            self._sw_send_acks()
        elif not self._sw_ack_due:
            self._sw_ack_due = True
            self.after(ACK_S, (WAKE, "ack"), key="ack")

    def _sw_take_acks(self) -> tuple[tuple[Any, Acked], ...]:
        taken = []
        for chan, lane in self._sw_lanes.lanes.items():
            if lane.owed:
                lane.owed = False
                taken.append((lane.reply_to, Acked(self.path, chan, lane.done() - 1)))
        return tuple(taken)

    def _sw_send_acks(self) -> None:
        self._sw_ack_due = False
        if self._sw_keeps_with_supervisor():  # (they go with its checkpoints)
            return
        for chan, lane in self._sw_lanes.lanes.items():
            if lane.owed:
                lane.owed = False
                self.send(lane.reply_to, Acked(self.path, chan, lane.done() - 1))

    def _sw_look_at_gaps(self) -> None:
        """Held-back messages still wait for a missing one: ask their senders again."""
        self._sw_gap_due = False
        waiting = False
        for chan, lane in list(self._sw_lanes.lanes.items()):
            if not lane.early:
                continue
            waiting = True
            if lane.gap_mark != lane.expected:  # progress since the last look
                lane.gap_mark, lane.gap_looks = lane.expected, 0
                continue
            lane.gap_looks += 1
            if lane.gap_looks < GAP_LOOKS:
                self.send(lane.reply_to, SendAgain(self.path, chan, lane.expected))
                continue
            missing = lane.expected  # its sender does not answer: it died with what it sent
            self.log.warning(
                "%s: message %d of %s never came; going on without it", self.path, missing, chan
            )
            lane.skip_to(min(lane.early))
            self._sw_drop_handled(lane)
        if waiting and self._sw_mode == _RUNNING:
            self._sw_gap_due = True
            self.after(GAP_S, (WAKE, "gap"), key="gap")

    def _sw_on_acked_msg(self, msg: Acked, sender: Any) -> None:
        self._sw_on_acked(msg)

    def _sw_on_send_again_msg(self, msg: SendAgain, sender: Any) -> None:
        self._sw_on_send_again(msg, sender)

    def _sw_handle_request(self, req: Request, sender: Any, failure_id: int | None = None) -> None:
        if failure_id is None and req.deadline and time.time() > req.deadline:
            # its caller has given up (and was told so): nobody waits for what it would do
            self.log.debug("%s: request %s came after its deadline; not handled", self.path, req.id)
            return
        handled = self._sw_handled
        if req.id in handled:
            previous = handled[req.id]
            if previous is not None:
                self._sw_answer_again(req.reply_to, Reply(req.id, previous))
            elif failure_id is None:
                # still being handled (or recovered): the one answer goes to this sender too
                others = self._sw_also_answer.setdefault(req.id, [])
                if req.reply_to not in others:
                    others.append(req.reply_to)
            if failure_id is not None:
                self._sw_retry_done(failure_id)
            return
        handled[req.id] = None
        if len(handled) > _REPLAY_MEMORY:
            forgotten, _ = handled.popitem(last=False)
            self._sw_also_answer.pop(forgotten, None)
        envelope, self._sw_envelope = self._sw_envelope, (req, sender)
        try:
            ok = self._sw_dispatch(
                req.message,
                ReplyTo(req.reply_to, req.id, req.trace or req.id, req.deadline),
                failure_id,
            )
        finally:
            self._sw_envelope = envelope
        if ok and failure_id is not None:
            self._sw_retry_done(failure_id)

    def _sw_on_retry(self, retry: Retry, sender: Any) -> None:
        if self._sw_mode != _RUNNING:
            self._sw_hold_or_forward(retry, sender)
            return
        if self._sw_must_wait():  # it may roll the state back: not under a handler's feet
            self._sw_wait_turn(ManagedActor._sw_on_retry, retry, sender)
            return
        failure = Failure(
            self.path,
            retry.info,
            retry.message,
            retry.level,
            retry.attempt,
            retry.strategy,
            retry.traceback,
        )
        try:
            if retry.level <= 2 and self._sw_saved is not None:  # retry_from_checkpoint
                self.restore(pickle.loads(self._sw_saved)[0])  # (others' successes since)
            if retry.level <= 2:  # the hooks are for retries in place, not redeliveries
                if retry.strategy == "adjust":
                    self.on_adjust(failure, retry.attempt)
                self.on_retry(failure)
        except Exception as exc:
            self._sw_report(retry.message, retry.sender, exc, retry.failure_id, "retry")
            return
        sender = retry.sender
        if type(sender) is ReplyTo and self._sw_handled.get(sender.id) is not None:
            # answered meanwhile (the same request came again and went through)
            self._sw_answer_again(sender.address, Reply(sender.id, self._sw_handled[sender.id]))
            self._sw_retry_done(retry.failure_id)
        elif retry.message is None:
            self._sw_retry_done(retry.failure_id)
        elif isinstance(retry.message, Request):
            self._sw_on_request(retry.message, retry.sender, retry.failure_id)
        elif self._sw_dispatch(retry.message, retry.sender, retry.failure_id):
            self._sw_retry_done(retry.failure_id)

    def _sw_own_handovers(self) -> None:
        """Its ``Init`` has come: of the requests callers handed straight to it as a spare
        (and it held), those handed after the crash it takes over from are its own, as if
        its supervisor had handed them; the others are not (its supervisor hands them on)."""
        kept: list[tuple[Any, Any]] = []
        for m, s in self._sw_held:
            m = self._sw_own_handover(m) if type(m) is Handover else m
            if m is not None:
                kept.append((m, s))
        self._sw_held = kept

    def _sw_own_handover(self, msg: Handover) -> Handover | None:
        """``msg`` as its own (a plain handover), or None if its caller handed it straight
        to this spare after a crash it did not take over from (its supervisor hands it on)."""
        if not msg.crashed:
            return msg
        return Handover(msg.request) if msg.crashed == self._sw_takes_over else None

    def _sw_on_handover(self, msg: Handover, sender: Any) -> None:
        if msg.crashed and self.path:  # its caller's, straight to it as a spare, after Init
            owned = self._sw_own_handover(msg)
            if owned is None:
                return
            msg = owned
        if self._sw_mode != _RUNNING:
            self._sw_hold_or_forward(msg, sender)
            return
        self._sw_on_request(msg.request, msg.request.reply_to)
        done = HandoverDone(self.path, self.incarnation, msg.request.id)
        self.send(self.supervisor, done)

    def _sw_on_gave_up(self, msg: GaveUp, sender: Any) -> None:
        if self._sw_handled.get(msg.request_id, 0) is None:  # not answered: it failed
            del self._sw_handled[msg.request_id]
        for address in self._sw_also_answer.pop(msg.request_id, ()):
            self.send(address, Reply(msg.request_id, msg.error, alone=True))

    def _sw_on_run_hooks(self, msg: RunHooks, sender: Any) -> None:
        failure = Failure(
            self.path,
            classify(RuntimeError(msg.reason or "requested")),
            None,
            msg.level,
            1,
            "requested",
        )
        try:
            if msg.level >= 2:
                self.on_adjust(failure, 1)
            self.on_retry(failure)
        except Exception as exc:
            self.send(sender, HooksDone(msg.request_id, self.path, False, repr(exc)))
            return
        self.send(sender, HooksDone(msg.request_id, self.path, True))

    def _sw_on_health_check(self, msg: HealthCheck, sender: Any) -> None:
        if self._sw_mode != _RUNNING:
            return
        info = None
        try:
            verdict = self.health()
        except Exception as exc:  # classified like a failing handler (an outage, a fault...)
            verdict = f"health() raised {type(exc).__name__}: {exc}"
            info = classify(exc)
        ok = verdict is True or verdict is None
        detail = "" if ok else (verdict if isinstance(verdict, str) else "health() said no")
        if not ok and info is None and isinstance(verdict, str):
            info = classify(Unhealthy(verdict))  # "redis does not answer": an outage
        self.send(sender, HealthReport(self.path, self.incarnation, msg.seq, ok, detail, info))

    def _sw_on_activity_check(self, msg: ActivityCheck, sender: Any) -> None:
        if self._sw_mode == _RUNNING:
            activity, busy = self._sw_lanes.activity()
            taken = self._sw_taken_at
            idle = time.monotonic() - taken
            report = ActivityReport(self.path, self.incarnation, activity, busy, idle, taken)
            self.send(sender, report)

    def _sw_on_chaos(self, msg: Chaos, sender: Any) -> None:
        if msg.kind == "hang":
            self.log.warning("%s: chaos: hanging in a handler on purpose", self.path)
            while True:  # on purpose: the tree must find and replace it
                time.sleep(1.0)
        if msg.kind == "leak":
            self._sw_leaked.append(resident_buffer(msg.nbytes))
        else:
            self._sw_faults += msg.count
            self._sw_table = {}  # every message goes the long way while faults are armed

    def _sw_on_batch(self, msg: Batch, sender: Any) -> None:
        for item in msg.items:
            self.receiveMessage(item, sender)

    def _sw_on_memory_pressure(self, msg: MemoryPressure, sender: Any) -> None:
        if self._sw_mode != _RUNNING:
            self.send(sender, MemoryFreed(msg.id, self.path, os.getpid(), error="not running"))
            return
        before = rss()
        caches = hook = 0
        error = ""
        previous = set_owner(self)
        try:
            for cache in list(self._sw_caches):
                caches += int(cache.cleanup(msg.level) or 0)
            hook = int(self.on_memory_pressure(MemoryLevel(msg.level)) or 0)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.log.warning("%s: memory cleanup failed: %s", self.path, error)
        finally:
            set_owner(previous)
        if msg.collect:
            collect_garbage()
        self.send(
            sender, MemoryFreed(msg.id, self.path, os.getpid(), caches, hook, before, rss(), error)
        )

    def _sw_on_forwarded(self, msg: Forwarded, sender: Any) -> None:
        inner = msg.message
        if type(inner) in (Request, Told) and self._sw_not_mine(inner, msg.sender, True):
            return
        if isinstance(msg.message, Request):
            self._sw_on_request(msg.message, msg.sender)
        elif type(msg.message) in _INTERNAL:
            self._sw_receive_other(msg.message, msg.sender)
        else:
            self.receiveMessage(msg.message, msg.sender)

    def _sw_on_reply_msg(self, msg: Reply, sender: Any) -> None:
        self._sw_on_reply(msg)

    def _sw_running(self) -> bool:
        return self._sw_mode == _RUNNING

    def _sw_saved_state(self) -> bool:
        return self._sw_saved is not None

    def _sw_checkpoints_each(self) -> bool:
        return self._sw_checkpoint_each

    def _sw_origin(self) -> tuple[Any, Any, int | None] | None:
        msg = self._sw_msg
        if msg is None:
            return None
        failure_id = self._sw_failure_id
        if failure_id is not None:  # a retried message is done when its calls are
            self._sw_outstanding[failure_id] = self._sw_outstanding.get(failure_id, 0) + 1
        return (msg, self._sw_sender, failure_id)

    def _sw_callback(self, pending: Any, fn: Callable[[Any], None], value: Any) -> None:
        origin = pending.origin
        msg, sender, failure_id = origin if origin is not None else (None, None, None)
        self._sw_msg, self._sw_sender, self._sw_failure_id = msg, sender, failure_id
        try:
            fn(value)
        except Exception as exc:
            # a callback that raises fails the message that made the call: it is retried
            if failure_id is not None:
                self._sw_outstanding.pop(failure_id, None)
            self._sw_report(msg, sender, exc, failure_id, during="reply")
            return
        finally:
            self._sw_msg = self._sw_sender = self._sw_failure_id = None
        if failure_id is not None and failure_id in self._sw_outstanding:
            self._sw_outstanding[failure_id] -= 1
            self._sw_retry_done(failure_id)

    def _sw_retry_done(self, failure_id: int | None) -> None:
        """A retried message went through (and the calls it made came back fine)."""
        if failure_id is None or self._sw_outstanding.get(failure_id, 0) > 0:
            return
        self._sw_outstanding.pop(failure_id, None)
        self.send(self.supervisor, RetryOutcome(self.path, failure_id, True))

    def _sw_on_resolved_msg(self, msg: Resolved, sender: Any) -> None:
        self._sw_on_resolved(msg)

    def _sw_on_address_update_msg(self, msg: AddressUpdate, sender: Any) -> None:
        self._sw_on_address_update(msg)

    def _sw_on_crash_notice_msg(self, msg: CrashNotice, sender: Any) -> None:
        self._sw_on_crash_notice(msg)

    def _sw_on_route_state_msg(self, msg: RouteState, sender: Any) -> None:
        self._sw_on_route_state(msg)
        if msg.state in ("open", "forced_open"):
            self.degraded.add(msg.path)
        else:
            self.degraded.discard(msg.path)
        try:
            self.on_dependency_state(msg.path, msg.state)
        except Exception as exc:
            self._sw_report(None, None, exc, during="hook")

    def _sw_on_retire(self, msg: Retire, sender: Any) -> None:
        self._sw_retire(msg.forward)
        if msg.passivate:  # passivated: what reaches it from now on goes to the root, which
            self._sw_mode = _FAILED  # holds it (in order) for the next instance
            self._sw_forwarded_at = time.monotonic()  # (it leaves once strays stop coming)
            held, self._sw_held = self._sw_held, ()
            for m, s in held:
                self.send(self.root, Stray(self.path, m, s))

    def _sw_retire(self, forward: bool) -> None:
        self._sw_cancel_turns()  # (their messages go to the successor with what is held)
        replies: tuple[tuple[Any, Reply], ...] = ()
        if self._sw_outbox:  # a handler stopped it: its answers go with the state they reflect
            if self._sw_state_file is not None:
                self._sw_checkpoint()  # filed here first, then they leave
            else:  # with the final state, which its supervisor keeps before sending them on
                replies, self._sw_outbox = tuple(self._sw_outbox), None
        if self._sw_again is not None:  # given again: with the final state too
            replies, self._sw_again = (*replies, *self._sw_again), None
        was_running = self._sw_mode == _RUNNING
        self._sw_table = {}
        self._sw_mode = _RETIRED if forward else _STOPPED
        final, has_state = None, False
        if was_running:
            try:
                self.on_stop()
            except Exception:
                self.log.exception("%s: on_stop() failed", self.path)
            if type(self).snapshot is not ManagedActor.snapshot:
                try:
                    final, has_state = self.snapshot(), True
                except Exception:
                    self.log.exception("%s: snapshot() failed at stop", self.path)
        lanes = self._sw_lanes
        self._sw_held = [*lanes.held_back(), *self._sw_held]  # for the successor, first
        if not forward:  # refused with the final state: a process about to exit may not send
            replies += self._sw_refuse_held_requests()
        acks: tuple[tuple[Any, Acked], ...] = ()
        if self._sw_keeps_with_supervisor():  # with the final state, as its answers
            acks = self._sw_take_acks()
        else:
            self._sw_send_acks()
        retired = Retired(
            self.path,
            self.incarnation,
            final,
            has_state,
            lanes.snapshot(),
            replies,
            not forward,
            acks,
        )
        self.send(self.supervisor, retired)
        # it lives until its supervisor sends Release: a forwarding instance forwards till
        # then; a leaving one makes sure Retired got there (a process that exits right after
        # sending may lose what it sent), and leaves by itself if no answer comes. In
        # process nothing sent is lost: a leaving one leaves now (its supervisor sends none)
        if not forward and self._sw_clock is not None:
            self._sw_exit()
        elif not forward:
            self.after(LEAVE_WAIT_S, (WAKE, "release"), key="release")

    def _sw_refuse_held_requests(self) -> tuple[tuple[Any, Reply], ...]:
        """The requests it holds, answered ``ActorStopped`` (it stops for good)."""
        refused, kept = [], []
        error = ErrorReply.of(ActorStopped(f"{self.path} stopped before handling it", self.path))
        for m, s in self._sw_held:
            if isinstance(m, Request):
                refused.append((m.reply_to, Reply(m.id, error, alone=True)))
            else:
                kept.append((m, s))
        self._sw_held = kept
        return tuple(refused)

    def _sw_on_successor(self, msg: Successor, sender: Any) -> None:
        self._sw_successor = msg.address
        held, self._sw_held = self._sw_held, ()
        for m, s in held:
            self.send(msg.address, Forwarded(m, s))

    def _sw_exit(self) -> None:
        if self._sw_held and self._sw_successor is None:
            for m, s in self._sw_held:
                self._sw_refuse(
                    m, s, ActorStopped(f"{self.path} stopped before handling it", self.path)
                )
            self._sw_held = []
        self.send(self.myAddress, ActorExitRequest(recursive=self._sw_exit_children))

    def _sw_on_release(self, msg: Release | None, sender: Any) -> None:
        """Leave once nothing has come to forward for a while: senders that still have
        this address (a burst under way) would otherwise lose what is in flight."""
        quiet = time.monotonic() - self._sw_forwarded_at
        if quiet < FORWARD_QUIET_S:
            self.after(FORWARD_QUIET_S - quiet, (WAKE, "release"), key="release")
        else:
            self._sw_exit()

    def _sw_on_exit_request(self, msg: ActorExitRequest, sender: Any) -> None:
        if self._sw_turns or self._sw_backlog:
            self._sw_cancel_turns()
        if self._sw_mode == _RUNNING:
            self._sw_table = {}
            self._sw_mode = _STOPPED
            try:
                self.on_stop()
            except Exception:
                self.log.exception("%s: on_stop() failed", self.path)
        if self._sw_tracing is not None:  # its process ends next: its spans leave first
            self._sw_tracing.flush()

    def _sw_on_wakeup(self, msg: WakeupMessage, sender: Any) -> None:
        if msg.payload == TICK:
            for payload in self._sw_tick():
                self._sw_on_timer(payload)
        elif self._sw_mode == _RUNNING:
            self._sw_dispatch(msg, sender)  # the actor's own wakeupAfter

    def _sw_on_timer(self, payload: Any) -> None:
        if not (isinstance(payload, tuple) and payload and payload[0] == WAKE):
            if self._sw_mode == _RUNNING:  # the actor's own self.after(...)
                self._sw_dispatch(WakeupMessage(0, payload), self.myAddress)
            return
        kind = payload[1]
        if self._sw_caller_timer(kind, payload[-1]):
            pass
        elif kind == "async":
            pass  # coroutines' due timers and sockets: the loop's turn follows the tick
        elif kind == "ack":
            self._sw_send_acks()
        elif kind == "gap":
            self._sw_look_at_gaps()
        elif kind == "release":
            self._sw_on_release(None, None)
        elif kind == "placed" and self._sw_mode == _PENDING:  # no answer: it was given up
            self._sw_mode = _STOPPED
            self._sw_exit()
        elif kind == "checkpoint" and self._sw_mode == _RUNNING:
            if self._sw_dirty:
                self._sw_checkpoint()
            self.after(payload[2], payload)
