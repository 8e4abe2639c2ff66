"""The ``stalwart`` command (also ``python -m stalwart``).

Exit codes: 0 ok, 2 bad usage or invalid input (nothing was started), 1 the system
stopped at level 5 (or a requested recovery failed, or the actor a message was sent to
answered with an error), 130 interrupted by Ctrl-C (``run``,
``node`` and ``serve`` stop in order on it and exit 0), 141 the reader of the output went
away (``stalwart report | head -1``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ._children import add_child
from ._common import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_USAGE, Interrupted, UsageError
from ._control import add_chaos, add_recover, add_send, add_status
from ._node import add_node
from ._report import add_report
from ._run import add_check, add_run
from ._serve import add_serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stalwart", description="Run and steer Stalwart supervision trees."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_run(commands)
    add_check(commands)
    add_status(commands)
    add_recover(commands)
    add_chaos(commands)
    add_send(commands)
    add_child(commands)
    add_report(commands)
    add_serve(commands)
    add_node(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    The current folder is importable (as with ``python -m``), so a tree file's
    ``actor = "mypackage.actors:Cache"`` finds the user's own modules.
    """
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        code = _command(argv)
        sys.stdout.flush()  # (a reader gone shows here, not as an error at exit)
    except BrokenPipeError:
        # The reader went away (`stalwart report | head -1`). As Python's notes on SIGPIPE
        # advise: stdout goes to devnull, so that the flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


def _command(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except UsageError as exc:
        print(f"stalwart: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as exc:
        print(f"stalwart: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # (run, node and serve take Ctrl-C as their way to stop)
        return EXIT_INTERRUPTED


__all__ = ["build_parser", "main"]
