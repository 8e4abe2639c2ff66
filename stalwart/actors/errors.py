"""Errors a caller of ``ask``/``call`` can get instead of a reply.

Every error crosses actor (and process) boundaries as an :class:`ErrorReply`
message and becomes one of these exceptions again on the caller's side.
"""

from __future__ import annotations

from typing import ClassVar

from ..strategies import CircuitOpenError, ErrorCategory


class StalwartError(Exception):
    """Base class of Stalwart's errors. ``path`` names the actor involved, if any.

    ``error_category`` is how a handler that re-raises one is classified: errors that
    mean the callee (or the tree) could not do it are outages of the caller's
    dependency; those that mean the caller asked wrongly are not retried.
    """

    error_category: ClassVar[ErrorCategory] = ErrorCategory.DEPENDENCY

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.path))


class Timeout(StalwartError, TimeoutError):
    """No reply came within the timeout."""

    error_category = ErrorCategory.TIMEOUT


class ActorStopped(StalwartError):
    """The actor stopped (or was never started) and cannot take the message."""


class UnknownPath(StalwartError, LookupError):
    """No actor has that path in the tree."""

    error_category = ErrorCategory.CONFIGURATION


class UnknownMessage(StalwartError, TypeError):
    """The actor has no handler for that message type; it kept running."""

    error_category = ErrorCategory.CONFIGURATION


class BadMessage(StalwartError, ValueError):
    """The message is malformed (a field has the wrong type or value)."""

    error_category = ErrorCategory.VALIDATION


class HandlerError(StalwartError):
    """The handler raised an error that retrying cannot fix (bad input, configuration)."""

    error_category = ErrorCategory.VALIDATION


class DownstreamError(StalwartError):
    """The actor could not do it because something it depends on failed (retrying may help)."""


class Unavailable(StalwartError):
    """The actor could not take the message before its deadline: it was restarting, waiting
    for a node, or kept from starting by a dependency (retrying later may help)."""


class PoisonMessageError(StalwartError):
    """The message failed again on a freshly restarted actor; it was set aside as a dead letter."""


class RecoveryFailed(StalwartError):
    """The tree could not recover the actor (it gave up and escalated)."""


class SystemStopped(StalwartError):
    """The system has stopped (shut down, or stopped at level 5)."""


class Overloaded(StalwartError):
    """The tree is shedding load, or too many messages already wait: refused for now."""

    error_category = ErrorCategory.RATE_LIMIT

    @classmethod
    def waiting(cls, path: str, limit: int, dependency: str = "") -> Overloaded:
        """``limit`` messages already wait for ``path`` (or, held, for its ``dependency``)."""
        return cls(f"{path}: {limit} messages already wait for {dependency or 'it'}", path)

    @classmethod
    def shedding(cls, path: str, reason: str) -> Overloaded:
        """The tree refuses new work for ``path`` (a memory emergency: ``reason``)."""
        return cls(f"{path}: the tree is shedding load ({reason})", path)


class BreakerOpen(StalwartError, CircuitOpenError):
    """A breaker in front of an actor is open: the call was not made.

    It is also a :class:`~stalwart.strategies.CircuitOpenError`, so one ``except``
    covers breakers in and out of the tree; ``remaining_s`` says for how long.
    """

    def __init__(self, message: str, path: str = "", remaining_s: float = 0.0) -> None:
        StalwartError.__init__(self, message, path)
        self._remaining = remaining_s

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.path

    @property
    def state(self) -> str:  # type: ignore[override]
        return "open"

    @property
    def remaining_s(self) -> float:  # type: ignore[override]
        return self._remaining

    def __str__(self) -> str:
        return StalwartError.__str__(self)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (StalwartError.__str__(self), self.path, self._remaining))


class AlreadyStarted(StalwartError):
    """``start_child``: a child of that name runs already, or is passivated (``path`` is its
    path)."""

    error_category = ErrorCategory.VALIDATION


class AlreadyPresent(StalwartError):
    """``start_child``: a child of that name is kept, terminated (``restart_child`` it, or
    ``delete_child`` it first)."""

    error_category = ErrorCategory.VALIDATION


class ChildRunning(StalwartError):
    """``restart_child``/``delete_child``: the child runs (or is restarting); terminate it
    first."""

    error_category = ErrorCategory.VALIDATION


class StartFailed(StalwartError):
    """``start_child``/``restart_child``: the child failed to start (its error says why).

    A child ``start_child`` could not start is not kept; one ``restart_child`` could not
    start stays terminated, its spec kept."""


class PoolFull(Overloaded):
    """``start_child`` on a ``Pool`` that runs ``max_children`` instances already."""


class ServiceOff(StalwartError):
    """What was asked needs a service the system was started without: the recovery store
    and its figures (``start(..., store=None)``), the correlator (``correlator=None``), or
    the memory-pressure actor (``memory=None``)."""


ERROR_TYPES: dict[str, type[StalwartError]] = {
    cls.__name__: cls
    for cls in (
        StalwartError,
        Timeout,
        ActorStopped,
        UnknownPath,
        UnknownMessage,
        BadMessage,
        HandlerError,
        DownstreamError,
        Unavailable,
        PoisonMessageError,
        RecoveryFailed,
        SystemStopped,
        Overloaded,
        BreakerOpen,
        AlreadyStarted,
        AlreadyPresent,
        ChildRunning,
        StartFailed,
        PoolFull,
        ServiceOff,
    )
}


def register_error_type(cls: type[StalwartError]) -> type[StalwartError]:
    """Make a StalwartError subclass travel by name in error replies (usable as a decorator)."""
    ERROR_TYPES[cls.__name__] = cls
    return cls
