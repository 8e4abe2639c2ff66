"""Memory pressure on real memory: the three tiers, a cache that takes part, load shedding.

    python -m examples.memory_pressure [--base multiproc|simple]

A catalogue actor keeps product pages in a ``TieredCache`` (some of them stale);
an importer holds its batches in plain buffers. The tree gets a memory budget
of its resting size plus a little, then the importer takes more and more: at
70 % the stale pages go, at 85 % the cache shrinks to its floor and every
process collects garbage, at 95 % new work is refused and the importer (the
largest restartable actor on real processes) is restarted from its checkpoint.
In one process (``--base simple``) there is no actor process to restart: the
tree sheds load until memory comes back by other means.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import msgspec

from stalwart import Child, ManagedActor, MemoryLevel, Overloaded, Supervisor, System, start
from stalwart.memory import TieredCache

MiB = 2**20


class Page(msgspec.Struct, frozen=True):
    sku: int


class Import(msgspec.Struct, frozen=True):
    nbytes: int


class Catalogue(ManagedActor):
    """Renders product pages and caches them; a third of the cache is stale from the start."""

    def on_start(self) -> None:
        self.pages: TieredCache[int, bytes] = TieredCache(max_age_s=60, floor_bytes=8 * MiB)
        for sku in range(48):
            self.pages.set(sku, b"<html>" * (MiB // 6), priority=1 if sku % 4 == 0 else 0)
            if sku < 16:
                self.pages._data[sku].created -= 3600  # rendered an hour ago

    def receiveMsg_Page(self, msg: Page, sender: Any) -> None:
        page = self.pages.get(msg.sku)
        if page is None:
            page = b"<html>" * (MiB // 6)
            self.pages.set(msg.sku, page)
        self.reply(sender, len(page))


class Importer(ManagedActor):
    """Holds every batch it imported (memory its hook cannot give back)."""

    def on_start(self) -> None:
        self.batches = int(self.restored_state or 0)
        self.held: list[bytearray] = []

    def snapshot(self) -> int:
        return self.batches

    def on_memory_pressure(self, level: MemoryLevel) -> int | None:
        print(f"    importer: told of {level.name}; it holds {len(self.held)} batches")
        return None

    def receiveMsg_Import(self, msg: Import, sender: Any) -> None:
        batch = bytearray(msg.nbytes)
        batch[::4096] = b"\x01" * len(range(0, msg.nbytes, 4096))  # resident, not reserved
        self.held.append(batch)
        self.batches += 1
        self.reply(sender, self.batches)


def tree() -> Supervisor:
    return Supervisor("shop", children=[Child("catalogue", Catalogue), Child("importer", Importer)])


def show(system: System, seen: int) -> int:
    cleanups = system.memory().cleanups
    for report in cleanups[seen:]:
        print(
            f"  {report.tier:<9} ({report.trigger}) {report.percent_before:5.1f}% ->"
            f" {report.percent_after:5.1f}% in {report.duration_s * 1000:.0f} ms"
        )
        catalogue = report.actors.get("shop/catalogue")
        if catalogue is not None:
            print(f"    catalogue cache gave back {catalogue.caches / MiB:.1f} MiB")
        if report.restarted:
            print(f"    restarted to give memory back: {', '.join(report.restarted)}")
    return len(cleanups)


def run(base: str) -> int:
    with start(tree(), base=base, report_path=None, memory_budget="1TiB") as probe:
        time.sleep(0.5)
        resting = probe.memory().sample.used
    budget = int(resting / 0.55)
    print(f"resting size {resting / MiB:.0f} MiB; budget {budget / MiB:.0f} MiB ({base} base)")
    options: dict[str, Any] = {"memory_interval_s": 0.1, "memory": {"horizon_s": 0}}
    with start(tree(), base=base, report_path=None, memory_budget=budget, **options) as system:
        seen = 0
        for target in (74, 89, 98):
            need = int(budget * target / 100) - system.memory().sample.used
            if need > 0:
                print(f"\nthe importer takes {need / MiB:.0f} MiB more (aiming at {target}%)")
                system.ask("shop/importer", Import(need), timeout=30)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(system.memory().cleanups) == seen:
                time.sleep(0.05)
            time.sleep(0.3)
            seen = show(system, seen)
        try:
            system.ask("shop/catalogue", Page(3))
            print("\na page request went through")
        except Overloaded as exc:
            print(f"\nwhile shedding load: {exc}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and system.memory().shedding:
            time.sleep(0.1)
        status = system.memory()
        print(f"\nnow at {status.sample.percent:.1f}%, shedding: {status.shedding}")
        tiers = [r.tier for r in status.cleanups]
    print(f"tiers run: {', '.join(dict.fromkeys(tiers))}")
    return 0 if {"warning", "critical", "emergency"} <= set(tiers) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.memory_pressure", description=__doc__)
    parser.add_argument("--base", choices=["multiproc", "simple"], default="multiproc")
    return run(parser.parse_args(argv).base)


if __name__ == "__main__":
    raise SystemExit(main())
