"""The paths the recovery store keeps something for alone, as the telemetry actor knows them."""

from __future__ import annotations

from ..supervisors._registry import PathIndex


class PathRecords:
    """Path -> the operations it has learned timeouts for; what is below a path is found
    without looking at the others (a Pool may have stored keys by the hundred thousand)."""

    __slots__ = ("index", "operations")

    def __init__(self) -> None:
        self.operations: dict[str, set[str]] = {}
        self.index = PathIndex()

    def __contains__(self, path: str) -> bool:
        return path in self.operations

    def note(self, path: str) -> set[str]:
        """``path`` has records: its operations (kept, new if it had none)."""
        operations = self.operations.get(path)
        if operations is None:
            operations = self.operations[path] = set()
            self.index.add(path)
        return operations

    def pop(self, path: str) -> set[str]:
        """``path`` has records no more: what its operations were."""
        operations = self.operations.pop(path)
        self.index.remove(path, self.operations)
        return operations

    def under(self, top: str) -> list[str]:
        """The paths with records below ``top``."""
        return [path for path in self.index.under(top) if path in self.operations]
