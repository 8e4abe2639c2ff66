"""Bad input is final: a handler's KeyError, IndexError or TypeError on the message's own
data is answered at once as HandlerError (nothing restarts, nothing becomes a dead letter),
unless a classification rule of the user's says otherwise."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from stalwart import Child, HandlerError, ManagedActor, PoisonMessageError, Supervisor
from stalwart.strategies import ErrorCategory, register_rule
from stalwart.strategies._classify import default_classifier
from stalwart.testing import wait_for_event


class Reserve(msgspec.Struct, frozen=True):
    sku: str
    count: Any = 1


class Stock(ManagedActor):
    def on_start(self) -> None:
        self.items = {"AB": 3}
        self.lines = ["first"]

    def receiveMsg_Reserve(self, msg: Reserve, sender: Any) -> None:
        left = self.items[msg.sku] - msg.count  # KeyError / TypeError on the message's data
        self.items[msg.sku] = left
        self.reply(sender, left)

    def receiveMsg_int(self, msg: int, sender: Any) -> None:
        self.reply(sender, self.lines[msg])  # IndexError


def tree() -> Supervisor:
    return Supervisor("shop", children=[Child("stock", Stock)])


@pytest.mark.parametrize(
    ("message", "error"),
    [(Reserve("ZZ"), "KeyError: 'ZZ'"), (Reserve("AB", "x"), "TypeError"), (7, "IndexError")],
    ids=["KeyError", "TypeError", "IndexError"],
)
def test_a_lookup_or_type_error_on_the_messages_data_is_answered_at_once(
    make_system, base, message, error
):
    system = make_system(tree(), base=base)
    pid = system.status()["shop/stock"].pid
    with pytest.raises(HandlerError, match=error):
        system.ask("shop/stock", message, timeout=10)
    status = system.status()["shop/stock"]
    assert (status.restarts, status.pid, status.level) == (0, pid, 0)
    assert system.dead_letters() == []
    assert system.ask("shop/stock", Reserve("AB")) == 2  # its state is intact


def test_a_users_rule_can_make_a_key_error_a_fault_that_is_retried(make_system):
    def missing_cache_entry(exc: BaseException) -> ErrorCategory | None:
        return ErrorCategory.CRASH if isinstance(exc, KeyError) else None

    register_rule(missing_cache_entry)
    try:
        system = make_system(tree(), base="simple")
        with pytest.raises(PoisonMessageError):  # it went up the levels instead
            system.ask("shop/stock", Reserve("ZZ"), timeout=30)
        assert wait_for_event(system, "failure", "shop/stock").category == "crash"
        assert system.status()["shop/stock"].restarts >= 1
        assert [d.message for d in system.dead_letters()] == [Reserve("ZZ")]
    finally:
        default_classifier.unregister(missing_cache_entry)
