"""Warm standbys: a spare instance per path of a ``Child(..., standby=True)``.

A spare is an instance created ahead (on the multi-process bases, its process forked
and its actor made) and told it is one (``Standby``); nothing addresses it by the path.
When the kernel starts the path's next instance (a level 3 restart, its part of a level
4 restart), the supervisor hands that instance's ``Init`` to the spare instead of
creating one: the checkpoint, the replies and the redeliveries are those of that
moment, as for any new instance. A new spare is made a little after the instance has
started (``SPARE_AFTER_S``): the fork keeps the supervisor busy for milliseconds, and
must not hold up what callers hand over for the new instance once they hear of a crash. The
supervisor keeps its working set its own across that fork (``stalwart.actors._working_set``),
watches the instance's exit by a pidfd (``_exit_watch``), and tells callers of a crash
itself, naming the spare (``_crash_notices``).

A ``Pool(..., spares=N)`` keeps ``N`` spares of its template for instances not yet
started (under the key ``NEW``): ``start_child`` hands the new instance's ``Init`` to
the oldest ready one, and the Pool makes another in its next turn once the new instance
has started (0.1 s after the start at the latest), after the answer has gone: a run of
starts finds one made during the previous start.

Spares are the supervisor's own business: they are not children (``which_children``,
``count_children`` and ``status`` do not show them), get no health checks, are stopped
with their supervisor, and one that dies is replaced without a word to anyone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ..actors._runtime import ActorExitRequest, child_process_gone, create_child
from ..actors._timers import WAKE
from ..actors._working_set import kept_across_fork
from ..actors.messages import Standby, StandbyReady
from ._kernel.state import REMOVED
from .spec import Child

if TYPE_CHECKING:
    from ._supervisor import SupervisorActor

log = logging.getLogger("stalwart.supervisor")
SPARE_AFTER_S = 0.1  # a new spare is made this long after its instance started
READY_WITHIN_S = 10.0  # a spare not ready by then is taken for dead (and stopped)
DEATHS_IN_A_ROW = 3  # spares that die before they are ready this often: no more are made
NEW = "*"  # the key of a Pool's spares for new instances (no child has this name)


class Spare:
    """One spare: its address, and its process once it has said it is ready."""

    __slots__ = ("address", "made", "pid")

    def __init__(self, address: Any) -> None:
        self.address = address
        self.pid = 0
        self.made = time.monotonic()


class Spares:
    """The spares of one supervisor's children: one per path (by child name), and a
    Pool's spares for new instances."""

    __slots__ = ("by_child", "deaths", "for_new", "stopped")

    def __init__(self) -> None:
        self.by_child: dict[str, Spare] = {}
        self.for_new: list[Spare] = []  # a Pool's, oldest first
        self.deaths: dict[str, int] = {}  # spares of a child that died before they were ready
        self.stopped = False  # the supervisor is stopping: no more spares

    def __bool__(self) -> bool:
        return bool(self.by_child or self.for_new)

    def wanted(self, sup: SupervisorActor, name: str) -> bool:
        """Whether child ``name`` (or, for ``NEW``, the Pool) keeps a spare now."""
        if self.stopped or sup.state is None or sup.state.finished or sup.state.retiring:
            return False
        if self.deaths.get(name, 0) >= DEATHS_IN_A_ROW:
            return False
        if name == NEW:
            return len(self.for_new) < _new_wanted(sup)
        c = sup.state.children.get(name)
        return (
            c is not None
            and c.role == "actor"
            and bool(getattr(c.spec, "standby", False))
            and not c.stop_for_good
            and c.phase != REMOVED
        )

    def make_soon(self, sup: SupervisorActor, name: str) -> None:
        """Make a spare for ``name`` in ``SPARE_AFTER_S``, if it keeps one and has none."""
        if name not in self.by_child and self.wanted(sup, name):
            sup.after(SPARE_AFTER_S, (WAKE, "standby", name), ("standby", name))

    def make(self, sup: SupervisorActor, name: str) -> None:
        """Create a spare for ``name`` if it keeps one and has none (for ``NEW``: as many
        as the Pool keeps)."""
        if name == NEW:
            while self.wanted(sup, NEW):
                self.for_new.append(self._create(sup, _new_template(sup)))
            return
        if name in self.by_child or not self.wanted(sup, name):
            return
        assert sup.state is not None
        self.by_child[name] = self._create(sup, sup.state.children[name].spec, keep_own=True)

    def _create(self, sup: SupervisorActor, spec: Any, keep_own: bool = False) -> Spare:
        """A new spare; ``keep_own``: the supervisor's working set stays its own across the
        fork (its turn after a crash is the one a takeover waits for)."""
        assert isinstance(spec, Child)  # (wanted: an actor's)
        forks = not sup.clock_id
        with kept_across_fork() if forks and keep_own else contextlib.nullcontext():
            address = create_child(sup, spec.actor, forks)
        sup.send(address, Standby(f"{sup.path}/{spec.name}", os.getpid(), keep_own))
        return Spare(address)

    def take(self, sup: SupervisorActor, name: str) -> Spare | None:
        """The spare that becomes ``name``'s next instance (None: none): its own, else one
        of the Pool's, a ready one first. A spare whose process is gone is replaced, not
        taken."""
        own = self.by_child.get(name)
        if own is not None and not self._gone(sup, name, own):
            del self.by_child[name]
            return self._taken(name, own)
        if sup.state is None or sup.state.pool is None:
            return None
        for spare in sorted(self.for_new, key=lambda spare: not spare.pid):  # ready first
            if not self._gone(sup, NEW, spare):
                self.for_new.remove(spare)
                return self._taken(NEW, spare)
        return None

    def _gone(self, sup: SupervisorActor, key: str, spare: Spare) -> bool:
        """True if ``spare``'s process is known to be gone (then it is replaced)."""
        if spare.pid and spare.pid != os.getpid() and child_process_gone(spare.pid):
            self.lost(sup, key, spare)
            return True
        return False

    def _taken(self, key: str, spare: Spare) -> Spare:
        if spare.pid:  # the supervisor follows it as an instance from now on
            self.deaths.pop(key, None)
        return spare

    def refill(self, sup: SupervisorActor) -> None:
        """A Pool's spare was taken: make another in this supervisor's next turn (after
        what it sends in this one has gone: the fork holds the process for milliseconds)."""
        if self.wanted(sup, NEW):
            sup.after(0.0, (WAKE, "standby", NEW), ("standby", NEW))

    def ready(self, sup: SupervisorActor, msg: StandbyReady, sender: Any) -> None:
        for name, spare in self._each():
            if spare.address == sender and not spare.pid:
                spare.pid = msg.pid
                self.deaths.pop(name, None)
                return

    def exited(self, sup: SupervisorActor, address: Any) -> bool:
        """True if ``address`` was a spare; it is replaced (quietly)."""
        for name, spare in self._each():
            if spare.address == address:
                self.lost(sup, name, spare)
                return True
        return False

    def undelivered(self, sup: SupervisorActor, msg: Standby, address: Any) -> None:
        """A ``Standby`` came back: the spare it was for died before it could start.

        (Thespian returns it from ``address``, or, when the process died before it
        connected, from this supervisor itself, after the exit notice that replaced it.)
        """
        name = sup.child_name(msg.path)
        for key, spare in self._each():
            if not spare.pid and (spare.address == address or key == name):
                _stop(sup, spare)  # (in case it is another one, made since)
                self.lost(sup, key, spare)
                return

    def find_lost(self, sup: SupervisorActor) -> None:
        """Spares whose processes are gone although no exit notice came, and spares that
        never said they were ready."""
        late = time.monotonic() - READY_WITHIN_S
        for name, spare in self._each():
            if spare.pid and spare.pid != os.getpid() and child_process_gone(spare.pid):
                self.lost(sup, name, spare)
            elif not spare.pid and spare.made < late:
                _stop(sup, spare)
                self.lost(sup, name, spare)

    def lost(self, sup: SupervisorActor, name: str, spare: Spare) -> None:
        if name == NEW:
            self.for_new.remove(spare)
        else:
            del self.by_child[name]
        if not spare.pid:
            self.deaths[name] = deaths = self.deaths.get(name, 0) + 1
            if deaths == DEATHS_IN_A_ROW:
                who = f"{sup.path} (a Pool)" if name == NEW else name
                log.warning("%s: its spares die as they start; no more are made", who)
        self.make_soon(sup, name)

    def drop(self, sup: SupervisorActor, name: str) -> None:
        """Stop ``name``'s spare (the child stops for good)."""
        spare = self.by_child.pop(name, None)
        if spare is not None:
            _stop(sup, spare)

    def stop_all(self, sup: SupervisorActor) -> None:
        """The supervisor stops: so do its spares (none is made from now on)."""
        self.stopped = True
        spares = [spare for _, spare in self._each()]
        self.by_child, self.for_new = {}, []
        for spare in spares:
            _stop(sup, spare)

    def _each(self) -> list[tuple[str, Spare]]:
        """Every spare with its key (a copy: the caller may remove while it goes)."""
        return [*self.by_child.items(), *((NEW, spare) for spare in self.for_new)]


def _new_wanted(sup: SupervisorActor) -> int:
    assert sup.state is not None
    pool = sup.state.pool
    return pool.spares if pool is not None else 0


def _new_template(sup: SupervisorActor) -> Child:
    assert sup.state is not None and sup.state.pool is not None
    template = sup.state.pool.template
    assert isinstance(template, Child)  # (a Pool with spares has an actor template)
    return template


def _stop(sup: SupervisorActor, spare: Spare) -> None:
    # (it holds nothing and has run no code of the workload: it just leaves; a process of
    # its own that misses this dies with its supervisor's)
    sup.send(spare.address, ActorExitRequest())
