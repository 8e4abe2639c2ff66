import json

import pytest

from stalwart.strategies import AdaptiveSelector


def ladder_run(selector, category, level, best, rng_outcomes):
    """Try strategies until one succeeds, recording each attempt."""
    tried = []
    while True:
        s = selector.choose(category, level, exclude=tried)
        ok = s == best or rng_outcomes()
        selector.record(category, level, s, ok, 0.1)
        tried.append(s)
        if ok:
            return tried


def test_cold_start_follows_the_fixed_ladder_order():
    sel = AdaptiveSelector(seed=1)
    assert sel.choose("connection", 2) == "backoff"
    assert sel.choose("connection", 2, exclude=["backoff"]) == "adjust"
    assert sel.choose("connection", 2, exclude=["backoff", "adjust"]) == "fallback"


def test_learns_the_best_strategy_for_a_category():
    sel = AdaptiveSelector(seed=7)
    for _ in range(60):
        for s in ("backoff", "adjust", "fallback"):
            sel.record("rate_limit", 2, s, s == "adjust", 0.3)
    picks = [sel.choose("rate_limit", 2) for _ in range(100)]
    assert picks.count("adjust") >= 95
    assert sel.ranking("rate_limit", 2)[0].strategy == "adjust"


def test_recovery_time_breaks_ties_between_equally_successful_strategies():
    sel = AdaptiveSelector(seed=3)
    for _ in range(80):
        sel.record("timeout", 3, "restart", True, 2.0)
        sel.record("timeout", 3, "reassign", True, 0.05)
    picks = [sel.choose("timeout", 3) for _ in range(50)]
    assert picks.count("reassign") >= 48


def test_categories_are_learned_separately():
    sel = AdaptiveSelector(seed=5)
    for _ in range(50):
        sel.record("connection", 1, "reconnect", True, 0.1)
        sel.record("connection", 1, "retry", False, 0.1)
    assert sel.choose("validation", 1) == "retry"  # untouched category: cold start
    assert sel.choose("connection", 1) == "reconnect"


def test_available_and_exclude_restrict_the_choice_and_nothing_left_is_an_error():
    sel = AdaptiveSelector(seed=1)
    assert sel.choose("crash", 3, available=["reassign"]) == "reassign"
    with pytest.raises(LookupError, match="level 4"):
        sel.choose("crash", 4, exclude=["restart_subtree"])


def test_same_seed_same_choices():
    def run(seed):
        sel = AdaptiveSelector(seed=seed)
        sel.record("connection", 1, "retry", True, 0.1)
        return [sel.choose("connection", 1) for _ in range(40)]

    assert run(11) == run(11)


def test_state_round_trips_through_json():
    sel = AdaptiveSelector(seed=2)
    for i in range(30):
        sel.record("database", 2, "adjust", i % 3 != 0, 0.2, cost=1.5)
    restored = AdaptiveSelector(seed=2)
    restored.load_state(json.loads(json.dumps(sel.state())))
    assert restored.stats("database", 2, "adjust") == sel.stats("database", 2, "adjust")
    assert restored.ranking("database", 2) == sel.ranking("database", 2)


def test_bad_state_names_the_entry():
    with pytest.raises(ValueError, match="nonsense"):
        AdaptiveSelector().load_state({"nonsense": [1, 2, 3, 4]})
