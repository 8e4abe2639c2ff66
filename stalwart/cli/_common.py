"""Shared by the subcommands: exit codes, usage errors, where running trees are noted."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from ..supervisors._state_dir import configured_state_dir, private_dir
from ..supervisors.spec import SpecError

EXIT_OK, EXIT_LEVEL5, EXIT_USAGE = 0, 1, 2
# as a shell reports a command that a signal ended: 128 + SIGINT, 128 + SIGPIPE
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141


class UsageError(Exception):
    """Bad usage or invalid input: printed, exit code 2."""


def not_a_folder(path: str, what: str) -> str:
    """``path``, unless it is a folder (UsageError naming ``what`` it should be)."""
    if os.path.isdir(path):
        raise UsageError(f"{what} {path!r} is a folder, not a file")
    return path


def existing_file(path: str, what: str) -> str:
    not_a_folder(path, what)
    if not os.path.isfile(path):
        raise UsageError(f"{what} {path!r} does not exist")
    return path


def state_dir() -> Path:
    """Where ``stalwart run`` notes its running trees: ``$STALWART_STATE_DIR`` or ./.stalwart
    (the default state directory of the systems it starts)."""
    return configured_state_dir()


def remember_run(name: str, admin_port: int | None, tree_file: str) -> str:
    """Note a running tree so that other commands find it. On the simple base the note
    only lets them say why they cannot reach it: the tree lives inside this process."""
    note = {"name": name, "admin_port": admin_port, "pid": os.getpid(), "tree": tree_file}
    try:
        folder = private_dir(state_dir())
        for file in (folder / f"{name}.json", folder / "current.json"):
            file.write_text(json.dumps(note))
    except (SpecError, OSError) as exc:  # the tree runs on; it is only harder to find
        return f"not noted: {exc}"
    return f"noted in {folder / (name + '.json')}"


def forget_run(name: str) -> None:
    folder = state_dir()
    for file in (folder / f"{name}.json", folder / "current.json"):
        try:
            if json.loads(file.read_text()).get("name") == name:
                file.unlink()
        except (OSError, ValueError):
            continue


def find_run(name: str | None = None) -> dict[str, Any]:
    """The note of a running tree (by name, or the latest); UsageError if there is none,
    or if the tree runs on the simple base (no other process can reach it there)."""
    file = state_dir() / (f"{name}.json" if name else "current.json")
    try:
        note = json.loads(file.read_text())
    except (OSError, ValueError):
        note = None
    in_process = isinstance(note, dict) and note.get("admin_port") is None
    if not isinstance(note, dict) or (in_process and not _running(note.get("pid"))):
        what = f"tree {name!r}" if name else "tree"
        raise UsageError(
            f"no running {what} noted in {state_dir()}/ (start one with `stalwart run`,"
            " or give --port)"
        )
    if in_process:
        raise UsageError(
            f"tree {note.get('name')!r} runs on the simple base, inside its `stalwart run`"
            f" (pid {note['pid']}) where no other process can reach it: run it with"
            " --base multiproc to steer it from here, or watch it with --serve"
        )
    return note


def _running(pid: Any) -> bool:
    """Is there a process ``pid`` (a note's ``run``, if it was not killed)?"""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (OSError, OverflowError):
        return False
    return True


class StopSignals:
    """Ctrl-C and SIGTERM as a flag that a command's main loop polls.

    Not a ``threading.Event`` set by the handler: the handler runs in the main thread, and
    can run while that thread holds the Event's lock inside ``wait()``, which deadlocks.
    """

    def __init__(self) -> None:
        self.requested = False
        self.previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }

    def _handle(self, *_: Any) -> None:
        self.requested = True

    def wait(self, seconds: float | None = None) -> bool:
        """Sleep until a stop is asked for or ``seconds`` pass; True if one was asked for."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self.requested:
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                break
            time.sleep(left)
        return self.requested

    def restore(self) -> None:
        """Put back the handlers there were before."""
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
