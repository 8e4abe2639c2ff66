"""The cluster's messages: heartbeats between nodes, and what ``System.nodes()`` returns."""

from __future__ import annotations

from typing import Any

import msgspec


class ClusterSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The node monitor's settings (``start(..., cluster={...})``).

    - ``expect_nodes``: ``start()`` waits (up to ``wait_s``) until these nodes have
      joined before it starts the tree, so children can be placed on them.
    - ``heartbeat_s``: how often each node's agent reports to the leader.
    - ``phi_threshold``: the phi-accrual suspicion at which a node is declared lost
      (8: one chance in 10^8 that its heartbeat is merely late).
    - ``acceptable_pause_s``: silence tolerated on top of the usual interval.
    - ``min_std_s``: the least spread assumed for the intervals.
    - ``fence_s``: a member that has heard nothing from the leader for this long stops its
      actors itself (0: never), so the leader can place them elsewhere without their
      running twice.
    - ``fence_margin_s``: the leader declares a node lost only after ``fence_s`` plus this
      much silence, so its actors have stopped before they are placed elsewhere.
    """

    expect_nodes: tuple[str, ...] = ()
    wait_s: float = 30.0
    heartbeat_s: float = 0.5
    phi_threshold: float = 8.0
    acceptable_pause_s: float = 1.0
    min_std_s: float = 0.1
    fence_s: float = 2.0
    fence_margin_s: float = 1.5

    def __post_init__(self) -> None:
        for field in ("wait_s", "heartbeat_s", "phi_threshold", "min_std_s"):
            if not getattr(self, field) > 0:
                raise ValueError(f"{field}: must be > 0, got {getattr(self, field)!r}")
        for field in ("acceptable_pause_s", "fence_s", "fence_margin_s"):
            if not getattr(self, field) >= 0:
                raise ValueError(f"{field}: must be >= 0, got {getattr(self, field)!r}")
        if self.fence_s and self.fence_s <= 2 * self.heartbeat_s:
            raise ValueError(
                f"fence_s: must be more than two heartbeats ({2 * self.heartbeat_s:g}s) or 0,"
                f" got {self.fence_s!r}"
            )
        if self.fence_s and self.fence_margin_s < self.heartbeat_s:
            raise ValueError(
                f"fence_margin_s: must be at least one heartbeat ({self.heartbeat_s:g}s) when"
                f" fencing, got {self.fence_margin_s!r}"
            )

    def lost_after_s(self) -> float:
        """The least silence after which the leader may declare a node lost."""
        return self.fence_s + self.fence_margin_s if self.fence_s else 0.0


class NodeStatus(msgspec.Struct, frozen=True):
    """One node of the cluster as the leader sees it.

    ``state`` is ``up``, ``joining`` (registered, no heartbeat yet), ``lost`` (declared
    by the failure detector) or ``left`` (it shut down in order).
    """

    name: str
    state: str
    capabilities: dict[str, Any]
    leader: bool = False
    joined: float = 0.0
    lost_at: float = 0.0
    silence_s: float = 0.0
    phi: float = 0.0
    heartbeats: int = 0
    detail: str = ""


class NodesQuery(msgspec.Struct, frozen=True):
    """Ask the node monitor for the nodes (``System.nodes()``)."""


class Watch(msgspec.Struct, frozen=True):
    """Monitor -> a node's agent: send heartbeats to ``monitor`` every ``interval_s``."""

    monitor: Any
    node: str
    interval_s: float
    fence_s: float = 0.0  # stop the node's actors after this long without an answer


class Fenced(msgspec.Struct, frozen=True):
    """A node's agent -> the monitor: it fenced its node (stopped its actors); ``detail``
    says why. Sent until the monitor answers by declaring the node lost."""

    node: str
    detail: str


class HeartbeatAck(msgspec.Struct, frozen=True):
    """The monitor -> a node's agent: its heartbeat ``seq`` arrived (the leader is there)."""

    seq: int


class Heartbeat(msgspec.Struct, frozen=True):
    """A node's agent -> the monitor."""

    node: str
    seq: int
