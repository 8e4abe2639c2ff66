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
