"""Plain-code recovery: ``Recovery.protect`` beside a direct call and beside tenacity."""

from __future__ import annotations

import tempfile
from pathlib import Path

import tenacity
from _report import Row, ns_per_call, print_rows

from stalwart import Recovery
from stalwart.strategies import Fixed


def trivial() -> int:
    return 1


def flaky_factory():
    state = {"n": 0}

    def flaky() -> int:
        state["n"] += 1
        if state["n"] % 3:
            raise ConnectionError("connection refused")
        return 1

    return flaky


def run() -> None:
    recovery = Recovery(backoff=Fixed(0.0), seed=1)
    guarded = Recovery(backoff=Fixed(0.0), seed=1)
    bare = ns_per_call(trivial)
    rows = [
        Row(
            "protect, success path (total per call)",
            ns_per_call(recovery.protect(service="bench")(trivial)),
            "direct call",
            bare,
            "ns",
        ),
        Row(
            "protect(breaker=True), success path",
            ns_per_call(guarded.protect(service="bench", breaker=True)(trivial)),
            "direct call",
            bare,
            "ns",
        ),
    ]
    ten = tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none())(
        flaky_factory()
    )
    ten_us = ns_per_call(ten, 5_000) / 1000
    ours = recovery.protect(service="bench-flaky")(flaky_factory())
    rows.append(
        Row(
            "fail twice then succeed, zero wait",
            ns_per_call(ours, 5_000) / 1000,
            "tenacity",
            ten_us,
            "us",
        )
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        Recovery(store=Path(tmp) / "r.db", backoff=Fixed(0.0), seed=1) as recording,
    ):
        stored = recording.protect(service="bench-flaky")(flaky_factory())
        rows.append(
            Row(
                "the same, recorded to a SQLite store",
                ns_per_call(stored, 500) / 1000,
                "tenacity",
                ten_us,
                "us",
            )
        )
    print_rows("recover: handle_error for plain code", rows)
