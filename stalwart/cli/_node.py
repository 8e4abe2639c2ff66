"""``stalwart node --join HOST:PORT --name NAME``: a member node of a cluster."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..actors._placement import parse_capability
from ..actors.errors import SystemStopped
from ..supervisors.spec import SpecError
from ._common import EXIT_LEVEL5, EXIT_OK, StopSignals, UsageError
from ._run import listen_address


def add_node(commands: Any) -> None:
    p = commands.add_parser(
        "node",
        help="join a cluster as a member node",
        description="Join the cluster whose leader listens at HOST:PORT and run the actors"
        " it places here, until Ctrl-C or SIGTERM (then the leader moves them elsewhere).",
    )
    p.add_argument("--join", required=True, metavar="HOST:PORT", help="the leader's address")
    p.add_argument("--name", required=True, help="this node's name in the cluster")
    p.add_argument(
        "--listen",
        default="0",
        metavar="[HOST:]PORT",
        help="this node's own address (default: a free port on 127.0.0.1)",
    )
    p.add_argument(
        "--capability",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="what this node offers to Child.requires (repeatable): zone=b, gpu=1",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow addresses beyond loopback (only on a network you trust: Thespian's"
        " transport unpickles what it receives)",
    )
    p.set_defaults(run=run_node)


def run_node(args: argparse.Namespace) -> int:
    from ..cluster import join

    leader_host, _, leader_port = args.join.rpartition(":")
    try:
        leader = (leader_host.strip("[]") or "127.0.0.1", int(leader_port))
    except ValueError:
        raise UsageError(f"--join: expected HOST:PORT, got {args.join!r}") from None
    listen = listen_address(args.listen, "--listen")
    try:
        capabilities = dict(parse_capability(text) for text in args.capability)
    except ValueError as exc:
        raise UsageError(f"--capability: {exc}") from None
    stop = StopSignals()
    try:
        member = join(leader, args.name, listen, capabilities, not args.allow_remote)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    except SystemStopped as exc:
        print(f"stalwart: {exc}", file=sys.stderr)
        return EXIT_LEVEL5
    with member:
        shown = ", ".join(f"{k}={v}" for k, v in capabilities.items()) or "no capabilities"
        print(
            f"node {member.name} on {member.listen[0]}:{member.listen[1]} joining"
            f" {leader[0]}:{leader[1]} ({shown}; session {member.sid})",
            flush=True,
        )
        stop.wait()
        print(f"node {member.name} leaving", flush=True)
    return EXIT_OK
