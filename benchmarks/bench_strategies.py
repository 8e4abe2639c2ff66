"""Breaker and retry overhead beside pybreaker, circuitbreaker and tenacity."""

from __future__ import annotations

import circuitbreaker
import pybreaker
import tenacity
from _report import Figure, Row, ns_per_call, print_rows

from stalwart.strategies import CircuitBreaker, CircuitOpenError, CountWindow, RetryBudget, retry


def trivial() -> int:
    return 1


def breaker_rows() -> list[Row]:
    bare = ns_per_call(trivial)
    pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    cb_fn = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60)(trivial)
    ours = CircuitBreaker(5, 60.0, 2, window=CountWindow(100))
    ours_fn = ours(trivial)
    pb_ns = ns_per_call(lambda: pb.call(trivial)) - bare
    cb_ns = ns_per_call(cb_fn) - bare
    ours_call = ns_per_call(lambda: ours.call(trivial)) - bare
    ours_dec = ns_per_call(ours_fn) - bare
    fastest_name, fastest = min(
        (("pybreaker", pb_ns), ("circuitbreaker", cb_ns)), key=lambda x: x[1]
    )

    pb_open = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
    ours_open = CircuitBreaker(1, 3600.0, 1)
    for b in (pb_open, ours_open):
        try:
            b.call(lambda: 1 / 0)
        except Exception:
            pass

    def reject_pb() -> None:
        try:
            pb_open.call(trivial)
        except pybreaker.CircuitBreakerError:
            pass

    def reject_ours() -> None:
        try:
            ours_open.call(trivial)
        except CircuitOpenError:
            pass

    return [
        Row(
            "closed breaker overhead, breaker.call(fn)",
            ours_call,
            fastest_name,
            fastest,
            "ns",
            goal=0.5,
        ),
        Row(
            "closed breaker overhead, decorator", ours_dec, "circuitbreaker", cb_ns, "ns", goal=0.5
        ),
        Row("closed breaker overhead vs pybreaker", ours_call, "pybreaker", pb_ns, "ns"),
        Row(
            "open breaker rejection",
            ns_per_call(reject_ours),
            "pybreaker",
            ns_per_call(reject_pb),
            "ns",
            goal=0.25,
        ),
    ]


def retry_rows() -> list[Row | Figure]:
    bare = ns_per_call(trivial)
    ten = tenacity.retry(stop=tenacity.stop_after_attempt(3))(trivial)
    ours = retry(max_attempts=3)(trivial)
    rows: list[Row | Figure] = [
        Row(
            "retry success-path overhead",
            ns_per_call(ours) - bare,
            "tenacity",
            ns_per_call(ten) - bare,
            "ns",
            goal=0.1,
        ),
    ]

    def flaky_factory():
        state = {"n": 0}

        def flaky() -> int:
            state["n"] += 1
            if state["n"] % 3:
                raise ConnectionError("blip")
            return 1

        return flaky

    ten_flaky = tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none())(
        flaky_factory()
    )
    ours_flaky = retry(max_attempts=3, delay=0.0)(flaky_factory())
    rows.append(
        Row(
            "retry fail-twice-then-succeed, zero wait",
            ns_per_call(ours_flaky, 20_000) / 1000,
            "tenacity",
            ns_per_call(ten_flaky, 5_000) / 1000,
            "us",
            goal=0.1,
        )
    )
    budget = RetryBudget(ratio=0.2, min_retries_per_s=10, window_s=10)
    with_budget = retry(max_attempts=3, budget=budget)(trivial)
    budget_ns = ns_per_call(with_budget) - ns_per_call(ours)
    verdict = "meets" if budget_ns <= 200 else "MISSES"
    rows.append(
        Figure("retry-budget overhead per call", budget_ns, "ns", f"{verdict} goal <= 200 ns")
    )
    return rows


def run() -> None:
    print_rows("strategies: circuit breaker", breaker_rows())
    print_rows("strategies: retry", retry_rows())


if __name__ == "__main__":
    run()
