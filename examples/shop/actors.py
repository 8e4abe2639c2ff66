"""The shop's actors: a database, an inventory on top of it, payments, a storefront, workers."""

from __future__ import annotations

from typing import Any

from stalwart import ManagedActor

from .backend import Backend
from .messages import (
    Charge,
    Charged,
    Corrupt,
    Job,
    JobDone,
    PlaceOrder,
    Query,
    Receipt,
    Reserve,
    Reserved,
    Session,
    Stock,
    Token,
)

CATALOGUE = {"A1": 50, "B2": 20, "C3": 5}


class Database(ManagedActor):
    """Holds the stock levels; its connection to the storage service can drop."""

    def on_start(self) -> None:
        self.backend = Backend(self.options["backend"])
        self.stock: dict[str, int] = dict(self.restored_state or CATALOGUE)

    def snapshot(self) -> Any:
        return self.stock

    def receiveMsg_Query(self, msg: Query, sender: Any) -> None:
        self.backend.call("storage")
        self.reply(sender, Stock(msg.sku, self.stock.get(msg.sku, 0)))

    def receiveMsg_Reserve(self, msg: Reserve, sender: Any) -> None:
        self.backend.call("storage")
        left = self.stock.get(msg.sku, 0) - msg.quantity
        if left < 0:
            raise ValueError(f"not enough {msg.sku} for order {msg.order_id}")
        self.stock[msg.sku] = left
        self.reply(sender, Reserved(msg.order_id, msg.sku, left))


class Inventory(ManagedActor):
    """Reserves stock: asks the supplier API (which rate-limits), then the database."""

    def on_start(self) -> None:
        self.backend = Backend(self.options["backend"])

    def receiveMsg_Reserve(self, msg: Reserve, sender: Any) -> None:
        self.backend.call("supplier")
        self.call(
            "shop/db",
            msg,
            on_reply=lambda r: self.reply(sender, r),
            on_error=lambda e: self.reply_error(sender, e),
        )


class Payments(ManagedActor):
    """Charges orders at the payment provider (which can go down for a while)."""

    def on_start(self) -> None:
        self.backend = Backend(self.options["backend"])

    def receiveMsg_Charge(self, msg: Charge, sender: Any) -> None:
        self.backend.call("payments")
        self.reply(sender, Charged(msg.order_id))


class Sessions(ManagedActor):
    """The storefront's session store; its tokens go stale when its state is corrupted."""

    def on_start(self) -> None:
        self.stale = False

    def receiveMsg_Corrupt(self, msg: Corrupt, sender: Any) -> None:
        self.stale = True

    def receiveMsg_Token(self, msg: Token, sender: Any) -> None:
        self.reply(sender, Session(f"{self.incarnation}", self.stale))

    def receiveMsg_Query(self, msg: Query, sender: Any) -> None:
        self.reply(sender, Stock(msg.sku, -1))


class Api(ManagedActor):
    """Takes orders: checks the session, charges the payment, then reserves the stock.

    A stale session token is a fault of the storefront (restarting the API alone does
    not fix it; restarting the storefront does). Payment errors (the provider is down,
    its breaker is open) are answered to the customer at once.
    """

    def receiveMsg_PlaceOrder(self, msg: PlaceOrder, sender: Any) -> None:
        def with_session(session: Session) -> None:
            if session.stale:
                raise RuntimeError("the session store handed out a stale token")
            self.call("shop/payments", Charge(msg.order_id), 2.0, charged, failed)

        def charged(_: Charged) -> None:
            self.call(
                "shop/inventory",
                Reserve(msg.order_id, msg.sku, msg.quantity),
                on_reply=lambda r: self.reply(sender, Receipt(msg.order_id, msg.sku, True)),
                on_error=failed,
            )

        def failed(error: Exception) -> None:
            self.reply_error(sender, error)

        self.call("shop/storefront/sessions", Token(), 1.0, with_session, failed)


class Worker(ManagedActor):
    """Runs background jobs; a corrupted in-memory state only goes away with a restart."""

    def on_start(self) -> None:
        self.corrupt = False

    def receiveMsg_Corrupt(self, msg: Corrupt, sender: Any) -> None:
        self.corrupt = True

    def receiveMsg_Job(self, msg: Job, sender: Any) -> None:
        if self.corrupt:
            raise RuntimeError(f"{self.path}: internal state corrupted")
        self.reply(sender, JobDone(msg.id, self.path))
