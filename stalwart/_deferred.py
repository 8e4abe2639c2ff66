"""numpy and sqlite-utils, imported on first use rather than with Stalwart.

On a multi-process base every actor process is forked from its parent, and a fork costs
in proportion to the memory the parent has mapped. numpy and sqlite-utils (with what
they import) would more than double a process's memory, and most actor processes never
use either: only statistics and the recovery store do. ``np`` and ``sqlite_utils`` here
stand for the modules; the first attribute read imports the module.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

__all__ = ["np", "sqlite_utils"]


class _Deferred:
    """A module, imported the first time one of its attributes is read."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<{self._name}, imported on first use>"


if TYPE_CHECKING:
    import numpy as np
    import sqlite_utils
else:
    np = _Deferred("numpy")
    sqlite_utils = _Deferred("sqlite_utils")
