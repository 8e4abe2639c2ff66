"""Order and restart sets: start in dependency order, stop in reverse, say so in one place.

A supervisor's children are expanded into *slots* (a child with ``replicas=3``
becomes ``w.0``, ``w.1``, ``w.2``). Slots start in topological order of
``depends_on`` (declaration order among independent ones) and stop in exactly
the reverse order. Which slots a level-4 recovery restarts follows the
supervisor's strategy, always including everything that depends on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .spec import Child, Supervisor


class Slot(NamedTuple):
    """One running child: its name, spec, replica group (if any) and dependencies."""

    name: str
    spec: Child | Supervisor
    group: str | None
    depends_on: tuple[str, ...]


def expand(children: Sequence[Child | Supervisor]) -> list[Slot]:
    """Slots for ``children`` in start order (replicas expanded, dependencies first)."""
    groups: dict[str, list[str]] = {}
    for child in children:
        replicas = child.replicas if isinstance(child, Child) else 1
        if replicas > 1:
            groups[child.name] = [f"{child.name}.{i}" for i in range(replicas)]
        else:
            groups[child.name] = [child.name]
    slots: list[Slot] = []
    for child in children:
        deps = tuple(name for dep in child.depends_on for name in groups[dep])
        group = child.name if len(groups[child.name]) > 1 else None
        for name in groups[child.name]:
            slots.append(Slot(name, child, group, deps))
    return start_order(slots)


def start_order(slots: Sequence[Slot]) -> list[Slot]:
    """Topological order of ``slots`` by ``depends_on``; stable for independent slots."""
    remaining = list(slots)
    placed: set[str] = set()
    ordered: list[Slot] = []
    while remaining:
        for i, slot in enumerate(remaining):
            if all(dep in placed for dep in slot.depends_on):
                ordered.append(slot)
                placed.add(slot.name)
                del remaining[i]
                break
        else:  # validated specs have no cycles; keep going rather than loop forever
            ordered.extend(remaining)
            break
    return ordered


def dependents(slots: Sequence[Slot], name: str) -> set[str]:
    """Every slot that depends on ``name``, directly or not."""
    found: set[str] = set()
    frontier = {name}
    while frontier:
        nxt = {s.name for s in slots if set(s.depends_on) & frontier and s.name not in found}
        found |= nxt
        frontier = nxt
    return found


def restart_set(strategy: str, slots: Sequence[Slot], failing: str) -> list[str]:
    """The slots a level-4 recovery of ``failing`` restarts, in start order."""
    names = [s.name for s in slots]
    if strategy == "one_for_all":
        chosen = set(names)
    elif strategy == "rest_for_one":
        chosen = set(names[names.index(failing) :])
    else:
        chosen = {failing}
    for name in list(chosen):
        chosen |= dependents(slots, name)
    return [n for n in names if n in chosen]
