"""Clusters on loopback: a leader in this process, member nodes in their own processes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from stalwart.cluster import LocalCluster
from stalwart.cluster._netns import Hosts
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
        assert [n.folder for n in c.nodes.values() if os.path.exists(n.folder)] == []


@pytest.fixture
def hosts():
    """Two member hosts, ``b`` and ``c`` (network namespaces), and the leader's address."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the member hosts are network namespaces (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip command to make the member hosts")
    try:
        made = Hosts.make(f"{os.getpid() % 100000}", os.getpid() % 250 + 1, ("b", "c"))
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot make network namespaces here: {' '.join(exc.cmd)}: {exc.stderr}")
    try:
        yield made
    finally:
        made.remove()
