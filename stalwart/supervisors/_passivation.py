"""Passivation between the root and the supervisors (the decisions are the kernel's:
:mod:`._kernel.passivation`).

- A sender that holds a message for a passivated path sends ``Wake`` to the root; the
  root asks the path's supervisor to start the child again (``Reactivate``).
- The memory actor tells the root at every sample while memory is at the warning tier
  or above (``PassivateIdle``); the root tells every supervisor, which passivates some
  of its idle children that opted in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..actors.messages import Wake
from ._kernel import events as ev
from .messages import PassivateIdle, Reactivate

if TYPE_CHECKING:
    from ._root import RootActor
    from ._supervisor import SupervisorActor

PASSIVE_STATES = ("passivating", "passivated")


# -- the root ---------------------------------------------------------------------------------
def root_on_wake(root: RootActor, msg: Wake, sender: Any) -> None:
    """Messages wait for ``msg.path``: its supervisor starts it again (if it is passivated)."""
    entry = root.registry.entries.get(msg.path)
    if entry is None or entry.state not in PASSIVE_STATES:
        return  # (running again already: the sender hears its address)
    supervisor = root.registry.address_of(msg.path.rpartition("/")[0])
    if supervisor is not None:
        root.send(supervisor, Reactivate(msg.path))


def root_on_passivate_idle(root: RootActor, msg: PassivateIdle, sender: Any) -> None:
    for address in root.registry.supervisor_addresses():
        root.send(address, msg)


# -- a supervisor -----------------------------------------------------------------------------
def on_reactivate(self: SupervisorActor, msg: Reactivate, sender: Any) -> None:
    if self.state is not None and self.begun:
        self.decide(ev.ReactivateRequested(msg.path, now=self.now))


def on_passivate_idle(self: SupervisorActor, msg: PassivateIdle, sender: Any) -> None:
    if self.state is not None and self.begun:
        self.decide(ev.PressureNoted(msg.level, now=self.now))


ROOT_HANDLERS: dict[type, Any] = {Wake: root_on_wake, PassivateIdle: root_on_passivate_idle}
SUPERVISOR_HANDLERS: dict[type, Any] = {
    Reactivate: on_reactivate,
    PassivateIdle: on_passivate_idle,
}
