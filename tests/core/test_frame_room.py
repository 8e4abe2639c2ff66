"""Forked actor processes do not thrash CPython's frame stack, however deep the tree.

CPython keeps frames in chunks and frees a chunk when the frame at its start
returns. Code that runs just below a chunk boundary maps and unmaps fresh memory
on every call, which shows as minor page faults. A forked actor runs on top of its
parent's stack, so without care its message loop can sit at such a boundary.
"""

import resource
from pathlib import Path
from typing import Any

from stalwart import Child, ManagedActor, Supervisor
from stalwart.actors._runtime import create_child
from tests.support import Ping

CALLS = 300


def dive(n: int) -> int:
    return 0 if n == 0 else dive(n - 1) + 1


def busy() -> None:
    for _ in range(CALLS):
        dive(40)


def at_depth(depth: int, fn: Any) -> Any:
    return fn() if depth == 0 else at_depth(depth - 1, fn)


def minor_faults(depth: int, fn: Any) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    at_depth(depth, fn)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


class Spawner:
    """Stands in for a Thespian actor: ``createActor`` runs the would-be child's loop."""

    def createActor(self, cls: Any, **kwargs: Any) -> Any:
        busy()
        return ("address", cls, kwargs)


def test_create_child_passes_arguments_and_returns_the_address():
    for forks in (True, False):
        address = create_child(Spawner(), int, forks, globalName="x")
        assert address == ("address", int, {"globalName": "x"})


def test_code_run_from_create_child_never_straddles_a_chunk_boundary():
    depths = range(0, 400, 3)  # wherever the caller's stack ends
    plain = [minor_faults(d, busy) for d in depths]
    with_room = [minor_faults(d, lambda: create_child(Spawner(), int, True)) for d in depths]
    # one fresh 64 KiB chunk per call at most (16 pages), never one per inner call
    assert max(with_room) < CALLS // 3, (max(with_room), max(plain))


class Echo(ManagedActor):
    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> None:
        self.reply(sender, msg)


def nested(depth: int) -> Supervisor:
    children: list[Any] = [Child(f"e{depth}", Echo)]
    if depth < 4:
        children.append(nested(depth + 1))
    return Supervisor(f"s{depth}", children=children)


def process_minor_faults(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[7])  # minflt, the 10th field of stat


def test_actors_forked_at_every_depth_of_a_tree_handle_messages_without_page_faults(make_system):
    system = make_system(nested(1), base="multiproc")
    status = system.status()
    paths = [a.path for a in status if a.path.rsplit("/", 1)[-1].startswith("e")]
    assert len(paths) == 4
    per_message = {}
    for path in paths:
        for i in range(CALLS):  # warm up: connections, pages shared with the parent, the
            system.ask(path, Ping(i))  # allocator's pools, the request ids it remembers
        pid = status[path].pid
        before = process_minor_faults(pid)
        for i in range(CALLS):
            assert system.ask(path, Ping(i)).n == i
        per_message[path] = (process_minor_faults(pid) - before) / CALLS
    # a thrashing loop maps a fresh chunk (one fault at least) on every message; other
    # causes (new connections, a busy machine) stay well below one fault per message
    assert max(per_message.values()) < 0.6, per_message
