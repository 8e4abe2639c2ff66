"""Shared helpers: timing loops and the ratio table every benchmark prints."""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    """One figure beside its peer. ``ratio`` is ours / peer."""

    name: str
    ours: float
    peer_name: str
    peer: float
    unit: str
    better: str = "lower"  # or "higher"
    goal: float | None = None  # the ratio we aim for (<= goal if lower is better)

    @property
    def ratio(self) -> float:
        return self.ours / self.peer if self.peer else float("inf")

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        ok = self.ratio <= self.goal if self.better == "lower" else self.ratio >= self.goal
        sign = "<=" if self.better == "lower" else ">="
        return f"{'meets' if ok else 'MISSES'} goal {sign} {self.goal:g}"


@dataclass
class Figure:
    """A figure with no peer (a plain measurement)."""

    name: str
    value: float
    unit: str
    note: str = ""


def ns_per_call(stmt: Callable[[], object], number: int = 200_000, repeat: int = 5) -> float:
    """Best-of-``repeat`` nanoseconds per call of ``stmt``."""
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e9


def percentile(values: list[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def now() -> float:
    return time.perf_counter()


def print_rows(title: str, rows: list[Row | Figure]) -> None:
    print(f"\n== {title}")
    for r in rows:
        if isinstance(r, Figure):
            note = f"  ({r.note})" if r.note else ""
            print(f"  {r.name:<52} {r.value:>12.4g} {r.unit:<8}{note}")
            continue
        print(
            f"  {r.name:<52} {r.ours:>12.4g} {r.unit:<8} {r.peer_name}: {r.peer:>10.4g} {r.unit:<8}"
            f" ratio {r.ratio:>7.3f}  {r.verdict}"
        )
