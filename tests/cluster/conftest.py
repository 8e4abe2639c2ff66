"""Clusters on loopback: a leader in this process, member nodes in their own processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
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


class Hosts:
    """Member hosts beyond this one: network namespaces on a bridge, the leader on the bridge."""

    def __init__(self, tag: str, subnet: int, names: tuple[str, ...]) -> None:
        self.bridge = f"swbr{tag}"
        self.leader = f"10.231.{subnet}.1"
        self.members: dict[str, tuple[str, str]] = {}
        self.links: dict[str, str] = {}
        for i, name in enumerate(names, start=2):
            self.members[name] = (f"sw{tag}{name}", f"10.231.{subnet}.{i}")
            self.links[name] = f"sw{tag}{name}0"

    def commands(self) -> list[list[str]]:
        out = [
            ["ip", "link", "add", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"{self.leader}/24", "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ]
        for name, (ns, address) in self.members.items():
            outer, inner = self.links[name], f"{self.links[name][:-1]}1"
            run_in = ["ip", "netns", "exec", ns]
            out += [
                ["ip", "netns", "add", ns],
                ["ip", "link", "add", outer, "type", "veth", "peer", "name", inner],
                ["ip", "link", "set", inner, "netns", ns],
                ["ip", "link", "set", outer, "master", self.bridge, "up"],
                [*run_in, "ip", "addr", "add", f"{address}/24", "dev", inner],
                [*run_in, "ip", "link", "set", inner, "up"],
                [*run_in, "ip", "link", "set", "lo", "up"],
            ]
        return out

    def cut(self, name: str) -> None:
        """Take ``name``'s link down: a partition."""
        subprocess.run(["ip", "link", "set", self.links[name], "down"], check=True)

    def heal(self, name: str) -> None:
        subprocess.run(["ip", "link", "set", self.links[name], "up"], check=True)

    def remove(self) -> None:
        for ns, _ in self.members.values():
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for link in (*self.links.values(), self.bridge):
            subprocess.run(["ip", "link", "del", link], capture_output=True)


@pytest.fixture
def hosts():
    """Two member hosts, ``b`` and ``c`` (network namespaces), and the leader's address."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the member hosts are network namespaces (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip command to make the member hosts")
    tag = f"{os.getpid() % 100000}"
    made = Hosts(tag, os.getpid() % 250 + 1, ("b", "c"))
    try:
        for command in made.commands():
            subprocess.run(command, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        made.remove()
        pytest.skip(f"cannot make network namespaces here: {' '.join(exc.cmd)}: {exc.stderr}")
    try:
        yield made
    finally:
        made.remove()
