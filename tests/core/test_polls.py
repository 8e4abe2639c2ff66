"""Thespian's TCP transport waits with one ``poll`` per wait in Stalwart's own processes.

The selector it makes there answers as the standard library's default selector answers
for what the transport asks (which sockets are ready, a descriptor that is not open), and
the program's own process keeps Thespian's selector.
"""

from __future__ import annotations

import errno
import importlib
import os
import selectors
import socket
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from thespian.actors import Actor, ThespianWatch

from stalwart import Child, ManagedActor, Supervisor
from stalwart.actors._polls import OnePollSelector

R, W = selectors.EVENT_READ, selectors.EVENT_WRITE


def ready(
    selector: Any, wanted: list[tuple[int, int]], timeout: float | None
) -> set[tuple[int, int]]:
    """Which (fd, events) ``selector`` finds ready among ``wanted``; closed afterwards."""
    try:
        for fd, events in wanted:
            selector.register(fd, events)
        return {(key.fd, events) for key, events in selector.select(timeout)}
    finally:
        selector.close()


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.sampled_from([R, W, R | W]),  # what the first end is waited for
            st.booleans(),  # whether the other end has written to it
            st.booleans(),  # whether the other end has closed
        ),
        min_size=1,
        max_size=5,
    ),
    timeout=st.sampled_from([0, 0.0001, 0.01]),
)
def test_it_finds_the_same_sockets_ready_as_the_default_selector(
    pairs: list[tuple[int, bool, bool]], timeout: float
) -> None:
    ends = []
    try:
        wanted = []
        for events, written, closed in pairs:
            mine, other = socket.socketpair()
            ends += [mine, other]
            if written:
                other.send(b"x")
            if closed:
                other.close()
            wanted.append((mine.fileno(), events))
        assert ready(OnePollSelector(), wanted, timeout) == ready(
            selectors.DefaultSelector(), wanted, timeout
        )
    finally:
        for end in ends:
            end.close()


def test_a_descriptor_that_is_not_open_fails_the_wait_as_with_the_default_selector() -> None:
    fd = 900  # (well above what is open; a descriptor just closed could be the epoll set's)
    while is_open(fd):
        fd += 1
    for selector in (OnePollSelector(), selectors.DefaultSelector()):
        with pytest.raises(OSError) as failed:
            ready(selector, [(fd, R)], 0)  # (Thespian catches both steps together)
        assert failed.value.errno == errno.EBADF


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_bad_registrations_are_refused_as_the_default_selector_refuses_them() -> None:
    mine, other = socket.socketpair()
    try:
        for make in (OnePollSelector, selectors.DefaultSelector):
            selector = make()
            selector.register(mine.fileno(), R)
            with pytest.raises(KeyError):
                selector.register(mine.fileno(), W)
            with pytest.raises(ValueError):
                selector.register(other.fileno(), 0)
            selector.close()
    finally:
        mine.close()
        other.close()


@pytest.mark.parametrize("fileobj", [None, object(), "3", 3.0, -1])
def test_what_has_no_descriptor_is_refused_as_the_default_selector_refuses_it(
    fileobj: Any,
) -> None:
    # (a ValueError is what Thespian catches, to drop a bad watched object and go on)
    for make in (OnePollSelector, selectors.DefaultSelector):
        selector = make()
        with pytest.raises(ValueError):
            selector.register(fileobj, R)
        selector.close()


def test_a_wait_ends_when_a_socket_becomes_ready_or_its_time_is_up() -> None:
    mine, other = socket.socketpair()
    try:
        selector = OnePollSelector()
        key = selector.register(mine, R, data="mine")  # (a socket object, as well as its fd)
        assert key.fd == mine.fileno() and key.data == "mine"
        assert selector.select(0.01) == []
        other.send(b"x")
        assert selector.select(None) == [(key, R)]
        selector.close()
    finally:
        mine.close()
        other.close()


def transport_selector() -> str:
    module = importlib.import_module("thespian.system.transport.TCPTransport")
    return str(module.selectors.DefaultSelector.__name__)


class Asks(ManagedActor):
    """Answers which selector Thespian's TCP transport makes in its process."""

    def receiveMsg_str(self, msg: str, sender: Any) -> None:
        self.reply(sender, transport_selector())


def test_actor_processes_wait_with_one_poll_and_the_programs_own_keeps_thespians(
    make_system: Any, base: str
) -> None:
    system = make_system(Supervisor("s", children=[Child("a", Asks)]), base=base)
    own = selectors.DefaultSelector.__name__
    expected = own if base == "simple" else "OnePollSelector"
    assert system.ask("s/a", "which?") == expected
    assert transport_selector() == own  # the test's process is the program's own


class Watcher(Actor):  # type: ignore[misc]
    """A raw Thespian actor that asks to watch something that is not a file."""

    def receiveMessage(self, msg: Any, sender: Any) -> Any:
        if msg == "watch nothing":
            self.send(sender, "watching")
            return ThespianWatch([None])
        if msg == "ping":
            self.send(sender, "pong")
        return None


class Say(msgspec.Struct, frozen=True):
    text: str


class Relay(ManagedActor):
    """Passes what it is told to a raw Thespian child it created (forked from its process)."""

    watcher: Any = None

    def receiveMsg_Say(self, msg: Say, sender: Any) -> None:
        if self.watcher is None:
            self.watcher = self.createActor(Watcher)
        self.asker = sender
        self.send(self.watcher, msg.text)

    def receiveMsg_str(self, msg: str, sender: Any) -> None:
        self.reply(self.asker, msg)


def test_a_raw_child_that_watches_no_file_goes_on_as_thespian_lets_it(make_system: Any) -> None:
    # Thespian drops a watched object that has no descriptor when its selector refuses it
    # with a ValueError; the child, forked from an actor's process, waits with one poll
    system = make_system(Supervisor("s", children=[Child("r", Relay)]), base="multiproc")
    assert system.ask("s/r", Say("watch nothing"), timeout=10) == "watching"
    assert system.ask("s/r", Say("ping"), timeout=10) == "pong"
