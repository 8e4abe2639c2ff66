"""The live tree in pages and in brief: what ``System.status(...)``, ``System.summary()``
and the dashboard read from the root's registry.

A tree of 100,000 actors is 100,000 rows. All of them can be read, but a screen or a
poll reads a page of them (``offset``/``limit``, in tree order) or the summary (counts
by state and kind, and the entries that need a look): rows are made only for what is
shown, and the registry keeps the whole tree's counts as it changes (those of a subtree
take one pass over the registry in C-level loops).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from itertools import islice
from operator import attrgetter
from typing import Any

from ._registry import Entry, Registry
from .messages import ActorStatus, StatusSummary, TreeGauges

_kind = attrgetter("kind")
_FINE_BREAKERS = ("", "closed")
_FINE_STATES = ("running", "passivated")  # (a passivated actor is idle, not in trouble)


def needs_a_look(entry: Entry) -> bool:
    """Not running (nor passivated), or recovering (a level above 0), or behind a breaker
    that is not closed."""
    return entry.state not in _FINE_STATES or entry.level > 0 or entry.breaker not in _FINE_BREAKERS


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
    """The entries of ``path`` and below it (all when None), in tree order.

    The registry holds a planned tree's paths in tree order already; only children added
    at run time (which come last there) make it sort them.
    """
    owned = any(registry.owned.values())
    values: Iterable[Entry] = registry.in_tree_order() if owned else registry.entries.values()
    if path is None:
        return values
    prefix = path + "/"
    return [e for e in values if e.path == path or e.path.startswith(prefix)]


def status_page(
    registry: Registry, path: str | None, offset: int, limit: int | None
) -> tuple[tuple[ActorStatus, ...], int]:
    """The rows of ``path`` and what is below it (everything when None), in tree order,
    from ``offset``, at most ``limit`` (None: all); and how many there are in all."""
    entries = _entries(registry, path)
    total = len(entries) if isinstance(entries, list) else len(registry.entries)
    removed = registry.any_removed()
    end = None if limit is None else offset + limit
    rows = tuple(row(registry, e, removed) for e in islice(entries, offset, end))
    return rows, total


def summarize(
    registry: Registry, path: str | None, limit: int, phase: str, stop_reason: str
) -> StatusSummary:
    """Counts by state and by kind below ``path`` (everything when None), and the first
    ``limit`` entries that need a look (see :func:`needs_a_look`), in tree order.

    The registry keeps its entries counted by what the summary needs of them (few
    distinct combinations in a large tree); below a path, one C-level pass counts them.
    Only when some need a look are they looked for.
    """
    entries: Iterable[Entry] | None = None if path is None else _entries(registry, path)
    combos = registry.tally if entries is None else Counter(map(Entry.looks, entries))
    if any(removed for *_, removed in combos):  # (rare: a supervisor stopped for good, and
        looked = _entries(registry, path) if entries is None else entries  # below it)
        return _summarize_slowly(registry, looked, limit, phase, stop_reason)
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    flagged = 0
    for (kind, state, level, breaker, _), n in combos.items():
        counts[state] += n
        kinds[kind] += n
        if state not in _FINE_STATES or level > 0 or breaker not in _FINE_BREAKERS:
            flagged += n
    first: Iterable[Entry] = ()
    if flagged:
        looked = _entries(registry, path) if entries is None else entries
        first = islice((e for e in looked if needs_a_look(e)), limit)
    return StatusSummary(
        sum(counts.values()),
        dict(counts),
        dict(kinds),
        tuple(row(registry, e, False) for e in first),
        flagged,
        phase,
        stop_reason,
    )


def tree_gauges(registry: Registry) -> TreeGauges:
    """What ``GET /metrics`` reads of the tree (see :class:`.messages.TreeGauges`).

    An entry added at run time has a level of its own only while above 0: a Pool of
    sessions would otherwise leave a series per session key that ever ran. Every entry is
    counted. A breaker is named while it runs and is not closed (one added at run time
    would otherwise leave a series per key, and a state read from the totals could be
    older than the breaker's).
    """
    removed = registry.any_removed()
    levels = []
    breakers = []
    counts: Counter[tuple[str, str, int]] = Counter()
    added = ""  # entries below this path were added at run time ("": none are)
    for e in _entries(registry, None):  # (in tree order: what is below a path follows it)
        below_added = bool(added) and e.path.startswith(added)
        if not below_added:
            added = e.path + "/" if e.owner is not None else ""
        if not added or e.level > 0:
            levels.append((e.path, e.level))
        if removed:  # (below an entry stopped for good, each shows stopped)
            counts[(e.kind, _state_of(registry, e, True), e.level)] += 1
        if e.breaker not in _FINE_BREAKERS and _state_of(registry, e, removed) != "stopped":
            breakers.append((e.path, e.breaker))
    if not removed:  # (the registry keeps them counted)
        for (kind, state, level, _, _), n in registry.tally.items():
            counts[(kind, state, level)] += n
    tallied = tuple((*looks, n) for looks, n in sorted(counts.items()))
    return TreeGauges(tuple(levels), tallied, tuple(breakers))


def _summarize_slowly(
    registry: Registry, entries: Iterable[Entry], limit: int, phase: str, stop_reason: str
) -> StatusSummary:
    """:func:`summarize` when some entry stopped for good: what is below it shows stopped."""
    states = [_state_of(registry, e, True) for e in entries]
    counts = Counter(states)
    kinds = Counter(map(_kind, entries))
    flagged = [
        e
        for e, state in zip(entries, states)
        if state not in _FINE_STATES or e.level > 0 or e.breaker not in _FINE_BREAKERS
    ]
    return StatusSummary(
        len(states),
        dict(counts),
        dict(kinds),
        tuple(row(registry, e, True) for e in flagged[:limit]),
        len(flagged),
        phase,
        stop_reason,
    )


class Reads:
    """The root's reads of the tree (summaries, pages), kept while the registry stays as it
    was: it changes only while the root handles a message (or the in-process watchdog
    marks a handler hung), and each of those calls :meth:`changed`. So the dashboard's
    polls of an idle tree of 100,000 actors cost nothing after the first."""

    def __init__(self) -> None:
        self.kept: dict[Any, Any] = {}

    def changed(self) -> None:
        """The registry may have changed: what was read from it is read again."""
        if self.kept:
            self.kept.clear()

    def get(self, query: Any, read: Callable[[], Any]) -> Any:
        """What ``read()`` returns for ``query`` (a hashable question), read once a change."""
        found = self.kept.get(query, _NOT_READ)
        if found is _NOT_READ:
            if len(self.kept) >= _KEPT:
                self.kept.clear()
            found = self.kept[query] = read()
        return found


_NOT_READ = object()
_KEPT = 32  # different questions kept at most (a page per screen, the dashboard's...)
