"""A supervisor's working set, kept its own when it forks a spare.

A fork shares every page of the supervisor with the new process, write-protected: the
supervisor's next write to each costs it a page fault and a copy (here about 4 µs a page).
A supervisor forks its spares while idle, and its next busy turn is usually the one after a
crash: the turn a takeover waits for, which writes a few hundred pages. So right after
forking a spare it copies, a run of pages at a time, the pages it alone mapped before the
fork (those it wrote since its first fork, and those it copied at the last): that turn then
writes to pages of its own. The spare keeps the originals. It costs the supervisor that much
memory and copying at each spare's fork (about 6 MB and a few milliseconds for a supervisor
of a few children), so a supervisor that alone maps more than ``KEPT_AT_MOST`` (a Pool of
many thousand keys) keeps nothing, and takes the faults instead.

Linux only (``/proc/self/pagemap``, and ``MADV_POPULATE_WRITE`` since 5.14); where either
is missing, nothing is done.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MADV_POPULATE_WRITE = 23
MAPPING_AT_MOST = 1 << 30  # a larger mapping is looked through no further (a reservation)
KEPT_AT_MOST = 32 << 20  # a larger working set is not copied at each fork
# the top byte of a pagemap entry: bit 63 (present) and bit 56 (mapped by this process alone)
_OWN = bytes(0x31 if b & 0x81 == 0x81 else 0x30 for b in range(256))
_RUN = re.compile(b"1+")
_madvise: Any = None
_usable: bool | None = None  # (None: not tried yet)


@contextlib.contextmanager
def kept_across_fork() -> Iterator[None]:
    """Around a fork of this process: the pages it alone had written before are its own
    again after (copied now, not one fault at a time later)."""
    runs = own_pages() if _usable is not False else []
    yield
    if runs and sum(size for _, size in runs) <= KEPT_AT_MOST:
        populate(runs)


def make_own_pages_writable() -> None:
    """A forked spare, once ready: the pages it alone maps (what it wrote, and what its
    supervisor copied for itself) are made writable now, not one fault at a time at its
    takeover. Nothing is copied: they are its own already."""
    if _usable is not False:
        populate(own_pages())


def own_pages() -> list[tuple[int, int]]:
    """``(address, size)`` of each run of writable pages present and mapped by this process
    alone (none where ``/proc/self/pagemap`` cannot be read)."""
    global _usable
    runs: list[tuple[int, int]] = []
    if sys.byteorder != "little":  # (the flags are read from each entry's last byte)
        _usable = False
        return runs
    try:
        with open("/proc/self/maps") as fh:
            maps = fh.read().splitlines()
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        _usable = False
        return runs
    try:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) < 5 or fields[1] != "rw-p":
                continue
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if high - low > MAPPING_AT_MOST:
                continue
            entries = os.pread(fd, (high - low) // PAGE * 8, low // PAGE * 8)
            for run in _RUN.finditer(entries[7::8].translate(_OWN)):
                runs.append((low + run.start() * PAGE, (run.end() - run.start()) * PAGE))
    except OSError:
        return []
    finally:
        os.close(fd)
    return runs


def populate(runs: list[tuple[int, int]]) -> None:
    """Make each run's pages this process's own, writable (their contents unchanged)."""
    global _madvise, _usable
    if _madvise is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _madvise = libc.madvise
        except (OSError, AttributeError):
            _usable = False
            return
        _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _madvise.restype = ctypes.c_int
    refused = 0
    for address, size in runs:
        if _madvise(address, size, MADV_POPULATE_WRITE) != 0 and ctypes.get_errno() == 22:
            refused += 1
    if _usable is None and runs:  # (EINVAL for every run: a kernel without it, before 5.14)
        _usable = refused < len(runs)
