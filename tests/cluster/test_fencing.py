"""Fencing under a real partition: members on hosts of their own (network namespaces on a
bridge), one cut off by taking its link down, then healed.

A member that hears nothing from the leader for ``fence_s`` stops its actors itself; the
leader waits ``fence_s + fence_margin_s`` before it places them elsewhere. So the cut-off
trainer is dead before its replacement starts: nothing serves in two places.
"""

import re
import subprocess
import sys

from stalwart import Child, Supervisor
from stalwart.cluster import LocalCluster
from stalwart.supervisors._bases import session_processes
from tests.cluster.conftest import ROOT
from tests.support import GetLog, Work, Worker, process_gone, wait_for


def actor_processes(sid):
    return [p.pid for p in session_processes(sid) if p.name().startswith("sw:")]


def test_a_member_cut_off_from_the_leader_stops_its_actors_before_they_run_elsewhere(hosts):
    tree = Supervisor(
        "t", max_restarts=10, within_s=60, children=[Child("trainer", Worker, requires={"gpu": 1})]
    )
    members = {"b": ["gpu=1"], "c": ["gpu=1"]}
    with LocalCluster(
        tree, members, cwd=str(ROOT), report_path=None, host=hosts.leader, hosts=hosts.members
    ) as c:
        system = c.system
        before = system.status()["t/trainer"]
        home = before.node
        assert home in members and actor_processes(c.nodes[home].sid) == [before.pid]
        for i in range(3):
            assert system.ask("t/trainer", Work(i), timeout=10).id == i

        hosts.cut(home)  # its link goes down: it can reach no one, and no one reaches it
        moved = wait_for(
            lambda: (
                (s := system.status()["t/trainer"]).state == "running"
                and s.node not in ("", home)
                and s
            ),
            timeout=60,
        )
        line = next(x for x in c.nodes[home].output() if " fenced at " in x)
        fenced_at = float(re.search(r"fenced at ([0-9.]+)", line).group(1))
        assert "stopped 1 actor processes" in line
        lost = next(e for e in system.events() if e.kind == "node-lost")
        assert lost.detail.startswith(f"{home}: no heartbeat for")
        # the cut-off instance was dead before the leader gave up on its node, and so before
        # its replacement was started
        assert process_gone(before.pid)
        restart = next(e for e in system.events() if e.kind == "restart" and e.path == "t/trainer")
        assert fenced_at < lost.time <= restart.time
        silence = float(re.search(r"no heartbeat for ([0-9.]+)s", lost.detail).group(1))
        assert silence >= 2.0 + 1.5  # fence_s + fence_margin_s (the defaults)
        assert system.ask("t/trainer", GetLog(), timeout=10)[:3] == [0, 1, 2]

        hosts.heal(home)
        assert system.ask("t/trainer", Work(7), timeout=10).pid == moved.pid
        assert actor_processes(c.nodes[home].sid) == []  # nothing of it came back to life
        assert [s.path for s in system.status() if s.path.startswith("t/trainer")] == ["t/trainer"]


def test_the_partition_fixture_cuts_and_heals_a_real_link(hosts):
    """The namespaces are real hosts: the link down is a partition, up again heals it."""
    ns = hosts.members["b"][0]

    def reachable():
        probe = ["ip", "netns", "exec", ns, sys.executable, "-c", PROBE, hosts.leader]
        return subprocess.run(probe, capture_output=True, text=True, timeout=30).stdout.strip()

    assert reachable() == "refused"  # the leader's address answers (nothing listens there)
    hosts.cut("b")
    assert reachable() == "timeout"
    hosts.heal("b")
    assert reachable() == "refused"


PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(1.0)
try:
    s.connect((sys.argv[1], 9))
    print("open")
except ConnectionRefusedError:
    print("refused")
except (TimeoutError, socket.timeout, OSError):
    print("timeout")
"""
