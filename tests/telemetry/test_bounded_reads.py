"""What the API reads costs the same however long the history is.

Two real store files hold the same recent hour, one with ten times more history before it.
SQLite counts the virtual-machine steps each read takes (a progress handler): ``/metrics``,
the dashboard, windowed figures and the lists take as many on both, because they read the
running totals, indexed time ranges and LIMITed lists. Counting rows over all of history
(``Metrics`` without a window) is the contrast: it takes ten times more.
"""

import threading
import time

import pytest

from stalwart.dashboard import Snapshots
from stalwart.supervisors._incident_log import IncidentLog
from stalwart.supervisors.messages import Attempt, Event
from stalwart.telemetry import RecoveryStore
from stalwart.telemetry._api import Api, StoreBackend
from stalwart.telemetry._rows import (
    attempt_row,
    error_seen_statements,
    event_row,
    incident_statement,
)
from stalwart.telemetry._totals import RunningTotals
from tests.support import wait_for

RECENT = 300  # incidents in the last minute, the same in both files
PATHS = ("shop/db", "shop/api", "shop/w.1")


def write_history(path, old: int) -> None:
    """``old`` incidents over the day before the last hour, then ``RECENT`` in the last
    minute; each a failure, a failed retry, a restart that works (and a breaker that opened
    and closed), recorded as the telemetry actor records them."""
    now = time.time()
    times = [now - 86400 + (82800 * i / old) for i in range(old)]
    times += [now - 60 + 60 * i / RECENT for i in range(RECENT)]
    log, totals = IncidentLog(), RunningTotals()
    with RecoveryStore(path) as store:
        for start in range(0, len(times), 500):
            rows: dict[str, list] = {"events": [], "recovery_performance": []}
            statements = []
            for i, t in enumerate(times[start : start + 500], start):
                where, fp = PATHS[i % len(PATHS)], f"fp{i % 7}"
                kinds = [("failure", 1), ("failure", 2), ("restarted", 3), ("recovered", 3)]
                for n, (kind, level) in enumerate(kinds):
                    e = Event(0, t + n / 100, kind, where, level, "OSError: down", "io", fp)
                    rows["events"].append(event_row(e))
                    totals.event(e)
                    if kind == "failure":
                        statements += error_seen_statements(e)
                    changed = log.feed(e)
                    totals.incidents(changed)
                    statements += [incident_statement(c, f"x.{i}.{c.id}") for c in changed]
                for level, ok in ((1, False), (3, True)):
                    a = Attempt(t, where, "Work", "io", fp, level, "retry", ok, 0.01 * level)
                    rows["recovery_performance"].append(attempt_row(a))
                    totals.attempt(a)
            state = "open" if start % 1000 == 0 else "closed"
            breaker = Event(0, times[start], "breaker", "shop/pay", detail=state)
            rows["events"].append(event_row(breaker))
            totals.event(breaker)
            store.write_batch(rows, statements + totals.statements())


class Counted(StoreBackend):
    """A store view whose every connection counts the SQLite steps it takes."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.steps = 0
        self._lock = threading.Lock()

    @property
    def store(self) -> RecoveryStore:
        store = super().store
        store.db.conn.set_progress_handler(self._step, 100)
        return store

    def _step(self) -> int:
        with self._lock:
            self.steps += 1
        return 0

    def cost(self, read) -> int:
        self.steps = 0
        read()
        return self.steps


def dashboard_polls(backend: Counted) -> tuple[int, int]:
    """The steps of a first dashboard poll (with its background read of the figures) and of
    the next one."""
    snapshots = Snapshots(backend, slow_s=3600)

    def first():
        snapshots.snapshot()
        wait_for(lambda: snapshots.snapshot()["figures"] == "ready")

    return backend.cost(first), backend.cost(snapshots.snapshot)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bounded")
    small, big = folder / "small.db", folder / "big.db"
    write_history(small, 1_000)
    write_history(big, 10_000)
    return Counted(str(small)), Counted(str(big))


READS = {
    "GET /metrics": lambda b: Api(b, "t").prometheus(),
    "running totals": lambda b: b.totals(),
    "metrics of the last hour": lambda b: b.metrics(3600, None),
    "metrics of the last hour, one path": lambda b: b.metrics(3600, "shop/db"),
    "insights of the last hour": lambda b: b.insights(3600),
    "history, newest 100": lambda b: b.history(None, None, 100),
    "history of the last hour": lambda b: b.history(None, time.time() - 3600, 100),
    "errors": lambda b: b.errors(None, None, None, 100),
    "errors still open": lambda b: b.errors("open", None, None, 100),
    "one error with its events": lambda b: b.error(1),
    "active alerts": lambda b: b.alerts(True),
    "memory": lambda b: b.memory(),
}


@pytest.mark.parametrize("name", list(READS))
def test_a_read_costs_the_same_with_ten_times_the_history(stores, name):
    small, big = stores
    read = READS[name]
    read(small), read(big)  # (each thread opens its connection once)
    assert big.cost(lambda: read(big)) <= 1.25 * small.cost(lambda: read(small)) + 20


def test_a_dashboard_poll_costs_the_same_with_ten_times_the_history(stores):
    small, big = stores
    (small_first, small_next), (big_first, big_next) = dashboard_polls(small), dashboard_polls(big)
    assert big_first <= 1.25 * small_first + 20
    assert big_next <= 1.25 * small_next + 20


def test_counting_rows_over_all_of_history_is_what_costs_ten_times_more(stores):
    small, big = stores
    small.metrics(None, None)
    assert big.cost(lambda: big.metrics(None, None)) >= 5 * small.cost(
        lambda: small.metrics(None, None)
    )
    assert big.totals().incidents == 10_000 + RECENT  # (while the totals count everything)
