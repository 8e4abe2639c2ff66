"""The exits of a supervisor's instances that keep a spare, seen in its own wait.

Thespian tells a parent of a child's exit through SIGCHLD: the signal handler wakes the wait
with a connection to itself, and the wait then asks each child whether it is alive and hands
the parent a ``ChildActorExited``, about half a millisecond after the kernel signalled the
exit here. A supervisor also waits on a pidfd of each local instance of a child that keeps a
spare (Thespian's ``ThespianWatch``: descriptors its wait watches beside its sockets), so such
an exit reaches it as soon as that wait returns, and the spare takes over sooner. Whichever
comes first is taken; the other finds the instance gone. Linux 5.3 and later, on the TCP
base (``os.pidfd_open``, and a transport that watches descriptors); elsewhere Thespian's
notice alone.
"""

from __future__ import annotations

import os
from typing import Any

from ..actors._runtime import ThespianWatch

Instance = tuple[str, int]  # (child, incarnation)


class ExitWatch:
    """Pidfds of the instances a supervisor watches, by descriptor and by instance."""

    __slots__ = ("by_fd", "fds")

    def __init__(self) -> None:
        self.by_fd: dict[int, Instance] = {}
        self.fds: dict[Instance, int] = {}

    def watch(self, actor: Any, instance: Instance, pid: int) -> None:
        """Watch the process ``pid`` of ``instance`` (a child of this process, not reaped:
        the pid is its own)."""
        if instance in self.fds or pid == os.getpid() or not _watches_descriptors(actor):
            return
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # (gone already: Thespian's notice tells of it)
            return
        self.by_fd[fd], self.fds[instance] = instance, fd

    def forget(self, instance: Instance) -> None:
        fd = self.fds.pop(instance, None)
        if fd is not None:
            del self.by_fd[fd]
            os.close(fd)

    def exited(self, ready: list[int]) -> list[Instance]:
        """The instances whose processes have ended, of the descriptors ``ready``."""
        return [self.by_fd[fd] for fd in ready if fd in self.by_fd]

    def watching(self) -> ThespianWatch | None:
        """What ``receiveMessage`` returns: the descriptors to watch until the next message."""
        return ThespianWatch(list(self.by_fd)) if self.by_fd else None


def _watches_descriptors(actor: Any) -> bool:
    """Whether the actor's Thespian transport watches descriptors (the TCP base does)."""
    if not hasattr(os, "pidfd_open"):
        return False
    transport = getattr(getattr(actor, "_myRef", None), "transport", None)
    return hasattr(transport, "set_watch")
