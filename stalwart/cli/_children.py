"""``stalwart child``: list a supervisor's children, start, terminate, restart and delete
them (OTP's ``which_children``, ``count_children``, ``start_child``...), on a running tree
reached as ``status`` reaches it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..actors import StalwartError
from ._common import EXIT_FAILED, EXIT_OK, note_name_of
from ._reach import ChildCall, ChildrenAnswer, reach
from ._reach import add_target as _target

_DONE = {"start": "started", "terminate": "terminated", "restart": "restarted", "delete": "deleted"}


def add_child(commands: Any) -> None:
    p = commands.add_parser(
        "child",
        help="list, start, terminate, restart or delete a supervisor's children",
        description="The children of a supervisor of a running tree: list them, or start,"
        " terminate, restart or delete one, as OTP's supervisor API does.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="its children and their counts")
    listing.add_argument("supervisor", metavar="SUPERVISOR", help="e.g. shop/workers")
    _target(listing)
    starting = actions.add_parser(
        "start",
        help="start a child (a spec) or a Pool's instance (a key)",
        description="Start a child under SUPERVISOR: --spec is a table of a tree file as JSON"
        ' ({"name": "w", "actor": "module:Class"}); under a Pool, --key names the instance'
        " and --options (JSON) go on top of the template's.",
    )
    starting.add_argument("supervisor", metavar="SUPERVISOR")
    what = starting.add_mutually_exclusive_group(required=True)
    what.add_argument("--spec", metavar="JSON", help="the child's spec, as a tree file's table")
    what.add_argument("--key", metavar="KEY", help="the key of a Pool's instance")
    starting.add_argument("--options", metavar="JSON", help="a Pool instance's options")
    _target(starting)
    for action, text in (
        ("terminate", "stop a child; its spec is kept (a temporary one's goes)"),
        ("restart", "start a terminated child again"),
        ("delete", "forget a terminated child"),
    ):
        one = actions.add_parser(action, help=text)
        one.add_argument("supervisor", metavar="SUPERVISOR")
        one.add_argument("name", metavar="NAME", help="the child's name (a Pool's: its key)")
        _target(one)
    p.set_defaults(run=run_child)


def run_child(args: argparse.Namespace) -> int:
    with reach(args, note_name_of(args.supervisor)) as tree:
        try:
            if args.action == "list":
                print(shown(args.supervisor, tree.children(args.supervisor)))
                return EXIT_OK
            call = ChildCall(
                args.action,
                args.supervisor,
                getattr(args, "name", ""),
                getattr(args, "spec", None),
                getattr(args, "key", None),
                getattr(args, "options", None),
            )
            path = tree.child(call)
        except StalwartError as exc:  # the tree refused: the input was fine
            print(f"stalwart: {args.supervisor}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    print(f"{_DONE[args.action]} {path}")
    return EXIT_OK


def shown(supervisor: str, answer: ChildrenAnswer) -> str:
    """The children one a line, under a line of counts."""
    c = answer.counts
    lines = [
        f"{supervisor}: {c.specs} spec{'s' * (c.specs != 1)}, {c.active} active"
        f" ({c.supervisors} supervisor{'s' * (c.supervisors != 1)},"
        f" {c.workers} worker{'s' * (c.workers != 1)})"
    ]
    width = max((len(i.name) for i in answer.children), default=0)
    where = max((len(i.path or "-") for i in answer.children), default=0)
    for i in answer.children:
        lines.append(
            f"  {i.name:<{width}}  {i.path or '-':<{where}}  {i.kind:<10}  {i.actor_class}"
        )
    return "\n".join(lines)
