"""Recovery outside actors: a request handler, a leaking resource, and what the store says.

python -m examples.plain_code

1. ``checkout`` calls a payment service on a loopback port that is down; the
   ``reconnect`` remedy brings it up and the call is retried (level 1).
2. ``report`` asks a flaky partner that answers 429 with Retry-After; the wait is
   honoured (the rate-limit remedy).
3. A file-descriptor leak is predicted from its trend before it reaches the
   limit, and the registered prevention action closes the leaked descriptors.
4. The recovery store then answers with insights and recommendations.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from stalwart import Recovery
from stalwart.resources import ResourceWatch, fds_probe
from stalwart.strategies import Fixed
from stalwart.telemetry import RecoveryStore, insights


class PaymentService:
    """A tiny loopback server that may be down."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()

    def start(self) -> None:
        print(f"  remedy: reconnect -> payment service started on 127.0.0.1:{self.port}")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        assert self.sock is not None
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(64)
                conn.sendall(b"paid")

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()


class TooManyRequests(Exception):
    status = 429

    def __init__(self, wait_s: float) -> None:
        super().__init__("429 too many requests")
        self.headers = {"Retry-After": str(wait_s)}


async def handlers(recovery: Recovery, payments: PaymentService) -> None:
    async def charge() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", payments.port)
        writer.write(b"charge 42")
        await writer.drain()
        answer = await reader.read(16)
        writer.close()
        await writer.wait_closed()
        return answer

    try:
        await charge()
    except ConnectionRefusedError as exc:
        print(f"checkout failed: {type(exc).__name__}")
        out = await recovery.handle_error(
            exc,
            {
                "service": "payments",
                "operation": "charge",
                "retry": charge,
                "reconnect": payments.start,
            },
        )
        print(
            f"  -> {'recovered' if out.success else 'not recovered'}: {out.value!r} by"
            f" {out.strategy} at level {out.level} after {out.attempts} attempt(s),"
            f" {out.duration_ms:.1f} ms"
        )

    allowed_at = time.monotonic() + 0.2

    @recovery.protect(service="partner", operation="report")
    async def partner_report() -> str:
        if time.monotonic() < allowed_at:
            raise TooManyRequests(0.25)
        return "report ready"

    began = time.monotonic()
    value = await partner_report()
    print(
        f"partner answered 429; waited as asked, then: {value!r} ({time.monotonic() - began:.2f}s)"
    )


def leak_watch(db: Path) -> None:
    leaked: list[int] = []
    base = len(os.listdir("/proc/self/fd"))

    def close_leaked(trend: object) -> int:
        count = len(leaked)
        for fd in leaked:
            os.close(fd)
        leaked.clear()
        return count

    with ResourceWatch([fds_probe(limit=base + 100)], store=db, interval_s=1.0) as watch:
        watch.on("fds", close_leaked, name="close_leaked_fds")
        t = time.time()
        for second in range(1, 40):
            leaked.extend(os.open(os.devnull, os.O_RDONLY) for _ in range(4))
            for p in watch.sample(now=t + second):
                print(
                    f"fds predicted to reach {p.limit:.0f} in {p.ttl_s:.0f}s"
                    f" (confidence {p.confidence:.2f}) at second {second};"
                    f" action: {p.action_detail}"
                )
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="recovery store file (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.db or Path(tmp) / "recovery.db")
        payments = PaymentService()
        with Recovery(store=db, backoff=Fixed(0.05), seed=7) as recovery:
            asyncio.run(handlers(recovery, payments))
        payments.stop()
        leak_watch(db)
        with RecoveryStore(db) as store:
            found = insights(store)
            rows = store.query("SELECT path, level, strategy, success FROM recovery_performance")
        print("recorded attempts:")
        for r in rows:
            print(
                f"  {r['path']:<10} level {r['level']}  {r['strategy']:<12} ok={bool(r['success'])}"
            )
        print("effectiveness:")
        for e in found.effectiveness:
            print(
                f"  level {e.level} {e.strategy:<12} {e.attempts} attempt(s), {e.success_rate:.0%}"
            )
        print(f"recommendations: {found.recommendations or 'none yet'}")


if __name__ == "__main__":
    main()
