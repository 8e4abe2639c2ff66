"""The soak (``make soak``) in short: 15 s of SIGKILLs under load lose nothing acknowledged."""

from tests.support import run_soak


def test_a_15s_sigkill_storm_loses_no_acknowledged_request_and_applies_none_twice():
    run, figures = run_soak("soak.py", "--seconds", "15", "--seed", "3", timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(figures["acknowledged"]) > 100  # the storm ran under load
    assert int(figures["kills"].split()[0]) >= 5  # and killed processes all along
    assert figures["lost"] == "0" and figures["applied twice"] == "0", run.stdout
