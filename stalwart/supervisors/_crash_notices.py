"""Crash notices: from a crash to a warm spare serving again, in as few hops as it takes.

A child that keeps a spare (``Child(..., standby=True)``) is one whose callers want it back
at once. The root tells its supervisor who sends to it (:class:`Watchers`). When one of its
instances crashes, the supervisor tells them itself (:class:`CrashNotice`), before it
decides anything and ahead of the root's ``AddressUpdate``, naming the spare that takes
over if the instance is restarted at once (a crash's usual first answer). A caller hands a
request the crash lost, if it had not handed it over before, straight to that spare, with a
note of it to the supervisor (a ``LostRequest`` with ``direct``); one it handed over before
(it may be a poison) goes through the supervisor, as after any crash.

The spare holds what it is handed until its ``Init``, which says which crash it takes over
from (``takes_over``), and handles only what was handed after that crash. If the supervisor
decided otherwise (no restart at once, another instance), the spare drops them and the
supervisor hands the notes on as lost requests: each request is handled once.

Poison messages are found as before: a request handed to the spare that dies before
answering it is set aside when its caller hands it over again. A note that reaches the
supervisor after that death counts the same. When the spare dies with several of them
unanswered, which one it was handling is unknown: none is blamed that time, and each goes
through the supervisor the next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..actors.messages import CrashNotice
from . import _kernel as kernel
from .messages import Watchers

if TYPE_CHECKING:
    from ._supervisor import SupervisorActor


class CrashNotices:
    """One supervisor's watchers of its children that keep a spare, and their takeovers."""

    __slots__ = ("noticed", "took_over", "watchers")

    def __init__(self) -> None:
        self.watchers: dict[str, tuple[Any, ...]] = {}  # child -> who sends to it
        self.noticed: tuple[str, int, Any] | None = None  # (child, crashed, spare): this turn
        self.took_over: dict[str, tuple[int, int]] = {}  # child -> (crashed, its instance)

    def watched(self, sup: SupervisorActor, msg: Watchers) -> None:
        name = sup.child_name(msg.path)
        if name is not None:
            self.watchers[name] = msg.addresses

    def tell(self, sup: SupervisorActor, name: str, incarnation: int) -> None:
        """Instance ``incarnation`` of ``name`` has exited: if its callers hand over what it
        was handling, tell them now (before the supervisor decides)."""
        self.noticed = None
        watchers = self.watchers.get(name)
        state = sup.state
        if not watchers or state is None:
            return
        if not kernel.crash_loses_requests(state, name, incarnation):
            return
        spare = sup.spares.by_child.get(name)
        path = state.children[name].path
        notice = CrashNotice(path, incarnation, sup.myAddress, spare and spare.address)
        if spare is not None:
            self.noticed = (name, incarnation, spare.address)
        for address in watchers:
            sup.send(address, notice)

    def named(self, name: str, address: Any) -> bool:
        """Whether this turn's notice named the spare at ``address`` to take ``name`` over
        (its callers are handing it what the crash lost: its ``Init`` goes first)."""
        return self.noticed is not None and self.noticed[::2] == (name, address)

    def takes_over(self, name: str, address: Any, incarnation: int) -> int:
        """The crash that instance ``incarnation`` of ``name``, at ``address``, takes over
        from (0: none): the one whose notice named it, in the turn that noticed it."""
        self.took_over.pop(name, None)
        noticed, self.noticed = self.noticed, None
        if noticed is None or noticed[0] != name or noticed[2] != address:
            return 0
        self.took_over[name] = (noticed[1], incarnation)
        return noticed[1]

    def handed(self, sup: SupervisorActor, name: str, crashed: int) -> bool | None:
        """A caller's note of a request it handed straight to the spare after ``crashed``
        died: True if the instance that took over from it is there (it has the request);
        None if that instance has died since (the request counts as under way then); False
        if none took over (the supervisor hands it on itself)."""
        took = self.took_over.get(name)
        if took is None or took[0] != crashed:
            return False
        return True if (name, took[1]) in sup.addresses else None

    def forget(self, name: str) -> None:
        """``name`` stops for good."""
        self.watchers.pop(name, None)
        self.took_over.pop(name, None)
