"""A supervisor's working set stays its own across the fork of a spare
(``stalwart.actors._working_set``): right after a fork, the pages a process alone had
written are mapped by it alone again, their contents unchanged. Without it they are shared
with the child until written. Each check forks in a fresh interpreter (not the test
process, whose threads a fork would not take along)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import ctypes, json, os, sys
    from stalwart.actors import _working_set as ws

    PAGES = 64
    block = bytearray(os.urandom((PAGES + 1) * ws.PAGE))  # written: this process's alone
    copy = bytes(block)
    start = ctypes.addressof((ctypes.c_char * len(block)).from_buffer(block))
    first = -(-start // ws.PAGE) * ws.PAGE  # the pages wholly inside it
    pages = {first + i * ws.PAGE for i in range(PAGES)}

    def own() -> int:
        return sum(1 for a, n in ws.own_pages() for p in range(a, a + n, ws.PAGE) if p in pages)

    def fork_and(keep: bool) -> int:
        read, write = os.pipe()
        if keep:
            with ws.kept_across_fork():
                pid = os.fork()
        else:
            pid = os.fork()
        if pid == 0:  # the child waits, sharing what it was not made to copy, then leaves
            os.read(read, 1)
            os._exit(0)
        try:
            return own()
        finally:
            os.write(write, b"x")
            os.waitpid(pid, 0)

    before = own()
    shared = fork_and(keep=False)
    block[:] = copy  # (written again: its own once more)
    kept = fork_and(keep=True)
    same = bytes(block) == copy
    block[:] = copy
    big = bytearray(ws.KEPT_AT_MOST + (1 << 20))  # written: more than is kept
    big[:: ws.PAGE] = b"x" * len(big[:: ws.PAGE])
    too_much = fork_and(keep=True)
    print(json.dumps({"before": before, "shared": shared, "kept": kept, "same": same,
                      "too_much": too_much, "usable": ws._usable}))
    """
)


def test_the_pages_a_process_wrote_are_its_own_again_right_after_a_fork() -> None:
    """Unless it alone maps more than ``KEPT_AT_MOST``: then nothing is copied."""
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    if found["usable"] is False:
        pytest.skip("this kernel has no MADV_POPULATE_WRITE (Linux 5.14 and later)")
    assert found["before"] == 64  # written by it: mapped by it alone
    assert found["shared"] == 0  # a plain fork shares them all with the child
    assert found["kept"] == 64  # kept across the fork: its own again, at once
    assert found["same"]  # and unchanged
    assert found["too_much"] == 0  # a process that alone maps too much keeps nothing
