"""Supervision trees: specs, the supervisor actor, restart strategies and the five levels."""

from ._ladder import Action, Decision, Ladder, RestartIntensity, decide
from ._options import SystemOptions
from ._plan import Slot, dependency_graph, dependents, expand, restart_set, start_order
from ._system import Status, System, start, validate_message
from ._tree_file import TreeFile, TreeFileError, load_tree
from .messages import ActorStatus, DeadLetter, Event
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
    "Action",
    "ActorStatus",
    "Alternative",
    "Breaker",
    "CachedReply",
    "Child",
    "DeadLetter",
    "Decision",
    "DefaultReply",
    "Event",
    "Ladder",
    "LevelPolicy",
    "QueueForLater",
    "ReducedFunctionality",
    "RestartIntensity",
    "Slot",
    "SpecError",
    "Status",
    "Supervisor",
    "System",
    "SystemOptions",
    "TreeFile",
    "TreeFileError",
    "decide",
    "dependency_graph",
    "dependents",
    "expand",
    "load_tree",
    "restart_set",
    "start",
    "start_order",
    "validate_message",
]
