"""A whole cluster on one host: the leader here, each member node in its own process.

For trying placement and failover before there are several hosts, for tests
and for benchmarks. Members run ``stalwart node`` on loopback ports; killing
one (:meth:`LocalNode.kill`) is what losing a host looks like to the leader.
What a member and its actors print is read as it comes (a member never blocks
on a full pipe) and its last lines are kept: :meth:`LocalNode.output`.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from ..actors.errors import SystemStopped
from ..supervisors._bases import free_port, port_open, session_processes, sweep_session
from ..supervisors._system import System, start
from ..supervisors.spec import Supervisor
from ._member import LOOPBACK

OUTPUT_LINES = 1000  # how many of a member's last output lines are kept


class LocalNode:
    """A member node started as ``stalwart node`` in a session of its own.

    By default on loopback; with ``netns`` it runs in that network namespace (as root),
    listening on ``host`` there and joining the leader at ``leader_host``: a host of its
    own, which taking its link down cuts off.
    """

    def __init__(
        self,
        name: str,
        leader_port: int,
        capabilities: Sequence[str] = (),
        port: int | None = None,
        cwd: str | None = None,
        host: str = "127.0.0.1",
        leader_host: str = "127.0.0.1",
        netns: str | None = None,
    ) -> None:
        self.name, self.host = name, host
        self.port = port or free_port(host)
        args = ["--join", f"{leader_host}:{leader_port}", "--name", name]
        args += ["--listen", f"{host}:{self.port}"]
        if host not in LOOPBACK or leader_host not in LOOPBACK:
            args.append("--allow-remote")  # (a network the caller made for it)
        for cap in capabilities:
            args += ["--capability", cap]
        command = [sys.executable, "-m", "stalwart", "node", *args]
        if netns:  # another host: a network namespace with an address of its own
            command = ["ip", "netns", "exec", netns, *command]
        # (its temporary files go in a folder of its own, removed when it stops or is
        # killed: a killed node cannot clean up after itself)
        self.folder = tempfile.mkdtemp(prefix=f"stalwart-{name}-")
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, "TMPDIR": self.folder},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = self.proc.stdout.readline()
        if not line.startswith(f"node {name} on "):
            self.proc.kill()
            self.proc.wait(10)
            shutil.rmtree(self.folder, ignore_errors=True)
            raise SystemStopped(f"node {name} did not start: {line}{self.proc.stderr.read()}")
        self.sid = int(line.rsplit("session ", 1)[1].rstrip(")\n"))  # its Thespian admin's
        self.lines: collections.deque[str] = collections.deque([line], maxlen=OUTPUT_LINES)
        self.readers = [
            threading.Thread(
                target=self._read, args=(stream,), name=f"stalwart-{name}-output", daemon=True
            )
            for stream in (self.proc.stdout, self.proc.stderr)
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: IO[str]) -> None:
        """Keep reading a pipe until every process holding it has gone (end of file)."""
        for line in stream:
            self.lines.append(line)

    def output(self) -> list[str]:
        """The node's last lines on stdout and stderr (its actors' included), oldest first."""
        return list(self.lines)

    def kill(self) -> None:
        """SIGKILL the node: its command and its admin's session, with every actor in them.

        Returns once every one of those processes has exited, so the node's ports are
        free again (a node started again on the same port can listen there).
        """
        for group in (self.sid, self.proc.pid):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        sweep_session(self.sid, grace_s=10.0)
        shutil.rmtree(self.folder, ignore_errors=True)

    def stop(self) -> None:
        """Leave in order (SIGTERM), or be killed if that takes more than 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        for proc in session_processes(self.sid):
            proc.kill()
        self._close_output()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _close_output(self) -> None:
        """Read to the end once every writer has gone, then close the pipes."""
        for reader in self.readers:
            reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not any(r.is_alive() for r in self.readers):
                stream.close()


class LocalCluster:
    """``start(tree)`` as the leader on loopback, with ``members`` joined before the tree starts.

    ``members`` maps node names to capabilities (``["gpu=1", "zone=b"]``). Use it
    as a context manager: :meth:`stop` shuts the tree and every node down.

    ``host`` is the leader's address, ``hosts`` maps a member to the network namespace
    it runs in and its address there (``{"b": ("ns-b", "10.231.0.2")}``): hosts of their
    own, for partitions. Addresses beyond loopback are for networks made for the purpose.
    """

    def __init__(
        self,
        tree: Supervisor,
        members: Mapping[str, Sequence[str]],
        wait_s: float = 30.0,
        cwd: str | None = None,
        host: str = "127.0.0.1",
        hosts: Mapping[str, tuple[str, str]] | None = None,
        **options: Any,
    ) -> None:
        self.host, self.hosts = host, dict(hosts or {})
        self.leader_port = free_port(host)
        self.nodes: dict[str, LocalNode] = {}
        self.cwd = cwd
        self.system: System | None = None
        box: dict[str, Any] = {}
        cluster = {**options.pop("cluster", {}), "expect_nodes": list(members), "wait_s": wait_s}

        def lead() -> None:
            try:
                box["system"] = start(
                    tree,
                    base="tcp",
                    listen=(host, self.leader_port),
                    loopback_only=host in LOOPBACK,
                    cluster=cluster,
                    **options,
                )
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=lead, name="stalwart-leader")
        thread.start()
        try:
            deadline = time.monotonic() + wait_s
            while not port_open(host, self.leader_port, 0.2):
                if not thread.is_alive() or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            if thread.is_alive():
                for name, caps in members.items():
                    self.join(name, caps)
        finally:
            thread.join(wait_s + 60)
        if "error" in box:
            self.stop()
            raise box["error"]
        self.system = box["system"]

    def join(self, name: str, capabilities: Sequence[str], port: int | None = None) -> LocalNode:
        """Start a member (again): the same ``name`` and ``port`` make it the same node back."""
        netns, address = self.hosts.get(name, (None, "127.0.0.1"))
        if netns is not None and port is None:
            port = free_port()  # (a number free here; the namespace has every port free)
        node = LocalNode(
            name, self.leader_port, capabilities, port, self.cwd, address, self.host, netns
        )
        self.nodes[name] = node
        return node

    def stop(self) -> None:
        """Shut the tree down, then every node; no process is left."""
        if self.system is not None:
            self.system.shutdown()
        for node in self.nodes.values():
            node.stop()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
