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
answering it is set aside when its caller hands it over again. The caller sends its note
right after the request, so the supervisor has it long before it could hear that the spare
died on the request (the spare's end alone takes milliseconds); a note that comes after that
death all the same (slow on its way) is dropped, and the
request goes through the supervisor when its caller hears of the death (a poison then
takes one more instance). When the spare dies with several requests unanswered, some of
them handed straight to it, which one it was handling is unknown: none is blamed that time,
and each goes through the supervisor the next.

The supervisor tells its first ``NOTICE_FIRST`` watchers before it decides, the others
right after (each send costs it a little: a child with many callers must not wait for all
of them before its spare gets its ``Init``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..actors.messages import CrashNotice
from . import _kernel as kernel
from .messages import Watchers

if TYPE_CHECKING:
    from ._supervisor import SupervisorActor


NOTICE_FIRST = 8  # watchers told before the supervisor decides (the others right after)
TAKEOVERS_KEPT = 32  # per child, the last crashes a spare took over from


class CrashNotices:
    """One supervisor's watchers of its children that keep a spare, and their takeovers."""

    __slots__ = ("noticed", "took_over", "watchers")

    def __init__(self) -> None:
        self.watchers: dict[str, dict[str, Any]] = {}  # child -> caller's key -> address
        # (child, crashed, spare, the notice, watchers not told yet): this turn's
        self.noticed: tuple[str, int, Any, CrashNotice, list[Any]] | None = None
        self.took_over: dict[str, dict[int, int]] = {}  # child -> crashed -> its instance

    def watched(self, sup: SupervisorActor, msg: Watchers) -> None:
        """Who sends to a child (all, or one more). A watcher new here is sent a notice of
        no crash at once: the connection a notice needs is open before a crash needs one
        (a first message to an address waits for its connection: the root's update would
        overtake it)."""
        name = sup.child_name(msg.path)
        if name is None:
            return
        known = self.watchers.get(name, {})
        if msg.whole:
            self.watchers[name] = dict(msg.watchers)
        else:
            self.watchers[name] = {**known, **dict(msg.watchers)}
        for key, address in msg.watchers:
            if known.get(key) != address:  # (addresses compare equal, but do not hash)
                sup.send(address, CrashNotice(msg.path, 0, sup.myAddress))

    def tell(self, sup: SupervisorActor, name: str, incarnation: int) -> None:
        """Instance ``incarnation`` of ``name`` has exited: if its callers hand over what it
        was handling, tell the first of them now (before the supervisor decides)."""
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
        addresses = list(watchers.values())
        for address in addresses[:NOTICE_FIRST]:
            sup.send(address, notice)
        self.noticed = (
            name,
            incarnation,
            spare and spare.address,
            notice,
            addresses[NOTICE_FIRST:],
        )

    def told(self, sup: SupervisorActor) -> None:
        """The supervisor has decided: the other watchers are told now."""
        noticed, self.noticed = self.noticed, None
        if noticed is not None:
            for address in noticed[4]:
                sup.send(address, noticed[3])

    def named(self, name: str, address: Any) -> bool:
        """Whether this turn's notice named the spare at ``address`` to take ``name`` over
        (its callers are handing it what the crash lost: its ``Init`` goes first)."""
        noticed = self.noticed
        return noticed is not None and noticed[0] == name and noticed[2] == address

    def takes_over(self, name: str, address: Any, incarnation: int) -> int:
        """The crash that instance ``incarnation`` of ``name``, at ``address``, takes over
        from (0: none): the one whose notice named it, in the turn that noticed it."""
        if not self.named(name, address):
            return 0
        assert self.noticed is not None
        crashed = self.noticed[1]
        kept = self.took_over.setdefault(name, {})
        kept[crashed] = incarnation
        while len(kept) > TAKEOVERS_KEPT:
            del kept[next(iter(kept))]
        return crashed

    def handed(self, sup: SupervisorActor, name: str, crashed: int) -> bool | None:
        """A caller's note of a request it handed straight to the spare after ``crashed``
        died: True if the instance that took over from it is there (it has the request);
        None if that instance has died since (the caller hands the request again when it
        hears of it); False if none took over (the supervisor hands it on itself)."""
        instance = self.took_over.get(name, {}).get(crashed)
        if instance is None:
            return False
        child = sup.state.children.get(name) if sup.state is not None else None
        current = child is not None and child.incarnation == instance
        return True if current and (name, instance) in sup.addresses else None

    def forget(self, name: str) -> None:
        """``name`` stops for good, or is forgotten."""
        self.watchers.pop(name, None)
        self.took_over.pop(name, None)
