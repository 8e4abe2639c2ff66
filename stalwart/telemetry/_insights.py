"""Insights from the recovery store: error-rate trends, degradation, effectiveness, advice.

- **Error-rate trend** per actor or service: failures per minute in the first and
  second half of the window; ``rising`` when the second half is 1.5 times the
  first (with at least 5 errors), ``falling`` for the reverse, else ``flat``.
- **Degradation**: a service's recent recoveries (the newest quarter, at least 5)
  against its own baseline (the rest, at least 5): median time to recover 1.5
  times the baseline, or success rate 20 points lower.
- **Effectiveness** per level and strategy: attempts, success rate, mean time.
- **Recommendations** in plain words, from the above (and from the resource
  predictions' precision and recall).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec

from .._deferred import np
from ._store import RecoveryStore

ERROR_KINDS = ("failure", "crash", "start-failure")
_MIN_ERRORS, _RISE = 5, 1.5
_MIN_ROWS, _SLOWER, _WORSE = 5, 1.5, 0.2
_WEAK_RATE, _MIN_LEVEL1 = 0.25, 5


class PredictionScore(msgspec.Struct, frozen=True):
    """How resource predictions fared: precision over scored ones, recall over exhaustions.

    ``averted`` predictions (an action ran and the limit was not reached) are
    counted apart: they are neither hits nor false alarms.
    """

    predictions: int
    hits: int
    false_alarms: int
    averted: int
    exhaustions: int
    predicted_exhaustions: int
    precision: float | None
    recall: float | None


def score_predictions(outcomes: Sequence[str], exhaustion_flags: Sequence[bool]) -> PredictionScore:
    """Score prediction outcomes (``hit``/``false_alarm``/``averted``) and exhaustions
    (True where one was predicted)."""
    hits = sum(1 for o in outcomes if o == "hit")
    false_alarms = sum(1 for o in outcomes if o == "false_alarm")
    averted = sum(1 for o in outcomes if o == "averted")
    predicted = sum(1 for f in exhaustion_flags if f)
    return PredictionScore(
        predictions=len(outcomes),
        hits=hits,
        false_alarms=false_alarms,
        averted=averted,
        exhaustions=len(exhaustion_flags),
        predicted_exhaustions=predicted,
        precision=hits / (hits + false_alarms) if hits + false_alarms else None,
        recall=predicted / len(exhaustion_flags) if exhaustion_flags else None,
    )


class ErrorTrend(msgspec.Struct, frozen=True):
    """Errors of one actor or service, per minute, in each half of the window."""

    path: str
    errors: int
    first_per_min: float
    second_per_min: float
    direction: str  # rising, falling, flat


class Degradation(msgspec.Struct, frozen=True):
    """A service recovering worse than its own baseline."""

    path: str
    metric: str  # "recovery time" or "success rate"
    baseline: float
    recent: float


class Effectiveness(msgspec.Struct, frozen=True):
    """How one strategy at one level has done."""

    level: int
    strategy: str
    attempts: int
    success_rate: float
    mean_s: float


class Insights(msgspec.Struct, frozen=True):
    """Everything :func:`insights` found."""

    window_s: float | None
    error_trends: list[ErrorTrend]
    degradations: list[Degradation]
    effectiveness: list[Effectiveness]
    predictions: PredictionScore
    recommendations: list[str]


def _since(store: RecoveryStore, window_s: float | None, now: float, table: str) -> float:
    if window_s is not None:
        return now - window_s
    first = store.db.execute(f"SELECT min(time) FROM {table}").fetchone()[0]
    return float(first) if first is not None else now


def error_trends(
    store: RecoveryStore, window_s: float | None = None, now: float | None = None
) -> list[ErrorTrend]:
    """Per path: errors in each half of the window, and which way they go."""
    now = time.time() if now is None else now
    since = _since(store, window_s, now, "events")
    middle, half_min = (since + now) / 2, max((now - since) / 2 / 60, 1 / 60)
    marks = ", ".join("?" for _ in ERROR_KINDS)
    rows = store.db.execute(
        f"SELECT path, sum(time < ?), sum(time >= ?) FROM events"
        f" WHERE kind IN ({marks}) AND time >= ? GROUP BY +path ORDER BY count(*) DESC",
        (middle, middle, *ERROR_KINDS, since),
    ).fetchall()
    trends = []
    for path, first, second in rows:
        first, second = int(first or 0), int(second or 0)
        direction = "flat"
        if first + second >= _MIN_ERRORS:
            if second >= _RISE * max(first, 1):
                direction = "rising"
            elif first >= _RISE * max(second, 1):
                direction = "falling"
        trends.append(
            ErrorTrend(path, first + second, first / half_min, second / half_min, direction)
        )
    return trends


def degradations(
    store: RecoveryStore, window_s: float | None = None, now: float | None = None
) -> list[Degradation]:
    """Services whose recent recoveries are slower or fail more than their own baseline."""
    now = time.time() if now is None else now
    since = -1.0 if window_s is None else now - window_s
    found: list[Degradation] = []
    times: dict[str, list[float]] = {}
    for path, ms in store.db.execute(
        "SELECT path, duration_ms FROM events WHERE kind = 'recovered' AND time >= ?"
        " ORDER BY time, id",
        (since,),
    ):
        times.setdefault(path, []).append(float(ms or 0.0))
    for path, values in times.items():
        split = _split(values)
        if split is not None:
            base, recent = float(np.median(split[0])), float(np.median(split[1]))
            if base > 0 and recent >= _SLOWER * base:
                found.append(Degradation(path, "recovery time", base / 1000, recent / 1000))
    outcomes: dict[str, list[float]] = {}
    for path, ok in store.db.execute(
        "SELECT path, success FROM recovery_performance WHERE time >= ? ORDER BY time, id",
        (since,),
    ):
        outcomes.setdefault(path, []).append(float(ok))
    for path, values in outcomes.items():
        split = _split(values)
        if split is not None:
            base, recent = float(np.mean(split[0])), float(np.mean(split[1]))
            if recent <= base - _WORSE:
                found.append(Degradation(path, "success rate", base, recent))
    return found


def _split(values: list[float]) -> tuple[list[float], list[float]] | None:
    recent = max(_MIN_ROWS, len(values) // 4)
    if len(values) - recent < _MIN_ROWS:
        return None
    return values[:-recent], values[-recent:]


def effectiveness(store: RecoveryStore, window_s: float | None = None) -> list[Effectiveness]:
    """Attempts, success rate and mean time per (level, strategy)."""
    since = -1.0 if window_s is None else time.time() - window_s
    return [
        Effectiveness(int(level), strategy or "-", int(n), float(ok or 0) / n, float(mean or 0.0))
        for level, strategy, n, ok, mean in store.db.execute(
            "SELECT level, strategy, count(*), sum(success), avg(duration_s)"
            " FROM recovery_performance WHERE time >= ? GROUP BY level, strategy"
            " ORDER BY level, strategy",
            (since,),
        )
    ]


def stored_prediction_score(store: RecoveryStore, window_s: float | None = None) -> PredictionScore:
    """:func:`score_predictions` over what a store recorded."""
    since = -1.0 if window_s is None else time.time() - window_s
    outcomes = [
        r[0]
        for r in store.db.execute(
            "SELECT outcome FROM resource_predictions WHERE outcome IS NOT NULL AND time >= ?",
            (since,),
        )
    ]
    flags = [
        bool(r[0])
        for r in store.db.execute(
            "SELECT predicted FROM resource_exhaustions WHERE time >= ?", (since,)
        )
    ]
    return score_predictions(outcomes, flags)


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value >= 1 else f"{value * 1000:.0f} ms"


def _level_one_advice(store: RecoveryStore, since: float) -> list[str]:
    advice = []
    rows = store.db.execute(
        "SELECT path, sum(level = 1), sum(level = 1 AND success = 1),"
        " sum(CASE WHEN level = 1 AND success = 0 THEN duration_s ELSE 0 END),"
        " sum(level > 1 AND success = 1)"
        " FROM recovery_performance WHERE time >= ? GROUP BY +path",  # (the time index)
        (since,),
    ).fetchall()
    for path, n1, ok1, wasted_s, later in rows:
        n1, ok1, later = int(n1 or 0), int(ok1 or 0), int(later or 0)
        if n1 >= _MIN_LEVEL1 and ok1 / n1 < _WEAK_RATE and later:
            saved = float(wasted_s or 0.0) / later
            advice.append(
                f"{path}: retries at level 1 succeed {100 * ok1 / n1:.0f} % of the time;"
                f" starting at level 2 would have saved {_seconds(saved)} per incident"
            )
    return advice


def insights(
    store: RecoveryStore, window_s: float | None = None, now: float | None = None
) -> Insights:
    """Trends, degradation, effectiveness, prediction scores and recommendations."""
    now = time.time() if now is None else now
    since = -1.0 if window_s is None else now - window_s
    trends = error_trends(store, window_s, now)
    worse = degradations(store, window_s, now)
    effective = effectiveness(store, window_s)
    scored = stored_prediction_score(store, window_s)
    advice = _level_one_advice(store, since)
    for e in effective:
        if e.attempts >= 10 and e.success_rate < 0.2:
            advice.append(
                f"{e.strategy} at level {e.level} succeeded {100 * e.success_rate:.0f} % of"
                f" {e.attempts} attempts: it mostly delays the level that works"
            )
    for d in worse:
        if d.metric == "recovery time":
            advice.append(
                f"{d.path}: recoveries now take {d.recent:.2f} s against a baseline of"
                f" {d.baseline:.2f} s ({d.recent / d.baseline:.1f}x): it is degrading"
            )
        else:
            advice.append(
                f"{d.path}: recoveries succeed {100 * d.recent:.0f} % of the time, down from"
                f" {100 * d.baseline:.0f} %: it is degrading"
            )
    for t in trends:
        if t.direction == "rising":
            advice.append(
                f"{t.path}: errors rising from {t.first_per_min:.1f}/min to"
                f" {t.second_per_min:.1f}/min"
            )
    scored_n = scored.hits + scored.false_alarms
    if scored.precision is not None and scored_n >= 5 and scored.precision < 0.5:
        advice.append(
            f"resource predictions: precision {100 * scored.precision:.0f} %:"
            " raise min_confidence or widen the window"
        )
    if scored.recall is not None and scored.exhaustions >= 3 and scored.recall < 0.5:
        advice.append(
            f"resource predictions: only {100 * scored.recall:.0f} % of exhaustions were"
            " foreseen: sample more often or lengthen horizon_s"
        )
    return Insights(window_s, trends, worse, effective, scored, advice)


def as_dict(value: Any) -> Any:
    """Insights as JSON-ready builtins."""
    return msgspec.to_builtins(value)
