"""What a supervisor does: the kernel's commands, carried out in order by the supervisor actor.

The recovery decisions (retry in place, retry after a backoff, fallback, restart,
restart the restart set, hold, dead-letter, answer with an error, escalate,
stop) reach the outside world as these effects; each decision is also reported
to the root as an event (``Report(EventNote(...))``) naming its level and strategy.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...actors.messages import Redelivery
from ...actors.messages import Retry as RetryMessage
from ...strategies import ErrorInfo


class Command(msgspec.Struct, frozen=True):
    """Base of the commands."""


class Spawn(Command, frozen=True):
    """Create instance ``incarnation`` of ``child`` and hand it ``redeliver`` after its start."""

    child: str
    incarnation: int
    redeliver: tuple[Redelivery, ...] = ()


class Stop(Command, frozen=True):
    """Ask the running instance to stop; ``forward``: it forwards late mail to its successor;
    ``passivate``: it is passivated (late mail goes to the root, held for the next one)."""

    child: str
    incarnation: int
    forward: bool
    passivate: bool = False


class Kill(Command, frozen=True):
    """End instance ``incarnation`` now (its process is killed where it has one of its own;
    the child's record may be gone by the time this is carried out: a Pool's instance)."""

    child: str
    incarnation: int


class Retry(Command, frozen=True):
    """Give a failed message to the running instance again (levels 1-2, a resume, a reassign)."""

    child: str
    retry: RetryMessage


class Send(Command, frozen=True):
    """Send ``message`` to the running instance of ``child``."""

    child: str
    message: Any


class Answer(Command, frozen=True):
    """Answer ``sender`` (a plain address or a request's ``ReplyTo``) with ``value``."""

    sender: Any
    value: Any


class DeadLetter(Command, frozen=True):
    """Set a message aside: a dead letter at the root, then ``error`` to its sender.
    ``refused``: bad input; a request's caller hears why and that is all (no dead letter)."""

    path: str
    message: Any
    sender: Any
    error: Any  # a StalwartError
    category: str = ""
    fingerprint: str = ""
    refused: bool = False


class Escalate(Command, frozen=True):
    """This supervisor gives up: its parent (or the root) takes over."""

    reason: str
    info: ErrorInfo | None
    origin: str


class Report(Command, frozen=True):
    """Tell the root: an event, a state, an availability change, a finished recovery..."""

    message: Any


class Register(Command, frozen=True):
    """Instance ``incarnation`` of ``child`` is up: register it with the root; the retired
    ``predecessor`` instance (if not 0) forwards to it from now on."""

    child: str
    incarnation: int
    lost_inflight: bool = False
    level: int = 0
    restarts: int = 0
    predecessor: int = 0
    died: bool = False  # its predecessor's process died: senders send unconfirmed tells again
    reactivated: bool = False  # it was passivated: started again for a message, not restarted
    fresh: bool = False  # the first instance its path has had: not a restart


class Release(Command, frozen=True):
    """An old instance (forwarding, or failed to start) may exit once it has gone quiet."""

    child: str
    incarnation: int


class Timer(Command, frozen=True):
    """Fire ``TimerFired(payload)`` in ``delay`` seconds (replacing a pending one with ``key``)."""

    delay: float
    payload: tuple[Any, ...]
    key: Any = None


class Cancel(Command, frozen=True):
    """Forget the timer ``key``."""

    key: Any


class AttemptBegins(Command, frozen=True):
    """A recovery attempt for failure ``failure_id`` starts on ``child`` (measure its usage)."""

    failure_id: int
    child: str


class AttemptEnds(Command, frozen=True):
    """A recovery attempt ended: record ``attempt`` (the interpreter stamps the wall-clock
    time and adds the resource usage since ``AttemptBegins``)."""

    failure_id: int
    child: str
    attempt: Any  # an Attempt


class ReportStarted(Command, frozen=True):
    """Every child runs: this supervisor tells its parent it has started."""


class Finish(Command, frozen=True):
    """Every child has stopped: hand the checkpoints to the parent and exit."""


class Planned(Command, frozen=True):
    """A child was added at run time: the root learns the paths of ``spec``'s subtree."""

    spec: Any


class Forget(Command, frozen=True):
    """The specs of ``children`` (slot names) are gone: their checkpoints go, and the root
    forgets ``paths`` (and what is below them), saying ``reason`` to whoever asks for one."""

    children: tuple[str, ...]
    paths: tuple[str, ...]
    reason: str


class ShutDown(Command, frozen=True):
    """This supervisor stops itself (``auto_shutdown``): its parent hears of a normal stop."""

    reason: str
