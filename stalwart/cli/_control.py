"""``stalwart status``, ``recover``, ``chaos`` and ``send``: steer a running tree.

They reach the tree as :mod:`._reach` says: through Thespian's admin on the
multi-process bases, through the control endpoint of its ``stalwart run`` on the
simple base (both found from the note ``run`` left in ``.stalwart/``, or ``--port``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

from ..actors import StalwartError
from ..memory._sampler import parse_size
from ..supervisors import SpecError, Status
from ._common import EXIT_FAILED, EXIT_OK, UsageError, note_name_of
from ._reach import add_target as _target
from ._reach import reach
from ._run import load

STATUS_ROWS = 200  # rows `stalwart status` shows unless told (a tree may have 100,000)


def add_status(commands: Any) -> None:
    p = commands.add_parser(
        "status",
        help="show a running tree",
        description="Show the live tree of a running system. A large tree shows its first"
        " rows, then the rows not running among the rest, then the count of each state.",
    )
    shown = p.add_mutually_exclusive_group()
    shown.add_argument(
        "--limit", type=int, default=STATUS_ROWS, help=f"rows shown (default {STATUS_ROWS})"
    )
    shown.add_argument("--all", action="store_true", help="show every row")
    _target(p)
    p.set_defaults(run=run_status)


def add_recover(commands: Any) -> None:
    p = commands.add_parser(
        "recover",
        help="request a recovery",
        description="Perform a recovery level's action on an actor of a running tree.",
    )
    p.add_argument("path", help="the actor's path, e.g. shop/inventory")
    p.add_argument("--level", type=int, required=True, choices=range(1, 6), metavar="1..5")
    p.add_argument("--reason", default="requested by an operator")
    _target(p)
    p.set_defaults(run=run_recover)


def add_chaos(commands: Any) -> None:
    p = commands.add_parser(
        "chaos",
        help="inject faults into a running tree",
        description="Inject faults into a tree started with `stalwart run --chaos`.",
    )
    p.add_argument("tree", nargs="?", help="the tree file (finds the running tree by its name)")
    kinds = p.add_mutually_exclusive_group(required=True)
    kinds.add_argument("--kill", metavar="PATH", help="SIGKILL the actor's process")
    kinds.add_argument("--raise", dest="raise_", metavar="PATH", help="fail its next message")
    kinds.add_argument("--hang", metavar="PATH", help="block it in a handler forever")
    kinds.add_argument("--leak", metavar="PATH", help="make it hold memory it never frees")
    p.add_argument("--size", default="8MiB", help="memory per --leak injection (default 8MiB)")
    p.add_argument("--rate", type=float, default=0.0, help="injections per second (default once)")
    p.add_argument("--for", dest="seconds", type=float, default=0.0, help="for this many seconds")
    _target(p)
    p.set_defaults(run=run_chaos)


def add_send(commands: Any) -> None:
    p = commands.add_parser(
        "send",
        help="send a message to an actor of a running tree",
        description="Send a message to the actor at PATH and print its reply (JSON when"
        " msgspec can write it). TYPE is a type the actor handles (a receiveMsg_TYPE"
        " handler), or module:Class; --json is decoded into it by msgspec.",
    )
    p.add_argument("path", metavar="PATH", help="the actor's path, e.g. shop/inventory")
    p.add_argument("type", metavar="TYPE", help="the message type, e.g. Reserve")
    p.add_argument(
        "--json", default="{}", metavar="JSON", help="the message's fields (default: {})"
    )
    p.add_argument("--tell", action="store_true", help="send it without waiting for a reply")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="how long to wait for the reply (default: the tree's ask_timeout_s)",
    )
    _target(p)
    p.set_defaults(run=run_send)


def run_status(args: argparse.Namespace) -> int:
    if not args.all and args.limit < 1:
        raise UsageError(f"--limit: must be 1 or more, got {args.limit}")
    with reach(args) as tree:
        status = tree.status()
    print(status if args.all else shortened(status, args.limit))
    return EXIT_OK


def shortened(status: Status, limit: int) -> str:
    """``status`` as printed, with its first ``limit`` rows, then (as many again, at most)
    the rows not running among the rest, then a line counting the rest by state."""
    if len(status) <= limit:
        return str(status)
    first, rest = status[:limit], status[limit:]
    flagged = [s for s in rest if s.state != "running"][:limit]
    page = Status((*first, *flagged))
    page.phase, page.stop_reason = status.phase, status.stop_reason
    counts = Counter(s.state for s in rest)
    left = len(rest) - len(flagged)
    states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    more = (
        f"... {left} more rows not shown, of {len(status)} (past the first {limit}: {states});"
        " --all shows every row"
    )
    return f"{page}\n{more}"


def run_recover(args: argparse.Namespace) -> int:
    with reach(args, note_name_of(args.path)) as tree:
        result = tree.recover(args.path, args.level, args.reason)
    print(
        f"{result.target}: level {result.level} {'ok' if result.ok else 'FAILED'}"
        f" in {result.duration_ms:.0f} ms: {result.detail}"
    )
    return EXIT_OK if result.ok else EXIT_FAILED


def run_send(args: argparse.Namespace) -> int:
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout: must be more than 0 seconds, got {args.timeout:g}")
    with reach(args, note_name_of(args.path)) as tree:
        try:
            reply = tree.send(args.path, args.type, args.json, args.tell, args.timeout)
        except StalwartError as exc:  # the tree answered with an error: the input was fine
            print(f"stalwart: {args.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    print(f"sent {args.type} to {args.path}" if args.tell else reply)
    return EXIT_OK


def run_chaos(args: argparse.Namespace) -> int:
    name = load(args.tree).tree.name if args.tree else None
    kind, path = next(
        (k, p)
        for k, p in (
            ("kill", args.kill),
            ("raise", args.raise_),
            ("hang", args.hang),
            ("leak", args.leak),
        )
        if p
    )
    try:
        nbytes = parse_size(args.size, "--size") if kind == "leak" else 0
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    # --rate R --for S: R x S injections, 1/R apart (at least one)
    times = max(1, round(args.rate * args.seconds)) if args.rate else 1
    with reach(args, name) as tree:
        start = time.monotonic()
        for n in range(times):
            time.sleep(max(0.0, start + n / args.rate - time.monotonic()) if n else 0.0)
            tree.inject(path, kind, nbytes)
    print(f"{kind} injected into {path} ({times} time{'s' if times != 1 else ''})")
    return EXIT_OK
