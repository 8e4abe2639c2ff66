"""The soak (``make soak``) in short: a SIGKILL storm under load loses nothing acknowledged."""

import pytest

from tests.support import run_soak


def test_a_sigkill_storm_loses_no_acknowledged_request_and_applies_none_twice():
    # the kills of seed 3 (they depend on the seed alone): those of 15 s at the default pace
    # of a kill every 0.5-2 s, twice as fast
    args = ("--seconds", "8", "--seed", "3", "--kill-every", "0.25", "1")
    run, figures = run_soak("soak.py", *args, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(figures["acknowledged"]) > 100  # the storm ran under load
    assert int(figures["kills"].split()[0]) >= 5  # and killed processes all along
    assert figures["lost"] == "0" and figures["applied twice"] == "0", run.stdout


@pytest.mark.parametrize(
    "mode",
    [
        # warm spares take over after the kills; the second branch's accounts are Pool keys
        ("--standby", "--pool"),
        # every account idle for 50 ms is passivated, and the next deposit brings it back
        ("--pool", "--passivate", "0.05"),
        # clients call through teller actors: a crash's lost deposits go straight to a spare
        ("--standby", "--tellers"),
    ],
    ids=["standby-pool", "passivated-pool", "standby-tellers"],
)
def test_the_storm_loses_nothing_with_spares_pools_and_passivation(mode):
    args = ("--seconds", "8", "--seed", "5", "--kill-every", "0.25", "1", *mode)
    run, figures = run_soak("soak.py", *args, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(figures["acknowledged"]) > 50
    assert int(figures["kills"].split()[0]) >= 3
    assert figures["lost"] == "0" and figures["applied twice"] == "0", run.stdout
    if "--standby" in mode:  # spares took over after the kills
        assert int(figures["spare takeovers"].split()[0]) > 0, run.stdout
    if "--passivate" in mode:  # accounts were passivated and brought back meanwhile
        passivated, _, reactivated, *_ = figures["passivations"].split()
        assert int(passivated) > 0 and int(reactivated) > 0, run.stdout
