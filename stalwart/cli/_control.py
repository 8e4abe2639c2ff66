"""``stalwart status``, ``stalwart recover`` and ``stalwart chaos``: steer a running tree.

They attach to a tree that ``stalwart run`` started on a multi-process base,
through Thespian's admin on loopback (``--port``, or the note ``run`` left in
``.stalwart/``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..actors import RecoveryRequest, StalwartError
from ..memory._sampler import parse_size
from ..supervisors import SpecError, System
from ._common import EXIT_OK, UsageError, find_run
from ._run import load


def _target(parser: Any) -> None:
    parser.add_argument("--port", type=int, help="the admin port (default: from .stalwart/)")


def add_status(commands: Any) -> None:
    p = commands.add_parser(
        "status", help="show a running tree", description="Show the live tree of a running system."
    )
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


def attach(args: argparse.Namespace, name: str | None = None) -> System:
    port = args.port or int(find_run(name)["admin_port"])
    try:
        return System.attach(port)
    except StalwartError as exc:
        raise UsageError(str(exc)) from None


def run_status(args: argparse.Namespace) -> int:
    with attach(args) as system:
        print(system.status())
    return EXIT_OK


def run_recover(args: argparse.Namespace) -> int:
    with attach(args) as system:
        try:
            system.status()[args.path]
        except KeyError:
            raise UsageError(f"unknown actor path {args.path!r}") from None
        try:
            result = system.request_recovery(RecoveryRequest(args.path, args.level, args.reason))
        except StalwartError as exc:
            raise UsageError(str(exc)) from None
    print(
        f"{result.target}: level {result.level} {'ok' if result.ok else 'FAILED'}"
        f" in {result.duration_ms:.0f} ms: {result.detail}"
    )
    return EXIT_OK if result.ok else 1


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
    with attach(args, name) as system:
        start = time.monotonic()
        for n in range(times):
            time.sleep(max(0.0, start + n / args.rate - time.monotonic()) if n else 0.0)
            try:
                system.inject(path, kind, nbytes=nbytes)
            except StalwartError as exc:
                raise UsageError(str(exc)) from None
    print(f"{kind} injected into {path} ({times} time{'s' if times != 1 else ''})")
    return EXIT_OK
