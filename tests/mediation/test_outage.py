"""A dependency down for a while never takes the tree down (with and without a breaker).

The defaults are what is tried: the tree's default intensity and ladder, the root's
default intensity. Clients send a request every 0.1 s throughout; the gateway
refuses connections for ``OUTAGE_S``, then comes back.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from stalwart import (
    Breaker,
    BreakerOpen,
    Child,
    DownstreamError,
    LevelPolicy,
    StalwartError,
    Supervisor,
)
from tests.support import Gateway, Pay, wait_for

TIMEOUT_S = 5.0  # the default ask timeout
EVERY_S = 0.1  # each client sends a request this often
LEVELS, TREE = LevelPolicy(), Supervisor("defaults")
# the first failing request's retries at their longest: level 1's delays, level 2's backoff
RETRY_BUDGET_S = LEVELS.basic_attempts * LEVELS.basic_delay_s + sum(
    LEVELS.backoff.base_delay(attempt) for attempt in range(1, LEVELS.enhanced_attempts + 1)
)
# As long as it takes to show that the tree does not give up, and no longer. The first
# request's retries and its one restart (outage_restarts) are over by the time it is
# answered (within TIMEOUT_S, as every request must be). Then a whole restart-intensity
# period (within_s) of failures follows, at the end of which that restart has aged out of
# the window: a tree that counted the outage against its intensity would have given up in
# it, one that restarted whenever the intensity had room would have restarted again. The
# root's intensity (root_within_s) bounds level 5 only, and a single escalation fails this
# test, so it need not be outlasted; the breaker (recovery_timeout 2 s) fails several
# half-open trials meanwhile. With the defaults: max(5, 0.37) + 5 s.
OUTAGE_S = max(TIMEOUT_S, RETRY_BUDGET_S) + TREE.within_s


class Client(threading.Thread):
    """Sends a request to ``path`` every ``EVERY_S``, whether or not earlier ones were answered;
    keeps (sent at, outcome, took) for each."""

    def __init__(self, system, path: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.system, self.path, self.stop = system, path, stop
        self.outcomes: list[tuple[float, object, float]] = []
        self.pool = ThreadPoolExecutor(max_workers=int(TIMEOUT_S / EVERY_S) + 5)

    def ask(self, n: int) -> None:
        sent = time.monotonic()
        try:
            outcome: object = self.system.ask(self.path, Pay(n), timeout=TIMEOUT_S)
        except StalwartError as exc:
            outcome = exc
        self.outcomes.append((sent, outcome, time.monotonic() - sent))

    def run(self) -> None:
        n = 0
        while not self.stop.wait(EVERY_S):
            n += 1
            self.pool.submit(self.ask, n)
        self.pool.shutdown(wait=True)

    def succeeded_since(self, t: float) -> bool:
        return any(s >= t and isinstance(o, int) for s, o, _ in list(self.outcomes))


def test_a_dependency_down_past_its_retries_and_restart_intensity_never_takes_the_tree_down(
    make_system, base, tmp_path
):
    flag = tmp_path / "gateway-down"
    options = {"down_flag": str(flag)}
    tree = Supervisor(
        "shop",
        children=[
            Child("pay", Gateway, options=options, breaker=Breaker(recovery_timeout=2.0)),
            Child("bill", Gateway, options=options),  # no breaker: the defaults alone
        ],
    )
    system = make_system(tree, base=base)
    assert system.ask("shop/pay", Pay(0)) == 0 and system.ask("shop/bill", Pay(0)) == 0
    stop = threading.Event()
    clients = [Client(system, path, stop) for path in ("shop/pay", "shop/bill")]
    flag.write_text("down")
    down = time.monotonic()
    for client in clients:
        client.start()
    time.sleep(OUTAGE_S)  # the outage itself, not a synchronisation
    assert system.status().phase == "running"
    flag.unlink()
    back = time.monotonic()
    for client in clients:  # traffic flows again without anyone's help
        wait_for(lambda c=client: c.succeeded_since(back), timeout=30)
    resumed = time.monotonic()
    wait_for(lambda: all(len([o for o in c.outcomes if o[0] > resumed]) >= 20 for c in clients))
    stop.set()
    for client in clients:
        client.join(10)

    # the tree never stopped, nothing escalated, nothing reached level 5
    events = system.events()
    assert not system.stopped
    assert not [e for e in events if e.kind in ("escalate", "level5", "restart-tree")]
    pay, bill = clients
    for client in clients:
        during = [(o, took) for s, o, took in client.outcomes if down <= s < back - TIMEOUT_S]
        # a request every EVERY_S throughout (at least 4 in 5 of them)
        assert len(during) > 0.8 * (OUTAGE_S - TIMEOUT_S) / EVERY_S, client.path
        for _, outcome, took in client.outcomes:  # every request was answered within its timeout
            assert isinstance(outcome, int | DownstreamError | BreakerOpen), (client.path, outcome)
            assert took < TIMEOUT_S, (client.path, outcome, took)
        # once it was back, everything after the first success succeeded
        first = min(s for s, o, _ in client.outcomes if s >= back and isinstance(o, int))
        assert all(isinstance(o, int) for s, o, _ in client.outcomes if s > first), client.path
    # with a breaker: it opened within its threshold, and callers were answered at once
    breaker = [e.detail for e in events if e.kind == "breaker" and e.path == "shop/pay"]
    assert breaker[0] == "open" and breaker[-1] == "closed"
    refused = [took for s, o, took in pay.outcomes if isinstance(o, BreakerOpen)]
    assert len(refused) > 2 / 3 * OUTAGE_S / EVERY_S  # (2 in 3 of the requests sent)
    # without one: each request got its retries, then a DownstreamError naming the cause
    errors = [o for s, o, _ in bill.outcomes if isinstance(o, DownstreamError)]
    assert len(errors) > 2 / 3 * OUTAGE_S / EVERY_S and all(
        "refused the connection" in str(e) for e in errors
    )
    # restarts only while they could help: one try each, not one per request
    status = system.status()
    assert status["shop/pay.protected"].restarts <= 1 and status["shop/bill"].restarts <= 1
    outage = [e for e in events if e.kind == "outage"]
    assert {e.path for e in outage} == {"shop/pay.protected", "shop/bill"}
