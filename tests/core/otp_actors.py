"""Test actors for the port of OTP's supervisor_SUITE (importable by actor processes).

``OtpChild`` plays OTP's ``supervisor_1`` child: a :class:`~tests.support.Worker`
that can die abnormally in a handler (``Die``, for the in-process base, where a
process cannot crash alone) and can fail its next N starts (``supervisor_1``'s
``start_child(error)`` and ``supervisor_deadlock``'s ``fail_start`` flag).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from tests.support import Worker, journal


class Die(msgspec.Struct, frozen=True):
    """OTP's ``die``: the instance of this incarnation exits abnormally.

    A failed message is handed to the fresh instance after the restart; that one
    has another incarnation, so it ignores it (the restart is the point, not the
    message).
    """

    incarnation: int


class OtpChild(Worker):
    """A Worker that can die in a handler and fail its next N starts.

    ``options["fail_starts"]``: a file holding how many of the next starts fail
    (shared by every instance and process); each failing start journals
    ``start-failed <path>``. An instance that died does not journal a stop: like
    OTP's crashed process, it exits without being asked to.
    """

    def on_start(self) -> None:
        self.died = False
        counter = self.options.get("fail_starts")
        if counter and os.path.exists(counter):
            left = int(Path(counter).read_text() or "0")
            if left > 0:
                Path(counter).write_text(str(left - 1))
                journal(self.options.get("journal"), f"start-failed {self.path}")
                raise RuntimeError(f"{self.path} cannot start ({left - 1} more failures to come)")
        super().on_start()

    def on_stop(self) -> None:
        if not self.died:
            super().on_stop()

    def receiveMsg_Die(self, msg: Die, sender: Any) -> None:
        if msg.incarnation == self.incarnation:
            self.died = True
            raise RuntimeError(f"{self.path} died")
