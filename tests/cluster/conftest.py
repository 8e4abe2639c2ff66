"""Clusters on loopback: a leader in this process, member nodes in their own processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from stalwart.cluster import LocalCluster
from stalwart.supervisors._bases import port_open, session_processes

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster():
    made: list[LocalCluster] = []

    def make(tree, members, **options) -> LocalCluster:
        options.setdefault("report_path", None)
        c = LocalCluster(tree, members, cwd=str(ROOT), **options)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
        ports = [c.leader_port, *(n.port for n in c.nodes.values())]
        assert [p for p in ports if port_open("127.0.0.1", p, 0.2)] == [], "a port stayed open"
        assert [n.name for n in c.nodes.values() if session_processes(n.sid)] == []
