"""Memory pressure: sampling (cgroup v1/v2, PSI, budgets), tiered cleanup, caches that take part.

``start(tree, memory_budget="512MiB", memory_thresholds=(70, 85, 95))`` runs the
:class:`MemoryPressureActor` at ``_system/memory``. At WARNING every
``ManagedActor``'s ``on_memory_pressure(level)`` runs and :class:`TieredCache`
entries past their age go; at CRITICAL caches shrink to their floor and every
actor process runs ``gc.collect()`` and ``malloc_trim``; at EMERGENCY the tree
sheds load and restarts its largest restartable actors.
"""

from __future__ import annotations

from typing import Any

from ..actors import MemoryLevel
from ..supervisors import Child, SpecError, Supervisor
from ..supervisors._plan import expand
from ..supervisors._services import register_service
from ._actor import MemoryPressureActor
from ._cache import TieredCache, default_sizeof
from ._cgroup import (
    CgroupLevel,
    CgroupMemory,
    CgroupPlace,
    CgroupReader,
    locate_cgroup,
    own_cgroup,
    read_cgroup,
)
from ._levels import LevelTracker, MemorySettings, Trigger
from ._sampler import MemorySample, MemorySampler, Pressure, parse_size, read_pressure
from .messages import ActorFreed, CleanupReport, MemoryCleanupRequest, MemoryQuery, MemoryStatus


def memory_settings(options: Any) -> MemorySettings:
    """The memory actor's settings from ``start()`` options; errors name the option."""
    extra = dict(options.memory or {})
    for key in ("thresholds", "interval_s"):
        if key in extra:
            raise SpecError("start", f"memory.{key}", f"use memory_{key} instead")
    known = set(MemorySettings.__struct_fields__) - {"thresholds", "interval_s"}
    for key in extra:
        if key not in known:
            raise SpecError(
                "start", f"memory.{key}", f"unknown setting (known: {', '.join(sorted(known))})"
            )
    if not options.memory_interval_s > 0:
        raise SpecError(
            "start", "memory_interval_s", f"must be > 0, got {options.memory_interval_s!r}"
        )
    try:
        return MemorySettings(
            thresholds=tuple(options.memory_thresholds),
            interval_s=options.memory_interval_s,
            **extra,
        )
    except TypeError as exc:
        raise SpecError("start", "memory", str(exc)) from None


def _check(options: Any) -> None:
    if options.memory_budget is not None:
        parse_size(options.memory_budget)
    memory_settings(options)


def restartable_paths(tree: Supervisor) -> list[str]:
    """Actor paths the tree restarts (not ``temporary``), replicas and protected ones included."""
    found: list[str] = []

    def walk(sup: Supervisor, base: str) -> None:
        for slot in expand(sup.children):
            path = f"{base}/{slot.name}"
            if slot.role == "supervisor" and isinstance(slot.spec, Supervisor):
                walk(slot.spec, path)
            elif slot.role == "actor" and slot.spec.restart != "temporary":
                found.append(path)

    walk(tree, tree.name)
    return found


def _service(options: Any, tree: Supervisor) -> Child | None:
    if options.memory is None:
        return None
    settings = memory_settings(options)
    budget = parse_size(options.memory_budget) if options.memory_budget is not None else None
    return Child(
        "memory",
        MemoryPressureActor,
        checkpoint="off",
        options={
            "settings": {f: getattr(settings, f) for f in MemorySettings.__struct_fields__},
            "budget": budget,
            "base": options.base,
            "restartable": restartable_paths(tree),
        },
    )


register_service("memory", _service, _check)

__all__ = [
    "ActorFreed",
    "CgroupLevel",
    "CgroupMemory",
    "CgroupPlace",
    "CgroupReader",
    "CleanupReport",
    "LevelTracker",
    "MemoryCleanupRequest",
    "MemoryLevel",
    "MemoryPressureActor",
    "MemoryQuery",
    "MemorySample",
    "MemorySampler",
    "MemorySettings",
    "MemoryStatus",
    "Pressure",
    "TieredCache",
    "Trigger",
    "default_sizeof",
    "locate_cgroup",
    "own_cgroup",
    "parse_size",
    "read_cgroup",
    "read_pressure",
    "restartable_paths",
]
