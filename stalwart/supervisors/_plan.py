"""Order and restart sets: start in dependency order, stop in reverse, say so in one place.

A supervisor's children are expanded into *slots* (a child with ``replicas=3``
becomes ``w.0``, ``w.1``, ``w.2``). Slots start in topological order of
``depends_on`` (declaration order among independent ones) and stop in exactly
the reverse order. Which slots a level-4 recovery restarts follows the
supervisor's strategy, always including everything that depends on them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import NamedTuple

from .spec import Child, Supervisor


class Slot(NamedTuple):
    """One running child: its name, spec, replica group (if any) and dependencies.

    ``role`` is ``actor`` or ``supervisor`` as declared, or ``breaker`` for the
    breaker actor in front of a child with a breaker (whose own slots are then
    named ``<name>.protected``).
    """

    name: str
    spec: Child | Supervisor
    group: str | None
    depends_on: tuple[str, ...]
    role: str = "actor"


PROTECTED = ".protected"


def expand(children: Sequence[Child | Supervisor]) -> list[Slot]:
    """Slots for ``children`` in start order (replicas expanded, dependencies first)."""
    public: dict[str, list[str]] = {}  # what a dependency on a child's name means
    for child in children:
        public[child.name] = public_names(child)
    slots: list[Slot] = []
    for child in children:
        slots += slots_of(child, public)
    return start_order(slots)


def public_names(child: Child | Supervisor) -> list[str]:
    """The slots a dependency on ``child`` means: its breaker, or all its replicas."""
    return [child.name] if _protected(child) else _members(child, child.name)


def slots_of(child: Child | Supervisor, public: dict[str, list[str]]) -> list[Slot]:
    """The slots of ``child`` (``public``: the slots each sibling's name means)."""
    deps = tuple(name for dep in child.depends_on for name in public[dep])
    if _protected(child):
        base = child.name + PROTECTED
        inner = _members(child, base)
        group = base if len(inner) > 1 else None
        breaker = Slot(child.name, child, None, (*deps, *inner), "breaker")
        return [*(Slot(name, child, group, deps) for name in inner), breaker]
    members = public_names(child)
    group = child.name if len(members) > 1 else None
    role = "supervisor" if isinstance(child, Supervisor) else "actor"
    return [Slot(name, child, group, deps, role) for name in members]


def _protected(child: Child | Supervisor) -> bool:
    return isinstance(child, Child) and child.breaker is not None


def _members(child: Child | Supervisor, base: str) -> list[str]:
    replicas = child.replicas if isinstance(child, Child) else 1
    return [f"{base}.{i}" for i in range(replicas)] if replicas > 1 else [base]


def dependency_graph(tree: Supervisor) -> dict[str, tuple[str, ...]]:
    """Every path of ``tree`` and the paths it depends on (its supervisors' dependencies too).

    A child of a supervisor that depends on ``db`` depends on ``db`` as well; a
    breaker's slot depends on its protected actor.
    """
    graph: dict[str, tuple[str, ...]] = {}

    def walk(sup: Supervisor, base: str, inherited: tuple[str, ...]) -> None:
        for slot in expand(sup.children):
            path = f"{base}/{slot.name}"
            deps = tuple(f"{base}/{d}" for d in slot.depends_on) + inherited
            graph[path] = deps
            if slot.role == "supervisor":
                assert isinstance(slot.spec, Supervisor)
                walk(slot.spec, path, deps)

    graph[tree.name] = ()
    walk(tree, tree.name, ())
    return graph


def _slots_below(tree: Supervisor) -> Iterator[tuple[str, Slot, Supervisor]]:
    """Every slot below ``tree``, in tree order: its path, itself and its supervisor."""

    def walk(sup: Supervisor, base: str) -> Iterator[tuple[str, Slot, Supervisor]]:
        for slot in expand(sup.children):
            path = f"{base}/{slot.name}"
            yield path, slot, sup
            if slot.role == "supervisor":
                assert isinstance(slot.spec, Supervisor)
                yield from walk(slot.spec, path)

    return walk(tree, tree.name)


def quiet_periods(tree: Supervisor) -> dict[str, float]:
    """Every actor path of ``tree`` and its ladder's ``quiet_period_s`` (how long the tree
    remembers a failure of it)."""
    return {
        path: (getattr(slot.spec, "levels", None) or sup.levels).quiet_period_s
        for path, slot, sup in _slots_below(tree)
    }


def pool_paths(tree: Supervisor) -> list[str]:
    """The paths of the Pools ``tree`` declares (``tree`` itself included), in tree order."""
    return pools_and_breakers(tree)[0]


def pools_and_breakers(tree: Supervisor) -> tuple[list[str], list[str]]:
    """:func:`pool_paths` of ``tree`` and the paths of the breakers it declares (not those
    of a Pool's instances), in one walk of it."""
    from ._pool import Pool

    pools = [tree.name] if isinstance(tree, Pool) else []
    breakers = []
    for path, slot, _ in _slots_below(tree):
        if isinstance(slot.spec, Pool):
            pools.append(path)
        elif slot.role == "breaker":
            breakers.append(path)
    return pools, breakers


def pool_of(path: str, pools: Collection[str]) -> str | None:
    """The outermost of ``pools`` that ``path`` is below (None: none), looked for among the
    path's ancestors: as cheap with a Pool per tenant as with one."""
    end = path.find("/")
    while end != -1:
        if path[:end] in pools:
            return path[:end]
        end = path.find("/", end + 1)
    return None


def start_order(slots: Sequence[Slot]) -> list[Slot]:
    """Topological order of ``slots`` by ``depends_on``; stable for independent slots."""
    if not any(slot.depends_on for slot in slots):  # (replicas, most trees: as declared)
        return list(slots)
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
