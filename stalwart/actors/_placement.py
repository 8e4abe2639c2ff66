"""Placement by capabilities: which node may run an actor with given requirements.

Every node of a cluster advertises Thespian capabilities: its name under
``stalwart.node`` and whatever the operator gave it (``zone="b"``, ``gpu=1``).
A child's ``requires`` must all be met: a number is met by a capability at
least as large, anything else by an equal one. Thespian asks the actor class
(``actorSystemCapabilityCheck``) on each candidate node; the supervisors also
ask it of their own view of the live nodes before they place a child.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

NODE = "stalwart.node"  # the capability naming a node
AVOID = "stalwart.avoid"  # a requirement: nodes declared lost
NODE_ENV = "STALWART_NODE"  # inherited by a node's admin and actor processes (as in actors)
FENCE_ENV = "STALWART_FENCE"  # a member's fence file: while it exists, no actor starts there
Scalar = str | int | float | bool


def node_name() -> str:
    """The name of the node this process runs on ("" outside a cluster)."""
    return os.environ.get(NODE_ENV, "")


def _met(have: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):  # a flag is not a count
        return isinstance(want, bool) and isinstance(have, bool) and have == want
    if isinstance(want, int | float) and isinstance(have, int | float):
        return have >= want
    return bool(have == want)


def satisfies(capabilities: Mapping[str, Any], requirements: Mapping[str, Any] | None) -> bool:
    """True if a node with ``capabilities`` may run an actor needing ``requirements``."""
    if not requirements:
        return True
    for key, want in requirements.items():
        if key == AVOID:
            if capabilities.get(NODE) in want:
                return False
        elif key not in capabilities or not _met(capabilities[key], want):
            return False
    return True


def placeable(
    requirements: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]], lost: Iterable[str]
) -> list[str]:
    """The live nodes (by name) that satisfy ``requirements``."""
    gone = set(lost)
    return [n for n, caps in nodes.items() if n not in gone and satisfies(caps, requirements)]


def check_requires(value: Any) -> dict[str, Scalar]:
    """Validate a child's ``requires``: names to strings, numbers or booleans.

    Raises ``ValueError`` naming the entry at fault.
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a table of capability = value, got {value!r}")
    checked: dict[str, Scalar] = {}
    for key, want in value.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"capability names are non-empty strings, got {key!r}")
        if key.startswith("stalwart."):
            raise ValueError(f"{key!r}: names starting with 'stalwart.' are reserved")
        if not isinstance(want, str | int | float | bool):
            raise ValueError(f"{key!r}: expected a string, number or boolean, got {want!r}")
        checked[key] = want
    return checked


def parse_capability(text: str) -> tuple[str, Scalar]:
    """``name=value`` from the command line: integers, floats and true/false become such."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"expected NAME=VALUE, got {text!r}")
    raw = raw.strip()
    value: Scalar = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        for kind in (int, float):
            try:
                value = kind(raw)
                break
            except ValueError:
                continue
    check_requires({key: value})
    return key, value


def fenced() -> bool:
    """True on a member node that has fenced itself (cut off from its leader)."""
    marker = os.environ.get(FENCE_ENV)
    return bool(marker) and os.path.exists(marker)  # type: ignore[arg-type]


def set_fenced(on: bool) -> None:
    """Fence this member node (no actor starts on it), or lift that (its leader watches it)."""
    marker = os.environ.get(FENCE_ENV)
    if not marker:
        return  # not a member node
    with contextlib.suppress(OSError):
        if on:
            open(marker, "w").close()
        else:
            os.unlink(marker)
