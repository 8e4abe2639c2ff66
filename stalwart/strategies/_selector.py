"""Adaptive strategy selection: learn which recovery works best per error category and level.

Each (category, level, strategy) keeps a Beta posterior of its success rate and
running means of its recovery time and resource cost. :meth:`AdaptiveSelector.choose`
draws a success rate from each candidate's posterior (Thompson sampling) and
picks the largest ``rate / (time ** time_weight * (1 + cost) ** cost_weight)``:
the order that minimises expected time to a successful recovery when strategies
are tried one after another. Each recorded outcome counts ``evidence_weight``
times in the posterior: 1 is textbook Thompson sampling; larger values explore
less and settle sooner, which suits recovery, where a wrong pick costs downtime.
Before anything is recorded for a (category, level), candidates are taken in the
fixed ladder order, so a cold start behaves exactly like the fixed ladder; the
prior slightly favours earlier candidates.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from .._deferred import np

DEFAULT_CANDIDATES: dict[int, tuple[str, ...]] = {
    1: ("retry", "reconnect"),
    2: ("backoff", "adjust", "fallback"),
    3: ("restart", "reassign"),
    4: ("restart_subtree",),
    5: ("shed_load", "restart_tree"),
}

DEFAULT_PRIOR_TIME_S: dict[str, float] = {
    "retry": 0.05,
    "reconnect": 0.1,
    "backoff": 0.5,
    "adjust": 0.5,
    "fallback": 0.01,
    "restart": 0.2,
    "reassign": 0.05,
    "restart_subtree": 1.0,
    "shed_load": 0.1,
    "restart_tree": 2.0,
}


class StrategyStats(msgspec.Struct):
    """Recorded outcomes of one strategy for one (category, level)."""

    successes: int = 0
    failures: int = 0
    total_time_s: float = 0.0
    total_cost: float = 0.0

    @property
    def n(self) -> int:
        """Number of recorded attempts."""
        return self.successes + self.failures


class Ranked(msgspec.Struct, frozen=True):
    """One candidate's standing, for explaining a choice."""

    strategy: str
    attempts: int
    success_rate: float
    mean_time_s: float
    score: float


class AdaptiveSelector:
    """Picks a recovery strategy per (error category, level) from recorded outcomes.

    Deterministic for a given ``seed`` and sequence of calls. Not thread-safe:
    it lives inside one actor (or behind the caller's own lock).
    """

    def __init__(
        self,
        candidates: Mapping[int, Sequence[str]] | None = None,
        *,
        time_weight: float = 1.0,
        cost_weight: float = 0.0,
        prior_strength: float = 1.0,
        evidence_weight: float = 4.0,
        prior_time_s: Mapping[str, float] | None = None,
        seed: int | None = None,
    ) -> None:
        if evidence_weight <= 0:
            raise ValueError(
                f"AdaptiveSelector.evidence_weight: must be > 0, got {evidence_weight}"
            )
        self.candidates = {lvl: tuple(c) for lvl, c in (candidates or DEFAULT_CANDIDATES).items()}
        self.time_weight = time_weight
        self.cost_weight = cost_weight
        self.prior_strength = prior_strength
        self.evidence_weight = evidence_weight
        self.prior_time_s = dict(DEFAULT_PRIOR_TIME_S)
        self.prior_time_s.update(prior_time_s or {})
        self._seed = seed
        self._stats: dict[tuple[str, int, str], StrategyStats] = {}

    @functools.cached_property
    def _rng(self) -> np.random.Generator:
        # made on the first draw, so that a tree that never chooses never imports numpy
        return np.random.default_rng(self._seed)

    # -- learning --------------------------------------------------------------------
    def record(
        self,
        category: str,
        level: int,
        strategy: str,
        success: bool,
        duration_s: float,
        cost: float = 0.0,
    ) -> None:
        """Record the outcome of one recovery attempt."""
        stats = self._stats.setdefault((str(category), int(level), strategy), StrategyStats())
        if success:
            stats.successes += 1
        else:
            stats.failures += 1
        stats.total_time_s += max(0.0, float(duration_s))
        stats.total_cost += max(0.0, float(cost))

    def stats(self, category: str, level: int, strategy: str) -> StrategyStats:
        """The recorded outcomes of one strategy (empty if none)."""
        return self._stats.get((str(category), int(level), strategy), StrategyStats())

    # -- choosing ----------------------------------------------------------------------
    def choose(
        self,
        category: str,
        level: int,
        *,
        exclude: Iterable[str] = (),
        available: Iterable[str] | None = None,
    ) -> str:
        """The strategy to run now for ``category`` at ``level``.

        ``exclude`` removes strategies already tried for this failure;
        ``available`` restricts to those that apply (e.g. no ``reassign`` without
        replicas). Raises ``LookupError`` if nothing is left.
        """
        names = self._eligible(level, exclude, available)
        if not names:
            raise LookupError(f"no recovery strategy left for {category} at level {level}")
        if len(names) == 1:
            return names[0]
        stats = [self.stats(category, level, s) for s in names]
        if all(s.n == 0 for s in self._level_stats(category, level)):
            return names[0]
        alpha, beta = self._posterior(level, names, stats)
        rates = self._rng.beta(alpha, beta)
        scores = rates / self._penalty(names, stats)
        return names[int(np.argmax(scores))]

    def ranking(self, category: str, level: int) -> list[Ranked]:
        """Candidates for (category, level) with their posterior means, best first."""
        names = list(self.candidates.get(level, ()))
        if not names:
            return []
        stats = [self.stats(category, level, s) for s in names]
        alpha, beta = self._posterior(level, names, stats)
        rates = alpha / (alpha + beta)
        penalty = self._penalty(names, stats)
        times = self._mean_times(names, stats)
        ranked = [
            Ranked(name, s.n, float(r), float(t), float(r / p))
            for name, s, r, t, p in zip(names, stats, rates, times, penalty)
        ]
        return sorted(ranked, key=lambda r: -r.score)

    def _eligible(
        self, level: int, exclude: Iterable[str], available: Iterable[str] | None
    ) -> list[str]:
        excluded = set(exclude)
        allowed = None if available is None else set(available)
        return [
            s
            for s in self.candidates.get(level, ())
            if s not in excluded and (allowed is None or s in allowed)
        ]

    def _level_stats(self, category: str, level: int) -> list[StrategyStats]:
        return [self.stats(category, level, s) for s in self.candidates.get(level, ())]

    def _posterior(
        self, level: int, names: Sequence[str], stats: Sequence[StrategyStats]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        order = self.candidates.get(level, ())
        k = max(1, len(order) - 1)
        bias = np.array(
            [self.prior_strength * (len(order) - 1 - order.index(n)) / k for n in names]
        )
        weight = self.evidence_weight
        alpha = 1.0 + bias + weight * np.array([s.successes for s in stats], dtype=float)
        beta = 1.0 + weight * np.array([s.failures for s in stats], dtype=float)
        return alpha, beta

    def _mean_times(
        self, names: Sequence[str], stats: Sequence[StrategyStats]
    ) -> np.ndarray[Any, Any]:
        prior = np.array([self.prior_time_s.get(n, 1.0) for n in names])
        total = np.array([s.total_time_s for s in stats])
        n = np.array([s.n for s in stats], dtype=float)
        means: np.ndarray[Any, Any] = np.maximum((prior + total) / (1.0 + n), 1e-6)
        return means

    def _penalty(
        self, names: Sequence[str], stats: Sequence[StrategyStats]
    ) -> np.ndarray[Any, Any]:
        times = self._mean_times(names, stats)
        n = np.array([s.n for s in stats], dtype=float)
        cost = np.array([s.total_cost for s in stats]) / np.maximum(n, 1.0)
        penalty: np.ndarray[Any, Any] = np.asarray(
            times**self.time_weight * (1.0 + cost) ** self.cost_weight
        )
        return penalty

    # -- persistence ---------------------------------------------------------------------
    def state(self) -> dict[str, list[float]]:
        """A JSON-ready snapshot: ``{"category|level|strategy": [succ, fail, time, cost]}``."""
        return {
            f"{c}|{lvl}|{s}": [st.successes, st.failures, st.total_time_s, st.total_cost]
            for (c, lvl, s), st in self._stats.items()
        }

    def load_state(self, state: Mapping[str, Sequence[float]]) -> None:
        """Replace what was learned with a snapshot from :meth:`state`."""
        loaded: dict[tuple[str, int, str], StrategyStats] = {}
        for key, values in state.items():
            try:
                category, level, strategy = key.split("|")
                succ, fail, total_time, total_cost = values
                loaded[(category, int(level), strategy)] = StrategyStats(
                    int(succ), int(fail), float(total_time), float(total_cost)
                )
            except (ValueError, TypeError) as exc:
                raise ValueError(f"selector state entry {key!r}: {exc}") from exc
        self._stats = loaded
