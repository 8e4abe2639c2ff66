"""A SIGKILL storm under load, with a ledger of every acknowledged request.

    python benchmarks/soak.py [--seconds 60] [--clients 3] [--seed N] [--kill-every LOW HIGH]
                              [--standby] [--pool] [--passivate S] [--tellers]

A multi-process tree of accounts under two branch supervisors (``--standby``: each account
keeps a warm spare that takes over after a kill; ``--pool``: the second branch is a
``Pool`` whose keys are the accounts, started with ``start_child``; ``--passivate S``: an
account idle for ``S`` seconds is passivated, and the next deposit brings it back). Client threads send
numbered deposits (``System.ask``) to random accounts and note every one that was
acknowledged (``--tellers``: each client asks a teller actor of its own, which calls the
account, so what a crash lost is handed over by an actor, straight to a spare with
``--standby``; the tellers are never killed). Meanwhile a killer SIGKILLs, every 0.5-2 s (``--kill-every``), an account's
process, a branch supervisor's (with every account below it), or the account that has just
acknowledged a deposit; what it kills, in which order, depends on the seed alone. It kills
through ``System.inject(path, "kill")``: the root signals only a process of this system,
never one that took the pid of an instance that died meanwhile. (A Pool's supervisor is
not killed: a Pool restarted by its parent starts empty, as OTP's ``simple_one_for_one``.) At the end each account
lists the deposits it applied:

- **lost**: acknowledged, yet not applied in the state the account has now;
- **applied twice**: applied more than once (an account does not deduplicate, so a
  request handled again after its state was saved would show here).

It prints requests sent and acknowledged, errors by type, kills, lost, applied
twice and latency percentiles, and exits 1 if anything was lost or applied twice.
A request whose answer was an error is not acknowledged: it may or may not have
been applied, and is counted under its error.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import threading
import time
from typing import Any

import msgspec

from stalwart import Child, ManagedActor, Pool, StalwartError, Supervisor, start

BRANCHES = 2
ACCOUNTS = 3  # per branch
ASK_TIMEOUT_S = 15.0


class Deposit(msgspec.Struct, frozen=True):
    id: int


class Applied(msgspec.Struct, frozen=True):
    pass


class Account(ManagedActor):
    """Applies every deposit it handles (no deduplication of its own)."""

    def on_start(self) -> None:
        self.applied: list[int] = list(self.restored_state or [])

    def snapshot(self) -> Any:
        return self.applied

    def receiveMsg_Deposit(self, msg: Deposit, sender: Any) -> None:
        self.applied.append(msg.id)
        self.reply(sender, len(self.applied))

    def receiveMsg_Applied(self, msg: Applied, sender: Any) -> None:
        self.reply(sender, list(self.applied))


class Forward(msgspec.Struct, frozen=True):
    path: str
    deposit: Deposit


class Teller(ManagedActor):
    """Calls the account for a client, and answers what the account answered."""

    def receiveMsg_Forward(self, msg: Forward, sender: Any) -> None:
        self.call(
            msg.path,
            msg.deposit,
            timeout=ASK_TIMEOUT_S - 3,
            on_reply=lambda value: self.reply(sender, value),
            on_error=lambda exc: self.reply_error(sender, exc),
        )


class Mode(msgspec.Struct, frozen=True):
    """What the accounts are: with warm spares, the second branch a Pool, passivated; and
    whether clients go through tellers."""

    standby: bool = False
    pool: bool = False
    passivate_after_s: float | None = None
    tellers: int = 0

    def account(self, name: str) -> Child:
        return Child(name, Account, standby=self.standby, passivate_after_s=self.passivate_after_s)

    def text(self) -> str:
        parts = ["standby"] * self.standby + ["the second branch a Pool"] * self.pool
        parts += ["through teller actors"] * bool(self.tellers)
        if self.passivate_after_s is not None:
            parts.append(f"passivated after {self.passivate_after_s:g} s")
        return ", ".join(parts)


PLAIN = Mode()  # declared accounts, no spares, never passivated


def tree(mode: Mode = PLAIN) -> Supervisor:
    branches: list[Supervisor] = [
        Supervisor(
            f"branch{b}",
            max_restarts=10_000,
            within_s=60,
            children=[mode.account(f"a{a}") for a in range(ACCOUNTS)],
        )
        for b in range(BRANCHES)
    ]
    if mode.pool:
        template = mode.account("account")
        branches[-1] = Pool(f"branch{BRANCHES - 1}", template=template, max_restarts=10_000)
    children: list[Any] = list(branches)
    if mode.tellers:
        tellers = [Child(f"t{i}", Teller) for i in range(mode.tellers)]
        children.append(Supervisor("tellers", children=tellers))
    return Supervisor("bank", max_restarts=10_000, within_s=60, children=children)


ACCOUNT_PATHS = [f"bank/branch{b}/a{a}" for b in range(BRANCHES) for a in range(ACCOUNTS)]
BRANCH_PATHS = [f"bank/branch{b}" for b in range(BRANCHES)]


class Ledger:
    """What the clients saw: acknowledged deposits per account, errors, latencies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.acknowledged: dict[str, set[int]] = collections.defaultdict(set)
        self.errors: collections.Counter[str] = collections.Counter()
        self.latencies: list[float] = []
        self.last_acknowledged = ""
        self.replies: dict[int, tuple[float, Any]] = {}  # id: (when, the reply)
        self.first_errors: dict[str, str] = {}  # error type: its first message


def client(
    system: Any,
    ledger: Ledger,
    ids: Any,
    stop: threading.Event,
    seed: int,
    paths: list[str] = ACCOUNT_PATHS,
    teller: str = "",
) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        path = rng.choice(paths)
        with ledger.lock:
            ident = next(ids)
            ledger.sent += 1
        began = time.perf_counter()
        try:
            if teller:
                value = system.ask(teller, Forward(path, Deposit(ident)), timeout=ASK_TIMEOUT_S)
            else:
                value = system.ask(path, Deposit(ident), timeout=ASK_TIMEOUT_S)
        except StalwartError as exc:
            with ledger.lock:
                ledger.errors[type(exc).__name__] += 1
                ledger.first_errors.setdefault(type(exc).__name__, str(exc)[:300])
            continue
        took = time.perf_counter() - began
        with ledger.lock:
            ledger.acknowledged[path].add(ident)
            ledger.latencies.append(took)
            ledger.last_acknowledged = path
            ledger.replies[ident] = (time.monotonic(), value)


def killer(
    system: Any,
    ledger: Ledger,
    stop: threading.Event,
    seed: int,
    kills: collections.Counter[str],
    every: tuple[float, float] = (0.5, 2.0),
    branches: list[str] = BRANCH_PATHS,
) -> None:
    rng = random.Random(seed)
    while not stop.wait(rng.uniform(*every)):
        roll = rng.random()
        if roll < 0.25:
            kind, path = "branch supervisor", rng.choice(branches)
        elif roll < 0.5 and ledger.last_acknowledged:
            kind, path = "account that just acknowledged", ledger.last_acknowledged
        else:
            kind, path = "account", rng.choice(ACCOUNT_PATHS)
        try:  # (by the root: a pid the status still shows may be another process's by now)
            system.inject(path, "kill")
        except StalwartError:  # no running process now (it is restarting)
            continue
        kills[kind] += 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def soak(
    seconds: float,
    clients: int,
    seed: int,
    out: Any = sys.stdout,
    kill_every: tuple[float, float] = (0.5, 2.0),
    mode: Mode = PLAIN,
) -> int:
    """Run the storm; print the figures; 0 if nothing acknowledged was lost or doubled."""
    ledger = Ledger()
    kills: collections.Counter[str] = collections.Counter()
    stop, ids = threading.Event(), iter(range(1, 1 << 62))
    pool = BRANCH_PATHS[-1] if mode.pool else ""
    with tempfile.TemporaryDirectory() as folder:
        report_path = f"{folder}/report.json"
        system = start(tree(mode), base="multiproc", report_path=report_path, chaos=True)
        try:
            for a in range(ACCOUNTS) if pool else ():
                system.start_child(pool, f"a{a}")
            tellers = [
                f"bank/tellers/t{i % mode.tellers}" if mode.tellers else "" for i in range(clients)
            ]
            threads = [
                threading.Thread(
                    target=client,
                    args=(system, ledger, ids, stop, seed + i, ACCOUNT_PATHS, tellers[i]),
                )
                for i in range(clients)
            ]
            branches = [path for path in BRANCH_PATHS if path != pool]
            killing = (system, ledger, stop, seed - 1, kills, kill_every, branches)
            threads.append(threading.Thread(target=killer, args=killing))
            for thread in threads:
                thread.start()
            time.sleep(seconds)  # the storm runs for this long (this is the soak's length)
            stop.set()
            for thread in threads:
                thread.join(ASK_TIMEOUT_S + 30)
            applied = {path: applied_at(system, path, seed, out) for path in ACCOUNT_PATHS}
            stopped = system.stopped
            events = system.events()  # (the latest ones)
            kept = collections.Counter(e.kind for e in events)
            spared = sum(e.kind == "restarted" and "(a spare)" in e.detail for e in events)
        finally:
            system.shutdown()
    kill_text = ", ".join(f"{k} {v}" for k, v in sorted(kills.items())) or "none"
    title = (
        f"soak: {seconds:g} s, {clients} clients, multiproc, seed {seed},"
        f" a kill every {kill_every[0]:g}-{kill_every[1]:g} s"
    ) + (f"; {mode.text()}" if mode.text() else "")
    rows = [("kills", f"{sum(kills.values())} ({kill_text})")]
    if mode.standby:
        rows.append(("spare takeovers", f"{spared} (in the events kept)"))
    if mode.passivate_after_s is not None:
        passivated = f"{kept['passivated']} passivated, {kept['reactivated']} reactivated"
        rows.append(("passivations", f"{passivated} (in the events kept)"))
    return report(title, ledger, applied, stopped, rows, out)


def applied_at(system: Any, path: str, seed: int, out: Any) -> list[int]:
    """What the account at ``path`` applied, once the storm is over; if it does not answer,
    what the tree shows of it (to find out why) before the error goes on."""
    try:
        applied: list[int] = system.ask(path, Applied(), timeout=ASK_TIMEOUT_S)
    except StalwartError as exc:
        print(f"soak, seed {seed}: {path} did not answer after the storm: {exc}", file=out)
        for entry in system.status():
            print(
                f"  {entry.path}: {entry.state}, restarts {entry.restarts}, pid {entry.pid}",
                file=out,
            )
        for event in system.events()[-40:]:
            print(f"  {event.time:.3f} {event.kind} {event.path} {event.detail[:120]}", file=out)
        raise
    return applied


def report(
    title: str,
    ledger: Ledger,
    applied: dict[str, list[int]],
    stopped: bool,
    rows: list[tuple[str, Any]],
    out: Any = sys.stdout,
) -> int:
    """Print the ledger against what the accounts applied (``rows``: the soak's own figures,
    shown after the errors); 0 if nothing acknowledged was lost or doubled and the tree runs."""
    lost = sum(len(acked - set(applied[p])) for p, acked in ledger.acknowledged.items())
    twice = sum(
        n - 1 for ids_ in applied.values() for n in collections.Counter(ids_).values() if n > 1
    )
    acknowledged = sum(len(a) for a in ledger.acknowledged.values())
    errors = ", ".join(f"{k} {v}" for k, v in sorted(ledger.errors.items())) or "none"
    p50, p99 = percentile(ledger.latencies, 0.5), percentile(ledger.latencies, 0.99)
    figures = [
        ("requests sent", ledger.sent),
        ("acknowledged", acknowledged),
        ("errors", errors),
        *rows,
        ("lost", lost),
        ("applied twice", twice),
        ("latency p50 / p99", f"{1000 * p50:.1f} / {1000 * p99:.1f} ms"),
        ("tree still running", "no" if stopped else "yes"),
    ]
    print(title, file=out)
    for label, value in figures:
        print(f"  {label:<20} {value}", file=out)
    failed = bool(lost or twice or stopped)
    for name, text in sorted(ledger.first_errors.items()):  # (what each kind of error said)
        print(f"  first {name}: {text}", file=out)
    if failed:  # what it takes to find out why
        for path, acked in ledger.acknowledged.items():
            for ident in sorted(acked - set(applied[path]))[:5]:
                when, value = ledger.replies[ident]
                print(
                    f"  lost: deposit {ident} to {path}, acknowledged at {when:.3f} as number"
                    f" {value}; {len(applied[path])} applied there now",
                    file=out,
                )
    return 1 if failed else 0


def soak_arguments(
    doc: str,
    argv: list[str] | None,
    gaps: str,
    default: tuple[float, float],
    what: str,
    parents: tuple[argparse.ArgumentParser, ...] = (),
) -> tuple[argparse.Namespace, tuple[float, float]]:
    """A soak's command line: its length, clients, seed, and the ``--gaps LOW HIGH`` range
    of seconds between its ``what`` (checked); ``parents``: its own options."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0], parents=list(parents))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument(
        f"--{gaps}",
        type=float,
        nargs=2,
        default=default,
        metavar=("LOW", "HIGH"),
        help=f"seconds between {what}, drawn from this range (default {default[0]:g} {default[1]:g})",
    )
    args = parser.parse_args(argv)
    low, high = getattr(args, gaps.replace("-", "_"))
    if not 0 < low <= high:
        parser.error(f"--{gaps}: expected 0 < LOW <= HIGH, got {low:g} {high:g}")
    passivate = getattr(args, "passivate", None)
    if passivate is not None and not passivate > 0:
        parser.error(f"--passivate: expected seconds > 0, got {passivate:g}")
    if passivate is not None and getattr(args, "standby", False):
        parser.error("--standby and --passivate: an actor with a spare is never passivated")
    return args, (low, high)


def main(argv: list[str] | None = None) -> int:
    modes = argparse.ArgumentParser(add_help=False)
    modes.add_argument("--standby", action="store_true", help="each account keeps a spare")
    modes.add_argument("--pool", action="store_true", help="the second branch is a Pool")
    modes.add_argument(
        "--passivate", type=float, metavar="S", help="passivate accounts idle for S seconds"
    )
    modes.add_argument(
        "--tellers", action="store_true", help="clients call the accounts through teller actors"
    )
    doc = __doc__ or ""
    args, kill_every = soak_arguments(doc, argv, "kill-every", (0.5, 2.0), "kills", (modes,))
    mode = Mode(args.standby, args.pool, args.passivate, args.clients if args.tellers else 0)
    return soak(args.seconds, args.clients, args.seed, kill_every=kill_every, mode=mode)


if __name__ == "__main__":
    import soak as importable  # the actors' module must be importable by its own name

    sys.exit(importable.main())
