"""``System``'s calls about a supervisor's children: OTP's ``start_child`` family.

Each call sends one request of :mod:`stalwart.actors._children` to the supervisor's
path (through the root, as an ``ask``) and returns its answer, or raises the error it
was answered with. The requests are built and checked here, so they are not checked
again as a user's message is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..actors._children import (
    ChildCounts,
    ChildInfo,
    CountChildren,
    DeleteChild,
    RestartChild,
    StartChild,
    TerminateChild,
    WhichChildren,
)
from ..actors.errors import BadMessage
from .spec import Child, Supervisor, shown

CHANGE_TIMEOUT_S = 30.0  # how long a start, restart or stop may take unless told


class ChildCalls:
    """Mixin of :class:`~stalwart.System`."""

    if TYPE_CHECKING:  # provided by System

        def _ask(self, path: str, msg: Any, timeout: float | None, validate: bool) -> Any: ...

        def _learn_path(self, path: str) -> None: ...

    def start_child(
        self,
        supervisor: str,
        child: Child | Supervisor | str,
        options: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> str:
        """Start ``child`` under the supervisor at ``supervisor`` and return its path once
        it runs.

        ``child`` is a :class:`~stalwart.Child` or :class:`~stalwart.Supervisor` spec (it
        starts after the other children and stops before them), or, for a
        :class:`~stalwart.Pool`, the key of the instance to start (``options`` go on top of
        the template's). Raises ``AlreadyStarted`` / ``AlreadyPresent`` (a child of that
        name runs / is kept terminated), ``StartFailed`` (its start failed: it is not kept),
        ``PoolFull``, ``BadMessage`` (a spec that does not fit among its siblings),
        ``UnknownPath`` (no such supervisor).
        """
        request = start_request(child, options)
        path: str = self._ask(supervisor, request, _change(timeout), False)
        self._learn_path(path)  # (not a copy of every known path per start)
        return path

    def terminate_child(self, supervisor: str, name: str, timeout: float | None = None) -> None:
        """Stop the child ``name`` of ``supervisor`` (every replica) and keep its spec (a
        temporary child's spec, and a Pool's instance, go); returns once it has stopped.
        Raises ``UnknownPath`` naming a child it does not have."""
        self._ask(supervisor, TerminateChild(child_name(name)), _change(timeout), False)

    def restart_child(self, supervisor: str, name: str, timeout: float | None = None) -> str:
        """Start the terminated child ``name`` of ``supervisor`` again (from its spec and its
        last checkpoint); returns its path once it runs. Raises ``ChildRunning`` if it runs,
        ``StartFailed`` (it stays terminated), ``UnknownPath``."""
        path: str = self._ask(supervisor, RestartChild(child_name(name)), _change(timeout), False)
        return path

    def delete_child(self, supervisor: str, name: str, timeout: float | None = None) -> None:
        """Forget the terminated child ``name`` of ``supervisor``: its spec, checkpoints (a
        durable one in the store too) and paths go. For a durable child that an earlier run
        added and stored (a Pool's key) and this run has not started, what the store kept
        for it and below it goes. Raises ``ChildRunning`` if it runs, ``UnknownPath`` (also
        for a Pool's key the store has nothing for), ``BadMessage`` for a Pool's key
        started in this run."""
        self._ask(supervisor, DeleteChild(child_name(name)), _change(timeout), False)

    def which_children(self, supervisor: str, timeout: float | None = None) -> list[ChildInfo]:
        """The children of ``supervisor`` in start order, one :class:`~stalwart.ChildInfo`
        per instance: name, path (None while it does not run), kind, actor class."""
        return list(self._ask(supervisor, WhichChildren(), timeout, False))

    def count_children(self, supervisor: str, timeout: float | None = None) -> ChildCounts:
        """How many children ``supervisor`` has, as OTP counts them: a
        :class:`~stalwart.ChildCounts` (specs, active, supervisors, workers)."""
        counts: ChildCounts = self._ask(supervisor, CountChildren(), timeout, False)
        return counts


def _change(timeout: float | None) -> float:
    return CHANGE_TIMEOUT_S if timeout is None else timeout


def start_request(child: Any, options: Any) -> StartChild:
    """The checked request to start ``child`` (a spec, or a Pool's key); BadMessage names
    what is wrong (the System's calls and an actor's use it alike)."""
    if isinstance(child, str):
        return StartChild(key=child, options=_options(options))
    if isinstance(child, (Child, Supervisor)):
        return StartChild(child, options=_options(options))
    raise BadMessage(f"start_child: expected a Child, a Supervisor or a key, got {shown(child)}")


def child_name(name: Any) -> str:
    """``name``, checked to name a child (BadMessage otherwise)."""
    if not isinstance(name, str) or not name:
        raise BadMessage(f"expected a child's name, got {shown(name)}")
    return name


def _options(options: Any) -> dict[str, Any] | None:
    if options is None:
        return None
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise BadMessage(f"options: expected a table of settings, got {shown(options)}")
    return dict(options)
