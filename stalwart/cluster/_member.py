"""Joining a cluster: a member node that runs the actors the leader places on it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

from ..actors._log_channel import LogChannel
from ..actors._placement import FENCE_ENV, NODE, NODE_ENV, check_requires
from ..actors._runtime import ActorExitRequest, RuntimeActor, environment, new_system
from ..actors.errors import SystemStopped
from ..supervisors._bases import free_port, port_open, sweep_session
from ..supervisors.spec import SpecError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _SessionProbe(RuntimeActor):  # type: ignore[misc]
    """Answers with its session: the node's Thespian admin and actors share it."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == "session":
            self.send(sender, os.getsid(0))
            self.send(self.myAddress, ActorExitRequest())


class Member:
    """A node that joined a leader; :meth:`shutdown` leaves the cluster in order."""

    def __init__(
        self, asys: Any, name: str, listen: tuple[str, int], leader: tuple[str, int]
    ) -> None:
        self._asys = asys
        self.name, self.listen, self.leader = name, listen, leader
        probe = asys.createActor(_SessionProbe)
        sid = asys.ask(probe, "session", 10)
        if not isinstance(sid, int):
            asys.shutdown()
            raise SystemStopped(f"node {name}: its Thespian admin did not answer")
        self.sid = sid  # the session of its admin and actors (what a SIGKILL of the node hits)
        self.folder = ""  # its private folder (the fence file)
        self.logs: LogChannel | None = None  # what its actors log comes to this process
        self._closed = False

    def shutdown(self) -> None:
        """Leave the cluster: the leader moves what ran here; no process is left behind."""
        if self._closed:
            return
        self._closed = True
        try:
            self._asys.shutdown()
        finally:
            sweep_session(self.sid)
            if self.logs is not None:
                self.logs.close()
            if self.folder:
                shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Member:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def join(
    leader: tuple[str, int],
    node: str,
    listen: tuple[str, int] = ("127.0.0.1", 0),
    capabilities: Mapping[str, Any] | None = None,
    loopback_only: bool = True,
) -> Member:
    """Join the cluster whose leader listens at ``leader`` as the node ``node``.

    ``listen`` is this node's own address (port 0: a free one); ``capabilities``
    are what it offers to ``Child.requires``. A host other than loopback needs
    ``loopback_only=False``: Thespian's transport unpickles what it receives.
    Start the leader first: raises ``SystemStopped`` if nothing listens at ``leader``.
    """
    if not node or "/" in node:
        raise SpecError("join", "node", f"expected a name without '/', got {node!r}")
    try:
        caps = check_requires(dict(capabilities or {}))
    except ValueError as exc:
        raise SpecError("join", "capabilities", str(exc)) from None
    host, port = listen
    for field, address in (("listen", host), ("leader", leader[0])):
        if loopback_only and address not in LOOPBACK:
            raise SpecError(
                "join",
                field,
                f"{address} is not loopback: Thespian's TCP transport unpickles what it"
                " receives, so pass loopback_only=False only on a network you trust",
            )
    if not port_open(leader[0], leader[1]):
        raise SystemStopped(f"no leader listens at {leader[0]}:{leader[1]} (start it first)")
    port = port or free_port(host)
    bind = host if loopback_only or host not in ("", "0.0.0.0") else None
    folder = tempfile.mkdtemp(prefix="stalwart-node-")  # private (0700): the fence file
    fence = os.path.join(folder, "fenced")
    logs = LogChannel(folder)
    try:
        with environment(**{NODE_ENV: node, FENCE_ENV: fence}):
            capabilities = {
                "Admin Port": port,
                "Convention Address.IPv4": (leader[0], leader[1]),
                NODE: node,
                **caps,
            }
            asys = new_system("tcp", capabilities, bind, logs)
        member = Member(asys, node, (host, port), leader)
    except BaseException:
        logs.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    member.folder, member.logs = folder, logs
    return member
