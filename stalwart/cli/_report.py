"""``stalwart report --db FILE [--window S] [--html OUT]``."""

from __future__ import annotations

import argparse
import sqlite3
from typing import Any

from ..telemetry import RecoveryStore
from ..telemetry._report import report_text, write_html_report
from ._common import EXIT_OK, UsageError, existing_file


def add_report(commands: Any) -> None:
    p = commands.add_parser(
        "report",
        help="print a report of a recovery store",
        description="Print the figures of a recovery store; --html also"
        " writes a self-contained page with a timeline.",
    )
    p.add_argument("--db", required=True, help="the recovery store (SQLite file)")
    p.add_argument(
        "--window",
        type=float,
        default=None,
        metavar="SECONDS",
        help="only the last SECONDS (default: all history)",
    )
    p.add_argument("--html", metavar="OUT", help="also write an HTML report to OUT")
    p.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    path = existing_file(args.db, "recovery store")
    try:
        store = RecoveryStore(path, readonly=True)
        text = report_text(store, args.window)
    except (sqlite3.DatabaseError, RuntimeError) as exc:
        raise UsageError(f"{path}: not a readable recovery store ({exc})") from None
    print(text, end="")
    if args.html:
        out = write_html_report(store, args.html, args.window)
        print(f"HTML report written to {out}")
    store.close()
    return EXIT_OK
