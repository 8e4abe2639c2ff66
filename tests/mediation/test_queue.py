"""Where ``QueueForLater`` keeps its queue and how: in the system's private state directory,
as MessagePack. A file planted where older versions kept the queue (a guessable name in
the shared temporary folder), or pickled rows of the older format, are never read."""

from __future__ import annotations

import os
import pickle
import sqlite3
import stat
import tempfile
from contextlib import closing
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart import BadMessage, Breaker, Child, QueuedForLater, SpecError, Supervisor, start
from stalwart.supervisors import QueueForLater
from stalwart.supervisors._queue import decode, encode
from tests.support import Charge, GetOrders, Payments, queued_requests, wait_for


class Opaque:
    """Something msgspec cannot encode."""


class Bomb:
    """Unpickling it creates the file ``marker``: proof that a queue row was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(file: Path, marker: Path) -> None:
    """A queue in the older format whose one row runs code when it is unpickled."""
    with closing(sqlite3.connect(file)) as conn, conn:
        conn.execute(
            "CREATE TABLE queued (id INTEGER PRIMARY KEY, time REAL, path TEXT, message BLOB,"
            " sender BLOB, request_id TEXT)"
        )
        row = (0.0, PATH, pickle.dumps(Bomb(str(marker))), pickle.dumps(None), None)
        conn.execute(
            "INSERT INTO queued (time, path, message, sender, request_id) VALUES (?, ?, ?, ?, ?)",
            row,
        )


NAME = f"queue{os.getpid()}"  # (another run's planted file cannot be ours)
PATH = f"{NAME}/pay"


def tree(flag: Path) -> Supervisor:
    breaker = Breaker(2, 0.5, 1, fallback=(QueueForLater(),))
    return Supervisor(
        NAME, children=[Child("pay", Payments, options={"down_flag": str(flag)}, breaker=breaker)]
    )


def open_breaker(system, flag: Path) -> None:
    """Two failed charges trip it (and are queued); then a third is queued."""
    flag.write_text("down")
    for order in (100, 101):
        system.ask(PATH, Charge(order))
    states = lambda: [e.detail for e in system.events() if e.kind == "breaker"]  # noqa: E731
    wait_for(lambda: states()[-1:] == ["open"])
    assert system.ask(PATH, Charge(0)) == QueuedForLater(PATH, 3)


def orders(system) -> list[int]:
    return system.ask(f"{PATH}.protected", GetOrders())["orders"]


def test_the_queue_lives_in_the_private_state_dir_and_a_planted_old_queue_is_never_read(
    tmp_path, base
):
    marker = tmp_path / "unpickled"
    old_location = Path(tempfile.gettempdir()) / f"stalwart-queue-{PATH.replace('/', '_')}.db"
    state = tmp_path / "state"
    (state / "queues").mkdir(parents=True)
    new_location = state / "queues" / f"{PATH.replace('/', '.')}.db"
    plant(old_location, marker)
    plant(new_location, marker)  # rows of the older format, in our own file
    flag = tmp_path / "down"
    try:
        with start(tree(flag), base=base, state_dir=str(state), report_path=None) as system:
            open_breaker(system, flag)  # the trial calls and one more are queued
            assert system.ask(PATH, Charge(1)) == QueuedForLater(PATH, 4)
            assert queued_requests(new_location) == 4
            with closing(sqlite3.connect(new_location)) as conn:
                row = conn.execute("SELECT type, message FROM requests WHERE id = 4").fetchone()
            kind, data = row
            assert kind == "tests.support:Charge"
            assert msgspec.msgpack.decode(data, type=Charge) == Charge(1)
            flag.unlink()
            wait_for(lambda: orders(system) == [100, 101, 0, 1])
            wait_for(lambda: queued_requests(new_location) == 0)
    finally:
        old_location.unlink(missing_ok=True)
    assert not marker.exists(), "a planted queue row was unpickled"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "queues").stat().st_mode) == 0o700


def test_queued_requests_survive_a_restart_of_the_whole_system(tmp_path):
    flag, state = tmp_path / "down", str(tmp_path / "state")
    with start(tree(flag), state_dir=state, report_path=None) as system:
        open_breaker(system, flag)
        assert system.ask(PATH, Charge(7)) == QueuedForLater(PATH, 4)
    flag.unlink()
    with start(tree(flag), state_dir=state, report_path=None) as system:
        # replayed at start, in order, by a breaker that never saw their callers
        wait_for(lambda: orders(system) == [100, 101, 0, 7])


def test_a_message_that_cannot_be_stored_without_pickle_is_refused_with_its_type(
    make_system, tmp_path
):
    flag = tmp_path / "down"
    system = make_system(tree(flag))
    open_breaker(system, flag)
    with pytest.raises(BadMessage, match="Opaque cannot be queued for later"):
        system.ask(PATH, Opaque())


def test_another_users_state_dir_or_a_file_is_refused_naming_the_option(tmp_path):
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(SpecError, match="state_dir"):
        start(Supervisor("s"), state_dir=str(file))
    if os.getuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 65534, 65534)
        with pytest.raises(SpecError, match="belongs to another user"):
            start(Supervisor("s"), state_dir=str(theirs))
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    with start(Supervisor("s"), state_dir=str(loose), report_path=None):
        assert stat.S_IMODE(loose.stat().st_mode) == 0o700  # ours: made private


@settings(max_examples=200, deadline=None)
@given(
    name=st.one_of(
        st.text(max_size=40),
        st.from_regex(r"tests\.support:[A-Za-z_.]{0,20}", fullmatch=True),
        st.sampled_from(["os:system", "builtins:open", "pickle:loads", "tests.support:Charge"]),
    ),
    data=st.binary(max_size=64),
)
def test_a_stored_row_decodes_to_a_struct_of_its_type_or_a_value_error(name, data):
    """Whatever a row holds, decoding runs no code and raises nothing but ValueError."""
    try:
        found = decode(name, data)
    except ValueError:
        return
    if name:
        assert isinstance(found, msgspec.Struct) and f":{type(found).__qualname__}" in name


INT64 = st.integers(-(2**63), 2**63 - 1)


@given(st.builds(Charge, INT64) | st.text() | st.lists(INT64) | st.dictionaries(st.text(), INT64))
def test_what_is_queued_comes_back_equal(message):
    assert decode(*encode(message)) == message


def test_what_msgpack_cannot_hold_is_refused_naming_its_type():
    with pytest.raises(BadMessage, match="Charge cannot be queued for later"):
        encode(Charge(2**64))
    with pytest.raises(BadMessage, match="Opaque cannot be queued for later"):
        encode(Opaque())
