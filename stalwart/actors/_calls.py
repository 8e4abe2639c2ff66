"""Sending by path: name resolution, request/reply with timeouts, redelivery after a crash.

An actor that sends to a path asks the registry (the root) once; the root then
pushes every address change. While a path has no address (its actor is
restarting, or passivated: then the first to wait sends ``Wake`` to the root, which
has it started again) messages wait here, in order, and go out when it is back; at most
``hold_limit`` wait per path (past that a request is answered with
``Overloaded`` and a message is kept as a dead letter). A path whose actor has
stopped for good takes nothing: requests get ``ActorStopped`` at once and
messages become dead letters. A request whose callee died mid-message is sent
again to the new instance, which answers it once (it keeps the ids of requests
it handled).
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ._lazy import made_on_use
from ._order import Outbox
from ._timers import WAKE, Timers
from .errors import (
    ActorStopped,
    BreakerOpen,
    Overloaded,
    StalwartError,
    Timeout,
    Unavailable,
    UnknownPath,
)
from .messages import (
    Acked,
    AddressUpdate,
    CrashNotice,
    ErrorReply,
    Handover,
    LostRequest,
    Reply,
    Request,
    Resolve,
    Resolved,
    Resync,
    RouteState,
    SendAgain,
    Told,
    Undeliverable,
    Wake,
)

if TYPE_CHECKING:
    from ._tracing import Tracing

log = logging.getLogger("stalwart.calls")

MAX_RESENDS = 5
HOLD_LIMIT = 10_000  # messages that may wait for one path
HOP_MARGIN_S = 0.1  # a call made for a request ends this long before that request's deadline
DEADLINE_MARGIN_S = 0.15  # a request still waiting for its path is answered this long before
STOPPED_GRACE_S = 1.0  # a path stopped for good: tells unconfirmed this long after are dead

_NUMBERED: dict[type, bool] = {}  # message type -> numbered on its channel


def numbered(kind: type) -> bool:
    """True for the workload's own messages (numbered, in order, sent again after a crash).

    The framework's instructions (chaos, memory pressure, telemetry...) are not: they
    are about one instance, and a crash makes them moot.
    """
    known = _NUMBERED.get(kind)
    if known is None:
        known = _NUMBERED[kind] = not kind.__module__.startswith("stalwart.")
    return known


OnReply = Callable[[Any], None]
OnError = Callable[[StalwartError], None]


class _Route:
    __slots__ = (
        "addresses",
        "blocked_until",
        "crashed",
        "group",
        "next",
        "out",
        "passive",
        "resolved",
        "stopped",
        "waiting",
    )

    def __init__(self) -> None:
        self.out = Outbox()  # numbered messages the path has not confirmed
        self.group = False  # a replica group: no order across its members
        self.addresses: list[Any] = []
        self.next = 0
        self.resolved = False
        self.waiting: list[Any] = []
        self.blocked_until = 0.0  # a breaker in front of the path is open until then
        self.stopped = False  # its actor stopped for good (until its supervisor starts it)
        self.passive = False  # its actor is passivated: a message waiting for it wakes it
        self.crashed = 0  # the last incarnation whose crash it handed requests over after


class _Pending:
    __slots__ = (
        "handed",
        "on_error",
        "on_reply",
        "origin",
        "path",
        "request",
        "resends",
        "sent",
        "timeout",
    )

    def __init__(
        self,
        path: str,
        request: Request,
        timeout: float | None,
        on_reply: OnReply,
        on_error: OnError,
    ) -> None:
        self.path = path
        self.request = request
        self.timeout = timeout
        self.on_reply = on_reply
        self.on_error = on_error
        self.sent = False
        self.resends = 0
        self.handed = False  # given to the supervisor of its crashed callee
        self.origin: tuple[Any, Any, int | None] | None = None  # being handled at call time


def _log_error(path: str) -> OnError:
    def on_error(exc: StalwartError) -> None:
        log.warning("call to %s failed: %s: %s", path, type(exc).__name__, exc)

    return on_error


def _new_id_prefix() -> str:
    return f"{os.getpid():x}.{secrets.token_hex(4)}."


class Caller(Timers):
    """Mixin for a Thespian actor: ``tell``/``call`` by path. The host supplies the resolver.

    An actor that never sends by path holds none of this state (it is made on first use).
    """

    _sw_routes: dict[str, _Route] = made_on_use(dict)
    _sw_pending: dict[str, _Pending] = made_on_use(dict)
    _sw_ids: itertools.count[int] = made_on_use(lambda: itertools.count(1))
    _sw_id_prefix: str = made_on_use(_new_id_prefix)  # its requests' ids and its channel
    _sw_hold_limit = HOLD_LIMIT
    _sw_tracing: Tracing | None = None  # OpenTelemetry, when the system traces
    _sw_next_floor = 1  # a route made numbers from here: past every route forgotten

    def _sw_init_caller(self) -> None:
        """(Nothing to set up: what calls need is made when the first one is made.)"""

    if TYPE_CHECKING:  # provided by the Thespian Actor this is mixed into

        def send(self, target: Any, msg: Any) -> None: ...

        def wakeupAfter(self, period: Any, payload: Any = None) -> None: ...

        @property
        def myAddress(self) -> Any: ...

    def _sw_resolver(self) -> Any:
        """The address to send Resolve to (the root)."""
        raise TypeError("Caller host must define _sw_resolver")

    def _sw_origin(self) -> tuple[Any, Any, int | None] | None:
        """(message, sender, failure id) being handled, if any: a failing callback fails it."""
        return None

    def _sw_trace(self) -> str:
        """The trace id of what is being handled ("" if none): calls made now carry it on."""
        return ""

    def _sw_deadline(self) -> float:
        """The deadline of the request being handled (0: none): calls made now end before."""
        return 0.0

    def _sw_callback(self, pending: _Pending, fn: Callable[[Any], None], value: Any) -> None:
        """Run a call's callback (hosts may report what it raises)."""
        fn(value)

    # -- sending -----------------------------------------------------------------
    def _sw_route(self, path: str) -> _Route:
        route = self._sw_routes.get(path)
        if route is not None and route.stopped:  # (it may have been started again since:
            self._sw_forget_if_ended(path)  # a path forgotten at the root tells no one)
            route = self._sw_routes.get(path)
        if route is None:
            route = self._sw_new_route(path)
            self._sw_request_resolution(path)
        return route

    def _sw_new_route(self, path: str) -> _Route:
        route = self._sw_routes[path] = _Route()
        route.out.next = self._sw_next_floor
        return route

    def _sw_forget_if_ended(self, path: str) -> None:
        """Forget the route to ``path`` once it has stopped for good and nothing sent to it
        is unconfirmed, held or awaited: a Pool's keys come and go by the million, and a
        route is kept per path sent to. A route still stopped when something is sent to it
        is looked at again then, and a new one asks where the path is now.

        A route made again for the path numbers past every route forgotten, so an
        instance that took this channel's marks from a checkpoint takes what comes as new.
        """
        route = self._sw_routes.get(path)
        if (
            route is None
            or not route.stopped
            or not route.resolved
            or route.addresses
            or route.waiting
            or route.out.unacked
            or any(p.path == path for p in self._sw_pending.values())
        ):
            return
        self._sw_drop_route(path, route)

    def _sw_drop_route(self, path: str, route: _Route) -> None:
        """Forget ``route``: one made again for ``path`` numbers past it."""
        self._sw_next_floor = max(self._sw_next_floor, route.out.next)
        del self._sw_routes[path]

    def _sw_request_resolution(self, path: str) -> None:
        self.send(
            self._sw_resolver(),
            Resolve(path, getattr(self, "path", ""), getattr(self, "incarnation", 0)),
        )

    def _sw_send_path(self, path: str, msg: Any) -> bool:
        """Send ``msg`` to ``path`` now if it has an address, else hold it; True if sent."""
        route = self._sw_route(path)
        if route.addresses and not route.waiting:
            addresses = route.addresses
            if len(addresses) == 1 and not route.group:
                self.send(addresses[0], self._sw_number(path, route, msg))
            else:
                route.next = (route.next + 1) % len(addresses)
                if type(msg) is Told and not msg.seq:  # (a group's members share no order)
                    msg = msg.message
                self.send(addresses[route.next], msg)
            return True
        if route.stopped:
            self._sw_fail_held(msg, ActorStopped(f"{path} has stopped for good", path), path)
        elif len(route.waiting) >= self._sw_hold_limit:
            error = Overloaded.waiting(path, self._sw_hold_limit)
            self._sw_fail_held(msg, error, path)
        else:
            route.waiting.append(msg)
            if route.passive and len(route.waiting) == 1:
                self._sw_wake(path)
        return False

    def _sw_wake(self, path: str) -> None:
        """Messages wait for the passivated actor at ``path``: the root has it started."""
        self.send(self._sw_resolver(), Wake(path))

    def _sw_number(self, path: str, route: _Route, msg: Any) -> Any:
        """``msg`` with the next number of this sender's channel to ``path`` (its route's),
        and the path it is for: a message that reaches another actor's process (a port
        that a dead instance listened on, taken by a new process) is not taken as its."""
        kind = type(msg)
        out = route.out
        if kind is Request:
            if msg.seq:
                return msg
            seq, base = out.number()
            msg = msgspec.structs.replace(msg, chan=self._sw_id_prefix, seq=seq, base=base, to=path)
            pending = self._sw_pending.get(msg.id)
            if pending is not None:
                pending.request = msg  # sent again with the same number
            out.keep(seq, msg, msg.id)
        elif numbered(kind):
            seq, base = out.number()
            msg = Told(msg, self._sw_id_prefix, seq, base, self.myAddress, to=path)
            out.keep(seq, msg)
        elif kind is Told and not msg.seq:  # wrapped where it was told, with its trace context
            seq, base = out.number()
            msg = msgspec.structs.replace(msg, chan=self._sw_id_prefix, seq=seq, base=base, to=path)
            out.keep(seq, msg)
        else:  # numbered already (Told), someone else's (Forwarded), or the framework's
            return msg
        return msg

    def _sw_numbered(self, path: str, request: Request) -> Request:
        """``request`` as it was numbered when sent to ``path`` (itself if it was not)."""
        route = self._sw_routes.get(path)
        if route is None:
            return request
        seq = route.out.ids.get(request.id)
        found: Request = request if seq is None else route.out.unacked.get(seq, request)
        return found

    def _sw_send_unconfirmed(self, path: str, route: _Route, address: Any) -> None:
        """The path's instance died: send again, in order, every tell it had not confirmed.

        The death counts against the first unconfirmed tell (those before it were
        confirmed; it was being handled, or next): one that was first at
        ``MAX_RESENDS + 1`` deaths becomes a dead letter, as it may be what kills the
        process (or hangs it); the ones behind it go on.
        """
        out = route.out
        head = next(iter(out.unacked), None)  # (a request there counts its own deaths)
        if head is not None and type(out.unacked[head]) is Told:
            tries = out.resends[head] = out.resends.get(head, 0) + 1
            if tries > MAX_RESENDS:
                msg = out.unacked.pop(head)
                del out.resends[head]
                error = ActorStopped(
                    f"{path} died {MAX_RESENDS + 1} times before confirming it"
                    " (it may be what kills or hangs the process)",
                    path,
                )
                self._sw_undeliverable(path, msg.message, error)
        base = out.base()
        for msg in list(out.unacked.values()):
            if type(msg) is Told:
                self.send(address, msgspec.structs.replace(msg, base=base))

    def _sw_on_acked(self, msg: Acked) -> None:
        route = self._sw_routes.get(msg.path)
        if route is not None and msg.chan == self._sw_id_prefix:
            route.out.confirm(msg.upto)
            if route.stopped:
                self._sw_forget_if_ended(msg.path)

    def _sw_on_send_again(self, msg: SendAgain, sender: Any) -> None:
        """A receiver misses a message of this channel: say what was confirmed, resend the rest."""
        route = self._sw_routes.get(msg.path)
        if route is None or msg.chan != self._sw_id_prefix:
            return
        out = route.out
        base = out.base()
        self.send(sender, Resync(msg.chan, base))
        for item in list(out.unacked.values()):
            self.send(sender, msgspec.structs.replace(item, base=base))

    def _sw_call(
        self,
        path: str,
        msg: Any,
        timeout: float | None,
        on_reply: OnReply | None,
        on_error: OnError | None,
        request_id: str | None = None,
        deadline: float = 0.0,
        context: str = "",
    ) -> str:
        """Send a request; ``timeout=None`` leaves timing out to the caller (the gateway's case,
        which gives the caller's ``deadline`` instead). ``context``: the W3C traceparent the
        request carries (OpenTelemetry; by default, with tracing on, the current span's)."""
        request_id = request_id or self._sw_id_prefix + str(next(self._sw_ids))
        on_error = on_error or _log_error(path)
        tracing = self._sw_tracing
        if tracing is not None:  # a span for the call, ended by whichever callback runs
            context, on_reply, on_error = tracing.calling(
                self, path, msg, request_id, context, on_reply, on_error
            )
        route = self._sw_routes.get(path)
        if route is not None and route.blocked_until:
            remaining = route.blocked_until - time.monotonic()
            if remaining > 0:  # the breaker in front of it is open: no hop to learn that
                on_error(
                    BreakerOpen(
                        f"{path}: circuit open, calls rejected for another {remaining:.2f}s",
                        path,
                        remaining,
                    )
                )
                return request_id
            route.blocked_until = 0.0
        if timeout is not None:
            deadline = time.time() + timeout
        inherited = self._sw_deadline()
        if inherited:  # it is done for a request: it ends before that one's caller gives up
            deadline = min(deadline or inherited, inherited - HOP_MARGIN_S)
        trace = self._sw_trace() or request_id
        if (
            route is not None
            and len(route.addresses) == 1
            and not route.waiting
            and not route.group
        ):
            seq, base = route.out.number()  # goes out at once: numbered here, not copied later
            request = Request(
                request_id,
                msg,
                self.myAddress,
                trace,
                deadline,
                self._sw_id_prefix,
                seq,
                base,
                context,
                path,
            )
            route.out.keep(seq, request, request_id)
        else:
            request = Request(request_id, msg, self.myAddress, trace, deadline, context=context)
        pending = _Pending(path, request, timeout, on_reply or (lambda _reply: None), on_error)
        pending.origin = self._sw_origin()
        self._sw_pending[request_id] = pending
        pending.sent = self._sw_send_path(path, request)
        if request_id not in self._sw_pending:
            return request_id  # answered at once (the path has stopped, or too many wait)
        if timeout is not None:
            self.after(timeout, (WAKE, "call-timeout", request_id), key=request_id)
        elif deadline:  # the caller times out itself; one still waiting is answered first
            wait = deadline - time.time() - DEADLINE_MARGIN_S
            self.after(max(0.0, wait), (WAKE, "call-timeout", request_id), key=request_id)
        return request_id

    # -- what comes back ---------------------------------------------------------------
    def _sw_on_resolved(self, msg: Resolved) -> None:
        route = self._sw_routes.get(msg.path) or self._sw_new_route(msg.path)
        route.resolved = True
        if msg.error is not None:
            waiting, route.waiting = route.waiting, []
            self._sw_drop_route(msg.path, route)
            for held in waiting:
                self._sw_fail_held(held, UnknownPath(msg.error, msg.path), msg.path)
            return
        route.group, route.passive = msg.group, msg.passive
        self._sw_set_addresses(msg.path, route, list(msg.addresses), msg.stopped)
        self._sw_forget_if_ended(msg.path)

    def _sw_on_route_state(self, msg: RouteState) -> None:
        route = self._sw_routes.get(msg.path)
        if route is None:
            return
        if msg.state in ("open", "forced_open") and msg.fails_fast:
            route.blocked_until = time.monotonic() + msg.remaining_s
        else:
            route.blocked_until = 0.0

    def _sw_on_address_update(self, msg: AddressUpdate) -> None:
        route = self._sw_routes.get(msg.path)
        if route is None:
            return
        route.group, route.passive = msg.group, msg.passive
        if (msg.died or msg.lost_inflight) and len(msg.addresses) == 1 and not msg.group:
            self._sw_send_unconfirmed(msg.path, route, msg.addresses[0])  # died with it
        self._sw_set_addresses(msg.path, route, list(msg.addresses), msg.stopped)
        if msg.holder is not None:
            if not msg.crashed or msg.crashed > route.crashed:  # (or its supervisor told it)
                route.crashed = max(route.crashed, msg.crashed)
                self._sw_resend_inflight(msg.path, msg.holder)
        elif msg.lost_inflight and msg.addresses:
            self._sw_resend_inflight(msg.path, everything=msg.orphaned)
        self._sw_forget_if_ended(msg.path)

    def _sw_on_crash_notice(self, msg: CrashNotice) -> None:
        """The crash of ``msg.path``'s instance, from its supervisor, ahead of the root's
        ``AddressUpdate`` (which then hands nothing over again): what it was handling goes
        over now (see :mod:`stalwart.supervisors._crash_notices`)."""
        route = self._sw_routes.get(msg.path)
        if route is None or route.group or msg.incarnation <= route.crashed:
            return
        route.crashed = msg.incarnation
        self._sw_set_addresses(msg.path, route, [])  # (what is sent now waits for the next)
        spare = (msg.spare, msg.incarnation) if msg.spare is not None else None
        self._sw_resend_inflight(msg.path, msg.holder, spare=spare)

    def _sw_set_addresses(
        self, path: str, route: _Route, addresses: list[Any], stopped: bool = False
    ) -> None:
        route.addresses, route.stopped = addresses, stopped and not addresses
        if route.stopped and route.out.unacked:  # confirmations may still be on their way
            self.after(STOPPED_GRACE_S, (WAKE, "unconfirmed", path), key=("unconfirmed", path))
        if not route.waiting or not (addresses or route.stopped):
            if route.waiting and route.passive:  # (it was passivated while they waited)
                self._sw_wake(path)
            return
        waiting, route.waiting = route.waiting, []
        if route.stopped:  # (not sent again: a route still stopped asks the root again)
            for held in waiting:
                self._sw_fail_held(held, ActorStopped(f"{path} has stopped for good", path), path)
            return
        for held in waiting:
            self._sw_send_path(path, held)
            if isinstance(held, Request) and held.id in self._sw_pending:
                self._sw_pending[held.id].sent = True

    def _sw_caller_timer(self, kind: str, arg: Any) -> bool:
        """Handle a timer of this mixin's (True if ``kind`` was one)."""
        if kind == "call-timeout":
            self._sw_on_call_timeout(arg)
        elif kind == "unconfirmed":
            self._sw_unconfirmed_dead(arg)
        else:
            return False
        return True

    def _sw_unconfirmed_dead(self, path: str) -> None:
        """The path stopped for good: tells it never confirmed become dead letters."""
        route = self._sw_routes.get(path)
        if route is None or not route.stopped:
            return
        unacked, route.out.unacked = route.out.unacked, {}
        for msg in unacked.values():
            if type(msg) is Told:
                error = ActorStopped(
                    f"{path} stopped for good before confirming it (it may have been handled)",
                    path,
                )
                self._sw_undeliverable(path, msg.message, error)
        self._sw_forget_if_ended(path)

    def _sw_resend_inflight(
        self,
        path: str,
        holder: Any = None,
        everything: bool = False,
        spare: tuple[Any, int] | None = None,
    ) -> None:
        """Send again what the crashed instance of ``path`` was handling.

        With a ``holder`` (the supervisor starting the next instance) the requests go to
        it at once, to reach the new instance right after its start; without one, to
        the new instance's address, unless they went to the holder already (and, with
        ``everything``, even then: that holder died too). With a ``spare`` (its address,
        and the incarnation that crashed), a request never handed over before goes
        straight to it, the holder getting a note of it.
        """
        route = self._sw_routes.get(path)
        unacked = route.out.unacked if route is not None else {}
        head = next(iter(unacked), None)  # what its death counts against (see below)
        for pending in list(self._sw_pending.values()):
            if pending.path != path or not pending.sent:
                continue
            if holder is None and pending.handed and not everything:
                pending.handed = False
                continue
            seq = pending.request.seq
            behind = bool(seq) and seq != head and seq in unacked
            direct = spare is not None and pending.resends == 0
            if not behind:
                pending.resends += 1  # (one queued behind another is not to blame)
            if pending.resends > MAX_RESENDS:
                self._sw_finish(
                    pending.request.id,
                    ActorStopped(f"{path} kept dying while handling the request", path),
                )
                continue
            if holder is None:
                self._sw_send_path(path, pending.request)
            elif spare is not None and direct:  # (its note right after: the supervisor
                pending.handed = True  # has it long before it could hear the spare died)
                self.send(spare[0], Handover(pending.request, spare[1]))
                self.send(holder, LostRequest(path, pending.request, behind, spare[1]))
            else:
                pending.handed = True
                self.send(holder, LostRequest(path, pending.request, behind))

    def _sw_refuse_call(self, path: str, error: StalwartError, on_error: OnError | None) -> str:
        """A call that cannot be made: ``on_error`` gets ``error`` at once (as it gets
        ``BreakerOpen``), without a message being sent; returns the call's id."""
        request_id = self._sw_id_prefix + str(next(self._sw_ids))
        (on_error or _log_error(path))(error)
        return request_id

    def _sw_fail_held(self, held: Any, error: StalwartError, path: str = "") -> None:
        """A message that cannot go to ``path``: a request fails; anything else is a dead letter."""
        if isinstance(held, Request) and held.id in self._sw_pending:
            self._sw_finish(held.id, error)
        else:
            self._sw_undeliverable(path, held, error)

    def _sw_undeliverable(self, path: str, msg: Any, error: StalwartError) -> None:
        """Keep ``msg`` as a dead letter (the root records it)."""
        if type(msg) is Told:  # the sender's own message, not its envelope
            msg = msg.message
        self.send(self._sw_resolver(), Undeliverable(path, msg, str(error)))

    def _sw_cancel(self, request_id: str) -> _Pending | None:
        """Forget a request its caller no longer waits for (it leaves the waiting line too)."""
        pending = self._sw_pending.pop(request_id, None)
        self.cancel(request_id)
        if pending is not None:
            route = self._sw_routes.get(pending.path)
            if route is not None:
                if pending.request in route.waiting:
                    route.waiting.remove(pending.request)
                route.out.forget(request_id)
                if route.stopped:
                    self._sw_forget_if_ended(pending.path)
        return pending

    def _sw_on_reply(self, msg: Reply) -> None:
        pending = self._sw_pending.pop(msg.id, None)
        self.cancel(msg.id)
        if pending is None:
            log.debug("late reply %s ignored (timed out or answered already)", msg.id)
            return
        route = self._sw_routes.get(pending.path)
        if route is not None:  # handled in order: everything before it was handled too
            route.out.forget(msg.id) if msg.alone else route.out.answered(msg.id)
            if route.stopped:
                self._sw_forget_if_ended(pending.path)
        value = msg.value
        if isinstance(value, ErrorReply):
            self._sw_callback(pending, pending.on_error, value.exception())
        else:
            self._sw_callback(pending, pending.on_reply, value)

    def _sw_on_call_timeout(self, request_id: str) -> None:
        pending = self._sw_pending.get(request_id)
        if pending is None:
            return
        path = pending.path
        if not pending.sent:  # it never reached an instance: the path was not available
            error: StalwartError = Unavailable(
                f"{path} could not take the request before its deadline (restarting, or"
                " waiting for a node or a dependency)",
                path,
            )
        elif pending.timeout is None:
            return  # sent: its caller times it out itself
        else:
            error = Timeout(f"no reply from {path} within {pending.timeout:g}s", path)
        self._sw_finish(request_id, error)

    def _sw_finish(self, request_id: str, error: StalwartError) -> None:
        """End a request with ``error`` (its ``on_error`` runs)."""
        pending = self._sw_cancel(request_id)
        if pending is not None:
            self._sw_callback(pending, pending.on_error, error)
