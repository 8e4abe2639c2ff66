"""Supervision across hosts: a leader, members joining it, placement and failover.

``start(tree, base="tcp", node="leader", listen=("127.0.0.1", 1900))`` makes the
system the leader of a Thespian convention; ``join(("127.0.0.1", 1900), "b",
capabilities={"gpu": 1})`` (or ``stalwart node --join``) adds a member. A child
with ``requires={"gpu": 1}`` is placed by Thespian on a node that offers it.
Heartbeats and a phi-accrual detector declare a dead node lost within seconds;
its actors are then restarted on the surviving nodes that meet their needs.
"""

from typing import Any

import msgspec

from ..actors._placement import NODE, parse_capability, placeable, satisfies
from ..supervisors._services import register_service
from ..supervisors.spec import Child, SpecError, Supervisor
from ._local import LocalCluster, LocalNode
from ._member import Member, join
from ._monitor import NodeAgent, NodeMonitor
from ._phi import PhiAccrual
from .messages import ClusterSettings, NodesQuery, NodeStatus

NODES = "_system/nodes"


def cluster_settings(options: Any) -> ClusterSettings:
    """The node monitor's settings from ``start(..., cluster={...})``; errors name the field."""
    try:
        return msgspec.convert(dict(options.cluster or {}), ClusterSettings)
    except Exception as exc:  # msgspec.ValidationError, or a ValueError from the checks
        raise SpecError("start", "cluster", str(exc)) from None


def _check(options: Any) -> None:
    cluster_settings(options)


def _service(options: Any, tree: Supervisor) -> Child | None:
    if options.base != "tcp":
        return None
    return Child(
        "nodes",
        NodeMonitor,
        options={
            "settings": msgspec.to_builtins(cluster_settings(options)),
            "node": options.node,
            "capabilities": {NODE: options.node, **options.capabilities},
        },
    )


register_service("nodes", _service, _check)

__all__ = [
    "NODE",
    "NODES",
    "ClusterSettings",
    "LocalCluster",
    "LocalNode",
    "Member",
    "NodeAgent",
    "NodeMonitor",
    "NodeStatus",
    "NodesQuery",
    "PhiAccrual",
    "cluster_settings",
    "join",
    "parse_capability",
    "placeable",
    "satisfies",
]
