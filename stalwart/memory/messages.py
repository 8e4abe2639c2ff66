"""Messages of the memory-pressure actor."""

from __future__ import annotations

import msgspec

from ..actors import MemoryLevel
from ..supervisors.messages import TIERS, MemoryCleanupRequest, MemoryQuery
from ._sampler import MemorySample

__all__ = [
    "TIERS",
    "ActorFreed",
    "CleanupReport",
    "MemoryCleanupRequest",
    "MemoryQuery",
    "MemoryStatus",
]


class ActorFreed(msgspec.Struct, frozen=True):
    """What one actor freed: as its caches and hook reported, and its process's RSS drop."""

    pid: int
    caches: int = 0
    hook: int = 0
    rss_freed: int = 0
    error: str = ""


class CleanupReport(msgspec.Struct, frozen=True):
    """One cleanup: its tier, what set it off, memory before and after, who freed what.

    ``actors``: what the actors that failed, then the 100 that freed most, reported (one
    that freed nothing is left out); ``answered`` counts every actor that answered.
    ``unanswered``: the first 100 paths (in order) that did not answer within
    ``reply_timeout_s``; ``unanswered_total`` counts them all.
    """

    id: int
    tier: str
    trigger: str  # threshold, trend, psi or manual
    detail: str
    time: float
    duration_s: float
    percent_before: float
    percent_after: float
    before_bytes: int
    after_bytes: int
    actors: dict[str, ActorFreed] = msgspec.field(default_factory=dict)
    restarted: tuple[str, ...] = ()
    shedding: bool = False
    unanswered: tuple[str, ...] = ()
    answered: int = 0
    unanswered_total: int = 0

    @property
    def freed_bytes(self) -> int:
        return self.before_bytes - self.after_bytes


class MemoryStatus(msgspec.Struct, frozen=True):
    """The memory-pressure actor's view: level, latest sample, trend, recent cleanups."""

    level: MemoryLevel
    sample: MemorySample | None
    slope_per_s: float
    shedding: bool
    cleanups: tuple[CleanupReport, ...]
