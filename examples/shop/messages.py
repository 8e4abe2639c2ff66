"""The shop's messages."""

from __future__ import annotations

import msgspec


class Query(msgspec.Struct, frozen=True):
    sku: str


class Stock(msgspec.Struct, frozen=True):
    sku: str
    quantity: int


class Reserve(msgspec.Struct, frozen=True):
    order_id: int
    sku: str
    quantity: int = 1


class Reserved(msgspec.Struct, frozen=True):
    order_id: int
    sku: str
    left: int


class PlaceOrder(msgspec.Struct, frozen=True):
    order_id: int
    sku: str
    quantity: int = 1


class Receipt(msgspec.Struct, frozen=True):
    order_id: int
    sku: str
    charged: bool


class Job(msgspec.Struct, frozen=True):
    id: int


class JobDone(msgspec.Struct, frozen=True):
    id: int
    worker: str


class Corrupt(msgspec.Struct, frozen=True):
    """Fault injection: an actor's in-memory state goes bad until it is restarted."""


class Token(msgspec.Struct, frozen=True):
    """Ask the session store for a session token."""


class Session(msgspec.Struct, frozen=True):
    token: str
    stale: bool


class Charge(msgspec.Struct, frozen=True):
    order_id: int


class Charged(msgspec.Struct, frozen=True):
    order_id: int
