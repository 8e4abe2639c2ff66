"""The pool's actors: a flaky pricing service, workers that need it, a dispatcher."""

from __future__ import annotations

import os
import random
from typing import Any

import msgspec

from stalwart import DownstreamError, ManagedActor, StalwartError


class Quote(msgspec.Struct, frozen=True):
    sku: str


class Price(msgspec.Struct, frozen=True):
    sku: str
    cents: int
    source: str = "live"


class Job(msgspec.Struct, frozen=True):
    id: int
    sku: str


class Done(msgspec.Struct, frozen=True):
    id: int
    cents: int
    source: str
    worker: str


class Pricing(ManagedActor):
    """The external service: fails a share of calls, and all of them while it is down."""

    def on_start(self) -> None:
        self.rng = random.Random(int(self.options.get("seed", 7)))

    def receiveMsg_Quote(self, msg: Quote, sender: Any) -> None:
        down = os.path.exists(self.options.get("down_flag", ""))
        if down or self.rng.random() < float(self.options.get("flakiness", 0.0)):
            self.reply_error(sender, ConnectionError("pricing: connection reset by peer"))
            return
        self.reply(sender, Price(msg.sku, 100 + sum(map(ord, msg.sku)) % 900))


class Worker(ManagedActor):
    """Prices a job through the breaker in front of the pricing service."""

    def receiveMsg_Job(self, msg: Job, sender: Any) -> None:
        def priced(price: Any) -> None:
            if isinstance(price, dict):  # the breaker's default answer
                cents, source = int(price["cents"]), str(price["source"])
            else:  # while the breaker is open, a price can only be the cached one
                cents = price.cents
                source = "cached" if self.options["pricing"] in self.degraded else "live"
            self.reply(sender, Done(msg.id, cents, source, self.path))

        def failed(exc: StalwartError) -> None:
            raise DownstreamError(f"job {msg.id}: pricing failed: {exc}")

        self.call(self.options["pricing"], Quote(msg.sku), 2.0, priced, failed)
