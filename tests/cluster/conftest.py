"""Clusters on loopback: a leader in this process, member nodes in their own processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from stalwart import start
from stalwart.supervisors._bases import free_port, port_open, session_processes

ROOT = Path(__file__).resolve().parents[2]


class Node:
    """A member started as ``stalwart node`` in its own session."""

    def __init__(self, name: str, leader_port: int, port: int, capabilities: list[str]) -> None:
        self.name, self.port = name, port
        args = ["--join", f"127.0.0.1:{leader_port}", "--name", name, "--listen", str(port)]
        for cap in capabilities:
            args += ["--capability", cap]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stalwart", "node", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        line = self.proc.stdout.readline()
        assert line.startswith(f"node {name} on 127.0.0.1:{port} joining"), (
            line + self.proc.stderr.read()
        )
        self.sid = int(line.rsplit("session ", 1)[1].rstrip(")\n"))

    def kill(self) -> None:
        """SIGKILL the node: its command's process group and its admin's, with every actor."""
        for group in (self.sid, self.proc.pid):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        for proc in session_processes(self.sid):
            proc.kill()


class Cluster:
    def __init__(self, tree, members: dict[str, list[str]], **options) -> None:
        self.leader_port = free_port()
        self.nodes: dict[str, Node] = {}
        self.system = None
        self.members = members
        box: dict = {}

        def lead() -> None:
            try:
                box["system"] = start(
                    tree,
                    base="tcp",
                    listen=("127.0.0.1", self.leader_port),
                    cluster={"expect_nodes": list(members), "wait_s": 30},
                    report_path=None,
                    **options,
                )
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=lead)
        thread.start()
        try:
            while not port_open("127.0.0.1", self.leader_port, 0.2) and thread.is_alive():
                pass
            for name, caps in members.items():
                self.join(name, caps)
        finally:
            thread.join(60)
        if "error" in box:
            self.stop()
            raise box["error"]
        self.system = box["system"]

    def join(self, name: str, caps: list[str], port: int | None = None) -> Node:
        node = Node(name, self.leader_port, port or free_port(), caps)
        self.nodes[name] = node
        return node

    def stop(self) -> None:
        if self.system is not None:
            self.system.shutdown()
        for node in self.nodes.values():
            node.stop()


@pytest.fixture
def cluster():
    made: list[Cluster] = []

    def make(tree, members, **options) -> Cluster:
        c = Cluster(tree, members, **options)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
        ports = [c.leader_port, *(n.port for n in c.nodes.values())]
        assert [p for p in ports if port_open("127.0.0.1", p, 0.2)] == [], "a port stayed open"
        assert [n.name for n in c.nodes.values() if session_processes(n.sid)] == []
