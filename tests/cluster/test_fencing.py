"""Fencing under a real partition: members on hosts of their own (network namespaces on a
bridge), one cut off by taking its link down, then healed.

A member that hears nothing from the leader for ``fence_s`` stops its actors itself; the
leader waits ``fence_s + fence_margin_s`` before it places them elsewhere. So the cut-off
trainer is dead before its replacement starts: nothing serves in two places.
"""

import re
import subprocess
import sys

import psutil
import pytest

from stalwart import Child, RecoveryRequest, StalwartError, Supervisor
from stalwart.cluster import LocalCluster
from stalwart.supervisors._bases import session_processes
from tests.cluster.conftest import ROOT
from tests.support import GetLog, Work, Worker, process_gone, sigkill, wait_for


def named(p: psutil.Process) -> str:
    """``p``'s name ("" if it exits while it is looked at: gone, not an error)."""
    try:
        return p.name()
    except psutil.NoSuchProcess:
        return ""


def actor_processes(sid):
    return [p.pid for p in session_processes(sid) if named(p).startswith("sw:")]


MEMBERS = {"b": ["gpu=1"], "c": ["gpu=1"]}


def trainer_on_hosts(hosts, *others: Child) -> LocalCluster:
    """A leader and members b and c on hosts of their own; the trainer on one of them has
    handled steps 0, 1 and 2."""
    children = [*others, Child("trainer", Worker, requires={"gpu": 1})]
    tree = Supervisor("t", max_restarts=10, within_s=60, children=children)
    c = LocalCluster(
        tree, MEMBERS, cwd=str(ROOT), report_path=None, host=hosts.leader, hosts=hosts.members
    )
    try:
        for i in range(3):
            assert c.system.ask("t/trainer", Work(i), timeout=10).id == i
    except BaseException:
        c.stop()
        raise
    return c


def test_a_member_cut_off_from_the_leader_stops_its_actors_before_they_run_elsewhere(hosts):
    with trainer_on_hosts(hosts) as c:
        system = c.system
        before = system.status()["t/trainer"]
        home = before.node
        assert home in MEMBERS and actor_processes(c.nodes[home].sid) == [before.pid]

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

        # healed, the member rejoins and takes placements again: with the other member gone,
        # the trainer comes back to it, its steps with it
        wait_for(lambda: {n.name: n.state for n in system.nodes()}[home] == "up", timeout=60)
        c.nodes[moved.node].kill()
        back = wait_for(
            lambda: (s := system.status()["t/trainer"]).state == "running" and s.node == home and s,
            timeout=60,
        )
        assert actor_processes(c.nodes[home].sid) == [back.pid]
        assert system.ask("t/trainer", GetLog(), timeout=10)[:4] == [0, 1, 2, 7]


def test_a_leader_cut_off_from_every_member_keeps_serving_and_takes_them_back(hosts):
    """The leader's side of a partition: every member fences itself; the leader's own
    children serve on, the members' wait for a node; healed, the members rejoin and the
    waiting child is placed again, its steps with it."""
    with trainer_on_hosts(hosts, Child("db", Worker)) as c:
        system = c.system
        before = system.status()["t/trainer"]
        for name in MEMBERS:  # the leader's host is cut off from both
            hosts.cut(name)
        waiting = wait_for(lambda: system.status()["t/trainer"].state == "waiting", timeout=60)
        assert waiting and system.status().phase == "running"  # a lost node is an outage
        assert system.ask("t/db", Work(50), timeout=10).id == 50  # the leader's side serves
        for name in MEMBERS:  # each member fenced itself: nothing of the tree runs there
            wait_for(lambda n=name: any(" fenced at " in x for x in c.nodes[n].output()))
            assert actor_processes(c.nodes[name].sid) == []
        assert process_gone(before.pid)

        for name in MEMBERS:
            hosts.heal(name)
        wait_for(
            lambda: all(n.state == "up" for n in system.nodes() if n.name in MEMBERS), timeout=60
        )
        back = wait_for(
            lambda: (s := system.status()["t/trainer"]).state == "running" and s, timeout=60
        )
        assert back.node in MEMBERS and back.pid != before.pid
        assert system.ask("t/trainer", GetLog(), timeout=10)[:3] == [0, 1, 2]
        # one trainer, on one node: an instance whose placement the partition held up and
        # that starts once the link is back was replaced meanwhile, and is stopped as soon
        # as it reports in
        wait_for(
            lambda: [pid for n in MEMBERS for pid in actor_processes(c.nodes[n].sid)] == [back.pid],
            timeout=30,
        )
        assert system.status()["t/trainer"].pid == back.pid


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


def test_a_slow_link_is_not_a_partition(hosts):
    """150 ms each way, give or take 50 ms (a link across a WAN): with the default detector
    settings no member fences itself and no node is declared lost; the trainer answers from
    where it was throughout (20 asks of at least 300 ms each: past the 3.5 s window)."""
    missing = hosts.netem_missing()
    if missing:
        pytest.skip(missing)
    with trainer_on_hosts(hosts) as c:
        system = c.system
        before = system.status()["t/trainer"]
        hosts.delay(before.node, 150, 50)
        try:
            for i in range(3, 23):
                assert system.ask("t/trainer", Work(i), timeout=10).pid == before.pid
        finally:
            hosts.heal(before.node)
        assert [e for e in system.events() if e.kind == "node-lost"] == []
        assert not any(" fenced at " in line for n in MEMBERS for line in c.nodes[n].output())
        assert system.ask("t/trainer", GetLog(), timeout=10) == list(range(23))


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


def sw_processes(c, name):
    """The pids of the processes named ``sw:<name>`` on the members (one that exits while
    it is looked at is gone, not an error)."""
    return [
        p.pid
        for node in c.nodes.values()
        for p in session_processes(node.sid)
        if named(p) == f"sw:{name}"
    ]


def test_a_restarted_node_monitor_keeps_watching_the_nodes_and_fences_none(cluster):
    tree = Supervisor("t", children=[Child("trainer", Worker, requires={"gpu": 1})])
    c = cluster(tree, {"b": ["gpu=1"], "c": ["gpu=1"]})
    system = c.system
    trainer = system.status()["t/trainer"].pid
    monitor = system.status()["_system/nodes"].pid
    sigkill(monitor)
    wait_for(
        lambda: (s := system.status()["_system/nodes"]).state == "running" and s.pid != monitor,
        timeout=30,
    )
    # the new monitor hears from both agents for longer than fence_s + fence_margin_s
    wait_for(lambda: all(n.heartbeats >= 8 for n in system.nodes() if not n.leader), timeout=30)
    assert [e for e in system.events() if e.kind == "node-lost"] == []
    assert not any(" fenced at " in line for n in c.nodes.values() for line in n.output())
    assert system.status()["t/trainer"].pid == trainer


def test_a_replaced_node_monitor_leaves_though_agents_it_placed_died_with_their_nodes(cluster):
    c = cluster(Supervisor("t", children=[Child("db", Worker)]), {"b": [], "c": []})
    system = c.system
    for name in MEMBERS:  # the agents the monitor placed there die with them
        c.nodes[name].kill()
    wait_for(
        lambda: [n.state for n in system.nodes() if not n.leader] == ["lost", "lost"], timeout=30
    )
    monitor = system.status()["_system/nodes"].pid
    assert system.request_recovery(RecoveryRequest("_system/nodes", 3, "replace it")).ok
    wait_for(
        lambda: (s := system.status()["_system/nodes"]).state == "running" and s.pid != monitor,
        timeout=30,
    )
    # it forwards to its successor for a while, then leaves: it does not wait for the dead
    # agents to say they left (it used to, for ever, whenever one of them was not the last
    # it had placed)
    wait_for(lambda: process_gone(monitor), timeout=30)


def lost_nodes(system):
    """The nodes the leader has declared lost so far (its events say "<node>: why")."""
    return {e.detail.split(":", 1)[0] for e in system.events() if e.kind == "node-lost"}


def answers(system, path):
    try:
        return system.ask(path, GetLog(), timeout=10) is not None
    except StalwartError:  # (not placed again yet)
        return False


def test_a_stalled_leader_never_gets_an_actor_running_twice(cluster):
    tree = Supervisor("t", children=[Child("trainer", Worker, requires={"gpu": 1})])  # defaults
    c = cluster(tree, {"b": ["gpu=1"], "c": ["gpu=1"]})
    system = c.system
    monitor = psutil.Process(system.status()["_system/nodes"].pid)
    monitor.suspend()  # the leader hears no heartbeat and answers none: both members fence
    try:
        wait_for(
            lambda: all(any(" fenced at " in x for x in n.output()) for n in c.nodes.values()),
            timeout=30,
        )
    finally:
        monitor.resume()
    # each member tells the leader it fenced itself: both are lost (they rejoin soon after,
    # so what is checked is what the leader recorded, not a state that lasts a moment)
    wait_for(lambda: lost_nodes(system) >= {"b", "c"}, timeout=30)
    lost = [e.detail for e in system.events() if e.kind == "node-lost"]
    assert any("it fenced itself" in d for d in lost), lost
    # once they are back the trainer serves again from one of them, and only one runs: an
    # instance started on a fenced member meanwhile refused to run and is gone
    wait_for(lambda: answers(system, "t/trainer"), timeout=60, explain=lambda: story(system))
    wait_for(lambda: len(sw_processes(c, "trainer")) == 1, timeout=30)
    assert not system.stopped  # an outage: nothing escalated


def story(system):
    """The nodes and the trainer's events: what a failure to serve again needs explained."""
    nodes = [(n.name, n.state) for n in system.nodes()]
    kinds = ("node-", "placed", "restart", "crash", "start-failure", "fenced")
    events = [
        f"{e.time:.1f} {e.kind} {e.path} {e.detail}"
        for e in system.events()
        if e.kind.startswith(kinds) or e.path == "t/trainer"
    ]
    return f"nodes {nodes}; events:\n" + "\n".join(events[-60:])
