"""Managed actors: the base class for workloads, its messages and errors."""

from ._managed import ManagedActor
from .errors import (
    ActorStopped,
    BadMessage,
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
    RecoveryLevel,
    RecoveryRequest,
    RecoveryResult,
    ReplyTo,
)

__all__ = [
    "ActorStopped",
    "BadMessage",
    "ErrorReply",
    "Failure",
    "HandlerError",
    "ManagedActor",
    "Overloaded",
    "PoisonMessageError",
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
