"""Shared fixtures: every actor system a test starts is shut down, and no process outlives it."""

from __future__ import annotations

import os

import psutil
import pytest

from stalwart import start
from stalwart.supervisors._bases import session_processes

BASES = ["simple", "multiproc"]
_sessions: list[int] = []


@pytest.fixture(params=BASES)
def base(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_system(tmp_path):
    """``make_system(tree, base=..., **options)``: a system that is shut down after the test."""
    systems = []

    def make(tree, base="simple", **options):
        options.setdefault("report_path", str(tmp_path / "final-report.json"))
        options.setdefault("state_dir", str(tmp_path / "state"))
        system = start(tree, base=base, **options)
        systems.append(system)
        if system._sid:
            _sessions.append(system._sid)
        return system

    yield make
    for system in systems:
        system.shutdown()
    for system in systems:
        if system._sid:
            assert session_processes(system._sid) == [], "actor processes outlived their system"


@pytest.fixture(scope="session", autouse=True)
def state_dir_of_the_session(tmp_path_factory):
    """Systems, examples and commands the tests start write their files there, never
    into the working directory."""
    os.environ["STALWART_STATE_DIR"] = str(tmp_path_factory.mktemp("stalwart-state"))


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    yield
    leftovers = [p for sid in _sessions for p in session_processes(sid)]
    children = [
        p
        for p in psutil.Process(os.getpid()).children(recursive=True)
        if p.status() != psutil.STATUS_ZOMBIE
    ]
    assert leftovers == [], f"actor processes left behind: {leftovers}"
    assert children == [], f"child processes left behind: {children}"
