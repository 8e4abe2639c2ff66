"""Insights from a store filled by real recoveries: advice, degradation, trends, the API."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from stalwart import Recovery
from stalwart.strategies import Fixed
from stalwart.telemetry import RecoveryStore, insights, report_text
from stalwart.telemetry._api import ApiServer, StoreBackend


def incidents(db: Path, count: int, slow_from: int | None = None) -> None:
    """``count`` incidents on "payments": level 1's retries always fail, level 2 recovers.

    From incident ``slow_from`` on, the recovering call takes 60 ms longer.
    """
    with Recovery(store=db, backoff=Fixed(0.001), quiet_s=0.0, seed=2) as recovery:
        for i in range(count):
            calls = {"n": 0}

            def call(i: int = i, calls: dict[str, int] = calls) -> str:
                calls["n"] += 1
                if calls["n"] <= 2:
                    time.sleep(0.01)  # a slow failure: what level 1 wastes
                    raise ConnectionError("connection refused")
                if slow_from is not None and i >= slow_from:
                    time.sleep(0.06)
                return "paid"

            out = recovery.handle_error_sync(
                ConnectionError("connection refused"),
                {"service": "payments", "operation": "charge", "retry": call},
            )
            assert out.success and out.level == 2


def test_level_one_advice_names_the_service_and_the_time_it_would_save(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    incidents(db, 8)
    with RecoveryStore(db) as store:
        found = insights(store)
        text = report_text(store)
    advice = [a for a in found.recommendations if a.startswith("payments: retries at level 1")]
    assert len(advice) == 1
    assert "succeed 0 % of the time; starting at level 2 would have saved" in advice[0]
    saved_ms = float(advice[0].rsplit("saved ", 1)[1].split(" ms")[0])
    assert 20 <= saved_ms < 1000  # two 10 ms failures per incident, with their overheads
    effective = {(e.level, e.strategy): e for e in found.effectiveness}
    assert effective[(1, "retry")].success_rate == 0.0 and effective[(1, "retry")].attempts == 8
    assert effective[(2, "backoff")].success_rate == 1.0
    assert "Recommendations" in text and advice[0] in text


def test_slower_recoveries_are_reported_as_degradation(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    incidents(db, 24, slow_from=18)
    with RecoveryStore(db) as store:
        found = insights(store)
    slow = [d for d in found.degradations if d.path == "payments"]
    assert [d.metric for d in slow] == ["recovery time"]
    assert slow[0].recent > 1.5 * slow[0].baseline
    assert any("payments: recoveries now take" in a for a in found.recommendations)


def test_rising_and_falling_error_rates(tmp_path: Path) -> None:
    now = time.time()
    events = []
    for path, first, second in (("search", 2, 12), ("cart", 10, 1), ("auth", 3, 3)):
        events += [{"time": now - 90 + i, "kind": "failure", "path": path} for i in range(first)]
        events += [{"time": now - 30 + i, "kind": "failure", "path": path} for i in range(second)]
    with RecoveryStore(tmp_path / "r.db") as store:
        store.write_batch({"events": events})
        found = insights(store, window_s=120, now=now)
    directions = {t.path: t.direction for t in found.error_trends}
    assert directions == {"search": "rising", "cart": "falling", "auth": "flat"}
    assert any(a.startswith("search: errors rising") for a in found.recommendations)


def test_the_api_serves_insights(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    incidents(db, 6)
    with (
        ApiServer(StoreBackend(str(db)), token="t") as server,
        urllib.request.urlopen(f"{server.url}/api/insights?window_s=3600") as response,
    ):
        body = json.loads(response.read())
    assert body["window_s"] == 3600
    assert any(a.startswith("payments: retries at level 1") for a in body["recommendations"])
    assert {"level": 2, "strategy": "backoff"}.items() <= body["effectiveness"][-1].items()
