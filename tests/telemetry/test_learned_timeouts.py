"""Retry timeouts learned while the tree runs, from how long handlers and retries take.

A level 1-2 retry that gets no answer within its timeout counts as failed. The timeout is
learned per (actor path, message type) from the handler's successful durations and the
retries' own, so fast recoveries never teach a wait shorter than the handler needs, a hung
retry is caught long before the child's ``retry_timeout_s``, and the next run starts from
what this one learned.
"""

import os
import re
import time
from typing import Any

import msgspec
import pytest

from stalwart import Child, LevelPolicy, ManagedActor, Supervisor
from stalwart.strategies._learned_timeout import MARGIN
from stalwart.telemetry import RecoveryStore
from tests.support import Work, Worker, wait_for

ONE_RETRY = LevelPolicy(basic_attempts=1, basic_delay_s=0.001, quiet_period_s=0.05)


def learned_row(db: Any, path: str, operation: str) -> dict[str, Any] | None:
    with RecoveryStore(db, readonly=True) as store:
        rows = store.query(
            "SELECT * FROM adaptive_timeouts WHERE path = ? AND operation = ?", [path, operation]
        )
    return rows[0] if rows else None


def no_answer_events(system: Any) -> list[Any]:
    return [e for e in system.events() if "retry got no answer" in e.detail]


def test_fast_recoveries_do_not_teach_a_wait_shorter_than_the_handler_needs(
    make_system, base, tmp_path
):
    db = tmp_path / "t.db"
    system = make_system(
        Supervisor("s", children=[Child("w", Worker, levels=ONE_RETRY)]),
        base=base,
        store=str(db),
        telemetry={"timeout_min_s": 0.01},  # no floor to hide behind: only learning counts
    )
    for i in range(5):  # failures recovered by a retry that takes no time
        assert system.ask("s/w", Work(i, fail_times=1), timeout=10).attempts == 2
    fast = stored_once(system, db, lambda row: True)
    # learned from fast retries only (three times the slowest: a round trip held up on a
    # busy machine still stays well under the handler's time below)
    assert fast["timeout_s"] < 1.0

    for i in range(10, 13):  # the handler's usual time is now 1 s
        system.ask("s/w", Work(i, sleep_s=1.0), timeout=10)
    # a failure whose retry takes that long too: it must not count as "no answer"
    assert system.ask("s/w", Work(20, fail_times=1, sleep_s=1.0), timeout=10).attempts == 2
    assert no_answer_events(system) == []
    slow = stored_once(system, db, lambda row: row["longest_s"] >= 1.0)
    assert slow["timeout_s"] >= slow["longest_s"] * MARGIN > fast["timeout_s"]  # while running


def stored_once(system: Any, db: Any, done: Any) -> dict[str, Any]:
    """The learned row of s/w's Work once ``done(row)``: the supervisor's report of a retry
    may still be on its way to the telemetry actor when the caller has its answer, so each
    look flushes what has arrived."""

    def look() -> dict[str, Any] | None:
        system.flush()
        row = learned_row(db, "s/w", "Work")
        return row if row is not None and done(row) else None

    found: dict[str, Any] = wait_for(look, timeout=10)
    return found


class HangOnce(msgspec.Struct, frozen=True):
    """Fails while ``fail`` exists, then hangs while ``hang`` exists (each flag is removed
    as it is used), then is done."""

    fail: str = ""
    hang: str = ""
    work_s: float = 0.0


def used(flag: str) -> bool:
    if flag and os.path.exists(flag):
        os.unlink(flag)
        return True
    return False


class Hanger(ManagedActor):
    def receiveMsg_HangOnce(self, msg: HangOnce, sender: Any) -> None:
        time.sleep(msg.work_s)  # the handler's real work
        if used(msg.fail):
            raise RuntimeError("flaky")
        if used(msg.hang):
            time.sleep(3600)  # hung: only killing the process ends it
        self.reply(sender, "done")


def waited_for(event: Any) -> float:
    found = re.search(r"no answer within ([0-9.]+)s", event.detail)
    assert found, event.detail
    return float(found.group(1))


def test_a_hung_retry_is_caught_at_the_learned_timeout_and_the_next_run_starts_from_it(
    make_system, tmp_path
):
    db = tmp_path / "t.db"
    fail, hang = tmp_path / "fail", tmp_path / "hang"
    hung_once = HangOnce(str(fail), str(hang))
    levels = LevelPolicy(basic_attempts=1, enhanced_attempts=0)  # then a restart
    hanger = Child("h", Hanger, levels=levels, shutdown_s=0.5)  # (hung: killed at a restart)
    tree = Supervisor("s", children=[hanger])
    system = make_system(tree, base="multiproc", store=str(db))
    for _ in range(3):  # quick successes: what the timeout learns from
        assert system.ask("s/h", HangOnce(), timeout=60) == "done"
    fail.touch(), hang.touch()
    # the defaults: retry_timeout_s is 30 s (what a retry waits while nothing is known), the
    # learned floor 1 s
    assert system.ask("s/h", hung_once, timeout=60) == "done"
    waits = [waited_for(e) for e in no_answer_events(system)]
    assert waits and all(w == pytest.approx(1.0) for w in waits)  # the floor, not 30 s
    # the handler takes 1 s now, and a retry is that slow
    assert system.ask("s/h", HangOnce(work_s=1.0), timeout=60) == "done"
    fail.touch()
    assert system.ask("s/h", HangOnce(str(fail), work_s=1.0), timeout=60) == "done"
    system.shutdown()
    row = learned_row(db, "s/h", "HangOnce")
    assert row is not None and row["longest_s"] >= 1.0

    # the next run: a hung retry waits for what this one learned, not the floor
    again = make_system(tree, base="multiproc", store=str(db))
    fail.touch(), hang.touch()
    assert again.ask("s/h", hung_once, timeout=60) == "done"
    waits = [waited_for(e) for e in no_answer_events(again)]
    assert waits and all(w >= 1.0 * MARGIN for w in waits)
    assert waits[0] == pytest.approx(row["timeout_s"], rel=0.01)
