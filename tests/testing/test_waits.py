"""Waiting for events and injecting faults, on real systems of both bases."""

import pytest

from stalwart import Child, LevelPolicy, StalwartError, Supervisor
from stalwart.testing import inject_fault, last_event_seq, wait_for_event, wait_until
from tests.support import Ping, Worker

RETRY = LevelPolicy(basic_attempts=1, basic_delay_s=0.001, enhanced_attempts=0)
TREE = Supervisor("t", children=[Child("w", Worker, levels=RETRY), Child("v", Worker)])


def test_wait_for_event_returns_the_first_event_of_that_kind_at_that_path(stalwart_start, base):
    system = stalwart_start(TREE, base=base, chaos=True)
    inject_fault(system, "t/w")
    assert system.ask("t/w", Ping(1)).n == 1  # failed once, retried at level 1
    failure = wait_for_event(system, "failure", "t/w")
    assert (failure.kind, failure.path, failure.level) == ("failure", "t/w", 1)
    recovered = wait_for_event(system, "recovered")
    assert recovered.path == "t/w" and recovered.seq > failure.seq


def test_wait_for_event_looks_only_after_since(stalwart_start, base):
    system = stalwart_start(TREE, base=base, chaos=True)
    first = inject_fault(system, "t/w")
    second = inject_fault(system, "t/v")
    assert wait_for_event(system, "chaos") == first
    assert wait_for_event(system, "chaos", since=first.seq) == second


def test_wait_for_event_narrows_the_match_with_where(stalwart_start, base):
    system = stalwart_start(TREE, base=base, chaos=True)
    inject_fault(system, "t/w", count=2)
    assert system.ask("t/w", Ping(1)).n == 1
    assert system.ask("t/w", Ping(2)).n == 2
    failures = [e for e in system.events() if e.kind == "failure" and e.path == "t/w"]
    second = wait_for_event(system, "failure", "t/w", where=lambda e: e.seq > failures[0].seq)
    assert second == failures[1]


def test_wait_for_event_fails_listing_the_events_it_saw(stalwart_start, base):
    system = stalwart_start(TREE, base=base, chaos=True)
    fault = inject_fault(system, "t/w")
    with pytest.raises(AssertionError) as info:
        wait_for_event(system, "restart", "t/w", timeout=0.1)
    message = str(info.value)
    assert "no 'restart' event at 't/w' after event #0 within 0.1s" in message
    assert f"#{fault.seq} chaos t/w: raise injected" in message


def test_inject_fault_fails_the_next_message_and_returns_its_chaos_event(stalwart_start, base):
    system = stalwart_start(TREE, base=base, chaos=True)
    fault = inject_fault(system, "t/v")
    assert (fault.kind, fault.path, fault.detail) == ("chaos", "t/v", "raise injected")
    assert system.ask("t/v", Ping(5)).n == 5  # the tree recovered the failed message
    failure = wait_for_event(system, "failure", "t/v", since=fault.seq)
    assert "fault injected by chaos" in failure.detail


def test_inject_fault_kills_an_actors_process_on_the_multi_process_base(stalwart_start):
    system = stalwart_start(TREE, base="multiproc", chaos=True)
    before = system.ask("t/v", Ping(1))
    fault = inject_fault(system, "t/v", kind="kill")
    wait_for_event(system, "restart", "t/v", since=fault.seq)
    after = system.ask("t/v", Ping(2))
    assert after.pid != before.pid and after.incarnation > before.incarnation


def test_inject_fault_is_refused_by_a_system_started_without_chaos(stalwart_start, base):
    system = stalwart_start(TREE, base=base)
    with pytest.raises(StalwartError, match="fault injection is off"):
        inject_fault(system, "t/w")
    wait_for_event(system, "chaos-refused", "t/w")


def test_last_event_seq_numbers_the_latest_event(stalwart_start, base):
    system = stalwart_start(TREE, base=base, chaos=True)
    fault = inject_fault(system, "t/w")
    assert last_event_seq(system) == fault.seq


def test_wait_until_returns_the_first_truthy_value_or_fails_with_the_last():
    values = iter([0, "", "done"])
    assert wait_until(lambda: next(values)) == "done"
    with pytest.raises(AssertionError, match=r"never true within 0.05s \(last: None\)"):
        wait_until(lambda: None, timeout=0.05, message="never true")
