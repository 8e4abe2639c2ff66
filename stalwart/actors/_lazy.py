"""Per-instance containers made on first use, so that an idle actor does not pay for them.

A hundred thousand idle actors each holding twenty empty dicts, lists and deques
would spend more memory on those than on anything else. An attribute declared
``_sw_routes: dict[str, Route] = made_on_use(dict)`` in a class body is made
(``dict()``) the first time an instance reads it, and is an ordinary instance
attribute from then on: assigning, deleting and mutating it behave as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class _MadeOnUse:
    """A non-data descriptor: the first read stores ``factory()`` in the instance."""

    __slots__ = ("factory", "name")

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        value = self.factory()
        setattr(obj, self.name, value)  # (from now on the instance's own value is read)
        return value


def made_on_use(factory: Callable[[], T]) -> T:
    """Declare a class attribute whose per-instance value ``factory()`` is made on first read.

    Typed as the value it makes, so the attribute reads as that type everywhere.
    """
    return cast(T, _MadeOnUse(factory))
