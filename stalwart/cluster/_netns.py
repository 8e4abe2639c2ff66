"""Hosts beyond this one for a cluster on one machine: network namespaces on a bridge.

Each member host is a network namespace with an address of its own on a bridge; the
leader has the bridge's address. Taking a member's link down is a real partition, as
is delaying it with ``tc netem``. Needs root and iproute2; for tests and benchmarks,
on networks made for the purpose (10.231.x.0/24), sending nothing beyond them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


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

    @classmethod
    def make(cls, tag: str, subnet: int, names: tuple[str, ...]) -> Hosts:
        """Create the bridge and a namespace per name (removed again if that fails)."""
        made = cls(tag, subnet, names)
        try:
            for command in made.commands():
                subprocess.run(command, check=True, capture_output=True, text=True)
        except BaseException:
            made.remove()
            raise
        return made
