"""A database, the inventory that reads it, the API in front, and an order book behind a breaker.

The database is down while ``options["down_flag"]`` exists; the order book
journals every order it places, one line each, to ``options["journal"]``.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from stalwart import (
    Breaker,
    Child,
    DownstreamError,
    LevelPolicy,
    ManagedActor,
    StalwartError,
    Supervisor,
)
from stalwart.strategies import Exponential
from stalwart.supervisors import QueueForLater
from tests.support import journal


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
    def receiveMsg_Query(self, msg: Query, sender: Any) -> None:
        if os.path.exists(self.options["down_flag"]):
            raise ConnectionError("database unreachable")
        self.reply(sender, Row(msg.key, len(msg.key)))


def _downstream(what: str) -> Any:
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
    def receiveMsg_Order(self, msg: Order, sender: Any) -> None:
        def placed(row: Row) -> None:
            journal(self.options["journal"], str(msg.id))
            self.reply(sender, Placed(msg.id))

        self.call("shop/db", Query(f"order-{msg.id}"), 0.4, placed, _downstream("saving the order"))


def shop(flag: str, journal_file: str, queue_file: str) -> Supervisor:
    """The cascade's tree: inventory and orders depend on the database, the API on inventory."""
    patient = LevelPolicy(  # rides out an outage at level 2 rather than restarting
        basic_attempts=2,
        enhanced_attempts=200,
        backoff=Exponential(initial=0.02).capped(0.15),
        component_attempts=3,
    )
    # left to their own ladders, the dependents would restart on their third failure
    hasty = LevelPolicy(basic_attempts=1, enhanced_attempts=1, component_attempts=5)
    return Supervisor(
        "shop",
        max_restarts=20,
        children=[
            Child("db", Database, options={"down_flag": flag}, levels=patient),
            Child("inventory", Inventory, depends_on=["db"], levels=hasty),
            Child("api", Api, depends_on=["inventory"], levels=hasty),
            Child(
                "orders",
                OrderBook,
                depends_on=["db"],
                levels=hasty,
                options={"journal": journal_file},
                breaker=Breaker(
                    failure_threshold=2,
                    recovery_timeout=0.5,
                    success_threshold=1,
                    call_timeout_s=0.8,
                    fallback=(QueueForLater(queue_file),),
                ),
            ),
        ],
    )
