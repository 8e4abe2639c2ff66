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
EXIT_FAILED = 1  # what was asked of the tree failed (a recovery; a message answered with an error)
# as a shell reports a command that a signal ended: 128 + SIGINT, 128 + SIGPIPE
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141


class UsageError(Exception):
    """Bad usage or invalid input: printed, exit code 2."""


class Interrupted(Exception):
    """Ctrl-C at a point worth naming (a tree file's module being imported): the line is
    printed, exit code 130."""


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


def remember_run(
    name: str, admin_port: int | None, tree_file: str, endpoint: tuple[str, str] | None = None
) -> str:
    """Note a running tree so that other commands find it: its admin port on the
    multi-process bases; on the simple base the address and token of the control
    endpoint its ``run`` opened (``endpoint``). The note is private to the user (mode 0600
    in a 0700 folder): the token in it is what lets a command in.
    """
    note: dict[str, Any] = {
        "name": name,
        "admin_port": admin_port,
        "pid": os.getpid(),
        "tree": tree_file,
        "cwd": os.getcwd(),  # (where the actors' modules import from)
    }
    if endpoint is not None:
        note["endpoint"], note["token"] = endpoint
    try:
        folder = private_dir(state_dir())
        for file in (folder / f"{name}.json", folder / "current.json"):
            _write_private(file, json.dumps(note))
    except (SpecError, OSError) as exc:  # the tree runs on; it is only harder to find
        return f"not noted: {exc}"
    return f"noted in {folder / (name + '.json')}"


def _write_private(file: Path, text: str) -> None:
    """Write ``file`` readable by this user alone (replaced whole: no reader sees half)."""
    part = file.with_name(f".{file.name}.{os.getpid()}")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(part, file)


def forget_run(name: str) -> None:
    folder = state_dir()
    for file in (folder / f"{name}.json", folder / "current.json"):
        try:
            note = json.loads(file.read_text())
            if note.get("name") == name and note.get("pid") == os.getpid():
                file.unlink()
        except (OSError, ValueError, AttributeError):
            continue


def find_run(name: str | None = None) -> dict[str, Any]:
    """The note of a running tree (by name, or the latest); UsageError if there is none,
    or if it runs on the simple base without a control endpoint to reach it by."""
    file = state_dir() / (f"{name}.json" if name else "current.json")
    try:
        note = json.loads(file.read_text())
    except (OSError, ValueError):
        note = None
    in_process = isinstance(note, dict) and note.get("admin_port") is None
    if not isinstance(note, dict) or (in_process and not _running(note.get("pid"))):
        what = f"tree {name!r}" if name else "tree"
        raise UsageError(
            f"no running {what} noted in {state_dir()}/: start it with `stalwart run`"
            " (a tree that a script start()s is reachable from here only on a multi-process"
            " base: give --port with its System.admin_port)"
        )
    if in_process and not note.get("endpoint"):
        raise UsageError(
            f"tree {note.get('name')!r} runs on the simple base, inside its `stalwart run`"
            f" (pid {note['pid']}), which could not open its control endpoint: run it with"
            " --base multiproc to steer it from here, or watch it with --serve"
        )
    return note


def note_name_of(path: str) -> str | None:
    """The tree an actor path belongs to (its first part) if a running tree of that name is
    noted, else None (then the latest noted tree is meant)."""
    name = path.split("/", 1)[0]
    if not name or name.startswith((".", "_")) or name == "current":
        return None
    return name if (state_dir() / f"{name}.json").is_file() else None


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
