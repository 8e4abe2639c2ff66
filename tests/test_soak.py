"""The soak (``make soak``) in short: 15 s of SIGKILLs under load lose nothing acknowledged."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_15s_sigkill_storm_loses_no_acknowledged_request_and_applies_none_twice():
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--seconds", "15", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    figures = dict(
        re.split(r"\s{2,}", line.strip(), maxsplit=1)
        for line in run.stdout.splitlines()
        if line.startswith("  ")
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(figures["acknowledged"]) > 100  # the storm ran under load
    assert int(figures["kills"].split()[0]) >= 5  # and killed processes all along
    assert figures["lost"] == "0" and figures["applied twice"] == "0", run.stdout
