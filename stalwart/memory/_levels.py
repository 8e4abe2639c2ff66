"""From samples to levels: thresholds with hysteresis, a trend that predicts, and PSI.

A level is entered when the percentage reaches its threshold and left only once
it falls ``hysteresis`` points below it, so a value hovering around a threshold
does not flap. Entering a higher level fires its tier once; staying in it fires
again only after ``repeat_s``; coming down fires nothing (the higher tier did
more). A least-squares line through the recent samples predicts when the next
threshold will be crossed: within ``horizon_s``, that tier fires early (trigger
``trend``). PSI ``some avg10`` at or above ``psi_some`` raises the level by one
(trigger ``psi``).
"""

from __future__ import annotations

from collections import deque

import msgspec

from .._deferred import np
from ..actors import MemoryLevel
from ..supervisors import SpecError
from ..supervisors.spec import check_range
from ._sampler import MemorySample


class MemorySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of the memory-pressure actor (``start(memory={...})`` and the ``memory_*`` options).

    - ``thresholds``: percentages for warning, critical, emergency (increasing).
    - ``interval_s``: how often memory is sampled.
    - ``hysteresis``: points below a threshold before its level is left.
    - ``repeat_s``: a tier fires again after this long if the level stays.
    - ``trend_samples`` / ``horizon_s``: the fit's length; a crossing predicted within
      ``horizon_s`` fires the tier early (0: no prediction).
    - ``psi_some``: PSI some avg10 (percent) that raises the level by one (0: off).
    - ``reply_timeout_s``: how long a cleanup waits for the actors' reports.
    - ``restart_largest``: at emergency, restart this many of the largest restartable actors.
    """

    thresholds: tuple[float, float, float] = (70.0, 85.0, 95.0)
    interval_s: float = 1.0
    hysteresis: float = 5.0
    repeat_s: float = 30.0
    trend_samples: int = 10
    horizon_s: float = 10.0
    psi_some: float = 0.0
    reply_timeout_s: float = 5.0
    restart_largest: int = 1

    def __post_init__(self) -> None:
        t = self.thresholds
        if len(t) != 3 or not all(0 < x <= 100 for x in t):
            raise SpecError(
                "start", "memory_thresholds", f"expected three percentages in (0, 100], got {t!r}"
            )
        if not t[0] < t[1] < t[2]:
            raise SpecError(
                "start",
                "memory_thresholds",
                f"must increase (warning < critical < emergency), got {t!r}",
            )
        m = "memory."
        check_range("start", self, ("interval_s", "reply_timeout_s"), above=0, prefix=m)
        zero_or_more = ("hysteresis", "repeat_s", "horizon_s", "psi_some", "restart_largest")
        check_range("start", self, zero_or_more, at_least=0, prefix=m)
        check_range("start", self, ("psi_some",), at_most=100, prefix=m)  # (a percentage)
        check_range("start", self, ("trend_samples",), at_least=3, prefix=m)
        if not self.hysteresis < t[0]:  # (below the warning threshold: a level is left)
            raise SpecError(
                "start",
                m + "hysteresis",
                f"must be below the warning threshold ({t[0]:g}), got {self.hysteresis!r}",
            )


class Trigger(msgspec.Struct, frozen=True):
    """A tier to run now, and why: ``threshold``, ``trend``, ``psi`` (or ``manual``)."""

    level: MemoryLevel
    reason: str
    detail: str = ""


class LevelTracker:
    """Feeds on samples; says when a tier should run."""

    def __init__(self, settings: MemorySettings | None = None) -> None:
        self.settings = s = settings or MemorySettings()
        self.level = MemoryLevel.NORMAL
        self.fired: dict[MemoryLevel, float] = {}  # level -> when its tier last ran
        self.recent: deque[tuple[float, float]] = deque(maxlen=s.trend_samples)

    def _measured_level(self, percent: float) -> MemoryLevel:
        """The level for ``percent``, with hysteresis around the current one."""
        s = self.settings
        level = MemoryLevel.NORMAL
        for i, threshold in enumerate(s.thresholds, start=1):
            stay = self.level >= i and percent >= threshold - s.hysteresis
            if percent >= threshold or stay:
                level = MemoryLevel(i)
        return level

    def slope(self) -> float:
        """Percentage points per second over the recent samples (least squares)."""
        if len(self.recent) < 3:
            return 0.0
        t, p = np.array(self.recent).T
        if np.ptp(t) <= 0:
            return 0.0
        return float(np.polyfit(t - t[0], p, 1)[0])

    def predicted_crossing(
        self, percent: float, level: MemoryLevel
    ) -> tuple[MemoryLevel, float] | None:
        """(the level above ``level``, seconds until its threshold) if the trend reaches it."""
        if level >= MemoryLevel.EMERGENCY:
            return None
        slope = self.slope()
        if slope <= 0:
            return None
        threshold = self.settings.thresholds[int(level)]
        return MemoryLevel(level + 1), max(0.0, (threshold - percent) / slope)

    def observe(self, sample: MemorySample) -> Trigger | None:
        """Take a sample; the tier to run now, if any."""
        s = self.settings
        now, percent = sample.time, sample.percent
        self.recent.append((now, percent))
        previous = self.level
        level = self._measured_level(percent)
        reason, detail = "threshold", f"{percent:.1f}% of the {sample.source} limit"
        pressure = sample.pressure
        stalled = pressure is not None and pressure.some_avg10 >= s.psi_some
        if s.psi_some and stalled and pressure is not None and level < MemoryLevel.EMERGENCY:
            level = MemoryLevel(level + 1)
            reason = "psi"
            detail = f"PSI some avg10 {pressure.some_avg10:.1f}% at {percent:.1f}%"
        crossing = self.predicted_crossing(percent, level) if s.horizon_s else None
        if crossing is not None and crossing[1] <= s.horizon_s:
            level = crossing[0]
            reason = "trend"
            detail = (
                f"{percent:.1f}% rising {self.slope():.2f} points/s:"
                f" {s.thresholds[level - 1]:g}% predicted in {crossing[1]:.1f}s"
            )
        self.level = level
        if level == MemoryLevel.NORMAL:
            self.fired.clear()
            return None
        for higher in [lvl for lvl in self.fired if lvl > level]:
            del self.fired[higher]  # that level was left: entering it again fires again
        if level < previous:  # coming down: the higher tier did this one's work already
            self.fired[level] = now
            return None
        last = self.fired.get(level)
        if level > previous or last is None or now - last >= s.repeat_s:
            self.fired[level] = now
            return Trigger(level, reason, detail)
        return None
