"""Partitions that come and go under load, with a ledger of every acknowledged request.

    python benchmarks/partition_soak.py [--seconds 60] [--clients 3] [--seed N]
                                        [--calm LOW HIGH]                  (as root)

A leader and two member hosts (network namespaces on a bridge). The accounts of
``soak.py`` run on the members. Client threads deposit into random accounts and note
every acknowledged deposit, while a flapper takes one member's link down for 0.5-8 s at
a time (long enough, mostly, for the member to fence itself and the leader to move its
accounts), then up again for 2-5 s (``--calm``), over and over. The partitions depend on
the seed alone: the same seed cuts the same members for the same times in the same order,
whatever the calm between them. At the end each account lists what it applied:
nothing acknowledged may be missing (**lost**) or applied twice, and the tree must still
run. Exits 1 otherwise. Needs root and iproute2.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path

from soak import ASK_TIMEOUT_S, Account, Applied, Ledger, client, report, soak_arguments

from stalwart import Child, Supervisor
from stalwart.cluster import LocalCluster
from stalwart.cluster._netns import Hosts

HERE = str(Path(__file__).resolve().parent)  # members import soak's Account from here
ACCOUNTS = 4
PATHS = [f"bank/a{a}" for a in range(ACCOUNTS)]
MEMBERS = ("b", "c")


def tree() -> Supervisor:
    accounts = [Child(f"a{a}", Account, requires={"member": True}) for a in range(ACCOUNTS)]
    return Supervisor("bank", max_restarts=10_000, within_s=60, children=accounts)


def flapper(
    hosts: Hosts,
    stop: threading.Event,
    seed: int,
    cuts: list[float],
    calm: tuple[float, float] = (2.0, 5.0),
) -> None:
    """Cut one member at a time, for 0.5-8 s, then heal it for ``calm`` seconds (a range);
    until ``stop``."""
    rng = random.Random(seed)
    while not stop.wait(rng.uniform(*calm)):
        name = rng.choice(MEMBERS)
        down = rng.choice((rng.uniform(0.5, 1.5), rng.uniform(4.0, 8.0)))
        hosts.cut(name)
        try:
            stop.wait(down)
        finally:
            hosts.heal(name)
        cuts.append(down)


def partition_soak(
    seconds: float, clients: int, seed: int, calm: tuple[float, float] = (2.0, 5.0)
) -> int:
    """Run the flapping partitions under load; print the figures; 0 if all is well."""
    ledger, cuts = Ledger(), []
    stop, ids = threading.Event(), iter(range(1, 1 << 62))
    hosts = Hosts.make(f"p{os.getpid() % 10000}", os.getpid() % 250 + 1, MEMBERS)
    try:
        members = {name: ["member=true"] for name in MEMBERS}
        with LocalCluster(
            tree(), members, cwd=HERE, report_path=None, host=hosts.leader, hosts=hosts.members
        ) as cluster:
            system = cluster.system
            assert system is not None
            threads = [
                threading.Thread(target=client, args=(system, ledger, ids, stop, seed + i, PATHS))
                for i in range(clients)
            ]
            flapping = (hosts, stop, seed - 1, cuts, calm)
            threads.append(threading.Thread(target=flapper, args=flapping))
            for thread in threads:
                thread.start()
            time.sleep(seconds)  # the partitions come and go for this long (the soak's length)
            stop.set()
            for thread in threads:
                thread.join(ASK_TIMEOUT_S + 30)
            for name in MEMBERS:
                hosts.heal(name)
            applied = {path: system.ask(path, Applied(), timeout=60) for path in PATHS}
            stopped = system.stopped
            events = system.events()
            lost_events = sum(e.kind == "node-lost" for e in events)
    finally:
        hosts.remove()
    long_cuts = sum(c >= 4.0 for c in cuts)
    title = (
        f"partition soak: {seconds:g} s, {clients} clients, 2 member hosts, seed {seed},"
        f" calm {calm[0]:g}-{calm[1]:g} s"
    )
    rows = [
        ("partitions", f"{len(cuts)} ({long_cuts} of 4-8 s, the rest under 1.5 s)"),
        ("nodes declared lost", lost_events),
    ]
    failed = report(title, ledger, applied, stopped, rows)
    if failed:
        print(f"  events (now {time.monotonic():.3f}):")
        for e in events[-300:]:
            print(f"    {e.time:.3f} {e.kind} {e.path} {e.detail[:200]}")
    return failed


def main(argv: list[str] | None = None) -> int:
    args, calm = soak_arguments(__doc__ or "", argv, "calm", (2.0, 5.0), "partitions")
    return partition_soak(args.seconds, args.clients, args.seed, calm)


if __name__ == "__main__":
    sys.exit(main())
