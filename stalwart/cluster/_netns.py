"""Hosts beyond this one for a cluster on one machine: network namespaces on a bridge.

Each member host is a network namespace with an address of its own on a bridge; the
leader has the bridge's address. Taking a member's link down is a real partition, as
is delaying it with ``tc netem``. Needs root and iproute2; for tests and benchmarks,
on networks made for the purpose (10.231.x.0/24), sending nothing beyond them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
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
        """Bring ``name``'s link back up, without the delay :meth:`delay` added."""
        subprocess.run(["ip", "link", "set", self.links[name], "up"], check=True)
        for tc, link in self._sides(name):
            subprocess.run([*tc, "qdisc", "del", "dev", link, "root"], capture_output=True)

    def delay(self, name: str, ms: float, jitter_ms: float = 0.0) -> None:
        """Delay what goes to and from ``name`` by ``ms`` each way (give or take
        ``jitter_ms``) with ``tc netem``: a slow network. Raises RuntimeError naming the
        cause if that cannot be done (see :meth:`netem_missing`)."""
        netem = ["netem", "delay", f"{ms:g}ms", *([f"{jitter_ms:g}ms"] if jitter_ms else [])]
        for tc, link in self._sides(name):
            done = subprocess.run(
                [*tc, "qdisc", "replace", "dev", link, "root", *netem],
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise RuntimeError(f"tc netem on {link}: {done.stderr.strip()}")

    def _sides(self, name: str) -> list[tuple[list[str], str]]:
        """``tc`` and the link on the bridge's side, and inside ``name``'s namespace."""
        outer, ns = self.links[name], self.members[name][0]
        return [(["tc"], outer), (["ip", "netns", "exec", ns, "tc"], f"{outer[:-1]}1")]

    def remove(self) -> None:
        for ns, _ in self.members.values():
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for link in (*self.links.values(), self.bridge):
            subprocess.run(["ip", "link", "del", link], capture_output=True)

    @staticmethod
    def netem_missing() -> str:
        """Why ``tc netem`` cannot delay links here ("" if it can)."""
        if shutil.which("tc") is None:
            return "needs iproute2's tc command to delay links"
        probe = f"swnetem{os.getpid() % 100000}"
        subprocess.run(
            ["ip", "link", "add", probe, "type", "veth", "peer", "name", f"{probe}p"],
            capture_output=True,
        )
        try:
            done = subprocess.run(
                ["tc", "qdisc", "add", "dev", probe, "root", "netem", "delay", "1ms"],
                capture_output=True,
                text=True,
            )
        finally:
            subprocess.run(["ip", "link", "del", probe], capture_output=True)
        if done.returncode:
            return f"the kernel has no netem queueing discipline (sch_netem): {done.stderr.strip()}"
        return ""

    @classmethod
    def make(cls, tag: str, subnet: int, names: tuple[str, ...]) -> Hosts:
        """Create the bridge and a namespace per name (removed again if that fails), on
        10.231.``subnet``.0/24 or, if an interface here has an address there already (hosts
        made by another process), on the next subnet that is free."""
        with open(_LOCK, "a") as lock:  # (two processes never pick the same subnet)
            fcntl.flock(lock, fcntl.LOCK_EX)
            made = cls(tag, _free_subnet(subnet), names)
            try:
                for command in made.commands():
                    subprocess.run(command, check=True, capture_output=True, text=True)
            except BaseException:
                made.remove()
                raise
        return made


_LOCK = "/run/stalwart-netns.lock" if os.access("/run", os.W_OK) else "/tmp/stalwart-netns.lock"


def _free_subnet(preferred: int) -> int:
    """The first of 10.231.1-250.0/24, from ``preferred`` on, no interface here is on."""
    shown = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True)
    used = {int(w.split(".")[2]) for w in shown.stdout.split() if w.startswith("10.231.")}
    for step in range(250):
        subnet = (preferred - 1 + step) % 250 + 1
        if subnet not in used:
            return subnet
    raise RuntimeError("every subnet of 10.231.0.0/16 is in use here")
