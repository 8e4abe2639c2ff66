"""Recovery for database code (DB-API 2.0; tested on sqlite3 with real files).

- :func:`db_retry`: retry transient operational errors ("database is locked",
  deadlocks, dropped connections), rolling the transaction back before each retry.
- :func:`transaction`: commit on success, roll back on error; nested calls are savepoints.
- :func:`atomic_update`: optimistic locking on a version column, retried on conflict.
- :func:`safe_bulk_insert`: batches that go on past bad rows and say which failed and why.
- :func:`ensure_connection`: a connection that answers, reconnected if it does not.
- :class:`PoolMonitor`: size, in use, waits and leaks (by age) of a pool you pass in.
"""

from __future__ import annotations

import functools
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, overload

import msgspec

from ._backoff import Backoff, Exponential

T = TypeVar("T")
P = ParamSpec("P")

TRANSIENT_PATTERNS = re.compile(
    r"database is locked|database table is locked|database is busy|deadlock"
    r"|could not serialize|lock wait timeout|connection (reset|refused|lost|closed)"
    r"|server closed the connection|lost connection|gone away|too many connections",
    re.I,
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEFAULT_BACKOFF = Exponential(0.01, 2.0).capped(1.0).jittered("full")


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry may fix: operational errors about locks and connections."""
    names = {k.__name__ for k in type(exc).__mro__}
    if not names & {"OperationalError", "InterfaceError", "DatabaseError"}:
        return False
    if "IntegrityError" in names or "ProgrammingError" in names:
        return False
    return bool(TRANSIENT_PATTERNS.search(str(exc)))


def _connection_of(args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """The DB-API connection among a call's arguments (a connection, or a cursor's)."""
    for value in (*args, *kwargs.values()):
        if hasattr(value, "rollback") and hasattr(value, "commit"):
            return value
        conn = getattr(value, "connection", None)
        if conn is not None and hasattr(conn, "rollback"):
            return conn
    return None


@overload
def db_retry(fn: Callable[P, T], /) -> Callable[P, T]: ...
@overload
def db_retry(
    fn: None = None,
    *,
    attempts: int = 5,
    backoff: Backoff = ...,
    retry_if: Callable[[BaseException], bool] = ...,
    connection: Any = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = ...,
) -> Callable[[Callable[P, T]], Callable[P, T]]: ...
def db_retry(
    fn: Callable[..., T] | None = None,
    *,
    attempts: int = 5,
    backoff: Backoff = _DEFAULT_BACKOFF,
    retry_if: Callable[[BaseException], bool] = is_transient,
    connection: Any = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Retry a database operation on transient errors (``@db_retry`` or ``@db_retry(...)``).

    Before each retry the transaction is rolled back on ``connection`` (default:
    the connection, or a cursor's, among the call's arguments), so the retry
    starts clean. Errors ``retry_if`` rejects (constraint violations, bad SQL)
    are raised at once; after ``attempts`` the last error is raised. ``sleep``
    waits between attempts (inject a fake one in tests).

    Inside a transaction that was already open when the call began (one that
    :func:`transaction` opened, or any the driver reports as
    ``conn.in_transaction``) nothing is retried or rolled back: the error is
    raised at once, with a note, so the transaction's owner decides. A rollback
    there would discard the caller's earlier writes, and a lock or deadlock
    error is only cured by restarting the whole transaction: put ``db_retry``
    around the function that opens it.
    """
    if attempts < 1:
        raise ValueError(f"db_retry.attempts: must be >= 1, got {attempts!r}")

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            conn = connection if connection is not None else _connection_of(args, kwargs)
            nested = conn is not None and _in_open_transaction(conn)
            delays = backoff.delays(rng)
            for attempt in range(1, attempts + 1):
                try:
                    return func(*args, **kwargs)
                except Exception as exc:
                    if attempt == attempts or not retry_if(exc):
                        raise
                    if nested:
                        exc.add_note(
                            "stalwart.db_retry: not retried inside an open transaction; "
                            "retry around the code that opens it"
                        )
                        raise
                    if conn is not None:
                        try:
                            conn.rollback()
                        except Exception:  # a dead connection: the retry will say so
                            pass
                    sleep(next(delays))
            raise AssertionError("unreachable")

        return wrapper

    return decorate(fn) if fn is not None else decorate


# -- transactions --------------------------------------------------------------------------------
_depths: dict[int, int] = {}
_depth_lock = threading.Lock()


@contextmanager
def transaction(conn: Any) -> Iterator[Any]:
    """Commit on success, roll back on error; a nested ``transaction`` is a savepoint."""
    key = id(conn)
    with _depth_lock:
        depth = _depths.get(key, 0)
        _depths[key] = depth + 1
    try:
        if depth == 0:
            if getattr(conn, "in_transaction", False) is False and hasattr(conn, "isolation_level"):
                conn.execute("BEGIN")  # sqlite3: start it now, so savepoints nest inside
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        else:
            name = f"stalwart_sp_{depth}"
            cursor = conn.cursor()
            cursor.execute(f"SAVEPOINT {name}")
            try:
                yield conn
            except BaseException:
                cursor.execute(f"ROLLBACK TO SAVEPOINT {name}")
                cursor.execute(f"RELEASE SAVEPOINT {name}")
                raise
            cursor.execute(f"RELEASE SAVEPOINT {name}")
    finally:
        with _depth_lock:
            if depth == 0:
                _depths.pop(key, None)
            else:
                _depths[key] = depth


def _in_open_transaction(conn: Any) -> bool:
    """True when ``conn`` is inside a transaction: one :func:`transaction` opened, or any
    the driver reports (``conn.in_transaction``, as sqlite3 and some others have)."""
    with _depth_lock:
        if _depths.get(id(conn), 0) > 0:
            return True
    return getattr(conn, "in_transaction", False) is True


# -- optimistic locking --------------------------------------------------------------------------
class ConflictError(Exception):
    """An optimistic update kept losing to concurrent writers."""


def _name(kind: str, name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{kind}: not a plain SQL identifier: {name!r}")
    return name


def atomic_update(
    conn: Any,
    table: str,
    key: dict[str, Any],
    change: Callable[[dict[str, Any]], dict[str, Any]],
    version_column: str = "version",
    attempts: int = 10,
    paramstyle: str = "qmark",
) -> int:
    """Read the row at ``key``, apply ``change(row) -> new values``, write it if unchanged.

    The write succeeds only if ``version_column`` still holds what was read; on a
    conflict the row is read again and ``change`` runs again (at most
    ``attempts`` times, then :class:`ConflictError`). Returns the new version.
    """
    table = _name("table", table)
    version = _name("version_column", version_column)
    ph = "?" if paramstyle == "qmark" else "%s"
    where = " AND ".join(f"{_name('key', k)} = {ph}" for k in key)
    for _attempt in range(attempts):
        cursor = conn.cursor()
        cursor.execute(f"SELECT * FROM {table} WHERE {where}", tuple(key.values()))
        found = cursor.fetchone()
        if found is None:
            raise KeyError(f"{table}: no row where {key!r}")
        row = dict(zip([d[0] for d in cursor.description], found, strict=True))
        values = change(dict(row))
        sets = ", ".join(f"{_name('column', c)} = {ph}" for c in values)
        sets = f"{sets}, {version} = {version} + 1" if sets else f"{version} = {version} + 1"
        with transaction(conn):
            cursor = conn.cursor()
            cursor.execute(
                f"UPDATE {table} SET {sets} WHERE {where} AND {version} = {ph}",
                (*values.values(), *key.values(), row[version]),
            )
            updated = cursor.rowcount
        if updated == 1:
            return int(row[version]) + 1
    raise ConflictError(f"{table} {key!r}: still changed by others after {attempts} attempts")


# -- bulk inserts --------------------------------------------------------------------------------
class BulkResult(msgspec.Struct, frozen=True):
    """What ``safe_bulk_insert`` did: rows inserted, and each failed row with its error."""

    inserted: int
    failed: list[tuple[Any, str]]


def safe_bulk_insert(
    conn: Any,
    table: str,
    rows: Iterable[Sequence[Any] | Mapping[str, Any]],
    columns: Sequence[str],
    batch_size: int = 500,
    paramstyle: str = "qmark",
) -> BulkResult:
    """Insert ``rows`` in batches; a batch with a bad row is redone row by row.

    A row is a sequence in the order of ``columns``, or a mapping whose values
    are taken by column name (a mapping without one of them fails alone). Good
    rows go in, bad rows (constraint violations, wrong types) are returned with
    their errors; the caller's transaction is not aborted by them.
    """
    table = _name("table", table)
    cols = ", ".join(_name("column", c) for c in columns)
    ph = "?" if paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join([ph] * len(columns))})"
    inserted, failed = 0, []
    batch: list[tuple[Any, tuple[Any, ...]]] = []  # (row as given, its values)

    def flush() -> None:
        nonlocal inserted
        try:
            with transaction(conn):
                conn.cursor().executemany(sql, [values for _row, values in batch])
            inserted += len(batch)
            return
        except Exception as exc:
            if is_transient(exc):
                raise
        for row, values in batch:  # find the bad ones
            try:
                with transaction(conn):
                    conn.cursor().execute(sql, values)
                inserted += 1
            except Exception as exc:
                if is_transient(exc):
                    raise
                failed.append((row, f"{type(exc).__name__}: {exc}"))

    for row in rows:
        if isinstance(row, Mapping):
            missing = [c for c in columns if c not in row]
            if missing:
                failed.append((row, f"KeyError: row has no column {missing[0]!r}"))
                continue
            batch.append((row, tuple(row[c] for c in columns)))
        else:
            batch.append((row, tuple(row)))
        if len(batch) >= batch_size:
            flush()
            batch = []
    if batch:
        flush()
    return BulkResult(inserted, failed)


# -- connections ---------------------------------------------------------------------------------
def ensure_connection(conn: Any, connect: Callable[[], Any], ping: str = "SELECT 1") -> Any:
    """``conn`` if it answers ``ping``, else a new one from ``connect()`` (the old one closed)."""
    if conn is not None:
        try:
            cursor = conn.cursor()
            cursor.execute(ping)
            cursor.fetchall()
            return conn
        except Exception:
            try:
                conn.close()
            except Exception:
                pass
    return connect()


class PoolStats(msgspec.Struct, frozen=True):
    """A pool's figures: capacity, checked out, how often and how long callers waited, leaks."""

    size: int
    in_use: int
    acquired: int
    waits: int
    wait_s: float
    leaks: list[tuple[int, float]]  # (connection id, seconds held) held past leak_after_s


class PoolMonitor:
    """Watch a pool you already have: ``with monitor.connection() as conn: ...``.

    ``acquire()`` and ``release(conn)`` are your pool's own calls. An acquire
    that takes longer than ``wait_threshold_s`` counts as a wait; a connection
    held longer than ``leak_after_s`` is reported as a leak by :meth:`stats`.
    """

    def __init__(
        self,
        acquire: Callable[[], Any],
        release: Callable[[Any], None],
        size: int,
        leak_after_s: float = 30.0,
        wait_threshold_s: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.acquire, self.release, self.size = acquire, release, size
        self.leak_after_s, self.wait_threshold_s, self.clock = leak_after_s, wait_threshold_s, clock
        self._out: dict[int, float] = {}
        self._lock = threading.Lock()
        self.acquired = self.waits = 0
        self.wait_s = 0.0

    @contextmanager
    def connection(self) -> Iterator[Any]:
        started = self.clock()
        conn = self.acquire()
        waited = self.clock() - started
        with self._lock:
            self.acquired += 1
            if waited > self.wait_threshold_s:
                self.waits += 1
                self.wait_s += waited
            self._out[id(conn)] = self.clock()
        try:
            yield conn
        finally:
            with self._lock:
                self._out.pop(id(conn), None)
            self.release(conn)

    def stats(self) -> PoolStats:
        now = self.clock()
        with self._lock:
            leaks = [(c, now - t) for c, t in self._out.items() if now - t > self.leak_after_s]
            return PoolStats(
                self.size, len(self._out), self.acquired, self.waits, self.wait_s, leaks
            )
