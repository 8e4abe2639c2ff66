"""The root fails safe, and what it cannot handle becomes a dead letter or a clear error."""

from __future__ import annotations

import json

import msgspec
import pytest

from stalwart import Child, Supervisor, SystemStopped
from stalwart.supervisors import _root
from stalwart.supervisors.messages import GatewayQuery, StateNote
from tests.support import Ping, Worker, wait_for


class Stranger(msgspec.Struct, frozen=True):
    """A message the root has no handler for."""

    note: str


def test_a_message_the_root_cannot_handle_becomes_a_dead_letter(make_system, base):
    system = make_system(Supervisor("app", children=[Child("w", Worker)]), base=base)
    system._transport.tell(system._root, Stranger("hello"))
    letter = wait_for(lambda: next(iter(system.dead_letters()), None))
    assert letter.message == Stranger("hello")
    assert "the root has no handler for Stranger" in letter.error
    assert system.ask("app/w", Ping(1)).n == 1  # and it carries on


def test_an_unknown_question_is_an_error_not_an_answer(make_system, base):
    system = make_system(Supervisor("app", children=[Child("w", Worker)]), base=base)
    reply = system._query(GatewayQuery(999, "status"), 999, 10.0)  # a string, not a query type
    assert reply.error == "BadMessage" and "unknown query type str" in reply.message


@pytest.fixture
def failing_root(monkeypatch):
    """The root fails handling a StateNote (installed before the system starts, so that a
    root in another process has it too)."""

    def fail(self, msg, sender):
        raise RuntimeError("the registry is corrupt")

    monkeypatch.setattr(_root.RootActor, "on_state", fail)
    monkeypatch.setitem(_root._HANDLERS, StateNote, fail)


def test_an_exception_in_the_root_stops_in_order_with_a_final_report(
    failing_root, make_system, base, tmp_path
):
    report = tmp_path / "report.json"
    system = make_system(
        Supervisor("app", children=[Child("w", Worker)]), base=base, report_path=str(report)
    )
    system._transport.tell(system._root, StateNote("app/w", "running", 0, 0))
    wait_for(lambda: system.stopped, timeout=30)
    data = json.loads(report.read_text())
    assert data["reason"].startswith("the root failed: RuntimeError: the registry is corrupt")
    assert any(e["kind"] == "root-fault" for e in data["events"])
    assert {s["path"]: s["state"] for s in data["status"]}["app/w"] == "stopped"
    with pytest.raises(SystemStopped):
        system.ask("app/w", Ping(), timeout=5)
