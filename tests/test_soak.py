"""The soak (``make soak``) in short: a SIGKILL storm under load loses nothing acknowledged."""

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
