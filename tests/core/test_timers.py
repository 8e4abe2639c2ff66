"""An actor's own timers live beside the framework's: neither swallows the other."""

from stalwart import Child, Supervisor
from tests.support import GetLog, StartTicking, Ticker, Worker, wait_for


def test_a_user_timer_does_not_swallow_a_call_timeout(make_system, base):
    tree = Supervisor(
        "s", children=[Child("ticker", Ticker, checkpoint=0.05), Child("silent", Worker)]
    )
    system = make_system(tree, base=base)
    assert system.ask("s/ticker", StartTicking(0.02, "s/silent")) == "started"
    log = wait_for(
        lambda: (lambda r: r if r["call_error"] and r["ticks"] >= 5 else None)(
            system.ask("s/ticker", GetLog())
        )
    )
    assert log["call_error"] == "Timeout"  # the framework's timer fired
    ticks = log["ticks"]
    wait_for(lambda: system.ask("s/ticker", GetLog())["ticks"] > ticks)  # and the user's go on


def test_the_in_process_clock_gives_the_earliest_deadline_and_pops_only_what_is_due():
    """Each actor's earliest deadline counts; a later one never replaces it, an earlier one
    does; due ones come out once (in deadline order), the rest stay."""
    from stalwart.actors._timers import ExternalClock

    clock = ExternalClock()
    assert clock.next_deadline() is None and clock.pop_due(100.0) == []
    for address, deadline in (("a", 5.0), ("b", 3.0), ("c", 9.0), ("a", 7.0), ("c", 1.0)):
        clock.arm(address, deadline)
    assert clock.next_deadline() == 1.0
    assert clock.pop_due(4.0) == ["c", "b"]
    assert clock.next_deadline() == 5.0 and clock.pop_due(4.9) == []
    clock.arm("b", 6.0)
    assert clock.pop_due(10.0) == ["a", "b"] and clock.next_deadline() is None
