"""Shared by the subcommands: exit codes, usage errors, where running trees are noted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..supervisors._state_dir import configured_state_dir, private_dir

EXIT_OK, EXIT_LEVEL5, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage or invalid input: printed, exit code 2."""


def existing_file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise UsageError(f"{what} {path!r} does not exist")
    return path


def state_dir() -> Path:
    """Where ``stalwart run`` notes its running trees: ``$STALWART_STATE_DIR`` or ./.stalwart
    (the default state directory of the systems it starts)."""
    return configured_state_dir()


def remember_run(name: str, admin_port: int | None, tree_file: str) -> str:
    """Note a running tree (multi-process bases) so other commands can find it."""
    if admin_port is None:
        return ""
    folder = private_dir(state_dir())
    note = {"name": name, "admin_port": admin_port, "pid": os.getpid(), "tree": tree_file}
    for file in (folder / f"{name}.json", folder / "current.json"):
        file.write_text(json.dumps(note))
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
    """The note of a running tree (by name, or the latest); UsageError if there is none."""
    file = state_dir() / (f"{name}.json" if name else "current.json")
    try:
        note: dict[str, Any] = json.loads(file.read_text())
    except (OSError, ValueError):
        what = f"tree {name!r}" if name else "tree"
        raise UsageError(
            f"no running {what} noted in {state_dir()}/ (start one with `stalwart run`,"
            " or give --port)"
        ) from None
    return note
