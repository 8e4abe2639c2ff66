"""What a supervisor knows about each of its children, and about each failed message."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from ..actors.messages import Redelivery, ReplyTo
from ..strategies import ErrorInfo
from ._ladder import Ladder
from ._plan import Slot
from .spec import Child, LevelPolicy, Supervisor

DOWN, STARTING, UP, STOPPING, REMOVED = "down", "starting", "up", "stopping", "removed"
_REPLIES_KEPT = 64


class ChildState:
    """One slot's live state inside its supervisor."""

    def __init__(self, slot: Slot, path: str, policy: LevelPolicy) -> None:
        self.slot = slot
        self.name = slot.name
        self.path = path
        self.kind = "supervisor" if slot.role == "supervisor" else "actor"
        self.role = slot.role  # actor, supervisor or breaker
        self.breaker_state = ""  # a breaker's last known state
        self.held: list[FailedMessage] = []  # failures parked while a dependency is down
        self.health_pending = False
        self.health_missed = 0
        self.hung_reported = False
        self.hung_killed = False
        self.policy = policy
        self.phase = DOWN
        self.address: Any = None
        self.incarnation = 0
        self.pid = 0
        self.node = ""  # the cluster node it runs on
        self.restart_pending = False
        self.stop_for_good = False
        self.keep_final_state = True
        self.retiring_address: Any = None
        self.checkpoint: Any = None
        self.has_checkpoint = False
        self.sub_checkpoints: dict[str, Any] = {}
        self.replies: OrderedDict[str, Any] = OrderedDict()
        self.redeliver: list[Redelivery] = []
        self.ladders: dict[str, Ladder] = {}
        self.restarts = 0
        self.last_error = ""
        self.lost_inflight = False

    @property
    def spec(self) -> Child | Supervisor:
        return self.slot.spec

    @property
    def actor_class(self) -> type:
        """The ManagedActor subclass this child runs (actor children only)."""
        spec = self.slot.spec
        if not isinstance(spec, Child):
            raise TypeError(f"{self.path} is a supervisor, not an actor")
        if self.role == "breaker":
            from ._breaker_actor import BreakerActor

            return BreakerActor
        return spec.actor  # type: ignore[no-any-return]

    def actor_options(self, settings: dict[str, Any]) -> dict[str, Any]:
        """What the actor reads as ``self.options``."""
        spec = self.slot.spec
        if self.role == "breaker":
            assert isinstance(spec, Child)
            parent = self.path.rsplit("/", 1)[0]
            return {
                "breaker": spec.breaker,
                "protected": f"{parent}/{spec.name}.protected",
                "store": settings.get("store"),
            }
        return dict(getattr(spec, "options", {}))

    @property
    def fallback(self) -> Any:
        """The declared fallback reply, or None."""
        return getattr(self.slot.spec, "fallback", None)

    def ladder(self, fingerprint: str) -> Ladder:
        ladder = self.ladders.get(fingerprint)
        if ladder is None:
            ladder = self.ladders[fingerprint] = Ladder(self.policy)
        return ladder

    @property
    def level(self) -> int:
        """The highest level reached across this child's error fingerprints."""
        return max((ladder.current for ladder in self.ladders.values()), default=0)

    def remember_reply(self, request_id: str, reply: Any) -> None:
        self.replies[request_id] = reply
        while len(self.replies) > _REPLIES_KEPT:
            self.replies.popitem(last=False)

    def restore(self, entry: Any) -> None:
        """Take a checkpoint-table entry ``(state, replies)`` saved by a previous incarnation."""
        state, replies = entry
        self.checkpoint, self.has_checkpoint = state, True
        for request_id, reply in replies:
            self.remember_reply(request_id, reply)

    def table_entry(self) -> tuple[Any, tuple[tuple[str, Any], ...]]:
        return (self.checkpoint, tuple(self.replies.items()))


class FailedMessage:
    """A message that failed, followed through the levels until handled or set aside."""

    def __init__(self, ident: int, child: str, message: Any, sender: Any, info: ErrorInfo) -> None:
        self.id = ident
        self.child = child
        self.message = message
        self.sender = sender
        self.info = info
        self.traceback = ""
        self.first_time = time.monotonic()
        self.level = 0
        self.attempt = 0
        self.round = 0  # the ladder's round when this message last got a decision
        self.strategy = ""
        self.level_started = self.first_time
        self.last_delay = 0.0
        self.tried: dict[int, list[str]] = {}
        self.fresh: tuple[str, int] | None = None  # (child, incarnation) it was redelivered to
        self.assigned_to: str = child
        self.usage: tuple[int, float] = (0, 0.0)  # (RSS, CPU s) when the attempt began
        self.usage_pid = 0


def trace_of(sender: Any) -> str:
    """The trace id a failed message's sender carries ("" for a plain message)."""
    return sender.trace if type(sender) is ReplyTo else ""
