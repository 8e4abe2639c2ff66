"""The live tree in pages and in brief: what ``System.status(...)``, ``System.summary()``
and the dashboard read from the root's registry.

A tree of 100,000 actors is 100,000 rows. All of them can be read, but a screen or a
poll reads a page of them (``offset``/``limit``, in tree order) or the summary (counts
by state and kind, and the entries that need a look): rows are made only for what is
shown, and the rest costs one pass over the registry in C-level loops.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from itertools import islice
from operator import attrgetter

from ._registry import Entry, Registry
from .messages import ActorStatus, StatusSummary

_state, _kind = attrgetter("state"), attrgetter("kind")


def needs_a_look(entry: Entry) -> bool:
    """Not running, or recovering (a level above 0), or behind a breaker that is not closed."""
    return entry.state != "running" or entry.level > 0 or entry.breaker not in ("", "closed")


def _state_of(registry: Registry, entry: Entry, removed: bool) -> str:
    """Its state as ``status()`` shows it: ``stopped`` below a supervisor stopped for good."""
    return "stopped" if removed and registry.stopped(entry.path) else str(entry.state)


def row(registry: Registry, entry: Entry, removed: bool = True) -> ActorStatus:
    """``entry`` as ``System.status()`` shows it (``removed``: some entry stopped for good)."""
    return ActorStatus(
        entry.path,
        entry.kind,
        _state_of(registry, entry, removed),
        entry.level,
        entry.restarts,
        entry.last_error,
        entry.pid,
        entry.node,
        entry.incarnation,
        entry.actor_class,
        entry.breaker,
        entry.breaker_health,
    )


def _entries(registry: Registry, path: str | None) -> Iterable[Entry]:
    """The entries of ``path`` and below it (all when None), in tree order."""
    values = registry.entries.values()
    if path is None:
        return values
    prefix = path + "/"
    return [e for e in values if e.path == path or e.path.startswith(prefix)]


def _any_removed(registry: Registry) -> bool:
    return any(map(attrgetter("removed"), registry.entries.values()))


def status_page(
    registry: Registry, path: str | None, offset: int, limit: int | None
) -> tuple[tuple[ActorStatus, ...], int]:
    """The rows of ``path`` and what is below it (everything when None), in tree order,
    from ``offset``, at most ``limit`` (None: all); and how many there are in all."""
    entries = _entries(registry, path)
    total = len(entries) if isinstance(entries, list) else len(registry.entries)
    removed = _any_removed(registry)
    end = None if limit is None else offset + limit
    rows = tuple(row(registry, e, removed) for e in islice(entries, offset, end))
    return rows, total


def summarize(
    registry: Registry, path: str | None, limit: int, phase: str, stop_reason: str
) -> StatusSummary:
    """Counts by state and by kind below ``path`` (everything when None), and the first
    ``limit`` entries that need a look (see :func:`needs_a_look`), in tree order."""
    entries = _entries(registry, path)
    removed = _any_removed(registry)
    if removed:  # (rare: some supervisor stopped for good, and with it what is below it)
        counts = Counter(_state_of(registry, e, True) for e in entries)
    else:
        counts = Counter(map(_state, entries))
    kinds = Counter(map(_kind, entries))
    flagged = [e for e in entries if needs_a_look(e) or (removed and registry.stopped(e.path))]
    return StatusSummary(
        sum(counts.values()),
        dict(counts),
        dict(kinds),
        tuple(row(registry, e, removed) for e in flagged[:limit]),
        len(flagged),
        phase,
        stop_reason,
    )


def shown_rows(registry: Registry, first: int, flagged: Iterable[ActorStatus]) -> list[ActorStatus]:
    """A bounded view of the tree: its first ``first`` rows in tree order, then the rows
    ``flagged`` (a summary's), each after the supervisors above it (so it sits in its
    place in the tree), in tree order.

    (The registry holds a tree's paths in tree order, each supervisor before what is below
    it: a supervisor not shown yet is shown just before the first row below it.)
    """
    entries = registry.entries
    removed = _any_removed(registry)
    chosen = {e.path: row(registry, e, removed) for e in islice(entries.values(), first)}
    for status in flagged:
        if status.path in chosen:
            continue
        above: list[str] = []
        parent = status.path.rpartition("/")[0]
        while parent and parent not in chosen and parent in entries:
            above.append(parent)
            parent = parent.rpartition("/")[0]
        for p in reversed(above):
            chosen[p] = row(registry, entries[p], removed)
        chosen[status.path] = status
    return list(chosen.values())
