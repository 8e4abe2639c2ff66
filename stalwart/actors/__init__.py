"""Managed actors: the base class for workloads, its messages and errors."""

from ._managed import ManagedActor
from .errors import (
    ActorStopped,
    BadMessage,
    BreakerOpen,
    DownstreamError,
    HandlerError,
    Overloaded,
    PoisonMessageError,
    RecoveryFailed,
    StalwartError,
    SystemStopped,
    Timeout,
    UnknownMessage,
    UnknownPath,
    register_error_type,
)
from .messages import (
    ErrorReply,
    Failure,
    QueuedForLater,
    RecoveryLevel,
    RecoveryRequest,
    RecoveryResult,
    ReplyTo,
)

__all__ = [
    "ActorStopped",
    "BadMessage",
    "BreakerOpen",
    "DownstreamError",
    "ErrorReply",
    "Failure",
    "HandlerError",
    "ManagedActor",
    "Overloaded",
    "PoisonMessageError",
    "QueuedForLater",
    "RecoveryFailed",
    "RecoveryLevel",
    "RecoveryRequest",
    "RecoveryResult",
    "ReplyTo",
    "StalwartError",
    "SystemStopped",
    "Timeout",
    "UnknownMessage",
    "UnknownPath",
    "register_error_type",
]
