"""The breaker actor: a circuit breaker in front of a protected child.

``Child("pay", Pay, breaker=Breaker(...))`` runs ``Pay`` as ``pay.protected``
and this actor as ``pay``. Every message to ``pay`` passes through here: while
the breaker lets it, it goes on to the protected actor with a call timeout and
the outcome feeds the breaker; while the breaker is open, the first fallback
that can answer does (a cached reply, another actor, a default, a durable
queue), else the caller gets ``BreakerOpen`` (a ``CircuitOpenError``). State
changes go to the root (which tells every caller, so callers fail fast
locally) and to the supervisor (which then holds the failures of dependents).
"""

from __future__ import annotations

import time
from typing import Any

from ..actors import ManagedActor
from ..actors._calls import DEADLINE_MARGIN_S, MAX_RESENDS
from ..actors._managed import _RETIRED as RETIRED
from ..actors._managed import _RUNNING as RUNNING
from ..actors._managed import _STOPPED as STOPPED
from ..actors._runtime import ActorSystemMessage
from ..actors.errors import (
    ActorStopped,
    BadMessage,
    BreakerOpen,
    HandlerError,
    Overloaded,
    StalwartError,
    Timeout,
    UnknownMessage,
)
from ..actors.messages import ErrorReply, QueuedForLater, Reply, ReplyTo, Request
from ..strategies import BreakerState, CircuitBreaker, CircuitOpenError
from ._queue import RequestQueue, decode
from ._state_dir import queue_file
from .messages import BreakerHealth, BreakerNote, ShedLoad
from .spec import (
    Alternative,
    Breaker,
    CachedReply,
    DefaultReply,
    QueueForLater,
    ReducedFunctionality,
)

_OPEN = (BreakerState.OPEN, BreakerState.FORCED_OPEN)
_NOT_COUNTED = (HandlerError, UnknownMessage, BadMessage)  # the caller's fault, not the callee's
_CACHE_KEPT = 10_000
HEALTH_EVERY_S = 0.5  # the root hears of a changed health score at most this often


class _InFlight:
    """A call relayed to the protected actor, waiting for its reply.

    ``caller`` is the request as the caller sent it; ``request`` as it went on.
    """

    __slots__ = ("caller", "expires", "permit", "request", "resends")

    def __init__(
        self, caller: Request, request: Request, permit: tuple[int, float], expires: float
    ) -> None:
        self.caller = caller
        self.request = request
        self.permit = permit
        self.expires = expires  # when it counts as timed out (monotonic)
        self.resends = 0


class BreakerActor(ManagedActor):
    """Hosts the breaker of ``options["protected"]`` (internal; declare ``Child(breaker=...)``)."""

    def on_start(self) -> None:
        spec: Breaker = self.options["breaker"]
        self.spec = spec
        self.protected: str = self.options["protected"]
        self.fallbacks = tuple(spec.fallback)
        self.fails_fast = all(isinstance(f, ReducedFunctionality) for f in self.fallbacks)
        self.cb = spec.build(
            self.path,
            record_on=(StalwartError,),
            ignore_on=_NOT_COUNTED,
            # DownstreamError, Timeout, PoisonMessageError, RecoveryFailed... count
        )
        self.cb.on_state_change(self.on_breaker_change)
        self.cache: dict[Any, tuple[float, Any]] = {}
        self.caching = any(isinstance(f, CachedReply) for f in self.fallbacks)
        self.inflight: dict[str, _InFlight] = {}  # relayed calls, oldest first
        self.sweep_due = False  # a timer will look for relayed calls that timed out
        self.sweep_at = 0.0  # when (monotonic)
        self.shedding = ""  # why calls are refused with Overloaded (memory emergency)
        self.queue: RequestQueue | None = None
        self.senders: dict[int, Any] = {}  # queued request -> its caller (this instance's)
        self.replaying = False
        for f in self.fallbacks:
            if isinstance(f, QueueForLater):
                file = f.file or queue_file(self.options["queues"], self.path)
                self.queue = RequestQueue(file)
        self.health_sent = self.cb.health()
        self.health_looked = 0.0  # when the score was last looked at (monotonic)
        self.health_due = False  # a timer will send the score if it changed
        if self.incarnation > 1:  # a new instance starts closed: its predecessor may not have
            self.tell_state()  # (the root, callers and the supervisor still take it as open)
        else:
            self.send(self.root, BreakerHealth(self.path, self.health_sent))
        self.replay()  # what an earlier run queued

    def on_stop(self) -> None:
        if self.queue is not None:
            self.queue.close()

    # -- every message for the protected actor ----------------------------------------------
    def receiveMessage(self, msg: Any, sender: Any) -> None:
        kind = type(msg)
        if kind is Request and self._sw_mode == RUNNING:
            if self._sw_not_mine(msg, sender):
                return  # (numbered for another path: handed on)
            if msg.seq:  # in its sender's order, behind the tells sent before it
                self._sw_in_order(msg, sender)
            else:
                self.relay(msg)
        elif kind is Reply and msg.id in self.inflight:
            self.relayed(msg)
        else:
            super().receiveMessage(msg, sender)

    def _sw_handle_request(self, req: Request, sender: Any, failure_id: int | None = None) -> None:
        if failure_id is None and self._sw_mode == RUNNING:
            self.relay(req)  # its turn on its sender's channel
        else:
            super()._sw_handle_request(req, sender, failure_id)

    def relay(self, req: Request) -> None:
        """A call for the protected actor: it goes on under the caller's request id.

        The common case is kept short (one message each way, the reply passed back
        as it came). The same id means a request resent by its caller is answered
        once by the protected actor.
        """
        if req.id in self.inflight:
            return  # sent again while it is being relayed: the one answer goes to its caller
        if self.shedding:
            error = Overloaded.shedding(self.path, self.shedding)
            self.send(req.reply_to, Reply(req.id, ErrorReply.of(error)))
            return
        try:
            permit = self.cb.permit()
        except CircuitOpenError as exc:
            self.degrade(req.message, self.caller_of(req), exc.remaining_s)
            return
        # the call ends at the breaker's timeout, or before, when its caller stops waiting:
        # then it counts as timed out (so a slow dependency opens the breaker in time) and
        # the caller gets the fallback or the error while it still listens
        wait = self.spec.call_timeout_s
        if req.deadline:
            wait = min(wait, req.deadline - time.time() - DEADLINE_MARGIN_S)
        ends = time.time() + self.spec.call_timeout_s
        ends = min(ends, req.deadline) if req.deadline else ends
        onward = Request(
            req.id, req.message, self.myAddress, req.trace or req.id, ends, context=req.context
        )
        # the permit holds the start time on the breaker's clock (time.monotonic)
        expires = permit[1] + max(0.0, wait)
        self.inflight[req.id] = _InFlight(req, onward, permit, expires)
        if not self.sweep_due or expires < self.sweep_at:
            self.sweep_due, self.sweep_at = True, expires
            self.after(expires - time.monotonic(), "sweep", key="sweep")
        self._sw_send_path(self.protected, onward)

    def relayed(self, reply: Reply) -> None:
        """The protected actor answered a relayed call: the reply goes back as it came."""
        entry = self.inflight.pop(reply.id)
        route = self._sw_routes.get(self.protected)
        if route is not None:
            route.out.forget(reply.id) if reply.alone else route.out.answered(reply.id)
            if route.stopped:
                self._sw_forget_if_ended(self.protected)
        value = reply.value
        if type(value) is not ErrorReply:
            self.outcome(entry.permit)
            if self.caching:
                self.remember(entry.request.message, value)
            self.send(entry.caller.reply_to, reply)
            return
        error = value.exception()
        self.outcome(entry.permit, error)
        if isinstance(error, _NOT_COUNTED):
            self.send(entry.caller.reply_to, reply)
            return
        self.degrade(
            entry.request.message, self.caller_of(entry.caller), self.cb.remaining_open_s, error
        )

    def caller_of(self, req: Request) -> ReplyTo:
        """The sender a relayed request's answers go to; calls made for it carry its trace."""
        caller = ReplyTo(req.reply_to, req.id, req.trace or req.id, req.deadline, req.context)
        self._sw_msg, self._sw_sender, self._sw_failure_id = req.message, caller, None
        return caller

    def sweep(self) -> None:
        """Relayed calls past their time (``call_timeout_s``, or their caller's deadline) fail
        with ``Timeout``."""
        now = time.monotonic()
        self.sweep_due = False
        for ident, entry in list(self.inflight.items()):
            if entry.expires > now:
                if not self.sweep_due or entry.expires < self.sweep_at:
                    self.sweep_due, self.sweep_at = True, entry.expires
                continue
            del self.inflight[ident]
            route = self._sw_routes.get(self.protected)
            if route is not None:
                if entry.request in route.waiting:
                    route.waiting.remove(entry.request)
                route.out.forget(ident)
            waited = entry.expires - entry.permit[1]
            error = Timeout(f"no reply from {self.protected} within {waited:.3g}s", self.protected)
            self.outcome(entry.permit, error)
            # it may still be handled later: queued and replayed, it keeps its id
            caller = self.caller_of(entry.caller)
            self.degrade(entry.request.message, caller, self.cb.remaining_open_s, error, ident)
        if self.sweep_due:
            self.after(max(0.0, self.sweep_at - now), "sweep", key="sweep")

    def _sw_resend_inflight(
        self,
        path: str,
        holder: Any = None,
        everything: bool = False,
        spare: tuple[Any, int] | None = None,
    ) -> None:
        super()._sw_resend_inflight(path, holder, everything, spare)
        if path != self.protected or holder is not None:
            return  # its own calls go again to the new instance once it is up
        route = self._sw_routes.get(path)
        for ident, entry in list(self.inflight.items()):
            if route is not None and entry.request in route.waiting:
                continue  # not sent yet: it goes out with the others
            entry.resends += 1
            if entry.resends > MAX_RESENDS:
                del self.inflight[ident]
                if route is not None:
                    route.out.forget(ident)
                error = ActorStopped(f"{path} kept dying while handling the request", path)
                self.outcome(entry.permit, error)
                caller = self.caller_of(entry.caller)
                self.degrade(entry.request.message, caller, self.cb.remaining_open_s, error)
                continue
            self._sw_send_path(path, self._sw_numbered(path, entry.request))  # its number

    def receiveMsg_object(self, msg: Any, sender: Any) -> None:
        """A message sent with ``tell``: it goes on as a call; its reply to the sender."""
        if isinstance(msg, ActorSystemMessage):
            return
        try:
            permit = self.cb.permit()
        except CircuitOpenError as exc:
            self.degrade(msg, sender, exc.remaining_s)
            return
        self.forward(msg, sender, permit)

    def forward(self, msg: Any, sender: Any, permit: tuple[int, float]) -> None:
        # should the call time out, the protected actor may still handle it later; a queued
        # replay then goes out under the same id, so it is handled once
        request_id = f"{self._sw_id_prefix}{next(self._sw_ids)}"

        def ok(reply: Any) -> None:
            self.outcome(permit)
            self.remember(msg, reply)
            self.answer(sender, reply)

        def failed(error: StalwartError) -> None:
            self.outcome(permit, error)
            if isinstance(error, _NOT_COUNTED):
                self.answer_error(sender, error)
            else:
                # a timed-out request may still be handled: replayed, it keeps its id
                same = request_id if isinstance(error, Timeout) else None
                self.degrade(msg, sender, self.cb.remaining_open_s, error, same)

        self.call(self.protected, msg, self.spec.call_timeout_s, ok, failed, request_id)

    # -- answers ------------------------------------------------------------------------------
    def answer(self, sender: Any, value: Any) -> None:
        if sender is not None and sender != self.myAddress:
            self.reply(sender, value)

    def answer_error(self, sender: Any, error: StalwartError) -> None:
        if sender is not None and sender != self.myAddress:
            self.reply_error(sender, error)

    def remember(self, msg: Any, reply: Any) -> None:
        if self.caching:
            try:
                self.cache[msg] = (time.monotonic(), reply)
            except TypeError:  # an unhashable message cannot be looked up later
                return
            if len(self.cache) > _CACHE_KEPT:
                self.cache.pop(next(iter(self.cache)))

    def degrade(
        self,
        msg: Any,
        sender: Any,
        remaining_s: float,
        error: StalwartError | None = None,
        request_id: str | None = None,
    ) -> None:
        """The protected actor cannot answer: the first fallback that can, does."""
        self.next_fallback(msg, sender, list(self.fallbacks), remaining_s, error, request_id)

    def next_fallback(
        self,
        msg: Any,
        sender: Any,
        left: list[Any],
        remaining_s: float,
        error: StalwartError | None,
        request_id: str | None = None,
    ) -> None:
        while left:
            f = left.pop(0)
            if isinstance(f, CachedReply):
                try:
                    hit = self.cache.get(msg)
                except TypeError:
                    hit = None
                if hit is not None and time.monotonic() - hit[0] <= f.ttl_s:
                    self.answer(sender, hit[1])
                    return
            elif isinstance(f, DefaultReply):
                self.answer(sender, f.value)
                return
            elif isinstance(f, Alternative):
                self.call(
                    f.path,
                    msg,
                    self.spec.call_timeout_s,
                    lambda reply: self.answer(sender, reply),
                    lambda exc: self.next_fallback(msg, sender, left, remaining_s, exc, request_id),
                )
                return
            elif isinstance(f, QueueForLater) and self.queue is not None:
                try:
                    ident = self.queue.put(self.path, msg, request_id)
                except BadMessage as exc:  # (cannot be stored without pickle)
                    error = exc
                    continue
                self.senders[ident] = sender
                self.answer(sender, QueuedForLater(self.path, ident))
                return
        self.answer_error(
            sender,
            error
            or BreakerOpen(
                f"{self.path}: circuit open, calls rejected for another {remaining_s:.2f}s",
                self.path,
                remaining_s,
            ),
        )

    # -- state changes and health ------------------------------------------------------------
    def outcome(self, permit: tuple[int, float], error: BaseException | None = None) -> None:
        """Record a call's outcome; the root hears of the new health score soon after."""
        self.cb.record(permit, error)
        if not self.health_due:  # at most one look per HEALTH_EVERY_S, however busy
            self.health_due = True
            due = self.health_looked + HEALTH_EVERY_S - time.monotonic()
            self.after(max(0.0, due), "health", key="health")

    def send_health(self) -> None:
        self.health_due = False
        self.health_looked = time.monotonic()
        score = self.cb.health()
        if score != self.health_sent:
            self.health_sent = score
            self.send(self.root, BreakerHealth(self.path, score))

    def on_breaker_change(self, cb: CircuitBreaker, old: BreakerState, new: BreakerState) -> None:
        self.tell_state()
        if new is BreakerState.OPEN:
            self.after(cb.remaining_open_s, "half-open", key="half-open")
        if new in (BreakerState.HALF_OPEN, BreakerState.CLOSED):
            self.replay()  # half-open: the oldest queued request is the trial call

    def tell_state(self) -> None:
        """Tell the root (and, through it, the callers) and the supervisor the breaker's
        state and health score (an instance retired since, that still passes replies on,
        says nothing: its successor speaks for the path)."""
        if self._sw_mode in (RETIRED, STOPPED):
            return
        cb = self.cb
        self.health_sent = cb.health()
        note = BreakerNote(
            self.path,
            cb.state.value,
            cb.remaining_open_s,
            self.fails_fast,
            self.health_sent,
            self.incarnation,
        )
        self.send(self.root, note)
        self.send(self.supervisor, note)

    def receiveMsg_ShedLoad(self, msg: ShedLoad, sender: Any) -> None:
        self.shedding = msg.reason if msg.on else ""

    def receiveMsg_WakeupMessage(self, msg: Any, sender: Any) -> None:
        if msg.payload == "sweep":
            self.sweep()
        elif msg.payload == "health":
            self.send_health()
        elif msg.payload == "half-open":
            _ = self.cb.state  # moves to half-open (and tells everyone) once the wait is over

    def replay(self) -> None:
        """Send the oldest queued request; the next follows its answer (order is kept)."""
        if self.queue is None or self.replaying or self.cb.state in _OPEN:
            return
        entry = self.queue.oldest(self.path)
        if entry is None:
            return
        ident, kind, data, sent_as = entry
        try:
            msg = decode(kind, data)
        except ValueError as exc:  # (its type is gone, or the row is not ours)
            self.queue.done(ident)
            error = BadMessage(f"{self.path}: queued request #{ident} dropped: {exc}")
            self._sw_undeliverable(self.path, kind or "plain data", error)
            self.replay()
            return
        sender = self.senders.get(ident)
        self.replaying = True
        try:
            permit = self.cb.permit()
        except CircuitOpenError:
            self.replaying = False
            return

        def ok(reply: Any) -> None:
            self.outcome(permit)
            self.queue.done(ident)  # type: ignore[union-attr]
            self.senders.pop(ident, None)
            self.replaying = False
            self.answer(sender, reply)  # the original caller, if it still listens
            self.replay()

        def failed(error: StalwartError) -> None:
            self.outcome(permit, error)
            self.replaying = False  # stays queued; replayed when the breaker closes again

        # a stable id (the one it was first sent with, if it was): however often it goes
        # out, the protected actor handles it once
        self.call(
            self.protected,
            msg,
            self.spec.call_timeout_s,
            ok,
            failed,
            request_id=sent_as or f"queued:{self.path}:{ident}",
        )
