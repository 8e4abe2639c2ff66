"""Creating child actors so that forked actor processes run at full speed.

On the multi-process bases Thespian forks the new actor's process inside the
parent's ``createActor`` call, and the child runs its whole life on top of the
parent's call stack. CPython (3.11 on) keeps frames in 16 KiB chunks and frees a
chunk as soon as the frame at its start returns: if the child's message loop
happens to sit just below a chunk boundary, every message maps and unmaps a
chunk several times (measured: 5 to 10 ``mmap``/``munmap`` pairs per message, a
fifth of the throughput). Which actors hit it depends on how deep the tree is.

:func:`create_child` calls ``createActor`` from inside one frame too large for
any existing chunk. CPython then gives that frame a chunk of its own with room
to spare, the fork happens there, and the child's loop runs in that room for
its whole life, never near a boundary. The parent pays one chunk per child it
creates.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

_SLOTS = 4000  # 32 KiB of frame: CPython allocates 64 KiB, leaving 32 KiB of room


def _frame_with_room() -> Callable[[Callable[[], Any]], Any]:
    # a function whose frame holds _SLOTS locals (never assigned: only their room counts)
    names = " = ".join(f"_{i}" for i in range(_SLOTS))
    source = f"def run(fn):\n    if False:\n        {names} = None\n    return fn()\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, "<stalwart frame room>", "exec"), namespace)
    return namespace["run"]  # type: ignore[no-any-return]


_run_with_room = _frame_with_room()


def create_child(parent: Any, cls: Any, forks: bool, **kwargs: Any) -> Any:
    """``parent.createActor(cls, **kwargs)``; if that ``forks``, with room on the frame stack.

    The in-process base does not fork, and there the room would only cost time.
    """
    if not forks:
        return parent.createActor(cls, **kwargs)
    # what the child inherits stays out of its garbage collector's way (no page is
    # copied just to be scanned); the parent's objects are collected as before
    gc.freeze()
    try:
        return _run_with_room(lambda: parent.createActor(cls, **kwargs))
    finally:
        gc.unfreeze()
