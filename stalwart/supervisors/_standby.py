"""Warm standbys: a spare instance per path of a ``Child(..., standby=True)``.

A spare is an instance created ahead (on the multi-process bases, its process forked
and its actor made) and told it is one (``Standby``); nothing addresses it by the path.
When the kernel starts the path's next instance (a level 3 restart, its part of a level
4 restart), the supervisor hands that instance's ``Init`` to the spare instead of
creating one: the checkpoint, the replies and the redeliveries are those of that
moment, as for any new instance. A new spare is made a little after the instance has
started (``SPARE_AFTER_S``): the fork keeps the supervisor busy for milliseconds, and
must not hold up what callers hand over for the new instance once they hear of a crash.

Spares are the supervisor's own business: they are not children (``which_children``,
``count_children`` and ``status`` do not show them), get no health checks, are stopped
with their supervisor, and one that dies is replaced without a word to anyone.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ..actors._runtime import ActorExitRequest, child_process_gone, create_child
from ..actors._timers import WAKE
from ..actors.messages import Standby, StandbyReady
from ._kernel.state import REMOVED
from .spec import Child

if TYPE_CHECKING:
    from ._supervisor import SupervisorActor

log = logging.getLogger("stalwart.supervisor")
SPARE_AFTER_S = 0.1  # a new spare is made this long after its instance started
READY_WITHIN_S = 10.0  # a spare not ready by then is taken for dead (and stopped)
DEATHS_IN_A_ROW = 3  # spares that die before they are ready this often: no more are made


class Spare:
    """One spare: its address, and its process once it has said it is ready."""

    __slots__ = ("address", "made", "pid")

    def __init__(self, address: Any) -> None:
        self.address = address
        self.pid = 0
        self.made = time.monotonic()


class Spares:
    """The spares of one supervisor's children, by child (slot) name: one per path."""

    __slots__ = ("by_child", "deaths", "stopped")

    def __init__(self) -> None:
        self.by_child: dict[str, Spare] = {}
        self.deaths: dict[str, int] = {}  # spares of a child that died before they were ready
        self.stopped = False  # the supervisor is stopping: no more spares

    def wanted(self, sup: SupervisorActor, name: str) -> bool:
        """Whether child ``name`` keeps a spare now."""
        if self.stopped or sup.state is None or sup.state.finished or sup.state.retiring:
            return False
        c = sup.state.children.get(name)
        return (
            c is not None
            and c.role == "actor"
            and bool(getattr(c.spec, "standby", False))
            and not c.stop_for_good
            and c.phase != REMOVED
            and self.deaths.get(name, 0) < DEATHS_IN_A_ROW
        )

    def make_soon(self, sup: SupervisorActor, name: str) -> None:
        """Make a spare for ``name`` in ``SPARE_AFTER_S``, if it keeps one and has none."""
        if name not in self.by_child and self.wanted(sup, name):
            sup.after(SPARE_AFTER_S, (WAKE, "standby", name), ("standby", name))

    def make(self, sup: SupervisorActor, name: str) -> None:
        """Create a spare for ``name`` if it keeps one and has none."""
        if name in self.by_child or not self.wanted(sup, name):
            return
        assert sup.state is not None
        c = sup.state.children[name]
        assert isinstance(c.spec, Child)  # (wanted: an actor's)
        address = create_child(sup, c.spec.actor, not sup.clock_id)
        self.by_child[name] = Spare(address)
        sup.send(address, Standby(c.path, os.getpid()))

    def take(self, sup: SupervisorActor, name: str) -> Any:
        """The address of ``name``'s spare, which becomes its next instance (None: none)."""
        spare = self.by_child.pop(name, None)
        if spare is None:
            return None
        if spare.pid:  # the supervisor follows it as an instance from now on
            self.deaths.pop(name, None)
        return spare.address

    def ready(self, sup: SupervisorActor, msg: StandbyReady) -> None:
        name = sup.child_name(msg.path)
        spare = self.by_child.get(name) if name is not None else None
        if spare is not None and not spare.pid:
            spare.pid = msg.pid
            self.deaths.pop(name or "", None)

    def exited(self, sup: SupervisorActor, address: Any) -> bool:
        """True if ``address`` was a spare; it is replaced (quietly)."""
        for name, spare in list(self.by_child.items()):
            if spare.address == address:
                self.lost(sup, name, spare)
                return True
        return False

    def undelivered(self, sup: SupervisorActor, msg: Standby) -> None:
        """A ``Standby`` came back: the spare it was for died before it could start."""
        name = sup.child_name(msg.path)
        spare = self.by_child.get(name) if name is not None else None
        if name is not None and spare is not None and not spare.pid:
            _stop(sup, spare)  # (in case it is another one, made since)
            self.lost(sup, name, spare)

    def find_lost(self, sup: SupervisorActor) -> None:
        """Spares whose processes are gone although no exit notice came, and spares that
        never said they were ready."""
        late = time.monotonic() - READY_WITHIN_S
        for name, spare in list(self.by_child.items()):
            if spare.pid and spare.pid != os.getpid() and child_process_gone(spare.pid):
                self.lost(sup, name, spare)
            elif not spare.pid and spare.made < late:
                _stop(sup, spare)
                self.lost(sup, name, spare)

    def lost(self, sup: SupervisorActor, name: str, spare: Spare) -> None:
        del self.by_child[name]
        if not spare.pid:
            self.deaths[name] = deaths = self.deaths.get(name, 0) + 1
            if deaths == DEATHS_IN_A_ROW:
                log.warning("%s: its spares die as they start; no more are made", name)
        self.make_soon(sup, name)

    def drop(self, sup: SupervisorActor, name: str) -> None:
        """Stop ``name``'s spare (the child stops for good)."""
        spare = self.by_child.pop(name, None)
        if spare is not None:
            _stop(sup, spare)

    def stop_all(self, sup: SupervisorActor) -> None:
        """The supervisor stops: so do its spares (none is made from now on)."""
        self.stopped = True
        spares, self.by_child = self.by_child, {}
        for spare in spares.values():
            _stop(sup, spare)


def _stop(sup: SupervisorActor, spare: Spare) -> None:
    # (it holds nothing and has run no code of the workload: it just leaves; a process of
    # its own that misses this dies with its supervisor's)
    sup.send(spare.address, ActorExitRequest())
