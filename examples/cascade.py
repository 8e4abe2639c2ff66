"""A database outage, traced to its root cause and recovered in dependency order.

    python -m examples.cascade [--base simple|multiproc] [--outage 1.5]

The tree: a database; the inventory reads it and the API asks the inventory; the
order book writes to the database and sits behind a circuit breaker that queues
orders while it is open. The database goes down, clients keep asking, and the
run prints what the tree did: the correlator names the database, the
dependents are held (not restarted over and over) until it is back, the queued
orders are replayed once each, and every client gets an answer or a clear error.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from stalwart import (
    Breaker,
    Child,
    DownstreamError,
    LevelPolicy,
    ManagedActor,
    QueuedForLater,
    StalwartError,
    Supervisor,
    System,
    start,
)
from stalwart.supervisors import QueueForLater


class Query(msgspec.Struct, frozen=True):
    key: str


class Row(msgspec.Struct, frozen=True):
    key: str
    value: int


class Stock(msgspec.Struct, frozen=True):
    item: str


class InStock(msgspec.Struct, frozen=True):
    item: str
    count: int


class Order(msgspec.Struct, frozen=True):
    id: int


class Placed(msgspec.Struct, frozen=True):
    id: int


class Database(ManagedActor):
    """Answers queries; unreachable while the file ``options["down_flag"]`` exists."""

    def receiveMsg_Query(self, msg: Query, sender: Any) -> None:
        if os.path.exists(self.options["down_flag"]):
            raise ConnectionError("database unreachable")
        self.reply(sender, Row(msg.key, len(msg.key)))


def _downstream(what: str) -> Any:
    """A call's error handler: the failure is this actor's, caused downstream."""

    def failed(exc: StalwartError) -> None:
        raise DownstreamError(f"{what} failed: {type(exc).__name__}: {exc}")

    return failed


class Inventory(ManagedActor):
    def receiveMsg_Stock(self, msg: Stock, sender: Any) -> None:
        self.call(
            "shop/db",
            Query(msg.item),
            0.4,
            lambda row: self.reply(sender, InStock(msg.item, row.value)),
            _downstream("reading the database"),
        )


class Api(ManagedActor):
    def receiveMsg_Stock(self, msg: Stock, sender: Any) -> None:
        self.call(
            "shop/inventory",
            msg,
            1.0,
            lambda stock: self.reply(sender, stock),
            _downstream("asking the inventory"),
        )


class OrderBook(ManagedActor):
    """Saves orders to the database; appends each placed order to ``options["journal"]``."""

    def receiveMsg_Order(self, msg: Order, sender: Any) -> None:
        def placed(row: Row) -> None:
            with open(self.options["journal"], "a") as journal:
                journal.write(f"{msg.id}\n")
            self.reply(sender, Placed(msg.id))

        self.call("shop/db", Query(f"order-{msg.id}"), 0.4, placed, _downstream("saving the order"))


def shop(flag: str, journal: str, queue: str) -> Supervisor:
    """Inventory and orders depend on the database, the API on the inventory."""
    # left to their own ladders, the dependents would restart on their third failure
    hasty = LevelPolicy(basic_attempts=1, enhanced_attempts=1, component_attempts=5)
    return Supervisor(
        "shop",
        max_restarts=20,
        children=[
            Child("db", Database, options={"down_flag": flag}),  # the default policy
            Child("inventory", Inventory, depends_on=["db"], levels=hasty),
            Child("api", Api, depends_on=["inventory"], levels=hasty),
            Child(
                "orders",
                OrderBook,
                depends_on=["db"],
                levels=hasty,
                options={"journal": journal},
                breaker=Breaker(
                    failure_threshold=2,
                    recovery_timeout=0.5,
                    success_threshold=1,
                    call_timeout_s=0.8,
                    fallback=(QueueForLater(queue),),
                ),
            ),
        ],
    )


SHOWN = {
    "held": "held until its dependency is back",
    "recovered": "recovered",
    "resumed": "resumed",
    "breaker": "breaker",
    "incident": "incident opened",
    "incident-resolved": "incident resolved",
    "incident-expired": "incident expired",
    "correlation": "pattern",
}


def timeline(system: System, t0: float) -> None:
    last: tuple[str, str] | None = None
    for e in system.events():
        if e.kind not in SHOWN or e.time < t0:
            continue
        what = f"{SHOWN[e.kind]}: {e.detail}" if e.detail else SHOWN[e.kind]
        if (e.path, what) == last:
            continue  # one line for a run of the same thing
        last = (e.path, what)
        print(f"  {e.time - t0:6.2f}s  {e.path:<22} {what[:100]}")


def run(base: str, outage_s: float, folder: Path) -> int:
    flag, journal = folder / "db-down", folder / "orders.log"
    tree = shop(str(flag), str(journal), str(folder / "queue.db"))
    with start(tree, base=base, correlator={"incident_quiet_s": 0.5}) as system:
        print(f"before: {system.ask('shop/api', Stock('apple'))}")
        t0 = time.time()
        flag.write_text("down")
        print("the database goes down; clients keep asking")
        answers: dict[str, Any] = {}

        def ask(key: str, path: str, message: Any) -> None:
            try:
                answers[key] = system.ask(path, message, timeout=15)
            except StalwartError as exc:
                answers[key] = f"{type(exc).__name__}: {exc}"

        clients = [
            threading.Thread(target=ask, args=(f"stock {i}", "shop/api", Stock(f"item{i}")))
            for i in range(3)
        ] + [
            threading.Thread(target=ask, args=(f"order {i}", "shop/orders", Order(i)))
            for i in range(4)
        ]
        for client in clients:
            client.start()
            time.sleep(0.05)
        time.sleep(outage_s)
        flag.unlink()
        print("the database is back")
        for client in clients:
            client.join(30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            done = [i for i in system.incidents() if i.state != "open"]
            placed = journal.read_text().split() if journal.exists() else []
            if done and len(placed) >= 4:
                break
            time.sleep(0.1)

        print("\nwhat the tree did:")
        timeline(system, t0)
        print("\nincidents:")
        for incident in system.incidents():
            print(
                f"  #{incident.id} {incident.state}: {incident.cause} caused"
                f" {', '.join(incident.dependents)}; restarts while open: {incident.restarts}"
            )
            print(f"     evidence: {incident.evidence[:150]}")
        print("\nanswers:")
        for key in sorted(answers):
            value = answers[key]
            if isinstance(value, QueuedForLater):
                value = f"queued for later (#{value.id}), replayed when the breaker closed"
            print(f"  {key}: {value}")
        placed = journal.read_text().split() if journal.exists() else []
        print(f"\norders placed: {', '.join(sorted(placed, key=int))} (each once)")
        print(f"after: {system.ask('shop/api', Stock('pear'))}")
        ok = sorted(placed, key=int) == [str(i) for i in range(4)] and len(answers) == 7
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.cascade", description=__doc__)
    parser.add_argument("--base", choices=["simple", "multiproc"], default="simple")
    parser.add_argument("--outage", type=float, default=1.5, help="seconds the database is down")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stalwart-cascade-") as folder:
        return run(args.base, args.outage, Path(folder))


if __name__ == "__main__":
    raise SystemExit(main())
