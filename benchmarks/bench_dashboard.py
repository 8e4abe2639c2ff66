"""The dashboard with a 500-actor tree: page load, updates, and the snapshot behind them.

Peers: the same rows as a static HTML table served from loopback by Python's
``http.server`` (what a browser needs just to show them), and
``System.status()`` alone (what the terminal view reads).
"""

from __future__ import annotations

import functools
import html
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _report import Figure, Row, median, now, percentile, print_rows

from stalwart import Child, ManagedActor, RecoveryRequest, Supervisor, start

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
GROUPS, REPLICAS = 50, 10  # 500 actors under 50 supervisors
LOADS, UPDATES = 7, 15


class Idle(ManagedActor):
    """An actor that only has to be there."""


def big_tree() -> Supervisor:
    return Supervisor(
        "big",
        children=[
            Supervisor(f"g{i:02d}", children=[Child("w", Idle, replicas=REPLICAS)])
            for i in range(GROUPS)
        ],
    )


def table_page(tree: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(n['path'])}</td><td>{n['state']}</td><td>{n['level']}</td>"
        f"<td>{n['restarts']}</td><td>{n['breaker']}</td></tr>"
        for n in tree
    )
    return f"<!doctype html><html><body><table>{rows}</table></body></html>"


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def serve_folder(folder: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def run() -> None:
    if not os.path.exists(CHROMIUM):
        print("\n== dashboard: skipped (Debian's chromium is not installed; make test installs it)")
        return
    from playwright.sync_api import sync_playwright

    rows: list[Row | Figure] = []
    with start(big_tree(), chaos=True, report_path=None) as system:
        actors = [
            s.path for s in system.status() if s.kind == "actor" and s.path.startswith("big/")
        ]
        server = system.serve_api()
        snapshot_ms, status_ms = [], []
        for _ in range(20):
            t0 = now()
            snap = get_json(f"{server.url}/api/dashboard")
            snapshot_ms.append((now() - t0) * 1000)
            t0 = now()
            system.status()
            status_ms.append((now() - t0) * 1000)
        shown = len(snap["tree"])
        folder = tempfile.mkdtemp(prefix="stalwart-bench-")
        Path(folder, "table.html").write_text(table_page(snap["tree"]))
        static = serve_folder(folder)
        table_url = f"http://127.0.0.1:{static.server_address[1]}/table.html"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                loads, tables, first_render = [], [], []
                for _ in range(LOADS):
                    t0 = now()
                    page.goto(f"{server.url}/")
                    page.locator("body[data-ready='1']").wait_for()
                    loads.append((now() - t0) * 1000)
                    first_render.append(page.evaluate("window.stalwart.firstRenderMs"))
                    assert page.evaluate("window.stalwart.nodes") == shown
                    t0 = now()
                    page.goto(table_url)
                    page.locator("tr").last.wait_for()
                    tables.append((now() - t0) * 1000)
                page.goto(f"{server.url}/")
                page.locator("body[data-ready='1']").wait_for()
                seen, renders = [], []
                for i in range(UPDATES):
                    path = actors[(i * 37) % len(actors)]
                    before = page.evaluate("window.stalwart.renders")
                    asked_at = time.time() * 1000
                    system.request_recovery(RecoveryRequest(path, 3, "bench"))
                    restarts = system.status()[path].restarts
                    page.locator(
                        f'#tree li[data-path="{path}"] > .node .restarts', has_text=f"↻ {restarts}"
                    ).wait_for()
                    changed_at = page.evaluate(f"window.stalwart.changedAt[{path!r}]")
                    seen.append(changed_at - asked_at)
                    if page.evaluate("window.stalwart.renders") > before:
                        renders.append(page.evaluate("window.stalwart.lastRenderMs"))
                    time.sleep(0.05)
            finally:
                browser.close()
                static.shutdown()
                static.server_close()
                shutil.rmtree(folder, ignore_errors=True)
    rows += [
        Row(
            f"page load to tree shown, {shown} nodes (median)",
            median(loads),
            "static HTML table",
            median(tables),
            "ms",
        ),
        Row(
            "GET /api/dashboard (median)",
            median(snapshot_ms),
            "System.status()",
            median(status_ms),
            "ms",
        ),
        Figure("first render of the tree in the page (median)", median(first_render), "ms"),
        Figure("render of an update poll (median)", median(renders), "ms"),
        Figure(
            "restart requested -> shown on the page, p50",
            percentile(seen, 50),
            "ms",
            f"p95 {percentile(seen, 95):.0f} ms; the page polls every 500 ms",
        ),
    ]
    print_rows(f"dashboard: a tree of {len(actors)} actors in a real headless Chromium", rows)
