"""The systems a test starts: shut down after it, and checked for processes left behind."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol, cast

from ..supervisors import Supervisor, System, start
from ..supervisors._bases import session_processes, sweep_session
from ..supervisors._options import Base

_SYSTEM_LOG = "stalwart.system"  # where System.shutdown reports the processes it had to kill


class StartSystem(Protocol):
    """The ``stalwart_start`` fixture: ``stalwart_start(tree, base="simple", **options)``."""

    def __call__(self, tree: Supervisor, base: str = "simple", **options: Any) -> System: ...


class _Kills(logging.Handler):
    """Collects what ``System.shutdown`` logs when it has to SIGKILL leftover processes."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if (
            isinstance(record.msg, str)
            and record.msg.startswith("killed")
            and "leftover" in record.msg
        ):
            self.found.append(record.getMessage())


class SystemsUnderTest:
    """Starts systems for one test; :meth:`close` shuts them down, newest first, and says
    which left actor processes behind.

    A process is *left behind* if it is still in its system's session after
    ``shutdown()``, or if a shutdown during the test had to SIGKILL it (an orderly stop
    ends every actor process on its own).
    """

    def __init__(self, files: Path | None = None) -> None:
        self.files = files
        self.systems: list[System] = []
        self._kills = _Kills()
        self._log = logging.getLogger(_SYSTEM_LOG)
        self._level = self._log.level
        if not self._log.isEnabledFor(logging.WARNING):  # the kills must reach the handler
            self._log.setLevel(logging.WARNING)
        self._log.addHandler(self._kills)

    def start(self, tree: Supervisor, base: str = "simple", **options: Any) -> System:
        """``start(tree, base, **options)``; files go under ``files`` unless told otherwise.

        ``base`` is a plain ``str`` here (a parametrized test's value): ``start`` checks it.
        """
        if self.files is not None:
            options.setdefault("report_path", str(self.files / "final-report.json"))
            options.setdefault("state_dir", str(self.files / "state"))
        system = start(tree, base=cast(Base, base), **options)
        self.systems.append(system)
        return system

    def running(self) -> list[System]:
        """The systems not shut down yet."""
        return [s for s in self.systems if not s._closed]

    def close(self) -> list[str]:
        """Shut every system down and return a line for each leftover found (none: ``[]``).

        Leftovers are SIGKILLed before this returns. The first error raised by a
        shutdown is raised again once every system has been shut down.
        """
        error: BaseException | None = None
        try:
            for system in reversed(self.systems):
                try:
                    system.shutdown()
                except BaseException as exc:
                    error = error or exc
        finally:
            self._log.removeHandler(self._kills)
            self._log.setLevel(self._level)
        problems = [
            f"shutdown had to SIGKILL what outlived it: {line}" for line in self._kills.found
        ]
        for system in self.systems:
            sid = system._sid
            left = session_processes(sid) if sid else []
            if left:
                names = ", ".join(f"{p.pid} ({_name(p)})" for p in left)
                problems.append(f"{system.tree.name}: processes alive after shutdown: {names}")
                sweep_session(sid, grace_s=0.0)
        if error is not None:
            raise error
        return problems


def _name(proc: Any) -> str:
    try:
        return str(proc.name())
    except Exception:  # gone meanwhile
        return "?"
