"""A tree over three nodes on this host; one node is SIGKILLed and its actor moves.

    python -m examples.cluster

The leader runs here; nodes b and c run ``stalwart node`` in their own processes and
offer a gpu. The trainer needs one, so it runs on b or c. Killing that node's
processes is what losing a host looks like: the heartbeats stop, the failure
detector declares the node lost within seconds, and the trainer is restarted on
the other node with the steps it had trained.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stalwart import Child, StalwartError, Supervisor
from stalwart.cluster import LocalCluster

from .actors import Train, Trainer

ROOT = str(Path(__file__).resolve().parents[2])


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m examples.cluster", description=__doc__).parse_args(argv)
    tree = Supervisor("lab", children=[Child("trainer", Trainer, requires={"gpu": 1})])
    members = {"b": ["gpu=1", "zone=b"], "c": ["gpu=1", "zone=c"]}
    print("starting the leader and nodes b and c on loopback ...")
    with LocalCluster(tree, members, cwd=ROOT, report_path=None) as cluster:
        system = cluster.system
        assert system is not None
        for node in system.nodes():
            print(f"  node {node.name:<7} {node.state:<5} {node.capabilities}")
        for step in (1, 2, 3):
            done = system.ask("lab/trainer", Train(step), timeout=10)
        home = done.node
        print(f"trainer runs on node {home} (pid {done.pid}); trained steps {list(done.steps)}")

        print(f"SIGKILL of every process of node {home} ...")
        killed = time.monotonic()
        cluster.nodes[home].kill()
        while True:
            try:
                done = system.ask("lab/trainer", Train(4), timeout=1)
                break
            except StalwartError:
                time.sleep(0.05)
        took = time.monotonic() - killed
        lost = next(e for e in system.events() if e.kind == "node-lost")
        print(f"  {lost.kind}: {lost.detail}")
        print(
            f"trainer serves again on node {done.node} (pid {done.pid}) {took:.1f}s after the"
            f" kill; trained steps {list(done.steps)}"
        )
        states = ", ".join(f"{n.name} {n.state}" for n in system.nodes())
        print(f"nodes now: {states}")
    print("stopped; no process left")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
