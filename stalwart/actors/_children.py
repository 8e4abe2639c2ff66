"""Children started and stopped at run time: the requests a supervisor answers (OTP's
``start_child`` family), and the calls an actor makes with them.

Each request is sent to a supervisor's path (``System.start_child`` does, and so does
an actor with :meth:`ChildCalls.start_child` or ``self.call``/``await self.ask``); the
supervisor answers it. A request that cannot be done is answered with an error naming
what is wrong: ``UnknownPath`` (no such supervisor or child), ``AlreadyStarted``,
``AlreadyPresent``, ``ChildRunning``, ``StartFailed``, ``PoolFull``, ``BadMessage``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ._asks import Asks
from .errors import BadMessage, StalwartError, UnknownPath

if TYPE_CHECKING:
    from ._calls import OnError, OnReply


class StartChild(msgspec.Struct, Asks[str], frozen=True):
    """Start ``child`` (a ``Child`` or ``Supervisor`` spec) under the supervisor, after its
    other children (last in start order, first to stop); for a ``Pool``, start the
    instance named ``key`` with ``options`` on top of the template's. Answered with the
    new child's path once it has started."""

    child: Any = None
    key: str | None = None
    options: dict[str, Any] | None = None


class TerminateChild(msgspec.Struct, Asks[None], frozen=True):
    """Stop the child ``name`` (every replica of it) and keep its spec, as OTP's
    ``terminate_child`` does; a temporary child's spec (and a Pool instance) goes.
    Answered once it has stopped; a child stopped already is fine."""

    name: str


class RestartChild(msgspec.Struct, Asks[str], frozen=True):
    """Start the terminated child ``name`` again from its spec (and its last checkpoint);
    answered with its path once it runs."""

    name: str


class DeleteChild(msgspec.Struct, Asks[None], frozen=True):
    """Forget the terminated child ``name``: its spec and its checkpoints go (for a durable
    child an earlier run added and stored, a Pool's key, that this run has not started:
    what the store kept for it and below it)."""

    name: str


class ChildInfo(msgspec.Struct, frozen=True):
    """One running (or terminated) child: ``path`` is None while it does not run; ``kind``
    is ``worker`` or ``supervisor``; ``actor_class`` is ``module.Class``."""

    name: str
    path: str | None
    kind: str
    actor_class: str


class ChildCounts(msgspec.Struct, frozen=True):
    """As OTP's ``count_children``: ``specs`` (children kept, running or not; a Pool's
    template counts one), ``active`` (instances running), ``supervisors`` and ``workers``
    (children of each kind; a Pool counts its instances)."""

    specs: int
    active: int
    supervisors: int
    workers: int


class WhichChildren(msgspec.Struct, Asks[tuple[ChildInfo, ...]], frozen=True):
    """The supervisor's children in start order, one :class:`ChildInfo` per instance."""


class CountChildren(msgspec.Struct, Asks[ChildCounts], frozen=True):
    """How many children the supervisor has: a :class:`ChildCounts`."""


CHILD_REQUESTS = (
    StartChild,
    TerminateChild,
    RestartChild,
    DeleteChild,
    WhichChildren,
    CountChildren,
)


def not_a_supervisor(path: str, kind: str) -> UnknownPath:
    """The answer to a child request sent to ``path``, which is no supervisor."""
    return UnknownPath(f"{path} is not a supervisor (it is an {kind}): it has no children", path)


class ActivityCheck(msgspec.Struct, frozen=True):
    """A Pool with ``idle_timeout_s`` asks its instances how much they have handled."""


class ActivityReport(msgspec.Struct, frozen=True):
    """How far the instance has got through its senders' messages (a number that grows
    with each one), whether one is still being handled, the seconds since it took the
    last one, and when that was (``time.monotonic()``, one clock for a host's processes;
    0: none yet)."""

    path: str
    incarnation: int
    activity: int
    busy: bool
    idle_s: float = 0.0
    last_at: float = 0.0


class ChildCalls:
    """Mixin of :class:`~stalwart.ManagedActor`: the child requests as calls.

    Each returns the request id; ``on_reply`` gets the answer, ``on_error`` the error,
    exactly one of them (as with ``self.call``)."""

    if TYPE_CHECKING:  # provided by ManagedActor

        def call(
            self,
            path: str,
            msg: Any,
            timeout: float = 5.0,
            on_reply: OnReply | None = None,
            on_error: OnError | None = None,
            request_id: str | None = None,
        ) -> str: ...

        def _sw_refuse_call(
            self, path: str, error: StalwartError, on_error: OnError | None
        ) -> str: ...

    def start_child(
        self,
        supervisor: str,
        child: Any,
        options: dict[str, Any] | None = None,
        timeout: float = 10.0,
        on_reply: OnReply | None = None,
        on_error: OnError | None = None,
    ) -> str:
        """Start ``child`` (a spec; for a Pool, the key) under ``supervisor``; ``on_reply``
        gets its path once it runs."""
        return self._sw_child_call(
            supervisor,
            lambda checks: checks.start_request(child, options),
            timeout,
            on_reply,
            on_error,
        )

    def terminate_child(
        self,
        supervisor: str,
        name: str,
        timeout: float = 10.0,
        on_reply: OnReply | None = None,
        on_error: OnError | None = None,
    ) -> str:
        """Stop the child ``name`` of ``supervisor`` (its spec is kept unless temporary)."""
        return self._sw_named_call(TerminateChild, supervisor, name, timeout, on_reply, on_error)

    def restart_child(
        self,
        supervisor: str,
        name: str,
        timeout: float = 10.0,
        on_reply: OnReply | None = None,
        on_error: OnError | None = None,
    ) -> str:
        """Start the terminated child ``name`` of ``supervisor`` again."""
        return self._sw_named_call(RestartChild, supervisor, name, timeout, on_reply, on_error)

    def delete_child(
        self,
        supervisor: str,
        name: str,
        timeout: float = 10.0,
        on_reply: OnReply | None = None,
        on_error: OnError | None = None,
    ) -> str:
        """Forget the terminated child ``name`` of ``supervisor`` (as ``System.delete_child``:
        also what an earlier run stored for a durable key this run has not started)."""
        return self._sw_named_call(DeleteChild, supervisor, name, timeout, on_reply, on_error)

    def _sw_named_call(
        self,
        kind: Callable[[str], Any],
        supervisor: str,
        name: Any,
        timeout: float,
        on_reply: OnReply | None,
        on_error: OnError | None,
    ) -> str:
        """The request ``kind`` about the child ``name`` (checked to be a name)."""
        return self._sw_child_call(
            supervisor, lambda checks: kind(checks.child_name(name)), timeout, on_reply, on_error
        )

    def _sw_child_call(
        self,
        supervisor: str,
        build: Callable[[Any], Any],
        timeout: float,
        on_reply: OnReply | None,
        on_error: OnError | None,
    ) -> str:
        """Call ``supervisor`` with the request ``build`` makes with the checks ``System``'s
        calls use; one they refuse (a ``BadMessage`` naming what is wrong) goes to
        ``on_error`` at once, as ``System`` raises it."""
        from ..supervisors import _children as checks  # (the supervisors' own checks)
        from ..supervisors._system import seconds

        try:
            msg = build(checks)
            seconds(timeout)  # (at 0 or less it would fail, yet the start would go ahead)
        except BadMessage as exc:
            return self._sw_refuse_call(supervisor, exc, on_error)
        return self.call(supervisor, msg, timeout, on_reply, on_error)
