"""A cache that takes part in memory cleanup: TTL, LRU order, priorities, sizes.

Created in an actor's ``on_start`` (or with ``owner=self``), it registers with
that actor, and every cleanup tier reaches it: WARNING drops entries past their
TTL or older than ``max_age_s``; CRITICAL also shrinks it to ``floor_bytes``;
EMERGENCY empties it. Outside actors call :meth:`TieredCache.cleanup` yourself.
Like ``dict``, it is not safe to share between threads without a lock.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

from ..actors import MemoryLevel
from ..actors._memory import register_cache

K = TypeVar("K")
V = TypeVar("V")
_MISSING = object()


def default_sizeof(value: Any) -> int:
    """Bytes a value holds: its length for bytes-like and str values, else ``sys.getsizeof``."""
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    return sys.getsizeof(value)


class _Entry:
    __slots__ = ("created", "expires", "priority", "size", "value")

    def __init__(self, value: Any, size: int, priority: int, created: float, expires: float):
        self.value = value
        self.size = size
        self.priority = priority
        self.created = created
        self.expires = expires


class TieredCache(MutableMapping[K, V], Generic[K, V]):
    """A mapping with TTL, LRU eviction, per-entry priority and size accounting.

    - ``max_entries`` / ``max_bytes``: bounds; beyond them the entry with the lowest
      priority goes first, the least recently used among equals.
    - ``ttl_s``: entries expire this long after they were set (None: never).
    - ``max_age_s``: the WARNING tier drops entries set longer ago than this.
    - ``floor_bytes``: what the CRITICAL tier shrinks it to (the highest priorities
      and most recently used stay).
    - ``sizeof``: how many bytes a value holds (default: ``len`` for bytes and str).
    - ``clock``: seconds, for tests (default ``time.monotonic``).
    """

    def __init__(
        self,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        ttl_s: float | None = None,
        max_age_s: float | None = 300.0,
        floor_bytes: int = 0,
        sizeof: Callable[[Any], int] = default_sizeof,
        clock: Callable[[], float] = time.monotonic,
        owner: Any = None,
    ) -> None:
        for name, bound in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if bound is not None and bound < 1:
                raise ValueError(f"TieredCache.{name}: must be >= 1 or None, got {bound!r}")
        for name, seconds in (("ttl_s", ttl_s), ("max_age_s", max_age_s)):
            if seconds is not None and not seconds > 0:
                raise ValueError(f"TieredCache.{name}: must be > 0 or None, got {seconds!r}")
        if floor_bytes < 0:
            raise ValueError(f"TieredCache.floor_bytes: must be >= 0, got {floor_bytes!r}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.max_age_s = max_age_s
        self.floor_bytes = floor_bytes
        self.sizeof = sizeof
        self.clock = clock
        self._data: OrderedDict[K, _Entry] = OrderedDict()
        self.nbytes = 0
        self.hits = self.misses = self.evictions = 0
        self.registered = register_cache(self, owner)

    # -- the mapping -----------------------------------------------------------------------------
    def __getitem__(self, key: K) -> V:
        entry = self._data.get(key)
        if entry is None or entry.expires <= self.clock():
            if entry is not None:
                self._drop(key)
            self.misses += 1
            raise KeyError(key)
        self._data.move_to_end(key)
        self.hits += 1
        return entry.value  # type: ignore[no-any-return]

    def __setitem__(self, key: K, value: V) -> None:
        self.set(key, value)

    def __delitem__(self, key: K) -> None:
        if key not in self._data:
            raise KeyError(key)
        self._drop(key)

    def __iter__(self) -> Iterator[K]:
        now = self.clock()
        return iter([k for k, e in self._data.items() if e.expires > now])

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        entry = self._data.get(key)  # type: ignore[call-overload,arg-type]
        return entry is not None and entry.expires > self.clock()

    def set(
        self,
        key: K,
        value: V,
        ttl_s: float | None = None,
        priority: int = 0,
        size: int | None = None,
    ) -> None:
        """Store ``value``; a higher ``priority`` outlives lower ones under pressure."""
        if key in self._data:
            self._drop(key)
        now = self.clock()
        ttl = ttl_s if ttl_s is not None else self.ttl_s
        expires = now + ttl if ttl is not None else float("inf")
        nbytes = self.sizeof(value) if size is None else size
        self._data[key] = _Entry(value, nbytes, priority, now, expires)
        self.nbytes += nbytes
        self._fit(self.max_entries, self.max_bytes)

    # -- shrinking -------------------------------------------------------------------------------
    def _drop(self, key: K) -> int:
        entry = self._data.pop(key)
        self.nbytes -= entry.size
        return entry.size

    def _victim(self) -> K:
        """The lowest priority; the least recently used among those."""
        lowest = min(e.priority for e in self._data.values())
        return next(k for k, e in self._data.items() if e.priority == lowest)

    def _fit(self, max_entries: int | None, max_bytes: int | None) -> int:
        freed = 0
        while self._data and (
            (max_entries is not None and len(self._data) > max_entries)
            or (max_bytes is not None and self.nbytes > max_bytes)
        ):
            freed += self._drop(self._victim())
            self.evictions += 1
        return freed

    def expire(self) -> int:
        """Drop the entries past their TTL; returns the bytes freed."""
        now = self.clock()
        return sum(self._drop(k) for k in [k for k, e in self._data.items() if e.expires <= now])

    def cleanup(self, level: int) -> int:
        """Free memory for a cleanup tier (a :class:`MemoryLevel`); returns the bytes freed."""
        if level >= MemoryLevel.EMERGENCY:
            freed = self.nbytes
            self._data.clear()
            self.nbytes = 0
            return freed
        freed = self.expire()
        if level >= MemoryLevel.WARNING and self.max_age_s is not None:
            old = self.clock() - self.max_age_s
            freed += sum(
                self._drop(k) for k in [k for k, e in self._data.items() if e.created <= old]
            )
        if level >= MemoryLevel.CRITICAL:
            freed += self.shrink(self.floor_bytes)
        return freed

    def shrink(self, nbytes: int) -> int:
        """Evict (lowest priority, least recently used first) down to ``nbytes``; bytes freed."""
        freed = 0
        if self.nbytes <= nbytes:
            return 0
        order = sorted(
            enumerate(self._data.items()), key=lambda item: (item[1][1].priority, item[0])
        )
        for _, (key, _entry) in order:
            if self.nbytes <= nbytes:
                break
            freed += self._drop(key)
            self.evictions += 1
        return freed

    def get(self, key: K, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __repr__(self) -> str:
        return f"<TieredCache {len(self._data)} entries, {self.nbytes} bytes>"
