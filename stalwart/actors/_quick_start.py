"""A new actor process's first steps, made cheaper in the process that forks it.

Thespian's ``startChild`` runs first in every actor process it forks. It looks for the
optional ``setproctitle`` module, and where that is not installed the failed import
searches every folder of ``sys.path`` again, in each new process. It then sets a handler
for each of the 64 signals through ``signal.signal``, which turns every number and
handler into an enum and back. In a process that has run :func:`quicker_child_starts`,
the children it forks find ``setproctitle`` in ``sys.modules`` (the module, or None
where it is not installed, which imports as not installed at once) and set their
handlers with the C function underneath, which takes the same numbers and handlers.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from typing import Any


def quicker_child_starts() -> None:
    """Make the actor processes this process forks from now on start with less work."""
    from thespian.system import multiprocCommon

    if "setproctitle" not in sys.modules:
        try:  # (Thespian names its processes with it)
            importlib.import_module("setproctitle")
        except Exception:  # (not installed, or broken: Thespian goes on without it too)
            sys.modules["setproctitle"] = None  # type: ignore[assignment]
    multiprocCommon.set_signal_handler = importlib.import_module("_signal").signal
    libc()  # (loaded here once: every child has it)


@functools.cache
def libc() -> Any:
    """The C library (Linux), for ``prctl``; None where there is none to call."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    with contextlib.suppress(OSError):
        return ctypes.CDLL(None, use_errno=True)
    return None
