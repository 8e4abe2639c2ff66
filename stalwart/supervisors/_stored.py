"""Durable checkpoints an earlier run kept for paths this run has not started yet.

The tree's declared durable children take theirs when the tree starts. A child added at
run time (a Pool's key, a ``start_child`` of a durable ``Child``) takes its own when its
path is first started in this run: the root keeps what the store had, a supervisor asks
it for the entries below it as it begins (``ChildrenNow``, answered with
``StoredStates``) and hands one to the first instance of its path, and both drop it once
that instance has started. A path forgotten before it ever started keeps its row in the
store (a key whose first start failed loses nothing); one that started is this run's, and
what happens to it from then on (forgotten with its rows, or kept) is this run's too.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any


class StoredStates:
    """Path -> state, with the paths below a prefix found without a scan."""

    __slots__ = ("paths", "states")

    def __init__(self, states: Mapping[str, Any] | None = None) -> None:
        self.states: dict[str, Any] = dict(states or {})
        self.paths: list[str] = sorted(self.states)

    def __bool__(self) -> bool:
        return bool(self.states)

    def __contains__(self, path: str) -> bool:
        return path in self.states

    def under(self, prefix: str) -> dict[str, Any]:
        """The entries whose paths start with ``prefix``."""
        paths = self.paths
        i = bisect.bisect_left(paths, prefix)
        out: dict[str, Any] = {}
        while i < len(paths) and paths[i].startswith(prefix):
            out[paths[i]] = self.states[paths[i]]
            i += 1
        return out

    def drop(self, path: str, below: bool = False) -> None:
        """``path`` has started in this run: its entry (with ``below``, those below it too)
        is not to be handed out any more."""
        if not self.states:
            return
        for p in (path, *self.under(path + "/")) if below else (path,):
            if p in self.states:
                del self.states[p]
                del self.paths[bisect.bisect_left(self.paths, p)]
