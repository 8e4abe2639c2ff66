"""Managed actors: the base class for workloads, its messages and errors."""

from ._asks import Asks
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
    Unavailable,
    UnknownMessage,
    UnknownPath,
    register_error_type,
)
from .messages import (
    ErrorReply,
    Failure,
    MemoryLevel,
    QueuedForLater,
    RecoveryLevel,
    RecoveryRequest,
    RecoveryResult,
    ReplyTo,
)

__all__ = [
    "ActorStopped",
    "Asks",
    "BadMessage",
    "BreakerOpen",
    "DownstreamError",
    "ErrorReply",
    "Failure",
    "HandlerError",
    "ManagedActor",
    "MemoryLevel",
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
    "Unavailable",
    "UnknownMessage",
    "UnknownPath",
    "register_error_type",
]
