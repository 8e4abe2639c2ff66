"""The partition soak in ``make test``: 60 s of partitions that come and go, under load, on
two member hosts (network namespaces), lose nothing acknowledged and apply nothing twice."""

import os
import shutil

import pytest

from tests.support import run_soak


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the member hosts are network namespaces")
@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's ip command")
def test_60s_of_flapping_partitions_lose_nothing_acknowledged_and_apply_nothing_twice():
    run, figures = run_soak("partition_soak.py", "--seconds", "60", "--seed", "7", timeout=170)
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(figures["acknowledged"]) > 1000  # it ran under load
    assert int(figures["nodes declared lost"]) >= 2  # members were cut off long enough to move
    assert figures["lost"] == "0" and figures["applied twice"] == "0", run.stdout
    assert figures["tree still running"] == "yes"
