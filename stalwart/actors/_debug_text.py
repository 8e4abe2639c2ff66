"""Thespian's debug text about each message, built only when a debug line is kept.

Thespian's transport and actor manager hand ``identify()`` of every message they send and
receive to a debug log call (``thesplog('ACTOR got %s', envelope.identify(), level=DEBUG)``).
The text (the message's ``str``, its target, its timers) is built whether or not debug lines
are kept: three times a message, about 70 µs of a round trip's CPU on each side. In a
process of Stalwart's own, ``identify()`` returns an object that builds that text when it is
formatted, so a debug line nobody keeps costs nothing and one that is kept reads as before
(``THESPLOG_THRESHOLD=DEBUG``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thespian.system.transport import ReceiveEnvelope, TransmitIntent


class DebugText:
    """``build(subject)``, made when formatted with ``%s`` or ``str()``."""

    __slots__ = ("_build", "_subject")

    def __init__(self, subject: Any, build: Callable[[Any], str]) -> None:
        self._subject, self._build = subject, build

    def __str__(self) -> str:
        return self._build(self._subject)

    __repr__ = __str__


def _deferred(build: Callable[[Any], str]) -> Callable[[Any], DebugText]:
    def identify(self: Any) -> DebugText:
        return DebugText(self, build)

    identify.__doc__ = build.__doc__
    identify._sw_built_by = build  # type: ignore[attr-defined]
    return identify


def debug_text_when_logged() -> None:
    """From now on, in this process, Thespian builds a message's debug text only when a line
    with it is written (call it only in a process of Stalwart's own)."""
    for kind in (TransmitIntent, ReceiveEnvelope):
        if not hasattr(kind.identify, "_sw_built_by"):
            kind.identify = _deferred(kind.identify)  # type: ignore[method-assign]
    ReceiveEnvelope.__str__ = _envelope_text  # type: ignore[method-assign]  # (it returned identify())


def _envelope_text(envelope: Any) -> str:
    return str(envelope.identify())
