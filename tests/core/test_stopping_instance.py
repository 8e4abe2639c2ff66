"""A request that reaches an instance after it has stopped is refused to its caller.

Found by ``benchmarks/bench_levels.py``: on ``multiproc``, about one level 5 sample in
eight sent its next request to the old instance just before the root closed the route
for the tree's restart, and the caller never heard (it timed out). The stopped instance
refused it, but without the request's id, so the refusal reached nobody.
"""

from __future__ import annotations

from typing import Any

import msgspec

from stalwart import ActorStopped, Child, ManagedActor, Supervisor
from tests.support import Ping, Worker


class Race(msgspec.Struct, frozen=True):
    pass


class Next(msgspec.Struct, frozen=True):
    pass


class Prober(ManagedActor):
    """Asks its supervisor to stop ``b/w``, then (a turn later, once the supervisor has
    told ``b/w`` to retire, but before this actor hears that it has gone) calls it."""

    def receiveMsg_Race(self, msg: Race, sender: Any) -> None:
        self.asker = sender
        self.call("b/w", Ping(1), on_reply=lambda _: self.after_first())  # (route resolved)

    def after_first(self) -> None:
        self.terminate_child("b", "w", on_reply=lambda _: None, on_error=lambda _: None)
        self.tell(self.path, Next())

    def receiveMsg_Next(self, msg: Next, sender: Any) -> None:
        self.call(
            "b/w",
            Ping(2),
            timeout=5.0,
            on_reply=lambda reply: self.reply(self.asker, f"answered {reply}"),
            on_error=lambda error: self.reply(self.asker, type(error).__name__),
        )


def test_a_request_that_reaches_a_stopped_instance_is_refused_to_its_caller(make_system):
    system = make_system(Supervisor("b", children=[Child("w", Worker), Child("p", Prober)]))
    outcome = system.ask("b/p", Race(), timeout=10)
    assert outcome == ActorStopped.__name__  # (before: a Timeout, after 5 s)
