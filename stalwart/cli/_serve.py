"""``stalwart serve --db FILE``: the dashboard, the JSON API and /metrics for a store file."""

from __future__ import annotations

import argparse
import sqlite3
from typing import Any

from ..telemetry._api import ApiServer, StoreBackend
from ._common import EXIT_OK, StopSignals, UsageError, not_a_folder


def add_serve(commands: Any) -> None:
    p = commands.add_parser(
        "serve",
        help="serve the JSON API of a recovery store",
        description="Serve the JSON API and Prometheus /metrics of a"
        " recovery store. Binds loopback unless --host says otherwise.",
    )
    p.add_argument("--db", required=True, help="the recovery store (SQLite file)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8787, help="port (default 8787; 0: any)")
    p.add_argument("--token", help="token for write endpoints (default: a new random one)")
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    not_a_folder(args.db, "recovery store")
    try:
        backend = StoreBackend(args.db)  # (a new file becomes an empty store)
    except sqlite3.Error as exc:
        raise UsageError(f"{args.db}: not a usable recovery store ({exc})") from None
    try:
        api = ApiServer(backend, args.host, args.port, args.token)
    except (OSError, OverflowError) as exc:  # in use, an unknown host, a port past 65535
        reason = getattr(exc, "strerror", None) or exc
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {reason}") from None
    stop = StopSignals()
    with api as server:
        print(f"serving {args.db} on {server.url} (dashboard: {server.url}/)", flush=True)
        if not args.token:
            print(f"token for write endpoints: {server.token}", flush=True)
        stop.wait()
    return EXIT_OK
