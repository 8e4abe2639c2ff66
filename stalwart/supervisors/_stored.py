"""Durable checkpoints an earlier run kept for paths this run has not started yet.

The tree's declared durable children take theirs when the tree starts. A child added at
run time (a Pool's key, a ``start_child`` of a durable ``Child``) takes its own when its
path is first started in this run, and a key that is a supervisor hands its durable
children theirs. The root keeps what the store had for the paths the tree does not
declare; a supervisor asks it, as it begins, for the entries below it that are not below
one of its declared children (``ChildrenNow``, answered with ``StoredStates``) and hands
each to the first instance of its path. An entry is taken once the child added at run
time that it is, or is below, has registered: a key whose first start fails keeps the
entries of its whole subtree. The root forgets the entries below a path forgotten after
it ran (they were that life's), with their rows; a path forgotten before it ever ran
keeps its stored checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._registry import PathIndex


class StoredStates:
    """Path -> state, with what is below a path found without a scan."""

    __slots__ = ("index", "states")

    def __init__(self, states: Mapping[str, Any] | None = None) -> None:
        self.states: dict[str, Any] = dict(states or {})
        self.index = PathIndex()
        for path in self.states:
            self.index.add(path)

    def __bool__(self) -> bool:
        return bool(self.states)

    def __contains__(self, path: str) -> bool:
        return path in self.states

    def under(self, path: str, skip: Callable[[str], bool] | None = None) -> dict[str, Any]:
        """The entries below ``path``; with ``skip``, none at or below a path for which it
        is true."""
        states = self.states
        if not states:
            return {}
        return {p: states[p] for p in self.index.under(path, skip) if p in states}

    def drop(self, paths: Iterable[str]) -> None:
        """Hand out the entries of ``paths`` no more."""
        states = self.states
        for path in paths:
            if path in states:
                del states[path]
                self.index.remove(path, states)

    def drop_under(self, path: str) -> list[str]:
        """Hand out the entries below ``path`` no more; their paths."""
        below = list(self.under(path))
        self.drop(below)
        return below
