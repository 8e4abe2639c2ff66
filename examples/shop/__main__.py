"""Run the shop with injected faults and watch the tree recover.

    python -m examples.shop [--seconds 8] [--base simple|multiproc] [--critical]
                            [--dashboard PORT]

Each scenario injects one fault; every failure and the level that handled it is
printed as it happens, and the run ends with the live tree. The last scenario is
an outage: the payment provider is down for a few seconds while orders keep
coming, and the tree rides it out (its breaker answers at once, nothing is
restarted over and over, nothing escalates). With ``--dashboard`` the live
dashboard is served on that loopback port (0: any free port) while it runs.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import threading
import time
from collections.abc import Callable

from stalwart import RecoveryRequest, StalwartError, System, start

from .backend import new_backend
from .messages import Corrupt, Job, PlaceOrder, Query, Reserve
from .tree import shop_tree

LEVEL_NAMES = {1: "basic", 2: "enhanced", 3: "component", 4: "system", 5: "critical"}


class EventPrinter:
    """Prints the tree's events as they arrive (polled from the System)."""

    def __init__(self, system: System, t0: float) -> None:
        self.system, self.t0, self.seen = system, t0, 0
        self.levels_used: set[int] = set()

    def flush(self) -> None:
        for e in self.system.events(self.seen):
            self.seen = e.seq
            if e.kind == "failure":
                self.levels_used.add(e.level)
                what = (
                    f"failed -> level {e.level} {LEVEL_NAMES[e.level]} ({e.strategy}): {e.detail}"
                )
            elif e.kind == "recovered":
                what = f"recovered at level {e.level} ({e.strategy}) after {e.duration_ms:.0f} ms"
            elif e.kind in (
                "crash",
                "poison",
                "escalate",
                "level5",
                "restart-tree",
                "tree-started",
                "recovery-result",
                "outage",
                "breaker",
            ):
                if e.kind in ("level5", "restart-tree"):
                    self.levels_used.add(5)
                what = f"{e.kind}: {e.detail}"
            else:
                continue
            print(f"  {e.time - self.t0:6.2f}s  {e.path:<26} {what[:110]}")


def attempt(label: str, call: Callable[[], object]) -> None:
    try:
        result = call()
        print(f"    -> {label}: {result}")
    except StalwartError as exc:
        print(f"    -> {label}: {type(exc).__name__}: {str(exc)[:100]}")


def scenarios(system: System, backend, critical: bool) -> list[tuple[str, Callable[[], None]]]:
    def level1() -> None:
        backend.fail_next("storage", 1)
        attempt("stock of A1", lambda: system.ask("shop/db", Query("A1")))

    def level2() -> None:
        backend.fail_next("supplier", 2, kind="rate_limit")
        attempt("reserve B2", lambda: system.ask("shop/inventory", Reserve(1, "B2"), timeout=10))

    def level3() -> None:
        system.tell("shop/workers/w.1", Corrupt())
        for i in range(3):
            attempt(f"job {i}", lambda i=i: system.ask("shop/workers/w.1", Job(i), timeout=10))

    def level4() -> None:
        system.tell("shop/storefront/sessions", Corrupt())
        for order in (100, 101):
            attempt(
                f"order {order}",
                lambda o=order: system.ask("shop/storefront/api", PlaceOrder(o, "A1"), timeout=15),
            )

    def outage() -> None:
        down_s, orders = 2.5, collections.Counter[str]()
        backend.down("payments", down_s)
        began = time.monotonic()
        order = 200
        while time.monotonic() - began < down_s + 1.5:
            order += 1
            asked = time.monotonic()
            try:
                system.ask("shop/storefront/api", PlaceOrder(order, "B2"), timeout=5)
                outcome = "placed" if asked - began > down_s else "placed before it was noticed"
            except StalwartError as exc:
                outcome = type(exc).__name__
            orders[outcome] += 1
            time.sleep(0.15)
        print(f"    -> {sum(orders.values())} orders while the provider was down and after:")
        for outcome, n in orders.most_common():
            print(f"         {n:3d} {outcome}")
        stopped = system.status().phase != "running"
        print(f"    -> the tree {'stopped' if stopped else 'kept running'} through the outage")

    def level5() -> None:
        result = system.request_recovery(
            RecoveryRequest("shop", 5, "operator: --critical", by="operator")
        )
        print(f"    -> {result}")

    steps = [
        ("level 1: the database drops one connection", level1),
        ("level 2: the supplier API rate-limits twice", level2),
        ("level 3: a worker's memory is corrupted", level3),
        (
            "level 4: the session store goes stale (restarting the API alone does not help:"
            " the first order is set aside; the next restarts the whole storefront)",
            level4,
        ),
        (
            "outage: the payment provider is down for 2.5s while orders keep coming",
            outage,
        ),
    ]
    if critical:
        steps.append(("level 5: the operator asks for system-wide recovery", level5))
    return steps


def background_traffic(system: System, stop: threading.Event) -> None:
    n = 1000
    while not stop.is_set():
        n += 1
        try:
            system.ask("shop/workers/w", Job(n), timeout=5)
            system.ask("shop/db", Query("C3"), timeout=5)
        except StalwartError:
            pass
        stop.wait(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.shop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="how long to run (default 6)")
    parser.add_argument("--base", default="simple", choices=["simple", "multiproc"])
    parser.add_argument("--critical", action="store_true", help="also ask for level 5")
    parser.add_argument(
        "--dashboard", type=int, metavar="PORT", help="serve the dashboard on 127.0.0.1:PORT"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stalwart-shop-") as folder:
        backend = new_backend(folder)
        t0 = time.time()
        print(f"starting the shop on the {args.base} base ...")
        with start(shop_tree(backend.path), base=args.base, report_path=None) as system:
            printer = EventPrinter(system, t0)
            if args.dashboard is not None:
                server = system.serve_api(port=args.dashboard)
                print(f"dashboard: {server.dashboard_url}")
            stop = threading.Event()
            traffic = threading.Thread(target=background_traffic, args=(system, stop), daemon=True)
            traffic.start()
            for title, run in scenarios(system, backend, args.critical):
                print(f"\n== {title}")
                run()
                time.sleep(0.3)
                printer.flush()
            remaining = args.seconds - (time.time() - t0)
            if remaining > 0:
                print(f"\n== steady traffic for {remaining:.1f}s more")
                time.sleep(remaining)
            stop.set()
            traffic.join()
            printer.flush()
            print("\n== the tree at the end")
            print(system.status())
            used = ", ".join(str(level) for level in sorted(printer.levels_used))
            print(f"\nrecovery levels used: {used}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
