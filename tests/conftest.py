"""Shared fixtures: every actor system a test starts is shut down, and no process outlives it.

Systems come from the ``stalwart_start`` fixture of our own pytest plugin
(:mod:`stalwart.testing`); ``make_system`` is its older name.
"""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from stalwart.testing import StartSystem

BASES = ["simple", "multiproc"]


@pytest.fixture(params=BASES)
def base(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_system(stalwart_start: StartSystem) -> StartSystem:
    """``make_system(tree, base=..., **options)``: ``stalwart_start`` by its older name."""
    return stalwart_start


@pytest.fixture(scope="session", autouse=True)
def state_dir_of_the_session(tmp_path_factory):
    """Systems, examples and commands the tests start write their files there, never
    into the working directory."""
    os.environ["STALWART_STATE_DIR"] = str(tmp_path_factory.mktemp("stalwart-state"))


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_reaches_the_commands_tests_start():
    """A shell ignores Ctrl-C in what it starts in the background (``make test &`` from a
    script), and that disposition is inherited through exec: the commands the tests send
    SIGINT to would ignore it too. The suite's process takes it back, so they get it as
    a user's commands would."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    """Each test's systems are checked by ``stalwart_start``; this catches the rest (commands,
    examples and clusters the tests run as child processes)."""
    yield
    children = [
        p
        for p in psutil.Process(os.getpid()).children(recursive=True)
        if p.status() != psutil.STATUS_ZOMBIE
    ]
    assert children == [], f"child processes left behind: {children}"
