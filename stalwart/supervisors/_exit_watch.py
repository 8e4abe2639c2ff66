"""The exits of a supervisor's instances that keep a spare, seen in its own wait.

Thespian tells a parent of a child's exit through SIGCHLD: the signal handler wakes the wait
with a connection to itself, and the wait then asks each child whether it is alive and hands
the parent a ``ChildActorExited``, about half a millisecond after the kernel signalled the
exit here. A supervisor also waits on a pidfd of each local instance of a child that keeps a
spare (Thespian's ``ThespianWatch``: descriptors its wait watches beside its sockets), so such
an exit reaches it as soon as that wait returns, and the spare takes over sooner. Whichever
comes first is taken; the other finds the instance gone. Linux 5.3 and later, on the TCP
base (``os.pidfd_open``, and a transport that watches descriptors); elsewhere Thespian's
notice alone. At most ``WATCHED_AT_MOST`` instances are watched (a Pool of standby keys
would use up the descriptors its sockets need); the others rely on Thespian's notice.

A descriptor is closed only once the message that forgot it has been handled (the wait may
still hold its number until then), and a process forked later closes the ones it inherits.
"""

from __future__ import annotations

import contextlib
import os
import select
from typing import Any

from ..actors._runtime import ThespianWatch

Instance = tuple[str, int]  # (child, incarnation)
WATCHED_AT_MOST = 64
_OPEN: set[int] = set()  # the pidfds open in this process (a fork's child closes them)
_closed_at_fork = False


class ExitWatch:
    """Pidfds of the instances a supervisor watches, by descriptor and by instance."""

    __slots__ = ("by_fd", "closing", "fds")

    def __init__(self) -> None:
        self.by_fd: dict[int, Instance] = {}
        self.fds: dict[Instance, int] = {}
        self.closing: list[int] = []  # forgotten: closed after the message being handled

    def watch(self, actor: Any, instance: Instance, pid: int) -> None:
        """Watch the process ``pid`` of ``instance`` (a child of this process, not reaped:
        the pid is its own)."""
        if instance in self.fds or len(self.fds) >= WATCHED_AT_MOST:
            return
        if pid == os.getpid() or not _watches_descriptors(actor):
            return
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # (gone already: Thespian's notice tells of it)
            return
        _close_in_forks()
        _OPEN.add(fd)
        self.by_fd[fd], self.fds[instance] = instance, fd

    def forget(self, instance: Instance) -> None:
        fd = self.fds.pop(instance, None)
        if fd is not None:
            del self.by_fd[fd]
            self.closing.append(fd)

    def exited(self, ready: list[int]) -> list[Instance]:
        """The instances whose processes have ended, of the descriptors ``ready`` (those
        still watched and still readable: one forgotten while the wait's message waited,
        whose number a new one took, is not)."""
        watched = [fd for fd in ready if fd in self.by_fd]
        if not watched:
            return []
        poll = select.poll()
        for fd in watched:
            poll.register(fd, select.POLLIN)
        ended = {fd for fd, event in poll.poll(0) if event & select.POLLIN}
        return [self.by_fd[fd] for fd in watched if fd in ended]

    def watching(self, finished: bool = False) -> ThespianWatch | None:
        """What ``receiveMessage`` returns: the descriptors to watch until the next message
        (none once the supervisor has finished: it handles no exit then)."""
        while self.closing:
            fd = self.closing.pop()
            _OPEN.discard(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        return ThespianWatch(list(self.by_fd)) if self.by_fd and not finished else None


def _close_in_forks() -> None:
    """From now on, a process forked from this one closes the pidfds it inherits (they
    watch this process's children, not its own)."""
    global _closed_at_fork
    if not _closed_at_fork and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_close_inherited)
        _closed_at_fork = True


def _close_inherited() -> None:
    for fd in _OPEN:
        with contextlib.suppress(OSError):
            os.close(fd)
    _OPEN.clear()


def _watches_descriptors(actor: Any) -> bool:
    """Whether the actor's Thespian transport watches descriptors (the TCP base does)."""
    if not hasattr(os, "pidfd_open"):
        return False
    transport = getattr(getattr(actor, "_myRef", None), "transport", None)
    return hasattr(transport, "set_watch")
