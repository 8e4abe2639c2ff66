"""Thespian's in-process base, as Stalwart's in-process systems run it.

A subclass of Thespian's ``simpleSystemBase``, used by Stalwart's in-process systems
only (other systems in the same program are untouched). What it changes costs Thespian
more than Stalwart's own work for an idle actor:

- An actor whose class takes no arguments is created by calling the class. Thespian reads
  the ``__init__`` signature on every creation, and a faulty first reading makes it read
  it twice more, once under a warnings filter. Classes whose ``__init__`` takes arguments,
  and actors loaded from a source hash, are still created by Thespian's code.
- A delivery does not look Thespian's logger up again (it is still logged at debug level).
- A ``tell`` runs the pending sends without the timer and checks Thespian makes for a
  ``listen``; an ordinary message (not one of Thespian's own, not a retry after its
  handler failed) is handed to its actor without the checks those need. Everything else
  is delivered by Thespian's code.
- A child is created without formatting a debug line nobody logs.
- Due timers are looked for before a delivery only when there are any (Stalwart's timers
  are its own).
- An actor's children (Thespian's ``_yung``) are kept by address, in the order made, and
  an exited one is found and removed at once, whatever order they exit in. Thespian looks
  from the eldest, one Python ``==`` each (a tree stops its children latest first); this
  base used to look from the latest (a Pool stops its instances eldest first).
- Pending sends are a deque: Thespian took each from the front of a list, moving all the
  others (a Pool stopping queues an exit request for every instance at once).
- The entry Thespian keeps for an exited actor (``None``, under its address) goes: a Pool
  whose instances come and go by the million would keep one for each.
- An exit request for an actor gone already goes to the dead-letter handler as any other
  message does, and nothing else happens. Thespian also "killed" the handler for it: it
  logged that the gone actor "had no instance to reset on kill" and told the handler's
  parent that the gone actor had exited (a supervisor that stopped its spare instances
  and left before hearing of their exits has them in its list of children still, and
  Thespian sends each an exit request once the supervisor has gone).

Everything else (addresses, the order of delivery, exit notices) is Thespian's.
"""

from __future__ import annotations

import collections
import inspect
import logging
import types
import weakref
from collections.abc import Iterator
from typing import Any

from thespian.actors import (
    ActorAddress,
    ActorExitRequest,
    ActorSystem,
    ActorSystemException,
    ActorSystemMessage,
    ChildActorExited,
    DeadEnvelope,
)
from thespian.system import isInternalActorSystemMessage, simpleSystemBase

_THESPIAN = logging.getLogger("Thespian")
_PLAIN: weakref.WeakKeyDictionary[type, tuple[Any, bool]] = weakref.WeakKeyDictionary()
# (actor class -> (its __init__, whether it is created with no argument))


def _takes_no_arguments(cls: Any) -> bool:
    if not isinstance(cls, type):  # (a class named by a string: Thespian loads it)
        return False
    init = getattr(cls, "__init__", None)
    kept = _PLAIN.get(cls)
    if kept is not None and kept[0] is init:
        return kept[1]
    try:
        plain = not inspect.signature(cls).parameters
    except (TypeError, ValueError):
        plain = False
    _PLAIN[cls] = (init, plain)
    return plain


def _deliver(actor: Any, msg: Any, sender: Any) -> None:
    """Thespian's delivery, without looking its logger up again for each message."""
    _THESPIAN.debug('Actor "%s" got message "%s" from "%s"', actor, msg, sender)
    actor.receiveMessage(msg, sender)


class _Children:
    """An actor's children, for Thespian's ``ActorRef._yung``: in the order made, each
    found and removed at once. ``index`` answers a child's key, which ``del`` takes (all
    Thespian does with an index: ``del young[young.index(address)]``)."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[Any, Any] | None = None  # (made by the first child: most have none)

    def append(self, address: Any) -> None:
        if self._by_key is None:
            self._by_key = {}
        self._by_key[address.addressDetails] = address  # (its details: what == compares)

    def index(self, address: Any) -> Any:
        key = address.addressDetails
        if not self._by_key or key not in self._by_key:
            raise ValueError(f"{address} is not a child")
        return key

    def __delitem__(self, key: Any) -> None:
        assert self._by_key is not None
        del self._by_key[key]

    def __iter__(self) -> Iterator[Any]:
        # (a copy: a send may add a child)
        return iter(tuple(self._by_key.values()) if self._by_key else ())

    def __len__(self) -> int:
        return len(self._by_key) if self._by_key else 0


class _Sends(collections.deque[Any]):
    """Thespian's pending sends, each taken from the front at once (its list's ``pop(0)``
    moved every send still pending: a Pool of 100,000 stopping queues 100,000 at once)."""

    def pop(self, index: int = -1) -> Any:  # (Thespian's listen takes ``pop(0)``)
        if index == 0:
            return self.popleft()
        if index == -1:
            return super().pop()
        raise IndexError("pending sends are taken from either end only")


class _InProcessBase(simpleSystemBase.ActorSystemBase):  # type: ignore[misc]
    _pendingSends: Any  # (Thespian's list, a _Sends once made)

    def __init__(self, system: Any, logDefs: Any = None) -> None:
        super().__init__(system, logDefs)
        self._pendingSends = _Sends(self._pendingSends)

    def _newRefAndActor(
        self,
        actorSystem: Any,
        parentAddr: Any,
        actorAddr: Any,
        actorClass: Any,
        sourceHash: Any = None,
        targetActorRequirements: Any = None,
        isTopLevel: bool = False,
    ) -> Any:
        if sourceHash or not _takes_no_arguments(actorClass):
            made = super()._newRefAndActor(
                actorSystem,
                parentAddr,
                actorAddr,
                actorClass,
                sourceHash,
                targetActorRequirements,
                isTopLevel,
            )
            made._yung = _Children()
            return made
        check = getattr(actorClass, "actorSystemCapabilityCheck", None)
        try:  # (what fails is logged and answered as Thespian does)
            fits = check is None or check(self.system.capabilities, targetActorRequirements or {})
            actor = actorClass() if fits else None
        except ActorSystemException:
            _THESPIAN.warning("Actor total creation failure", exc_info=True)
            if isTopLevel:
                raise
            actor = None
        except ImportError:
            _THESPIAN.warning(
                "Actor create import error for %s (hash %s)", actorClass, None, exc_info=True
            )
            raise
        except Exception:  # (the parent hears ChildActorExited)
            _THESPIAN.warning("Actor total creation error", exc_info=True)
            if isTopLevel:
                raise
            actor = None
        ref = simpleSystemBase.ActorRef(actorSystem, parentAddr, actorAddr, actor)
        ref._yung = _Children()
        if actor:
            actor._myRef = ref
            actor._receive = types.MethodType(_deliver, actor)
        return ref

    def newActor(
        self,
        parentAddr: Any,
        actorClass: Any,
        actorSystem: Any,
        targetActorRequirements: Any,
        globalName: Any,
        sourceHash: Any,
    ) -> Any:
        parent = self.actorRegistry.get(parentAddr.actorAddressString)
        if globalName or parent is None:  # (Thespian's: a global name, or its error)
            return super().newActor(
                parentAddr, actorClass, actorSystem, targetActorRequirements, globalName, sourceHash
            )
        address = simpleSystemBase._newChildAddress(parent)
        parent.addChild(address)  # (before the child is made: its failure is the parent's)
        ref = self._newRefAndActor(
            actorSystem,
            parentAddr,
            address,
            actorClass,
            targetActorRequirements=targetActorRequirements,
            sourceHash=sourceHash,
        )
        self.actorRegistry[address.actorAddressString] = ref
        if not (ref and ref.instance):
            self.actor_send(self.system.systemAddress, parentAddr, ChildActorExited(address))
        _THESPIAN.debug("Created Actor %s @ %s as child of %s", actorClass, address, parentAddr)
        return address

    def _runSends(self, timeout: Any = None, stop_on_available: Any = False) -> None:
        if timeout is not None or stop_on_available or self.procLimit:
            super()._runSends(timeout, stop_on_available)  # (a listen's)
            return
        pending, lock = self._pendingSends, self._private_lock
        while pending:
            self._realizeWakeups()
            with lock:
                if pending:
                    self._runSingleSend(pending.popleft())

    def _runSingleSend(self, ps: Any) -> None:
        msg = ps.msg
        target = None if ps.attempts else self.actorRegistry.get(ps.toActor.actorAddressString)
        if target is None and not ps.attempts and isinstance(msg, ActorExitRequest):
            box = self.actorRegistry.get("DeadLetterBox")  # (the actor is gone: no kill)
            if box is not None and box.instance:
                dead = DeadEnvelope(ps.toActor.actorAddressString, msg)
                self._callActorWithMessage(box, ps, dead, ps.sender)
            return
        if target is None or not target._inst or isinstance(msg, ActorSystemMessage):
            super()._runSingleSend(ps)  # (Thespian's own messages, retries, the dead)
            if type(msg) is ChildActorExited:  # (Thespian keeps a None for each: it goes)
                key = msg.childAddress.actorAddressString
                if key in self.actorRegistry and self.actorRegistry[key] is None:
                    del self.actorRegistry[key]
            return
        self._callActorWithMessage(target, ps, msg, ps.sender)

    def replies(self) -> list[Any] | None:
        """What actors sent the system's own address since last asked, in order:
        Thespian's ``listen(0)`` once sends have run (None while Thespian has timers of its
        own pending: ``listen`` runs those)."""
        if self._wakeUps or self._pendingSends:
            return None
        requester = self.actorRegistry["System:ExternalRequester"].instance
        responses = getattr(requester, "responses", None)
        if not responses:
            return []
        got = [m for m in responses if not isInternalActorSystemMessage(m)]
        responses.clear()
        return got

    def _realizeWakeups(self) -> None:
        if self._wakeUps:  # (called before every delivery; Stalwart's timers are its own)
            super()._realizeWakeups()


class InProcessSystem(ActorSystem):  # type: ignore[misc]
    """An ``ActorSystem`` on :class:`_InProcessBase` (always transient: never the
    program's default system)."""

    def __init__(self, capabilities: dict[str, Any]) -> None:
        super().__init__(None, capabilities, logDefs=False, transientUnique=True)

    def _startupActorSys(
        self,
        currentSystemBase: Any,
        systemBase: Any,
        capabilities: Any,
        logDefs: Any,
    ) -> Any:
        self.systemAddress = ActorAddress("/ActorSys")
        self.capabilities = capabilities or {}
        self._systemBase = _InProcessBase(self, logDefs=logDefs)
        return self._systemBase
