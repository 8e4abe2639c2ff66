"""Breaker actors and the correlator, each beside its peer, in the same run.

1. A call through a breaker actor against a direct call to the same kind of actor,
   on the same base and in the same tree (the breaker adds one hop each way).
2. Fast-fail while the breaker is open, timed on the caller's side: the caller knows
   the state from the breaker's published change, so no message is sent. Peers:
   pybreaker rejecting a call while open (same process, no actors) and learning it
   by a hop (a breaker whose fallback answers while open).
3. The correlator's analysis over a 10,000-event window and the window's memory,
   against the same analysis written plainly over a deque of tuples.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
import tracemalloc
from collections import Counter, deque
from typing import Any

import msgspec
import numpy as np
from _report import Figure, Row, ns_per_call, print_rows

from stalwart import Breaker, Child, ManagedActor, Supervisor, start
from stalwart.supervisors import DefaultReply
from stalwart.telemetry import Correlator, CorrelatorSettings

CALLS = {"simple": 20_000, "multiproc": 2_000}
REPEATS = 5
FAST_FAILS = 20_000
WINDOW = 10_000


class Ping(msgspec.Struct, frozen=True):
    fail: bool = False


class Pong(msgspec.Struct, frozen=True):
    pass


class Go(msgspec.Struct, frozen=True):
    path: str
    n: int
    fail: bool = False


class FastFail(msgspec.Struct, frozen=True):
    path: str
    n: int


class Timed(msgspec.Struct, frozen=True):
    seconds: float
    errors: int
    replies: int


class Echo(ManagedActor):
    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> None:
        if msg.fail:
            self.reply_error(sender, ConnectionError("backend down"))
        else:
            self.reply(sender, Pong())


class Driver(ManagedActor):
    """Calls ``path`` ``n`` times, one after the other, and answers how long it took."""

    def receiveMsg_Go(self, msg: Go, sender: Any) -> None:
        left = [msg.n]
        counts = [0, 0]
        t0 = time.perf_counter()

        def next_call(outcome: Any = None, errored: bool = False) -> None:
            if outcome is not None:
                counts[errored] += 1
                left[0] -= 1
            if left[0] == 0:
                self.reply(sender, Timed(time.perf_counter() - t0, counts[1], counts[0]))
                return
            self.call(
                msg.path,
                Ping(msg.fail),
                timeout=30,
                on_reply=next_call,
                on_error=lambda exc: next_call(exc, True),
            )

        next_call()

    def receiveMsg_FastFail(self, msg: FastFail, sender: Any) -> None:
        """All ``n`` calls in one handler: each fails before this returns, or not at all."""
        errors: list[Any] = []
        t0 = time.perf_counter()
        for _ in range(msg.n):
            self.call(msg.path, Ping(), timeout=30, on_error=errors.append)
        seconds = time.perf_counter() - t0
        self.reply(sender, Timed(seconds, len(errors), 0))


def tree() -> Supervisor:
    shut = {"failure_threshold": 3, "recovery_timeout": 3600.0}
    return Supervisor(
        "b",
        children=[
            Child("echo", Echo),
            Child("guarded", Echo, breaker=Breaker()),
            Child("tripped", Echo, breaker=Breaker(**shut)),
            Child("defaulted", Echo, breaker=Breaker(**shut, fallback=(DefaultReply(Pong()),))),
            Child("driver", Driver),
        ],
    )


def per_call_us(system: Any, path: str, n: int) -> float:
    timed = system.ask("b/driver", Go(path, n), timeout=300)
    assert timed.replies == n, f"{path}: {timed}"
    return timed.seconds / n * 1e6


def through_breaker(base: str) -> tuple[float, float]:
    """Median µs per call: (through the breaker actor, direct)."""
    n = CALLS[base]
    with start(tree(), base=base, report_path=None) as system:
        for path in ("b/echo", "b/guarded"):
            per_call_us(system, path, 200)  # resolve the paths, warm the caches
        time.sleep(1.0)
        ours, direct = [], []
        for _ in range(REPEATS):
            ours.append(per_call_us(system, "b/guarded", n))
            direct.append(per_call_us(system, "b/echo", n))
    return statistics.median(ours), statistics.median(direct)


def fast_fail(base: str) -> tuple[float, float]:
    """(caller-side ns per rejected call, µs per call answered by the open breaker's fallback)."""
    with start(tree(), base=base, report_path=None) as system:
        for path in ("b/tripped", "b/defaulted"):
            system.ask("b/driver", Go(path, 3, fail=True), timeout=30)
        opened = [e.path for e in system.events() if e.kind == "breaker" and e.detail == "open"]
        assert sorted(opened) == ["b/defaulted", "b/tripped"], opened
        deadline = time.monotonic() + 10
        while True:  # the published state reaches the driver right after the breaker opens
            timed = system.ask("b/driver", FastFail("b/tripped", 10), timeout=30)
            if timed.errors == 10:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the driver never learned that b/tripped is open")
            time.sleep(0.05)
        local = []
        for _ in range(REPEATS):
            timed = system.ask("b/driver", FastFail("b/tripped", FAST_FAILS), timeout=60)
            assert timed.errors == FAST_FAILS
            local.append(timed.seconds / FAST_FAILS * 1e9)
        hop = [per_call_us(system, "b/defaulted", CALLS[base] // 10) for _ in range(REPEATS)]
    return min(local), statistics.median(hop)


def pybreaker_open_ns() -> float:
    import pybreaker

    breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
    breaker.open()

    def rejected() -> None:
        try:
            breaker.call(lambda: None)
        except pybreaker.CircuitBreakerError:
            pass

    return ns_per_call(rejected, number=50_000)


# -- the correlator -----------------------------------------------------------------------------
PATHS = ["shop/db", "shop/api", "shop/inventory", "shop/orders", "shop/mail", "shop/search"]
GRAPH = {"shop/api": ["shop/db"], "shop/inventory": ["shop/db"], "shop/orders": ["shop/api"]}


def event_stream(n: int, seed: int = 7) -> list[tuple[float, str, str, str]]:
    """``n`` events over 60 s: background noise, then the database fails and drags others."""
    rng = np.random.default_rng(seed)
    events = []
    for k, t in enumerate(np.sort(rng.uniform(0, 60, n))):
        if t > 50 and k % 3 == 0:
            path, fp = "shop/db", "ConnectionError:refused"
        elif t > 50:
            path, fp = str(rng.choice(PATHS[1:4])), "DownstreamError:db"
        else:
            path, fp = str(rng.choice(PATHS)), f"ValueError:{int(rng.integers(5))}"
        events.append((float(t), path, fp, f"t{k}"))
    return events


class PlainCorrelator:
    """The same analysis without numpy: a deque of tuples, Counters and sorted lists."""

    def __init__(self, s: CorrelatorSettings, graph: dict[str, list[str]]) -> None:
        self.s, self.graph = s, graph
        self.events: deque[tuple[float, str, str, str]] = deque(maxlen=s.capacity)

    def add(self, time: float, path: str, fingerprint: str, trace: str) -> None:
        self.events.append((time, path, fingerprint, trace))

    def analyze(self, now: float) -> tuple[Any, ...]:
        s = self.s
        recent = [e for e in self.events if e[0] >= now - s.window_s]
        rate = sum(1 for e in recent if e[0] >= now - s.rate_window_s) / s.rate_window_s
        top, count = Counter(e[2] for e in recent).most_common(1)[0]
        dominant = top if count / len(recent) >= s.dominant_share else None
        k = max(2, int(s.window_s / s.bucket_s))
        buckets: dict[str, list[int]] = {}
        for t, path, _fp, _tr in recent:
            b = min(int((now - t) / s.bucket_s), k - 1)
            buckets.setdefault(path, [0] * k)[b] += 1
        weights = [s.ewma_alpha * (1 - s.ewma_alpha) ** i for i in range(k - 1)]
        total = sum(weights)
        anomalies = []
        for path, counts in buckets.items():
            mean = sum(w * c for w, c in zip(weights, counts[1:])) / total
            var = sum(w * (c - mean) ** 2 for w, c in zip(weights, counts[1:])) / total
            z = (counts[0] - mean) / max(var, mean, 1.0) ** 0.5
            if counts[0] >= s.anomaly_min and z >= s.z_threshold:
                anomalies.append(path)
        by_path: dict[str, list[tuple[float, str]]] = {}
        for t, path, _fp, trace in recent:
            by_path.setdefault(path, []).append((t, trace))
        causes = []
        for path, deps in self.graph.items():
            for dep in deps:
                if path not in by_path or dep not in by_path:
                    continue
                times = [t for t, _ in by_path[dep]]
                traces = {tr for _, tr in by_path[dep]}
                hits = 0
                for t, trace in by_path[path]:
                    i = _last_at_or_before(times, t)
                    if (i >= 0 and t - times[i] <= s.attribution_s) or trace in traces:
                        hits += 1
                if hits / len(by_path[path]) >= s.explain_share:
                    causes.append((dep, path))
        return rate, dominant, anomalies, causes


def _last_at_or_before(times: list[float], t: float) -> int:
    import bisect

    return bisect.bisect_right(times, t) - 1


def measured_bytes(build: Any) -> int:
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = build()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(s.size_diff for s in after.compare_to(before, "filename"))
    del kept
    return size


def correlator_rows() -> list[Row | Figure]:
    settings = CorrelatorSettings(capacity=WINDOW, window_s=60.0)
    events = event_stream(WINDOW)
    now = events[-1][0] + 0.01

    def ours() -> Correlator:
        c = Correlator(settings, GRAPH)
        for t, path, fp, trace in events:
            c.add(t, path, fp, trace)
        return c

    def plain() -> PlainCorrelator:
        c = PlainCorrelator(settings, GRAPH)
        for t, path, fp, trace in events:
            c.add(t, path, fp, trace)
        return c

    mine, theirs = ours(), plain()
    found = mine.analyze(now)
    assert [c.path for c in found.root_causes] == ["shop/db"], found
    assert ("shop/db", "shop/api") in theirs.analyze(now)[3]
    analysis_ours = ns_per_call(lambda: mine.analyze(now), number=200, repeat=5) / 1e6
    analysis_plain = ns_per_call(lambda: theirs.analyze(now), number=20, repeat=5) / 1e6
    add_ours = ns_per_call(lambda: mine.add(61.0, "shop/db", "E:x", "t"), number=100_000)
    add_plain = ns_per_call(lambda: theirs.add(61.0, "shop/db", "E:x", "t"), number=100_000)
    return [
        Row(
            f"analysis over a {WINDOW:,}-event window", analysis_ours,
            "plain Python", analysis_plain, "ms", goal=1.0,
        ),
        Figure(f"analysis over a {WINDOW:,}-event window", analysis_ours, "ms", "goal <= 1 ms"),
        Row("recording one event", add_ours, "plain Python", add_plain, "ns"),
        Row(
            f"window memory, {WINDOW:,} events (tracemalloc)", measured_bytes(ours) / 1024,
            "plain Python", measured_bytes(plain) / 1024, "KiB", goal=1.0,
        ),
        Figure("window memory, Correlator.nbytes()", mine.nbytes() / 1024, "KiB", "goal <= 1024 KiB"),
    ]  # fmt: skip


def run() -> None:
    logging.getLogger("stalwart").setLevel(logging.ERROR)  # the failing calls log warnings
    rows: list[Row | Figure] = []
    for base in ("simple", "multiproc"):
        ours, direct = through_breaker(base)
        rows.append(
            Row(
                f"call through a breaker actor, {base} base",
                ours,
                "direct call",
                direct,
                "µs",
                goal=2.0 if base == "simple" else None,
            )
        )
    local_ns, hop_us = fast_fail("simple")
    pybreaker_ns = pybreaker_open_ns()
    rows += [
        Row("fast-fail while open, caller side", local_ns, "pybreaker open", pybreaker_ns, "ns"),
        Row("fast-fail while open, caller side", local_ns / 1000, "a hop (fallback)", hop_us, "µs"),
        Figure("fast-fail while open, caller side", local_ns / 1000, "µs", "goal < 5 µs"),
    ]
    print_rows("mediation: breaker actors", rows)
    print_rows("mediation: the correlator", correlator_rows())


if __name__ == "__main__":
    run() if len(sys.argv) == 1 else None
