"""Database recovery on real SQLite files: real lock contention, real constraint violations."""

import multiprocessing
import sqlite3
import time

import pytest

from stalwart.strategies import (
    ConflictError,
    Fixed,
    PoolMonitor,
    atomic_update,
    db_retry,
    ensure_connection,
    is_transient,
    safe_bulk_insert,
    transaction,
)


def connect(path, timeout=0.05):
    return sqlite3.connect(path, timeout=timeout)


def hold_write_lock(path, seconds, ready):
    conn = sqlite3.connect(path)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t (x) VALUES (-1)")
    ready.set()
    time.sleep(seconds)
    conn.commit()
    conn.close()


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "app.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x INTEGER UNIQUE)")
    conn.execute("CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER, version INTEGER)")
    conn.execute("INSERT INTO account VALUES (1, 0, 0)")
    conn.commit()
    conn.close()
    return path


def test_a_locked_database_is_retried_until_the_other_writer_commits(db):
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(target=hold_write_lock, args=(db, 0.6, ready))
    holder.start()
    ready.wait(10)
    conn = connect(db)
    calls = []

    @db_retry(attempts=50, backoff=Fixed(0.05))
    def insert(conn, x):
        calls.append(x)
        conn.execute("INSERT INTO t (x) VALUES (?)", (x,))
        conn.commit()

    with pytest.raises(sqlite3.OperationalError, match="database is locked") as plain:
        conn.execute("INSERT INTO t (x) VALUES (0)")  # without retry: the real lock error
    assert is_transient(plain.value)
    conn.rollback()
    insert(conn, 7)
    holder.join(10)
    assert len(calls) > 1  # it was locked out at first, then went through
    rows = sorted(x for (x,) in conn.execute("SELECT x FROM t"))
    assert rows == [-1, 7]


def test_a_constraint_violation_is_not_retried(db):
    conn = connect(db)
    calls = []

    @db_retry(attempts=5, backoff=Fixed(0.0))
    def insert(conn, x):
        calls.append(x)
        conn.execute("INSERT INTO t (x) VALUES (?)", (x,))
        conn.commit()

    insert(conn, 1)
    with pytest.raises(sqlite3.IntegrityError):
        insert(conn, 1)
    assert calls == [1, 1]


def test_transactions_commit_roll_back_and_nest_as_savepoints(db):
    conn = connect(db)
    with transaction(conn):
        conn.execute("INSERT INTO t (x) VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError), transaction(conn):
            conn.execute("INSERT INTO t (x) VALUES (2)")
            conn.execute("INSERT INTO t (x) VALUES (1)")  # the inner part is undone
        conn.execute("INSERT INTO t (x) VALUES (3)")
    with pytest.raises(RuntimeError, match="changed my mind"), transaction(conn):
        conn.execute("INSERT INTO t (x) VALUES (4)")
        raise RuntimeError("changed my mind")
    other = connect(db)
    assert sorted(x for (x,) in other.execute("SELECT x FROM t")) == [1, 3]


def add_to_balance(path, times):
    conn = sqlite3.connect(path, timeout=5)
    for _ in range(times):
        atomic_update(conn, "account", {"id": 1}, lambda row: {"balance": row["balance"] + 1})


def test_optimistic_updates_from_two_processes_lose_nothing(db):
    workers = [multiprocessing.Process(target=add_to_balance, args=(db, 50)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    balance, version = connect(db).execute("SELECT balance, version FROM account").fetchone()
    assert (balance, version) == (100, 100)


def test_an_update_that_always_conflicts_gives_up_clearly(db):
    conn = connect(db)
    other = connect(db, timeout=5)

    def meddle(row):
        other.execute("UPDATE account SET version = version + 1 WHERE id = 1")
        other.commit()
        return {"balance": 5}

    with pytest.raises(ConflictError, match="account"):
        atomic_update(conn, "account", {"id": 1}, meddle, attempts=3)
    with pytest.raises(ValueError, match="table: not a plain SQL identifier"):
        atomic_update(conn, "account; DROP TABLE t", {"id": 1}, lambda row: {})


def test_bulk_insert_goes_on_past_bad_rows_and_names_them(db):
    conn = connect(db)
    rows = [(i,) for i in range(10)] + [(3,), ("x",), (10,)]
    conn.execute("CREATE TABLE typed (x INTEGER UNIQUE CHECK (typeof(x) = 'integer'))")
    result = safe_bulk_insert(conn, "typed", rows, ["x"], batch_size=4)
    assert result.inserted == 11
    assert [row for row, _error in result.failed] == [(3,), ("x",)]
    assert result.failed[0][1].startswith("IntegrityError: UNIQUE constraint failed")
    assert result.failed[1][1].startswith("IntegrityError: CHECK constraint failed")
    assert connect(db).execute("SELECT count(*) FROM typed").fetchone() == (11,)


def test_a_closed_connection_is_replaced(db):
    conn = connect(db)
    assert ensure_connection(conn, lambda: connect(db)) is conn
    conn.close()
    fresh = ensure_connection(conn, lambda: connect(db))
    assert fresh is not conn and fresh.execute("SELECT 1").fetchone() == (1,)


def test_the_pool_monitor_counts_use_waits_and_leaks():
    class Clock:
        now = 0.0

        def __call__(self):
            return self.now

    clock = Clock()
    free = [sqlite3.connect(":memory:") for _ in range(2)]

    def acquire():
        clock.now += 0.5  # as if it had to wait for a connection
        return free.pop()

    monitor = PoolMonitor(acquire, free.append, size=2, leak_after_s=10, clock=clock)
    with monitor.connection():
        held = monitor.connection()
        held.__enter__()  # never given back: a leak
    clock.now += 11
    stats = monitor.stats()
    assert (stats.size, stats.in_use, stats.acquired, stats.waits) == (2, 1, 2, 2)
    assert len(stats.leaks) == 1 and stats.leaks[0][1] > 10


def rows_of(path):
    return sorted(x for (x,) in connect(path).execute("SELECT x FROM t"))


def locked_once_inserting(x):
    """A ``db_retry`` function that inserts ``x``; its first call then finds the db locked."""

    @db_retry(attempts=3, backoff=Fixed(0.0))
    def insert(conn):
        insert.calls += 1
        conn.execute("INSERT INTO t (x) VALUES (?)", (x,))
        if insert.calls == 1:
            raise sqlite3.OperationalError("database is locked")

    insert.calls = 0
    return insert


def test_db_retry_inside_a_transaction_leaves_the_decision_to_the_transaction(db):
    conn = connect(db)
    insert_b = locked_once_inserting(2)

    with pytest.raises(sqlite3.OperationalError) as info, transaction(conn):
        conn.execute("INSERT INTO t (x) VALUES (1)")
        insert_b(conn)
    assert insert_b.calls == 1  # not retried: a retry would have rolled back row 1
    assert any("inside an open transaction" in note for note in info.value.__notes__)
    assert rows_of(db) == []  # the transaction rolled back whole: nothing half-saved


def test_db_retry_inside_a_transaction_the_driver_opened_does_not_roll_it_back(db):
    conn = connect(db)
    insert_b = locked_once_inserting(2)

    conn.execute("INSERT INTO t (x) VALUES (1)")  # sqlite3 opens a transaction implicitly
    with pytest.raises(sqlite3.OperationalError):
        insert_b(conn)
    conn.commit()  # the caller decides: here, keep what succeeded
    assert rows_of(db) == [1, 2]


def test_db_retry_around_a_transaction_retries_it_whole(db):
    conn = connect(db)
    calls = []

    @db_retry(attempts=3, backoff=Fixed(0.0))
    def record(conn):
        with transaction(conn):
            conn.execute("INSERT INTO t (x) VALUES (1)")
            calls.append("attempt")
            if len(calls) == 1:
                raise sqlite3.OperationalError("database is locked")
            conn.execute("INSERT INTO t (x) VALUES (2)")

    record(conn)
    assert calls == ["attempt", "attempt"]
    assert rows_of(db) == [1, 2]


def test_bulk_insert_takes_dict_rows_by_column_name(db):
    conn = connect(db)
    conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    rows = [
        {"name": "ada", "id": 1},  # keys in another order than the columns
        {"id": 2, "name": "grace"},
        {"id": 1, "name": "again"},  # duplicate key
        {"id": 3},  # no name
        {"id": 4, "name": "barbara", "extra": "ignored"},
    ]
    result = safe_bulk_insert(conn, "people", rows, ["id", "name"], batch_size=10)
    assert result.inserted == 3
    assert [row["id"] for row, _error in result.failed] == [3, 1]
    assert result.failed[0][1] == "KeyError: row has no column 'name'"
    assert result.failed[1][1].startswith("IntegrityError: UNIQUE constraint failed")
    stored = connect(db).execute("SELECT id, name FROM people ORDER BY id").fetchall()
    assert stored == [(1, "ada"), (2, "grace"), (4, "barbara")]
