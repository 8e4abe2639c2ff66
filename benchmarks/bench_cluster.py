"""A cluster on loopback: cross-node round trips, and how fast a lost node's actors move.

Peers: the same round trips between two actors of one node on ``multiprocTCPBase``;
for detection, Thespian's own rule (a member is dropped after 3 missed
re-registrations of 7 min 22 s: about 22 minutes), which is computed, not run.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from _report import Figure, Row, percentile, print_rows
from bench_core import Go, ManagedDriver, ManagedEcho, Ping

from stalwart import Child, LevelPolicy, StalwartError, Supervisor
from stalwart.cluster import LocalCluster
from stalwart.cluster._netns import Hosts

HERE = str(Path(__file__).resolve().parent)  # member nodes import bench_core from here
ROUND_TRIPS, REPEATS, FAILOVERS, ASKS, PARTITIONS = 2000, 3, 6, 300, 4
THESPIAN_DETECTION_S = 3 * (7 * 60 + 22)


def _round_trips(**where: Any) -> tuple[float, float, float]:
    """Best round trips/s from a driver on the leader to an actor there and to one on
    member ``b``; and the p50 of a ``System.ask`` to the latter (ms)."""
    tree = Supervisor(
        "rt",
        children=[
            Child("driver", ManagedDriver),
            Child("near", ManagedEcho),
            Child("far", ManagedEcho, requires={"remote": True}),
        ],
    )
    with LocalCluster(tree, {"b": ["remote=true"]}, cwd=HERE, report_path=None, **where) as c:
        system = c.system
        assert system is not None and system.status()["rt/far"].node == "b"
        for path in ("rt/near", "rt/far"):
            system.ask("rt/driver", Go(100, path=path), timeout=60)  # warm up
        time.sleep(3.0)  # let start-up connections close
        near, far = [], []
        for _ in range(REPEATS):
            near.append(system.ask("rt/driver", Go(ROUND_TRIPS, "rt/near"), timeout=120).per_second)
            far.append(system.ask("rt/driver", Go(ROUND_TRIPS, "rt/far"), timeout=120).per_second)
        asks = []
        for _ in range(ASKS):
            started = time.perf_counter()
            system.ask("rt/far", Ping(), timeout=10)
            asks.append(1000 * (time.perf_counter() - started))
    return max(near), max(far), percentile(asks, 50)


def round_trip_rows() -> list[Row | Figure]:
    near, far, ask_ms = _round_trips()
    rows: list[Row | Figure] = [
        Row(
            f"round trips/s, actor on another node (best of {REPEATS})",
            far,
            "same node",
            near,
            "msg/s",
            better="higher",
        )
    ]
    if os.geteuid() != 0 or shutil.which("ip") is None:
        why = "needs root and iproute2 for the member host's network namespace"
        return [*rows, Figure("round trips/s, actor on another host", float("nan"), "", why)]
    hosts = Hosts.make(f"b{os.getpid() % 10000}", os.getpid() % 250 + 1, ("b",))
    try:
        _, remote, remote_ask = _round_trips(host=hosts.leader, hosts=hosts.members)
    finally:
        hosts.remove()
    return [
        *rows,
        Row(
            "round trips/s, actor on another host (netns + veth)",
            remote,
            "another node, same host",
            far,
            "msg/s",
            better="higher",
        ),
        Row(
            "System.ask p50, actor on another host",
            remote_ask,
            "another node, same host",
            ask_ms,
            "ms",
            better="lower",
        ),
    ]


MEMBERS = {"b": ["gpu=1"], "c": ["gpu=1"]}  # either can host the service


def service_tree() -> Supervisor:
    """``f/svc``, which either member can host; each loss of it is a fresh incident (a
    quiet second resets its ladder to level 3)."""
    levels = LevelPolicy(quiet_period_s=1.0)
    return Supervisor(
        "f",
        max_restarts=50,
        within_s=60,
        children=[Child("svc", ManagedEcho, requires={"gpu": 1}, levels=levels)],
    )


def failover_rows() -> list[Row | Figure]:
    detection, failover = [], []
    with LocalCluster(service_tree(), MEMBERS, cwd=HERE, report_path=None) as c:
        system = c.system
        assert system is not None
        for _ in range(FAILOVERS):
            took = _one_node_loss(c, system)
            detection.append(took[0])
            failover.append(took[1])
    return [
        Row(
            f"node loss declared, p50 of {FAILOVERS}",
            percentile(detection, 50),
            "Thespian alone (computed)",
            THESPIAN_DETECTION_S,
            "s",
        ),
        Figure("node loss declared, p95", percentile(detection, 95), "s"),
        Figure(
            "crash -> moved actor serves again, p50",
            percentile(failover, 50),
            "s",
            f"p95 {percentile(failover, 95):.2f} s",
        ),
    ]


def _until(done: Callable[[], bool], what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {within:g} s")
        time.sleep(0.01)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _serves_elsewhere(system: Any, home: str) -> bool:
    try:
        system.ask("f/svc", Ping(), timeout=0.5)
    except StalwartError:
        return False
    return bool(system.status()["f/svc"].node != home)


def _one_partition(system: Any, hosts: Hosts) -> tuple[float, float]:
    """Cut the service's host off; (seconds until it fenced itself, until the service
    answered from the other host). Healed, the host has rejoined when this returns."""
    before = system.status()["f/svc"]
    home = before.node
    cut = time.monotonic()
    hosts.cut(home)
    try:
        _until(lambda: _gone(before.pid), f"{home} did not fence itself")
        fenced = time.monotonic() - cut
        _until(lambda: _serves_elsewhere(system, home), "f/svc did not move")
        moved = time.monotonic() - cut
    finally:
        hosts.heal(home)
    _rejoined(system, home)
    return fenced, moved


def _rejoined(system: Any, home: str) -> None:
    _until(lambda: {n.name: n.state for n in system.nodes()}.get(home) == "up", "no rejoin")
    time.sleep(1.0)  # the quiet period: each loss is a fresh incident


def _one_node_loss(c: LocalCluster, system: Any) -> tuple[float, float]:
    """SIGKILL the service's node; (seconds until the node was declared lost, until the
    service answered from the other one). The node has rejoined when this returns."""
    home = system.status()["f/svc"].node
    port = c.nodes[home].port
    seen = system.events()[-1].seq if system.events() else 0
    killed = time.time()
    c.nodes[home].kill()
    _until(lambda: _serves_elsewhere(system, home), f"f/svc did not move after {home} died")
    moved = time.time() - killed
    lost = next(e for e in system.events(seen) if e.kind == "node-lost")
    c.join(home, MEMBERS[home], port)
    _rejoined(system, home)
    return lost.time - killed, moved


def partition_rows() -> list[Row | Figure]:
    """Cut the link of the service's host (defaults: ``fence_s`` 2, margin 1.5): how long
    until that host has fenced itself, and until the service answers from the other one."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        why = "needs root and iproute2 for the member hosts' network namespaces"
        return [Figure("link down -> member fenced itself", float("nan"), "", why)]
    fenced, failover = [], []
    hosts = Hosts.make(f"f{os.getpid() % 10000}", (os.getpid() + 7) % 250 + 1, tuple(MEMBERS))
    try:
        with LocalCluster(
            service_tree(),
            MEMBERS,
            cwd=HERE,
            report_path=None,
            host=hosts.leader,
            hosts=hosts.members,
        ) as c:
            system = c.system
            assert system is not None
            for _ in range(PARTITIONS):
                took = _one_partition(system, hosts)
                fenced.append(took[0])
                failover.append(took[1])
    finally:
        hosts.remove()
    return [
        Figure(
            f"link down -> member fenced itself, p50 of {PARTITIONS}",
            percentile(fenced, 50),
            "s",
            "Thespian alone: never (the cut-off actor runs on)",
        ),
        Row(
            f"link down -> actor serves on the other host, p50 of {PARTITIONS}",
            percentile(failover, 50),
            "Thespian alone (computed)",
            THESPIAN_DETECTION_S,
            "s",
        ),
    ]


def run() -> None:
    rows = round_trip_rows() + failover_rows() + partition_rows()
    print_rows("cluster: three nodes on loopback (multiprocTCPBase)", rows)
