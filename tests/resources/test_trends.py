"""Resource trends: the fit (hypothesis), real fd leaks predicted, acted on and scored."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart.resources import (
    ResourceWatch,
    connections_probe,
    cpu_probe,
    disk_probe,
    fds_probe,
    fit,
)
from stalwart.telemetry import RecoveryStore

ROOT = Path(__file__).resolve().parents[2]


@settings(max_examples=200, deadline=None)
@given(
    slope=st.floats(0.05, 500),
    start=st.floats(0, 1e6),
    n=st.integers(10, 120),
    step=st.floats(0.1, 30),
    ahead=st.floats(10, 1000),
    noise=st.floats(0, 0.02),
)
def test_a_planted_linear_leak_is_predicted_within_tolerance(
    slope: float, start: float, n: int, step: float, ahead: float, noise: float
) -> None:
    times = [i * step for i in range(n)]
    rise = slope * step  # noise is a fraction of one step's rise: the leak dominates
    values = [
        start + slope * t + (noise * rise if i % 2 else -noise * rise) for i, t in enumerate(times)
    ]
    now_value = start + slope * times[-1]
    limit = now_value + slope * ahead  # reached ``ahead`` seconds after the last sample
    trend = fit("leak", times, values, limit)
    assert trend is not None and trend.ttl_s is not None
    assert trend.ttl_s == pytest.approx(ahead, rel=0.05, abs=step)
    assert trend.confidence > 0.9


@settings(max_examples=200, deadline=None)
@given(
    level=st.floats(0, 1e6),
    n=st.integers(3, 120),
    wobble=st.floats(0, 100),
)
def test_a_flat_series_predicts_nothing(level: float, n: int, wobble: float) -> None:
    values = [level + (wobble if i % 2 else -wobble) for i in range(n)]
    if n % 2:  # an odd count would leave a tilt in an alternating series: balance it
        values[-1] = level
    watch = ResourceWatch(
        [fds_probe(limit=10.0)], min_samples=3, window=200, horizon_s=1e9, min_confidence=0.5
    )
    trend = fit("flat", [float(i) for i in range(n)], values, level + 1000)
    assert trend is not None and (trend.ttl_s is None or trend.confidence < watch.min_confidence)


class Leak:
    """Real open file descriptors, closed on demand."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def grow(self, n: int) -> None:
        self.fds += [os.open(os.devnull, os.O_RDONLY) for _ in range(n)]

    def close(self, _trend: Any = None) -> int:
        closed = len(self.fds)
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        return closed


@pytest.fixture
def leak() -> Any:
    found = Leak()
    yield found
    found.close()


def run_leak(watch: ResourceWatch, leak: Leak, ticks: int, per_tick: int, t0: float) -> float:
    t = t0
    for _ in range(ticks):
        leak.grow(per_tick)
        t += 1.0
        watch.sample(now=t)
    return t


def test_a_real_fd_leak_is_predicted_and_the_action_averts_it(tmp_path: Path, leak: Leak) -> None:
    base = len(os.listdir("/proc/self/fd"))
    with ResourceWatch(
        [fds_probe(limit=base + 120)], store=tmp_path / "r.db", interval_s=1.0, horizon_s=300
    ) as watch:
        watch.on("fds", leak.close, name="close_idle")
        t = 1000.0
        while not watch.history and t < 1100:
            t = run_leak(watch, leak, 1, 3, t)
        predictions = list(watch.history)
        assert len(predictions) == 1
        p = predictions[0]
        assert (
            p.resource == "fds" and p.action == "close_idle" and "close_idle: " in p.action_detail
        )
        assert p.ttl_s == pytest.approx((base + 120 - p.value) / 3, rel=0.2)
        assert leak.fds == []  # the action closed them
        assert p.action_detail == f"close_idle: {3 * (int(t) - 1000)}"
        for _ in range(int(p.ttl_s * 2) + 5):  # well past the deadline, no more leak
            t += 1.0
            watch.sample(now=t)
        assert p.outcome == "averted" and watch.exhaustions == type(watch.exhaustions)()
    with RecoveryStore(tmp_path / "r.db") as store:
        rows = store.query("SELECT resource, action, outcome FROM resource_predictions")
    assert rows == [{"resource": "fds", "action": "close_idle", "outcome": "averted"}]


def test_predictions_are_scored_against_what_happened(tmp_path: Path, leak: Leak) -> None:
    db = tmp_path / "r.db"
    base = len(os.listdir("/proc/self/fd"))
    with ResourceWatch([fds_probe(limit=base + 60)], store=db, interval_s=1.0) as watch:
        t = run_leak(watch, leak, 40, 3, 0.0)  # no action: the limit is reached
        assert [p.outcome for p in watch.history] == ["hit"]
        leak.close()
        watch.sample(now=t + 1)
        t = run_leak(watch, leak, 12, 2, t + 1)  # predicted again, then the leak stops
        assert watch.open_predictions()
        for _ in range(200):
            t += 1.0
            watch.sample(now=t)
        score = watch.score()
    assert (score.hits, score.false_alarms, score.exhaustions, score.predicted_exhaustions) == (
        1,
        1,
        1,
        1,
    )
    assert score.precision == 0.5 and score.recall == 1.0
    out = subprocess.run(
        [sys.executable, "-m", "stalwart", "report", "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "precision 50.0%, recall 100.0%" in out.stdout


def test_the_probes_read_real_figures() -> None:
    cpu = cpu_probe()
    time.sleep(0.05)
    value, limit = cpu.read()
    assert 0 <= value <= 100 and limit == 100
    used, total = disk_probe(str(ROOT)).read()
    assert 0 < used <= total
    conns = connections_probe(limit=1000)
    before, _ = conns.read()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            accepted, _ = server.accept()
            with accepted:
                during, _ = conns.read()
                assert client.fileno() > 0
    assert during >= before + 3  # the listener, the client and the accepted socket


def test_a_started_watch_samples_in_the_background_and_stops(leak: Leak) -> None:
    watch = ResourceWatch([fds_probe()], interval_s=0.02).start()
    try:
        deadline = time.monotonic() + 10
        while "fds" not in watch.trends() and time.monotonic() < deadline:
            leak.grow(1)
            time.sleep(0.02)
        assert "fds" in watch.trends()
    finally:
        watch.stop()
    assert watch._thread is None


@pytest.mark.parametrize(
    ("option", "value"),
    [("interval_s", 0), ("window", 2), ("min_confidence", 1.5), ("exhausted_at", 0)],
)
def test_bad_settings_name_the_option(option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=option):
        ResourceWatch([fds_probe()], **{option: value})


def test_an_action_for_an_unknown_resource_is_refused() -> None:
    with pytest.raises(ValueError, match="'disk'"):
        ResourceWatch([fds_probe()]).on("disk", lambda trend: None)
