"""The adaptive selector in a synthetic environment with a known best strategy per category.

Each category has, for every strategy, a success probability and a mean recovery
time; outcomes are noisy (Bernoulli successes, log-normal durations). An
incident is recovered by trying strategies until one succeeds; its recovery
time is the sum of the attempts' durations. The fixed ladder always tries
strategies in ladder order; the selector chooses from what it has recorded.
Both face the same pre-drawn outcomes.
"""

from __future__ import annotations

import numpy as np
from _report import Figure, Row, print_rows

from stalwart.strategies import AdaptiveSelector

LADDER = ("retry", "reconnect", "backoff", "restart", "reassign")

# (success probability, mean seconds) per strategy, in LADDER order
ENVIRONMENT: dict[str, list[tuple[float, float]]] = {
    # a failed retry costs its call timeout; backoff costs its waits; restarts cost a start
    "connection": [(0.30, 0.40), (0.90, 0.20), (0.70, 1.00), (0.95, 0.80), (0.70, 0.30)],
    "timeout": [(0.30, 0.60), (0.20, 0.60), (0.60, 1.50), (0.80, 1.00), (0.95, 0.30)],
    "crash": [(0.05, 0.30), (0.05, 0.40), (0.10, 1.00), (0.95, 0.50), (0.40, 0.30)],
    "rate_limit": [(0.05, 0.30), (0.05, 0.40), (0.95, 0.80), (0.30, 1.00), (0.50, 0.60)],
    "database": [(0.40, 0.20), (0.70, 0.25), (0.90, 0.60), (0.90, 1.00), (0.50, 0.30)],
    "resource_exhaustion": [(0.02, 0.30), (0.02, 0.40), (0.20, 1.00), (0.90, 0.60), (0.50, 0.40)],
}
WARMUP_OBSERVATIONS = 50
MEASURED_INCIDENTS = 400


def best_strategy(category: str) -> str:
    table = ENVIRONMENT[category]
    return LADDER[int(np.argmax([p / t for p, t in table]))]


def draw(rng: np.random.Generator, category: str) -> dict[str, tuple[bool, float]]:
    """One incident's outcome for every strategy, so both policies see the same world."""
    return {
        name: (bool(rng.random() < p), float(t * rng.lognormal(0.0, 0.3)))
        for name, (p, t) in zip(LADDER, ENVIRONMENT[category])
    }


def fixed_ladder(outcomes: dict[str, tuple[bool, float]]) -> float:
    total = 0.0
    for name in LADDER:
        ok, t = outcomes[name]
        total += t
        if ok:
            return total
    return total


def oracle(category: str, outcomes: dict[str, tuple[bool, float]]) -> float:
    """Knowing the environment: try strategies by success probability per second."""
    order = sorted(zip(LADDER, ENVIRONMENT[category]), key=lambda x: -x[1][0] / x[1][1])
    total = 0.0
    for name, _ in order:
        ok, t = outcomes[name]
        total += t
        if ok:
            break
    return total


def adaptive(
    sel: AdaptiveSelector, category: str, outcomes: dict[str, tuple[bool, float]]
) -> tuple[float, str, int]:
    total, tried = 0.0, []
    first = ""
    while len(tried) < len(LADDER):
        name = sel.choose(category, 1, exclude=tried)
        first = first or name
        ok, t = outcomes[name]
        sel.record(category, 1, name, ok, t)
        tried.append(name)
        total += t
        if ok:
            break
    return total, first, len(tried)


def run_environment(seed: int = 2026) -> tuple[float, float, float, float]:
    rng = np.random.default_rng(seed)
    sel = AdaptiveSelector({1: LADDER}, seed=seed)
    optimal = picks = 0
    ours: list[float] = []
    fixed: list[float] = []
    best_possible: list[float] = []
    for category in ENVIRONMENT:
        observations = 0
        while observations < WARMUP_OBSERVATIONS:
            _, _, attempts = adaptive(sel, category, draw(rng, category))
            observations += attempts
        best = best_strategy(category)
        for _ in range(MEASURED_INCIDENTS):
            outcomes = draw(rng, category)
            t, first, _ = adaptive(sel, category, outcomes)
            ours.append(t)
            fixed.append(fixed_ladder(outcomes))
            best_possible.append(oracle(category, outcomes))
            picks += 1
            optimal += first == best
    return (
        optimal / picks,
        float(np.mean(ours)),
        float(np.mean(fixed)),
        float(np.mean(best_possible)),
    )


SEEDS = (1, 2, 3, 4, 5)


def run() -> None:
    results = [run_environment(seed) for seed in SEEDS]
    fractions = [r[0] for r in results]
    ours, fixed, best = (float(np.mean([r[i] for r in results])) for i in (1, 2, 3))
    print_rows(
        f"strategies: adaptive selection (synthetic environment, 6 categories, {len(SEEDS)} seeds)",
        [
            Figure(
                "optimal first picks after 50 observations/category",
                100 * np.mean(fractions),
                "%",
                f"worst seed {100 * min(fractions):.1f} %; goal >= 95 %",
            ),
            Row("mean recovery time per incident", ours, "fixed ladder", fixed, "s", goal=0.6),
            Row("mean recovery time, knowing the environment", best, "fixed ladder", fixed, "s"),
        ],
    )


if __name__ == "__main__":
    run()
