"""The partition soak in ``make test``: partitions that come and go, under load, on two
member hosts (network namespaces), lose nothing acknowledged and apply nothing twice."""

import os
import re
import shutil

import pytest

from tests.support import run_soak


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the member hosts are network namespaces")
@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's ip command")
def test_flapping_partitions_lose_nothing_acknowledged_and_apply_nothing_twice():
    # The partitions of seed 7 (they depend on the seed alone) are those of a 60 s run at
    # the default calm of 2-5 s between them: 9, 4 of them of 4-8 s (long enough for the
    # member to fence itself and the leader to move its accounts), the rest under 1.5 s.
    # Healed for 1-2 s between them instead (two heartbeats of 0.5 s at least: time to
    # rejoin before the next cut), the 9th starts about 38 s in.
    args = ("--seconds", "42", "--seed", "7", "--calm", "1", "2")
    run, figures = run_soak("partition_soak.py", *args, timeout=170)
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(figures["acknowledged"]) > 1000  # it ran under load
    partitions, long_ones = re.match(r"(\d+) \((\d+) of 4-8 s", figures["partitions"]).groups()
    assert int(partitions) >= 8 and int(long_ones) >= 3, figures["partitions"]  # many of each
    assert int(figures["nodes declared lost"]) >= 2  # members were cut off long enough to move
    assert figures["lost"] == "0" and figures["applied twice"] == "0", run.stdout
    assert figures["tree still running"] == "yes"
