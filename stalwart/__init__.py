"""Stalwart: services as actors under supervisor trees that recover on their own.

Failures are answered through five progressive levels (retry, backoff, restart
the actor, restart the subtree, system-wide measures); the tree learns which
recovery works best from what it records.
"""

from . import cluster as _cluster  # noqa: F401  (registers the service)
from . import memory as _memory  # noqa: F401  (registers the service)
from . import telemetry as _telemetry  # noqa: F401  (registers the service)
from .actors import (
    ActorStopped,
    BadMessage,
    BreakerOpen,
    DownstreamError,
    ErrorReply,
    Failure,
    HandlerError,
    ManagedActor,
    MemoryLevel,
    Overloaded,
    PoisonMessageError,
    QueuedForLater,
    RecoveryFailed,
    RecoveryLevel,
    RecoveryRequest,
    RecoveryResult,
    StalwartError,
    SystemStopped,
    Timeout,
    Unavailable,
    UnknownMessage,
    UnknownPath,
)
from .actors._asks import Asks
from .cluster import LocalCluster, NodeStatus, join
from .recover import Recovery, RecoveryOutcome
from .supervisors import (
    ActorStatus,
    Breaker,
    Child,
    DeadLetter,
    Event,
    LevelPolicy,
    SpecError,
    Status,
    Supervisor,
    System,
    TreeFile,
    TreeFileError,
    load_tree,
    start,
)

__version__ = "0.1.0"

__all__ = [
    "ActorStatus",
    "ActorStopped",
    "Asks",
    "BadMessage",
    "Breaker",
    "BreakerOpen",
    "Child",
    "DeadLetter",
    "DownstreamError",
    "ErrorReply",
    "Event",
    "Failure",
    "HandlerError",
    "LevelPolicy",
    "LocalCluster",
    "ManagedActor",
    "MemoryLevel",
    "NodeStatus",
    "Overloaded",
    "PoisonMessageError",
    "QueuedForLater",
    "Recovery",
    "RecoveryFailed",
    "RecoveryLevel",
    "RecoveryOutcome",
    "RecoveryRequest",
    "RecoveryResult",
    "SpecError",
    "StalwartError",
    "Status",
    "Supervisor",
    "System",
    "SystemStopped",
    "Timeout",
    "TreeFile",
    "TreeFileError",
    "Unavailable",
    "UnknownMessage",
    "UnknownPath",
    "join",
    "load_tree",
    "start",
]
