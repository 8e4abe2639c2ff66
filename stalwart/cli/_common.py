"""Shared by the subcommands."""

from __future__ import annotations

import os

EXIT_OK, EXIT_LEVEL5, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage or invalid input: printed, exit code 2."""


def existing_file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise UsageError(f"{what} {path!r} does not exist")
    return path
