"""Three nodes on loopback: placement by capability, a node SIGKILLed, its actors moved."""

import threading
import time

import psutil

from stalwart import Child, StalwartError, Supervisor
from stalwart.supervisors._bases import session_processes
from tests.support import (
    AnswerThenStop,
    Chatter,
    GetLog,
    Note,
    OrderLog,
    Ping,
    Say,
    Work,
    Worker,
    wait_for,
)

GPU_NODES = {"b": ["gpu=1", "zone=b"], "c": ["gpu=2", "zone=c"]}


def shop() -> Supervisor:
    return Supervisor(
        "t",
        max_restarts=10,
        within_s=60,
        children=[
            Child("db", Worker),
            Child("trainer", Worker, requires={"gpu": 1}, depends_on=["db"]),
            Child("reporter", Worker, requires={"zone": "c"}),
        ],
    )


def test_children_are_placed_by_capability_and_moved_when_their_node_dies(cluster):
    c = cluster(shop(), GPU_NODES)
    system = c.system
    status = system.status()
    assert status["t/db"].node == "leader" and status["t"].node == "leader"
    assert status["t/reporter"].node == "c"
    home = status["t/trainer"].node
    assert home in ("b", "c")
    nodes = {n.name: n for n in system.nodes()}
    assert {n: nodes[n].state for n in nodes} == {"leader": "up", "b": "up", "c": "up"}
    assert nodes["b"].capabilities["gpu"] == 1 and nodes["leader"].leader

    for node in c.nodes.values():  # every socket of a member stays on loopback
        listening = [
            conn.laddr.ip
            for proc in session_processes(node.sid)
            for conn in proc.net_connections("tcp")
            if conn.status == psutil.CONN_LISTEN
        ]
        assert listening and set(listening) == {"127.0.0.1"}, (node.name, listening)
    for i in range(3):
        assert system.ask("t/trainer", Work(i), timeout=10).id == i
    old_pid = status["t/trainer"].pid

    # a client keeps asking through the failover
    outcomes: list[object] = []
    stop = threading.Event()

    def client() -> None:
        n = 100
        while not stop.is_set():
            n += 1
            try:
                outcomes.append(system.ask("t/trainer", Work(n), timeout=8))
            except StalwartError as exc:  # a clear error is an acceptable answer
                outcomes.append(exc)
            except Exception as exc:  # anything else is not
                outcomes.append(("unexpected", exc))
            time.sleep(0.02)

    asking = threading.Thread(target=client)
    asking.start()
    wait_for(lambda: len(outcomes) >= 3)  # the client is being answered
    killed_at = time.time()
    c.nodes[home].kill()
    moved = wait_for(
        lambda: (s := system.status()["t/trainer"]).state == "running" and s.node != home and s,
        timeout=30,
    )
    # the client is answered again, by the moved trainer
    wait_for(lambda: [o for o in outcomes if type(o).__name__ == "Done" and o.pid == moved.pid])
    stop.set()
    asking.join(30)

    survivor = moved.node
    assert survivor in ("b", "c") and survivor != home
    assert not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == "zombie"
    # its checkpoint came along: what it handled before the crash is still there
    log = system.ask("t/trainer", GetLog(), timeout=10)
    assert log[:3] == [0, 1, 2]
    # every request got a reply or a clear error, and the service answered again
    assert [o for o in outcomes if isinstance(o, tuple)] == []
    assert any(type(o).__name__ == "Done" for o in outcomes[-3:]), outcomes[-5:]
    # the loss was declared by the failure detector within seconds, and recorded
    events = system.events()
    lost = next(e for e in events if e.kind == "node-lost")
    assert lost.detail.startswith(f"{home}: no heartbeat for") and "t/trainer" in lost.detail
    assert lost.time - killed_at < 10
    crash = next(e for e in events if e.kind == "crash" and e.path == "t/trainer")
    assert crash.level == 3 and f"node {home} lost" in crash.detail
    assert any(e.kind == "restart" and e.path == "t/trainer" and e.level == 3 for e in events)
    assert {n.name: n.state for n in system.nodes()}[home] == "lost"
    # nothing ran twice: one trainer, on one node
    assert [s.path for s in system.status() if s.path.startswith("t/trainer")] == ["t/trainer"]
    if home == "c":  # the reporter needed zone=c: no live node has it
        assert system.status()["t/reporter"].state in ("failed", "stopped", "restarting")


def test_a_node_that_comes_back_rejoins_and_takes_new_placements(cluster):
    members = {"b": ["gpu=1"], "c": ["gpu=1"]}
    tree = Supervisor("t", children=[Child("trainer", Worker, requires={"gpu": 1})])
    c = cluster(tree, members)
    system = c.system
    home = system.status()["t/trainer"].node
    port = c.nodes[home].port
    c.nodes[home].kill()
    wait_for(lambda: system.status()["t/trainer"].node not in ("", home), timeout=30)
    other = system.status()["t/trainer"].node
    c.join(home, members[home], port)  # the same name and address, a new process
    wait_for(lambda: {n.name: n.state for n in system.nodes()}[home] == "up", timeout=30)
    assert any(e.kind == "node-joined" and e.detail.startswith(home) for e in system.events())
    assert system.ask("t/trainer", Work(6), timeout=10).id == 6
    c.nodes[other].kill()  # now only the node that came back offers a gpu
    placed = wait_for(
        lambda: (s := system.status()["t/trainer"]).state == "running" and s.node == home and s,
        timeout=30,
    )
    assert placed.restarts == 2
    assert system.ask("t/trainer", GetLog(), timeout=10) == [6]  # its checkpoint, once
    assert system.ask("t/trainer", Work(7), timeout=10).id == 7


def test_a_child_no_live_node_can_host_waits_for_one_while_the_rest_serves(cluster):
    tree = Supervisor(
        "t", children=[Child("trainer", Worker, requires={"gpu": 1}), Child("other", Worker)]
    )
    c = cluster(tree, {"b": ["gpu=1"]}, root_max_restarts=0)
    system = c.system
    assert system.status()["t/trainer"].node == "b"
    c.nodes["b"].kill()
    pending = wait_for(
        lambda: next((e for e in system.events() if e.kind == "placement-pending"), None),
        timeout=30,
    )
    assert "no live node satisfies requires {'gpu': 1}" in pending.detail
    assert "lost: b" in pending.detail
    assert system.status()["t/trainer"].state == "waiting"
    # a lost node is an outage like any other: nothing escalates, the rest of the tree serves
    assert system.ask("t/other", Ping(5), timeout=10).n == 5
    assert not system.stopped
    assert not any(e.kind in ("escalate", "level5") for e in system.events())
    # a node that offers a gpu joins: the trainer is placed there and serves again
    c.join("c", ["gpu=1"])
    wait_for(lambda: system.status()["t/trainer"].state == "running", timeout=30)
    assert system.ask("t/trainer", Ping(6), timeout=10).n == 6
    assert system.status()["t/trainer"].node == "c"


def test_a_member_whose_actors_print_a_lot_keeps_serving_and_its_output_is_kept(cluster):
    tree = Supervisor("t", children=[Child("chatter", Chatter, requires={"gpu": 1})])
    c = cluster(tree, {"b": ["gpu=1"]})
    system = c.system
    assert system.status()["t/chatter"].node == "b"
    for i in range(4):  # 64 KiB to each stream per ask: a pipe nobody reads is full at once
        assert system.ask("t/chatter", Say(64, f"said {i}"), timeout=10) == 2 * 64 * 1024
    wait_for(lambda: c.nodes["b"].output().count("said 3\n") == 2)  # stdout and stderr
    assert len(c.nodes["b"].output()) <= 1000  # the last lines, not everything
    assert {n.name: n.state for n in system.nodes()}["b"] == "up"
    assert not any(e.kind == "node-lost" for e in system.events())


def test_tells_to_an_actor_on_a_lost_node_are_handled_once_in_order_where_it_moves(cluster):
    members = {"b": ["gpu=1"], "c": ["gpu=1"]}
    tree = Supervisor("t", children=[Child("log", OrderLog, requires={"gpu": 1})])
    c = cluster(tree, members)
    system = c.system
    home = system.status()["t/log"].node
    for n in range(20):
        system.tell("t/log", Note(n))
    assert system.ask("t/log", GetLog(), timeout=10) == list(range(20))
    for n in range(20, 40):
        system.tell("t/log", Note(n))  # some handled, some queued or on their way: then lost
    c.nodes[home].kill()
    # its supervisor kept the state with the marks; what it had not confirmed goes again
    log = system.ask("t/log", GetLog(), timeout=60)
    assert log == list(range(40)) and system.status()["t/log"].node not in ("", home)


def test_a_sigkill_of_the_supervisor_of_an_actor_on_another_node_loses_none_of_its_steps(
    cluster,
):
    """The actor on the member keeps its checkpoints with its supervisor on the leader (a
    file on the member's host would be lost with that host). A SIGKILL of that supervisor
    right after the answers must not take the acknowledged steps with it."""
    tree = Supervisor(
        "t",
        children=[Supervisor("sub", children=[Child("trainer", Worker, requires={"gpu": 1})])],
    )
    c = cluster(tree, {"b": ["gpu=1"]})
    system = c.system
    before = system.status()
    assert before["t/sub/trainer"].node == "b" and before["t/sub"].node == "leader"
    for i in range(5):
        assert system.ask("t/sub/trainer", Work(i), timeout=10).id == i
    psutil.Process(before["t/sub"].pid).kill()
    wait_for(
        lambda: (
            (s := system.status()["t/sub/trainer"]).state == "running"
            and s.pid != before["t/sub/trainer"].pid
        ),
        timeout=60,
    )
    assert system.ask("t/sub/trainer", GetLog(), timeout=10) == [0, 1, 2, 3, 4]


def test_an_actor_on_another_node_that_answers_then_stops_itself_gets_its_answer_out(cluster):
    """Its answer waits for its checkpoint to reach the supervisor; the stop must not
    overtake it (the successor would make that checkpoint a replaced instance's)."""
    c = cluster(shop(), GPU_NODES)
    system = c.system
    before = system.status()["t/trainer"]
    assert system.ask("t/trainer", Work(1), timeout=10).id == 1
    assert system.ask("t/trainer", AnswerThenStop(), timeout=10) == "stopping"
    wait_for(
        lambda: (s := system.status()["t/trainer"]).state == "running" and s.pid != before.pid,
        timeout=60,
    )
    assert system.ask("t/trainer", GetLog(), timeout=10) == [1, -1]  # its state went along
