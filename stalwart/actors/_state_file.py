"""An actor's checkpoint kept safe before the reply that depends on it leaves.

On the multi-process bases every actor instance that checkpoints writes its state
(and the answers it gave lately) to a file in the system's state directory before
any reply leaves. A SIGKILL of the actor, of its supervisor or of both cannot take
an acknowledged state with it: the next instance reads the newest file of an
earlier instance of its path. With the state go the marks of the senders'
channels (how far it handled each), so the next instance handles none twice.
The file lives in the page cache; it survives its writer's death (not the host's).

Each instance has a file of its own (``<incarnation>``, in a folder per path: one
folder per name of the path, so a start reads only its own path's folder, and what is
below a path goes with its folder), so an instance that is being replaced can never
overwrite its successor's state. An incarnation number
can come round again (a supervisor killed before the root heard of its child's
last instance starts the next one with the same number): the new instance then
reads that file too, and its own writes carry higher sequence numbers. The file has two
slots, written in turn; each carries a sequence number and a CRC, so a write torn
by a kill leaves the other slot intact.

On the in-process base the "directory" is a table in memory (``memory:<name>``),
by path, then incarnation (a start reads its own path's, whatever the number of
others): a crash there is an exception, the process lives on, and so does the table.
The state is pickled on both, so a restarted instance never shares objects with the
instance that failed.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ._runtime import pid_alive

MEMORY = "memory:"  # a state directory that is a table in this process


class _Table:
    """An in-process system's checkpoints: by path, then incarnation. It counts the paths
    kept below each path, so a path's own are found, and dropped with what is below it,
    whatever the number of others."""

    def __init__(self) -> None:
        self.states: dict[str, dict[int, bytes]] = {}
        self.below: dict[str, int] = {}  # path -> paths kept below it

    def put(self, path: str, incarnation: int, payload: bytes) -> None:
        kept = self.states.get(path)
        if kept is None:
            kept = self.states[path] = {}
            for above in _above(path):
                self.below[above] = self.below.get(above, 0) + 1
        kept[incarnation] = payload

    def drop(self, path: str, which: Any = None) -> None:
        """Drop ``path``'s states whose incarnation ``which`` picks (None: all of them)."""
        kept = self.states.get(path)
        if kept is None:
            return
        for incarnation in [i for i in kept if which is None or which(i)]:
            del kept[incarnation]
        if kept:
            return
        del self.states[path]
        for above in _above(path):
            left = self.below[above] - 1
            if left:
                self.below[above] = left
            else:
                del self.below[above]

    def drop_under(self, path: str) -> None:
        """Drop the states of ``path`` and of every path below it."""
        if self.below.get(path):
            prefix = path + "/"
            for kept in [p for p in self.states if p.startswith(prefix)]:
                self.drop(kept)
        self.drop(path)


def _above(path: str) -> list[str]:
    """The paths above ``path`` (``a/b/c``: ``a`` and ``a/b``)."""
    parts = path.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


_TABLES: dict[str, _Table] = {}
_MAGIC = b"SWCK"
_HEADER = struct.Struct("<4sQQI")  # magic, sequence, payload length, crc32 of the payload
_SLOT_FILES = ("a", "b")

Marks = tuple[tuple[str, int], ...]  # per sender channel, the next message number to handle
Found = tuple[int, Any, tuple[Any, ...], Marks]  # (incarnation, state, replies, marks)


def _folder(directory: str | Path, path: str) -> Path:
    """The folder of ``path``'s files: one level per name (``a/b``: ``a/b``), each quoted
    with no dot left (a name is never ``..``, nor one of the files, which have a dot)."""
    names = (quote(name, safe="").replace(".", "%2E") for name in path.split("/"))
    return Path(directory, *names)


def _read_slot(file: Path) -> tuple[int, bytes] | None:
    """(sequence, payload) of a slot, or None if it is missing or torn."""
    try:
        data = file.read_bytes()
    except OSError:
        return None
    if len(data) < _HEADER.size:
        return None
    magic, seq, size, crc = _HEADER.unpack_from(data)
    payload = data[_HEADER.size : _HEADER.size + size]
    if magic != _MAGIC or len(payload) != size or zlib.crc32(payload) != crc:
        return None
    return seq, payload


class StateFile:
    """The checkpoint file of one actor instance (``path`` in ``incarnation``)."""

    def __init__(self, directory: str, path: str, incarnation: int) -> None:
        self.directory = Path(directory)
        self.path, self.incarnation = path, incarnation
        self.folder = _folder(directory, path)
        self.files = [self.folder / f"{incarnation}.{slot}" for slot in _SLOT_FILES]
        self.fds: list[int] = []
        slots = [_read_slot(f) for f in self.files]  # a predecessor with the same number
        self.seq = max((s[0] for s in slots if s is not None), default=0)
        self.earlier_dropped = False

    def write(self, state: Any, replies: tuple[tuple[str, Any], ...], marks: Marks = ()) -> bytes:
        """Keep ``(state, replies, marks)``; returns their pickle once a later reader finds it."""
        if not self.fds:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.fds = [os.open(f, os.O_WRONLY | os.O_CREAT, 0o600) for f in self.files]
        payload = pickle.dumps((state, replies, marks), pickle.HIGHEST_PROTOCOL)
        self.seq += 1
        record = _HEADER.pack(_MAGIC, self.seq, len(payload), zlib.crc32(payload)) + payload
        written = os.pwrite(self.fds[self.seq % 2], record, 0)
        while written < len(record):  # a short write (a signal, a full disk): the rest
            more = os.pwrite(self.fds[self.seq % 2], record[written:], written)
            if more <= 0:
                raise OSError(f"checkpoint of {self.path}: wrote {written} of {len(record)} bytes")
            written += more
        if not self.earlier_dropped:  # the state is ours now: earlier instances' can go
            self.earlier_dropped = True
            drop_earlier(str(self.directory), self.path, self.incarnation)
        return payload

    def discard(self) -> None:
        """Give up this file (it could not be written): readers use the supervisor's copy."""
        self.close()
        for f in self.files:
            with contextlib.suppress(OSError):
                f.unlink()

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


class StateTable:
    """The checkpoint of one actor instance, in its in-process system's table."""

    def __init__(self, name: str, path: str, incarnation: int) -> None:
        self.name, self.path, self.incarnation = name, path, incarnation
        self.earlier_dropped = False

    def write(self, state: Any, replies: tuple[tuple[str, Any], ...], marks: Marks = ()) -> bytes:
        table = _TABLES.get(self.name)
        if table is None:
            raise OSError(f"the state table {self.name} is gone (the system stopped)")
        payload = pickle.dumps((state, replies, marks), -1)
        table.put(self.path, self.incarnation, payload)
        if not self.earlier_dropped:
            self.earlier_dropped = True
            drop_earlier(self.name, self.path, self.incarnation)
        return payload

    def discard(self) -> None:
        table = _TABLES.get(self.name)
        if table is not None:
            table.drop(self.path, lambda i: i == self.incarnation)

    def close(self) -> None:
        pass


def usable(directory: str) -> bool:
    """True if an actor here can keep its checkpoints in ``directory``."""
    if directory.startswith(MEMORY):
        return directory in _TABLES
    return bool(directory) and os.path.isdir(directory)


def open_state(directory: str, path: str, incarnation: int) -> StateFile | StateTable:
    """Where the instance ``incarnation`` of ``path`` keeps its checkpoints."""
    if directory.startswith(MEMORY):
        return StateTable(directory, path, incarnation)
    return StateFile(directory, path, incarnation)


def new_table(name: str) -> str:
    """A state table for an in-process system; returns its "directory"."""
    directory = MEMORY + name
    _TABLES[directory] = _Table()
    return directory


_DIR_PREFIX = "stalwart-state-"


def new_state_dir(base: Path) -> str:
    """A folder in ``base`` for a multi-process system's checkpoint files, named after this
    process.

    Folders left by systems whose starting process died without shutting down (a
    SIGKILL) are removed first.
    """
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            owner = entry.name[len(_DIR_PREFIX) :].split("-", 1)[0]
            stale = entry.name.startswith(_DIR_PREFIX) and owner.isdigit()
            if stale and not pid_alive(int(owner)):
                shutil.rmtree(entry, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-", dir=base)


def drop_state(directory: str) -> None:
    """Remove the checkpoints kept in ``directory`` (a table or a folder): the system stopped."""
    if directory.startswith(MEMORY):
        _TABLES.pop(directory, None)
    elif directory:
        shutil.rmtree(directory, ignore_errors=True)


def _found(incarnation: int, payload: bytes) -> Found:
    state, replies, *rest = pickle.loads(payload)
    return incarnation, state, tuple(replies), tuple(rest[0]) if rest else ()


def latest(directory: str, path: str, before: int) -> Found | None:
    """The newest state an instance of ``path`` earlier than ``before`` wrote.

    Returns ``(incarnation, state, replies, marks)``, or None if there is none (or the
    directory does not exist, as on a host that is not the leader's).
    """
    if directory.startswith(MEMORY):
        table = _TABLES.get(directory)
        kept = dict(table.states.get(path, {})) if table is not None else {}
        earlier = [i for i in kept if i < before]
        if not earlier:
            return None
        newest = max(earlier)
        return _found(newest, kept[newest])
    found: list[tuple[int, Path]] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(_folder(directory, path)):
            number, _, slot = entry.name.partition(".")
            if number.isdigit() and slot in _SLOT_FILES and int(number) < before:
                found.append((int(number), Path(entry.path)))
    for incarnation in sorted({i for i, _ in found}, reverse=True):
        slots = [_read_slot(f) for i, f in found if i == incarnation]
        valid = [s for s in slots if s is not None]
        if valid:
            return _found(incarnation, max(valid)[1])
    return None


def drop_earlier(directory: str, path: str, incarnation: int) -> None:
    """Remove the files of ``path``'s instances earlier than ``incarnation``."""
    if directory.startswith(MEMORY):
        table = _TABLES.get(directory)
        if table is not None:
            table.drop(path, lambda i: i < incarnation)
        return
    with contextlib.suppress(OSError):
        for entry in os.scandir(_folder(directory, path)):
            number, dot, _ = entry.name.partition(".")
            if dot and number.isdigit() and int(number) < incarnation:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def drop_under(directory: str, path: str) -> None:
    """Remove the checkpoints of ``path`` and of every path below it (its spec was deleted:
    a child started again under that name starts afresh)."""
    if not directory:
        return
    if directory.startswith(MEMORY):
        table = _TABLES.get(directory)
        if table is not None:
            table.drop_under(path)
        return
    shutil.rmtree(_folder(directory, path), ignore_errors=True)
