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
    """Fault injection: the worker's in-memory state goes bad until it is restarted."""
