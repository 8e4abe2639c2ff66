"""Supervision trees: specs, the supervisor actor, restart strategies and the five levels."""

from ._kernel import RootState, SupervisorState, decide, decide_root
from ._ladder import Decision, FailureKind, Ladder, RestartIntensity, failure_kind
from ._options import SystemOptions
from ._plan import Slot, dependency_graph, dependents, expand, restart_set, start_order
from ._pool import Pool
from ._system import Status, System, start, validate_message
from ._tree_file import TreeFile, TreeFileError, load_tree
from .messages import ActorStatus, DeadLetter, Event, StatusSummary
from .spec import (
    Alternative,
    Breaker,
    CachedReply,
    Child,
    DefaultReply,
    LevelPolicy,
    QueueForLater,
    ReducedFunctionality,
    SpecError,
    Supervisor,
)

__all__ = [
    "ActorStatus",
    "Alternative",
    "Breaker",
    "CachedReply",
    "Child",
    "DeadLetter",
    "Decision",
    "DefaultReply",
    "Event",
    "FailureKind",
    "Ladder",
    "LevelPolicy",
    "Pool",
    "QueueForLater",
    "ReducedFunctionality",
    "RestartIntensity",
    "RootState",
    "Slot",
    "SpecError",
    "Status",
    "StatusSummary",
    "Supervisor",
    "SupervisorState",
    "System",
    "SystemOptions",
    "TreeFile",
    "TreeFileError",
    "decide",
    "decide_root",
    "dependency_graph",
    "dependents",
    "expand",
    "failure_kind",
    "load_tree",
    "restart_set",
    "start",
    "start_order",
    "validate_message",
]
