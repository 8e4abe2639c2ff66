"""The actor's side of memory cleanup: caches that take part, gc and malloc_trim.

Caches register with the actor that creates them (in ``on_start`` or a
handler), so a cleanup reaches them without the user wiring anything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import platform
import time
import weakref
from typing import Any, Protocol

import psutil


class Cleanable(Protocol):
    """Something an actor's memory cleanup can shrink (e.g. a ``TieredCache``)."""

    def cleanup(self, level: int) -> int:
        """Free what ``level`` asks for; returns the bytes freed (as accounted)."""
        ...


_owner: list[Any] = [None]  # the actor whose on_start or handler is running in this process
_collected_at = [0.0]
_COLLECT_EVERY_S = 0.5  # one process hosting many actors collects once per cleanup
_trim: Any = None
_process: list[psutil.Process | None] = [None]


def current_owner() -> Any:
    """The actor running code in this process right now (None outside actors)."""
    return _owner[0]


def set_owner(actor: Any) -> Any:
    previous, _owner[0] = _owner[0], actor
    return previous


def register_cache(cache: Cleanable, owner: Any | None = None) -> bool:
    """Have ``owner`` (default: the running actor) clean ``cache`` on memory pressure."""
    owner = owner if owner is not None else current_owner()
    caches = getattr(owner, "_sw_caches", None)
    if caches is None:
        return False
    caches.add(cache)
    return True


class CacheSet:
    """The caches an actor cleans, held weakly (by identity: caches compare by content)."""

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref[Any]] = {}

    def add(self, cache: Cleanable) -> None:
        ident = id(cache)
        self._refs[ident] = weakref.ref(cache, lambda _ref: self._refs.pop(ident, None))

    def __iter__(self) -> Any:
        return iter([c for ref in list(self._refs.values()) if (c := ref()) is not None])

    def __len__(self) -> int:
        return len(self._refs)


def new_cache_set() -> CacheSet:
    return CacheSet()


def resident_buffer(nbytes: int) -> bytearray:
    """``nbytes`` with every page written: resident memory, not just address space."""
    buf = bytearray(nbytes)
    buf[::4096] = b"\x01" * len(range(0, nbytes, 4096))
    return buf


def rss() -> int:
    """This process's resident set size in bytes."""
    proc = _process[0]
    if proc is None or proc.pid != os.getpid():  # forked since
        proc = _process[0] = psutil.Process()
    return int(proc.memory_info().rss)


def _malloc_trim() -> Any:
    global _trim
    if _trim is None:
        _trim = False
        if platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _trim = libc.malloc_trim
            except (OSError, AttributeError):
                _trim = False
    return _trim


def collect_garbage() -> bool:
    """``gc.collect()`` and, on glibc, ``malloc_trim(0)`` (freed heap goes back to the OS).

    Runs at most once per half second in a process; True if it ran.
    """
    now = time.monotonic()
    if now - _collected_at[0] < _COLLECT_EVERY_S:
        return False
    gc.collect()
    trim = _malloc_trim()
    if trim:
        trim(0)
    _collected_at[0] = time.monotonic()
    return True
