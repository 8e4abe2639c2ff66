"""What actors log reaches the owner's logging on every base, and Thespian speaks at DEBUG."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import msgspec
import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart import Child, ManagedActor, Supervisor
from stalwart.actors._log_records import FIELD_MAX, THESPIAN_LOGGER, decode, encode
from stalwart.actors._logs import _WithActorPath
from stalwart.telemetry import LogStats
from stalwart.testing import wait_until

USER = logging.getLogger("tests.logging.user")  # a user's module-level logger
FLOOD = 5_000
FORMAT = "%(levelname)s %(name)s [%(stalwart_path)s] %(message)s"


class Say(msgspec.Struct, frozen=True):
    text: str


class Flood(msgspec.Struct, frozen=True):
    n: int


class Talker(ManagedActor):
    def receiveMsg_Say(self, msg: Say, sender: Any) -> None:
        self.log.info("said %s to %d listeners", msg.text, 3)
        USER.warning("the user saw %r", msg.text)
        logging.getLogger("tests.logging.made_here").warning("made in the actor: %s", msg.text)
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            self.log.exception("failed after %s", msg.text)
        self.reply(sender, os.getpid())

    def receiveMsg_Flood(self, msg: Flood, sender: Any) -> None:
        for i in range(msg.n):
            self.log.info("flood %d of %d: %s", i, msg.n, "x" * 200)
        self.reply(sender, msg.n)


class Collected(logging.Handler):
    """Keeps the records it is given (on the root logger of the test's process)."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, name: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.name == name]

    def saying(self, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if text in r.getMessage()]


@pytest.fixture
def levels() -> Iterator[dict[str, int]]:
    """Levels the test sets in this process (before its system starts); put back after."""
    changed: dict[str, int] = {}
    yield changed
    for name, level in changed.items():
        logging.getLogger(name).setLevel(level)


def set_level(levels: dict[str, int], name: str, level: int) -> None:
    logger = logging.getLogger(name)
    levels.setdefault(name, logger.level)
    logger.setLevel(level)


@pytest.fixture
def collected() -> Iterator[Collected]:
    handler = Collected(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


def talker_tree() -> Supervisor:
    return Supervisor("logs", children=[Child("talker", Talker)])


def test_records_logged_in_an_actor_reach_the_owner_intact(make_system, base, levels, collected):
    set_level(levels, "stalwart.actor", logging.INFO)
    set_level(levels, "tests.logging", logging.INFO)
    system = make_system(talker_tree(), base=base)
    actor_pid = system.ask("logs/talker", Say("hello"))

    said, saw, made, failed = wait_until(
        lambda: (
            [
                collected.saying(text)
                for text in ("said hello", "the user saw", "made in the actor", "failed after")
            ]
            if collected.saying("failed after")
            else None
        )
    )
    assert [(r.levelno, r.name) for r in said + saw + made + failed] == [
        (logging.INFO, "stalwart.actor.logs.talker"),
        (logging.WARNING, "tests.logging.user"),
        (logging.WARNING, "tests.logging.made_here"),
        (logging.ERROR, "stalwart.actor.logs.talker"),
    ]
    assert {r.stalwart_path for r in said + saw + made + failed} == {"logs/talker"}
    assert {r.process for r in said + saw + made + failed} == {actor_pid}
    assert (actor_pid != os.getpid()) == (base == "multiproc")  # (made in the actor's process)
    text = logging.Formatter(FORMAT).format(said[0])
    assert text == "INFO stalwart.actor.logs.talker [logs/talker] said hello to 3 listeners"
    assert saw[0].getMessage() == "the user saw 'hello'"
    failure = logging.Formatter(FORMAT).format(failed[0])
    assert failure.startswith("ERROR stalwart.actor.logs.talker [logs/talker] failed after hello")
    assert "Traceback (most recent call last)" in failure
    assert "in receiveMsg_Say" in failure
    assert failure.rstrip().endswith("ZeroDivisionError: division by zero")


def test_a_pool_s_instances_log_through_the_pool_s_logger_naming_their_paths(
    make_system, base, levels, collected
):
    # a Pool's keys come and go by the million, and a Python logger is kept for good
    from stalwart import Pool

    set_level(levels, "stalwart.actor", logging.INFO)
    pool = Pool("sessions", template=Child("s", Talker))
    teams = Pool("teams", template=Supervisor("team", children=[Child("t", Talker)]))
    system = make_system(Supervisor("logs", children=[pool, teams]), base=base)
    paths = [system.start_child("logs/sessions", key) for key in ("a", "b")]
    paths.append(system.start_child("logs/teams", "red") + "/t")
    for path in paths:
        system.ask(path, Say(f"hi from {path}"))
    said = wait_until(
        lambda: (
            [collected.saying(f"said hi from {p}") for p in paths]
            if all(collected.saying(f"said hi from {p}") for p in paths)
            else None
        )
    )
    assert [(r.name, r.stalwart_path) for [r] in said] == [
        ("stalwart.actor.logs.sessions", "logs/sessions/a"),
        ("stalwart.actor.logs.sessions", "logs/sessions/b"),
        ("stalwart.actor.logs.teams", "logs/teams/red/t"),  # (below a key too)
    ]
    below = ("stalwart.actor.logs.sessions.", "stalwart.actor.logs.teams.")
    assert not [name for name in logging.Logger.manager.loggerDict if name.startswith(below)]


def test_each_record_arrives_once(make_system, base, levels, collected):
    set_level(levels, "stalwart.actor", logging.INFO)
    set_level(levels, "tests.logging", logging.INFO)
    system = make_system(talker_tree(), base=base)
    system.ask("logs/talker", Say("first"))
    system.ask("logs/talker", Say("last"))
    # a process's records arrive in order: once the last is in, the first's copies are too
    wait_until(lambda: collected.saying("failed after last"))
    for text in ("said first", "the user saw 'first'", "made in the actor: first"):
        assert len(collected.saying(text)) == 1, text


def test_levels_set_in_the_owner_decide_even_after_the_start(make_system, base, levels, collected):
    set_level(levels, "stalwart.actor", logging.INFO)
    system = make_system(talker_tree(), base=base)
    set_level(levels, "stalwart.actor.logs.talker", logging.WARNING)  # raised after the start
    system.ask("logs/talker", Say("quietly"))
    wait_until(lambda: collected.saying("failed after quietly"))  # ERROR, logged after the INFO
    assert collected.saying("said quietly") == []


def test_thespian_speaks_at_debug_under_its_own_logger(make_system, base, levels, collected):
    set_level(levels, "", logging.INFO)  # a program that shows INFO
    set_level(levels, THESPIAN_LOGGER, logging.DEBUG)  # and wants to see Thespian's too
    system = make_system(talker_tree(), base=base)
    system.ask("logs/talker", Say("hello"))
    system.shutdown()  # (what the system's processes sent has arrived once it returns)

    thespian = collected.named(THESPIAN_LOGGER)
    chatter = "Actor System gen" if base == "multiproc" else "got message"
    assert [r for r in thespian if chatter in r.getMessage()], "Thespian's chatter is missing"
    assert {r.levelno for r in thespian} == {logging.DEBUG}
    made_by_thespian = [r for r in collected.records if "/thespian/" in r.pathname]
    assert {r.name for r in made_by_thespian} == {THESPIAN_LOGGER}
    assert not [r for r in collected.records if r.name == "root" or r.name.startswith("Thespian")]


def test_thespian_is_quiet_at_info(make_system, base, levels, collected):
    set_level(levels, "", logging.INFO)
    system = make_system(talker_tree(), base=base)
    system.ask("logs/talker", Say("hello"))
    system.shutdown()
    assert collected.saying("said hello")  # (the actor's records came)
    assert not [r for r in collected.records if "Actor System" in r.getMessage()]
    assert not [r for r in collected.records if "/thespian/" in r.pathname]


class Gate(logging.Handler):
    """A log handler that stops at the first flood record until it is opened."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.flood = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("flood"):
            self.flood += 1
            self.entered.set()
            self.opened.wait()


def test_a_flood_never_blocks_the_actor_and_what_is_dropped_is_counted(
    make_system, levels, collected
):
    set_level(levels, "stalwart.actor", logging.INFO)
    gate = Gate()
    logging.getLogger("stalwart.actor").addHandler(gate)
    try:
        system = make_system(talker_tree(), base="multiproc")
        # this process handles the first record, then stops: the socket fills up
        assert system.ask("logs/talker", Flood(FLOOD), timeout=60) == FLOOD
        assert gate.entered.is_set() and gate.flood == 1
        assert system.ask("logs/talker", Say("still answering"), timeout=60)
    finally:
        gate.opened.set()
        logging.getLogger("stalwart.actor").removeHandler(gate)

    def after_the_flood() -> bool:
        # the count of what was lost comes with the actor's next record that gets through,
        # and may come in parts (a record taken from the socket makes room for one more
        # mid-flood). One the talker makes after the flood, once here, came after every
        # flood record and every count (one connection, in order); one made while this
        # process still drains the thousands held up is dropped too: ask again
        if not collected.saying("said after the flood"):
            system.ask("logs/talker", Say("after the flood"), timeout=60)
        return bool(collected.saying("said after the flood"))

    wait_until(after_the_flood, timeout=120)
    stats = system.log_stats
    arrived = len([r for r in collected.records if r.getMessage().startswith("flood ")])
    assert arrived < FLOOD
    assert arrived + stats.dropped >= FLOOD
    assert system.diagnostics()["logs"]["dropped"] >= stats.dropped


def test_on_the_in_process_base_nothing_is_dropped(make_system, levels, collected):
    set_level(levels, "stalwart.actor", logging.INFO)
    system = make_system(talker_tree(), base="simple")
    assert system.ask("logs/talker", Flood(FLOOD), timeout=60) == FLOOD
    assert len(collected.saying("flood ")) == FLOOD  # (handled as they were made)
    assert system.log_stats == LogStats(0, 0)


def test_nothing_is_left_once_the_system_stops(make_system, base, levels, collected):
    set_level(levels, "stalwart.actor", logging.INFO)
    system = make_system(talker_tree(), base=base)
    system.ask("logs/talker", Say("hello"))
    channel = system._logs
    if base == "multiproc":
        assert os.stat(channel.address).st_mode & 0o777 == 0o600  # the owner's only
        assert [t for t in threading.enumerate() if t.name == "stalwart-logs"]
    else:
        assert channel is None  # (actors log in this process)
        assert isinstance(logging.getLogRecordFactory(), _WithActorPath)
    system.shutdown()
    assert not [t for t in threading.enumerate() if t.name == "stalwart-logs"]
    assert not isinstance(logging.getLogRecordFactory(), _WithActorPath)
    assert not logging.getLogger("Thespian").filters
    if channel is not None:
        assert not os.path.exists(channel.address)
        mine = psutil.Process().net_connections(kind="unix")
        assert not [c for c in mine if c.laddr == channel.address]


# -- records on the wire (pure) ----------------------------------------------------------------
def record(msg: Any, *args: Any, **attrs: Any) -> logging.LogRecord:
    made = logging.LogRecord("app.part", logging.WARNING, "/src/app.py", 12, msg, args, None)
    made.__dict__.update(attrs)
    return made


def round_trip(made: logging.LogRecord, dropped: int = 0) -> logging.LogRecord:
    data = encode(made, dropped)
    assert data is not None
    back, count = decode(data)
    assert back is not None and count == dropped
    return back


plain = st.one_of(
    st.text(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans()
)


@given(st.lists(plain, max_size=5), st.text(max_size=50))
def test_a_record_comes_back_as_it_was_made(args, prefix):
    template = prefix.replace("%", "%%") + " %s" * len(args)
    made = record(template, *args, stalwart_path="a/b")
    back = round_trip(made)
    assert back.getMessage() == made.getMessage()
    assert (back.msg, back.args) == (template, tuple(args))  # the template is kept
    assert (back.name, back.levelno, back.levelname) == ("app.part", logging.WARNING, "WARNING")
    assert (back.pathname, back.lineno, back.process) == ("/src/app.py", 12, made.process)
    assert back.stalwart_path == "a/b"


def test_arguments_that_json_would_change_go_formatted():
    made = record("%s %r %f", Say("hi"), "x", float("nan"))
    back = round_trip(made)
    assert back.args is None and back.getMessage() == made.getMessage()


def test_text_decoded_from_bytes_and_odd_attributes_still_go():
    made = record("file %s", "caf\udce9", extra_thing={"a": 1}, getMessage="shadow")
    back = round_trip(made)
    assert back.getMessage() == "file caf\\udce9"
    assert back.extra_thing == "{'a': 1}"  # (its repr)
    assert callable(back.getMessage)  # an attribute never hides a method


def test_an_exception_goes_as_its_traceback_and_a_long_one_is_cut():
    try:
        raise ValueError("v" * (3 * FIELD_MAX))
    except ValueError:
        made = logging.LogRecord("a", logging.ERROR, "/a.py", 1, "failed", (), sys.exc_info())
    back = round_trip(made, dropped=7)
    assert back.exc_info is None
    assert back.exc_text.startswith("Traceback (most recent call last)")
    assert "characters cut" in back.exc_text and len(back.exc_text) < 2 * FIELD_MAX


def test_what_is_not_a_record_is_refused():
    for data in (b"", b"[]", b"{", b'{"r": {"name": 1}, "d": 2}', b'{"d": -1}'):
        back, dropped = decode(data)
        assert back is None and dropped in (0, 2)
