"""An async fan-out actor: one quote asks three suppliers over HTTP at once.

``Quotes.receiveMsg_Quote`` is an ``async def`` handler. It sends an HTTP GET to
each supplier with asyncio streams, all at once, waits at most ``PATIENCE_S`` for
each, and answers the best price of those that answered. While it waits, the
actor takes the next quotes (``max_concurrency = 8``); the slow supplier costs
each quote ``PATIENCE_S``, not more, and never blocks the actor. A supplier that
is down is skipped; if every supplier is down the handler raises, and the tree
retries it like any other failure.

The suppliers are three small HTTP servers on loopback that this script starts.
The caller side is asyncio too: ``System.ask_async`` sends all quotes at once.

    python -m examples.fanout                 # in-process
    python -m examples.fanout --base multiproc
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec

from stalwart import Child, ManagedActor, Supervisor, start

PATIENCE_S = 0.5  # how long a quote waits for one supplier
SLOW_S = 2.0  # the slow supplier's delay (longer than anyone waits)


class Quote(msgspec.Struct, frozen=True):
    item: str
    suppliers: tuple[str, ...]  # "127.0.0.1:port" of each


class Best(msgspec.Struct, frozen=True):
    item: str
    price: float
    supplier: str
    answered: int  # suppliers that answered in time


async def http_get_json(address: str, path: str) -> Any:
    """A minimal HTTP/1.0 GET with asyncio streams (a stand-in for an asyncio HTTP client)."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"{address} answered {head.splitlines()[0].decode()!r}")
    return json.loads(body)


class Quotes(ManagedActor):
    max_concurrency = 8  # quotes under way at once while they wait for suppliers

    async def receiveMsg_Quote(self, msg: Quote, sender: Any) -> None:
        asks = [
            asyncio.wait_for(http_get_json(s, f"/price/{msg.item}"), PATIENCE_S)
            for s in msg.suppliers
        ]
        results = await asyncio.gather(*asks, return_exceptions=True)
        prices = [
            (r["price"], s)
            for r, s in zip(results, msg.suppliers, strict=True)
            if isinstance(r, dict)
        ]
        if not prices:
            raise ConnectionError(f"no supplier answered for {msg.item}")
        price, supplier = min(prices)
        self.reply(sender, Best(msg.item, price, supplier, len(prices)))


CLOSING = threading.Event()  # set at the end: the slow supplier stops dawdling


def supplier(markup: float, delay_s: float = 0.0) -> ThreadingHTTPServer:
    """A supplier on loopback that prices any item (after ``delay_s``)."""

    class Prices(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if delay_s:
                CLOSING.wait(delay_s)
            item = self.path.rsplit("/", 1)[-1]
            body = json.dumps({"price": round(len(item) * markup, 2)}).encode()
            with contextlib.suppress(OSError):  # a quote that stopped waiting hung up
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Prices)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def ask_for_quotes(system: Any, suppliers: tuple[str, ...], count: int) -> list[Best]:
    quotes = [Quote(f"item-{i}", suppliers) for i in range(count)]
    return await asyncio.gather(*(system.ask_async("shop/quotes", q, timeout=30) for q in quotes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="simple", choices=("simple", "multiproc"))
    parser.add_argument("--quotes", type=int, default=24)
    args = parser.parse_args()
    servers = [supplier(1.0), supplier(0.9, delay_s=SLOW_S), supplier(1.1)]
    suppliers = tuple(f"127.0.0.1:{s.server_address[1]}" for s in servers)
    tree = Supervisor("shop", children=[Child("quotes", Quotes)])
    try:
        with start(tree, base=args.base) as system:
            began = time.perf_counter()
            best = asyncio.run(ask_for_quotes(system, suppliers, args.quotes))
            took = time.perf_counter() - began
            for b in best[:3]:
                print(f"{b.item}: {b.price} from {b.supplier} ({b.answered} of 3 answered in time)")
            print(f"{len(best)} quotes in {took:.2f}s: each waited at most {PATIENCE_S}s")
            print(f"for the slow supplier; {args.quotes} quotes one after the other would take")
            print(f"at least {args.quotes * PATIENCE_S:.1f}s")
    finally:
        CLOSING.set()
        for server in servers:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    main()
