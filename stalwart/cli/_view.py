"""What ``stalwart run`` shows while its tree runs.

In a terminal, :class:`LiveScreen`: one frame (the tree, the memory level, the latest
events), redrawn in place on the terminal's alternate screen, so nothing of it goes to
the scrollback. The frame is cut to the terminal's size, and its first lines (the
dashboard's address and token, when served) are never cut. The terminal is given back
however the view ends: a stop, Ctrl-C, an error.

Otherwise (a pipe, a log, a service manager), :class:`EventLines`: one line per event,
at most :class:`LineBudget` allows; what it holds back is counted by kind and said in
one line.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from ..supervisors import ActorStatus, Status, StatusSummary, System

ENTER = "\x1b[?1049h\x1b[?25l"  # the alternate screen, the cursor hidden
LEAVE = "\x1b[?25h\x1b[?1049l"  # the cursor shown, the screen as it was before
HOME, ERASE_LINE, ERASE_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"
_EVENTS_KEPT = 200  # the live view looks this far back for the latest events
_DEFAULT_SIZE = (24, 80)  # rows, columns: when the terminal does not say


class LineBudget:
    """At most ``burst`` lines at once, then ``per_s`` lines a second (a token bucket)."""

    def __init__(
        self, burst: int = 20, per_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.per_s, self.clock = burst, per_s, clock
        self.tokens, self.last = float(burst), clock()

    def take(self) -> bool:
        """May one more line go out now? (If so, it is counted.)"""
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.per_s)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class EventLines:
    """Without a terminal: one line per event while the budget allows. Once it does not,
    events are held back (counted by kind) and said in one line every ``summary_s``
    seconds, then lines go on: the order of what is written stays the order of events."""

    def __init__(
        self,
        system: System,
        out: TextIO,
        t0: float,
        budget: LineBudget | None = None,
        summary_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.system, self.out, self.t0, self.seen = system, out, t0, 0
        self.budget = budget or LineBudget(clock=clock)
        self.summary_s, self.clock = summary_s, clock
        self.held: Counter[str] = Counter()
        self.held_since = 0.0

    def __enter__(self) -> EventLines:
        return self

    def __exit__(self, error: type[BaseException] | None, *exc: object) -> None:
        with contextlib.suppress(OSError, ValueError):  # (a reader gone: nothing to say it to)
            if error is None:  # the events up to the stop: shown, or counted
                self.update()
            self.say_held()
            self.out.flush()

    def update(self) -> None:
        for e in self.system.events(self.seen):
            self.seen = e.seq
            if not self.held and self.budget.take():
                level = f" level {e.level}" if e.level else ""
                detail = f": {e.detail}" if e.detail else ""
                self.out.write(f"{e.time - self.t0:8.2f}s {e.kind:<16} {e.path}{level}{detail}\n")
                continue
            if not self.held:
                self.held_since = self.clock()
            self.held[e.kind] += 1
        if self.held and self.clock() - self.held_since >= self.summary_s:
            self.say_held()
        self.out.flush()

    def say_held(self) -> None:
        """One line for the events held back, by kind (most first)."""
        if not self.held:
            return
        kinds = ", ".join(f"{kind} {n}" for kind, n in self.held.most_common())
        total = sum(self.held.values())
        self.out.write(
            f"{time.time() - self.t0:8.2f}s ... {total} more event(s) not shown ({kinds})\n"
        )
        self.held.clear()


class LiveScreen:
    """In a terminal: the tree and the latest events, one frame redrawn in place on the
    alternate screen; ``top`` (the dashboard's address and token) heads every frame."""

    def __init__(self, system: System, out: TextIO, t0: float, top: list[str]) -> None:
        self.system, self.out, self.t0, self.top = system, out, t0, top
        self.seen = 0
        self.entered = False

    def __enter__(self) -> LiveScreen:
        self.out.write(ENTER)
        self.out.flush()
        self.entered = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        """Give the terminal back as it was (idempotent; a terminal gone is no error)."""
        if self.entered:
            self.entered = False
            with contextlib.suppress(OSError, ValueError):
                self.out.write(LEAVE)
                self.out.flush()

    def update(self) -> None:
        rows, columns = terminal_size(self.out)
        status = self.system.status(limit=rows)  # (a screenful: a tree may have 100,000)
        top, tree = self.top_lines(status), self.tree_lines(status)
        if status.total > len(status):  # too large to show whole: counts, the unhealthy first
            summary = self.system.summary(limit=rows)
            top.append(self.counts_line(summary))
            listed = {s.path for s in status}
            flagged = [s for s in summary.unhealthy if s.path not in listed]
            tree = [tree[0], *self.row_lines(flagged, full_paths=True), *tree[1:]]
        lines = fit(top, tree, self.event_lines(), rows)
        # (one column short of the edge: a line that fills it would wrap on some terminals)
        shown = [line[: max(1, columns - 1)] for line in lines]
        self.out.write(HOME + (ERASE_LINE + "\n").join(shown) + ERASE_LINE + ERASE_BELOW)
        self.out.flush()

    def top_lines(self, status: Status) -> list[str]:
        try:
            memory = self.system.memory()
            sample = memory.sample
            mem = f"memory {memory.level.name.lower()} {sample.percent:.0f}%"
            mem += f" of {(sample.limit_from or sample.source).split(' (')[0]}"
            mem += " (shedding load)" if memory.shedding else ""
        except Exception:
            mem = "memory: off"
        title = (
            f"{self.system.tree.name}  [{status.phase}]  {mem}"
            f"  ({time.time() - self.t0:.0f}s; Ctrl-C stops)"
        )
        return [title, *self.top]

    @staticmethod
    def tree_lines(status: Status) -> list[str]:
        heading = f"{'path':<34} {'state':<11} {'level':>5} {'restarts':>8}  {'node':<8} breaker"
        return [heading, *LiveScreen.row_lines(status)]

    @staticmethod
    def row_lines(rows: Iterable[ActorStatus], full_paths: bool = False) -> list[str]:
        """One line per row: its name indented by depth (or its whole path)."""
        lines = []
        for s in rows:
            name = s.path if full_paths else "  " * s.path.count("/") + s.path.rsplit("/", 1)[-1]
            lines.append(
                f"{name:<34} {s.state:<11} {s.level or '':>5} {s.restarts or '':>8}"
                f"  {s.node or '-':<8} {s.breaker}"
            )
        return lines

    @staticmethod
    def counts_line(summary: StatusSummary) -> str:
        """A large tree in one line: how many by state, and how many need a look."""
        counts = ", ".join(
            f"{state} {n:,}" for state, n in sorted(summary.counts.items(), key=lambda kv: -kv[1])
        )
        return (
            f"{summary.total:,} in the tree ({counts}); {summary.unhealthy_total:,} need a look"
            " (listed first)"
        )

    def event_lines(self) -> list[str]:
        events = self.system.events(max(0, self.seen - _EVENTS_KEPT))
        if events:
            self.seen = events[-1].seq
        lines = []
        for e in events[-_EVENTS_KEPT:]:
            level = f" level {e.level}" if e.level else ""
            lines.append(f"  {e.kind:<16} {e.path}{level} {e.detail[:70]}")
        return lines


def fit(top: list[str], tree: list[str], events: list[str], rows: int) -> list[str]:
    """A frame of at most ``rows`` lines: all of ``top``, then as much of the tree as
    fits (the rest counted), then the latest of the events that still fit."""
    frame = top[:rows]
    room = rows - len(frame) - 1  # (a blank line between the top and the tree)
    if room <= 0:
        return frame
    frame.append("")
    if len(tree) > room:
        cut = max(0, room - 1)
        return [*frame, *tree[:cut], f"... {len(tree) - cut} more"][: len(frame) + room]
    frame += tree
    room -= len(tree) + 2  # (a blank line and the heading before the events)
    if room > 0 and events:
        frame += ["", "latest events:", *events[-room:]]
    return frame


def terminal_size(out: Any) -> tuple[int, int]:
    """(rows, columns) of the terminal ``out`` writes to (24 x 80 if it does not say)."""
    try:
        columns, rows = os.get_terminal_size(out.fileno())
    except (OSError, ValueError, AttributeError):
        return _DEFAULT_SIZE
    return (rows or _DEFAULT_SIZE[0], columns or _DEFAULT_SIZE[1])
