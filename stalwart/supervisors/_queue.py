"""The durable queue of ``QueueForLater``: requests kept in SQLite while a breaker is open.

Messages are stored as MessagePack with the name of their type (``module:qualname``
for a msgspec Struct, empty for plain data), never pickled: reading the file runs
no code, whoever wrote it. A message that cannot be encoded so is refused when it
is queued (:class:`~stalwart.BadMessage` naming its type). Who sent each request
is kept in memory only: a request queued by an earlier run (or an earlier instance
of the breaker) is replayed and handled once, and its reply goes nowhere.
"""

from __future__ import annotations

import importlib
import logging
import re
import sqlite3
import time
from typing import Any

import msgspec

from ..actors.errors import BadMessage

log = logging.getLogger("stalwart.breaker")
_TYPE_NAME = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_encoder = msgspec.msgpack.Encoder()


def encode(message: Any) -> tuple[str, bytes]:
    """``(type name, bytes)`` of ``message``; BadMessage if it cannot be stored without pickle."""
    kind = type(message)
    name = f"{kind.__module__}:{kind.__qualname__}" if isinstance(message, msgspec.Struct) else ""
    try:
        return name, _encoder.encode(message)
    except (TypeError, OverflowError) as exc:
        raise BadMessage(
            f"{kind.__name__} cannot be queued for later: only msgspec Structs and plain data"
            f" are stored ({exc})"
        ) from None


def decode(name: str, data: bytes) -> Any:
    """The message stored as ``(name, data)``; ValueError naming the type if it cannot be."""
    if not name:
        return msgspec.msgpack.decode(data)
    if not _TYPE_NAME.fullmatch(name):
        raise ValueError(f"stored type name {name!r} is not a module:qualname")
    module_name, qualname = name.split(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"stored type {name} cannot be found here: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, msgspec.Struct)):
        raise ValueError(f"stored type {name} is not a msgspec Struct")
    try:
        return msgspec.msgpack.decode(data, type=found)
    except msgspec.DecodeError as exc:
        raise ValueError(f"stored {name} does not decode: {exc}") from None


class RequestQueue:
    """Requests stored while the breaker is open, replayed in order once it closes."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.conn = sqlite3.connect(file, timeout=10, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, time REAL,"
            " path TEXT, type TEXT, message BLOB, request_id TEXT)"
        )
        self.conn.commit()
        self._warn_of_pickled_rows()

    def _warn_of_pickled_rows(self) -> None:
        """Rows of the older, pickled format are never read: say so once."""
        try:
            (old,) = self.conn.execute("SELECT count(*) FROM queued").fetchone()
        except sqlite3.DatabaseError:
            return
        if old:
            log.warning(
                "%s: %d requests queued in the older pickled format are ignored (not replayed)",
                self.file,
                old,
            )

    def put(self, path: str, message: Any, request_id: str | None = None) -> int:
        """Store a request; ``request_id``: the id it was already sent with, if it was.
        BadMessage if it cannot be stored."""
        name, data = encode(message)
        with self.conn:
            cursor = self.conn.execute(
                "INSERT INTO requests (time, path, type, message, request_id)"
                " VALUES (?, ?, ?, ?, ?)",
                (time.time(), path, name, data, request_id),
            )
        return int(cursor.lastrowid or 0)

    def oldest(self, path: str) -> tuple[int, str, bytes, str | None] | None:
        """``(id, type name, data, request id)`` of the oldest stored request for ``path``."""
        row = self.conn.execute(
            "SELECT id, type, message, request_id FROM requests WHERE path = ? ORDER BY id LIMIT 1",
            (path,),
        ).fetchone()
        if row is None:
            return None
        return int(row[0]), str(row[1] or ""), bytes(row[2]), row[3]

    def done(self, ident: int) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM requests WHERE id = ?", (ident,))

    def close(self) -> None:
        self.conn.close()
