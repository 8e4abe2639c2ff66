"""``stalwart check TREE.toml`` and ``stalwart run TREE.toml``.

``run`` starts the tree and shows it live: in a terminal, a view of the tree
(state, level, restarts, breaker, memory level) redrawn as events happen;
otherwise one line per event. Ctrl-C or SIGTERM stops it in order.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import tomllib
from typing import Any, TextIO

from ..supervisors import System, start
from ..supervisors._tree_file import MAX_FILE_BYTES, TreeFile, TreeFileError, load_tree
from ._common import EXIT_LEVEL5, EXIT_OK, StopSignals, UsageError, forget_run, remember_run

_REDRAW_S = 0.5
_EVENTS_SHOWN = 8
CLEAR = "\x1b[H\x1b[2J"
_TOML_FILES_READ = 20  # a folder given for a tree file: how many of its .toml files to try


def add_check(commands: Any) -> None:
    p = commands.add_parser(
        "check", help="validate a tree file", description="Validate a TOML tree file."
    )
    p.add_argument("tree", help="the tree file (TOML)")
    p.set_defaults(run=run_check)


def add_run(commands: Any) -> None:
    p = commands.add_parser(
        "run",
        help="run a tree file",
        description="Start the tree in a TOML file and show it live until Ctrl-C or SIGTERM.",
    )
    p.add_argument("tree", help="the tree file (TOML)")
    p.add_argument("--base", choices=["simple", "multiproc", "tcp"], help="override the base")
    p.add_argument("--for", dest="seconds", type=float, help="stop after this many seconds")
    p.add_argument("--chaos", action="store_true", help="accept `stalwart chaos` faults")
    p.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="serve the dashboard and the JSON API there (HOST defaults to 127.0.0.1)",
    )
    p.add_argument("--token", help="token for the API's actions (default: a new random one)")
    p.set_defaults(run=run_run)


def listen_address(text: str, option: str = "--serve") -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (loopback when no host is given)."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise UsageError(f"{option}: expected [HOST:]PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise UsageError(f"{option}: port {number} is out of range 0..65535")
    return host.strip("[]") or "127.0.0.1", number


def load(path: str) -> TreeFile:
    """The tree file at ``path``; a UsageError that names it if it is not one."""
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a folder, not a tree file (.toml){_trees_in(path)}")
    if path.endswith(".py") and os.path.isfile(path):
        raise UsageError(f"{path}: is Python, not a tree file (.toml)")
    try:
        return load_tree(path)
    except TreeFileError as exc:
        raise UsageError(str(exc)) from None


def _trees_in(folder: str) -> str:
    """The tree files in ``folder``, as a hint: the one that was meant, or the choice."""
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".toml"))[:_TOML_FILES_READ]
    except OSError:
        return ""
    trees = [os.path.join(folder, n) for n in names if _is_tree_file(os.path.join(folder, n))]
    if len(trees) == 1:
        return f"; did you mean {trees[0]}?"
    return f"; it holds {', '.join(trees)}" if trees else ""


def _is_tree_file(path: str) -> bool:
    """Does ``path`` look like a tree file (a TOML file with a [supervisor] table)?"""
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > MAX_FILE_BYTES:
            return False
        with open(path, "rb") as fh:
            return isinstance(tomllib.load(fh).get("supervisor"), dict)
    except (OSError, ValueError, RecursionError):
        return False


def run_check(args: argparse.Namespace) -> int:
    tree_file = load(args.tree)
    actors = sum(1 for _path, node in tree_file.tree.walk() if not hasattr(node, "children"))
    print(f"{args.tree}: ok: {tree_file.tree.name}, {actors} actor(s)")
    for path, node in tree_file.tree.walk():
        kind = "supervisor" if hasattr(node, "children") else node.actor.__name__
        print(f"  {path}  ({kind})")
    return EXIT_OK


def run_run(args: argparse.Namespace) -> int:
    tree_file = load(args.tree)
    overrides: dict[str, Any] = {}
    if args.base:
        overrides["base"] = args.base
    if args.chaos:
        overrides["chaos"] = True
    options = tree_file.system_options(**overrides)
    address = listen_address(args.serve) if args.serve else None
    stop = StopSignals()
    settings = {f: getattr(options, f) for f in options.__struct_fields__}
    base = settings.pop("base")
    started = time.time()
    try:
        system = start(tree_file.tree, base=base, **settings)
    except Exception as exc:
        stop.restore()
        print(f"stalwart: {tree_file.tree.name} did not start: {exc}", file=sys.stderr)
        return EXIT_LEVEL5
    try:
        served = serve_dashboard(system, address, args.token) if address else []
    except UsageError:
        system.shutdown()
        stop.restore()
        raise
    stopped_at_level5 = False
    try:
        stopped_at_level5 = watch(system, args, base, served, stop, started)
    finally:
        with contextlib.suppress(BrokenPipeError):  # (no one reads: the tree stops all the same)
            if not stopped_at_level5:
                print("stopping (reverse dependency order)...", flush=True)
        system.shutdown()
        forget_run(tree_file.tree.name)
        stop.restore()
    report = system.final_report
    if stopped_at_level5 or (report and report.get("level") == 5):
        reason = (report or {}).get("reason", "level 5")
        print(f"the system stopped at level 5: {reason}", flush=True)
        return EXIT_LEVEL5
    print("stopped", flush=True)
    return EXIT_OK


def serve_dashboard(system: System, address: tuple[str, int], token: str | None) -> list[str]:
    """Serve the dashboard and the JSON API of ``system``; the lines that say where."""
    try:
        server = system.serve_api(*address, token=token)
    except OSError as exc:
        raise UsageError(f"--serve: cannot listen on {address[0]}:{address[1]}: {exc}") from None
    served = [f"dashboard: {server.url}/  (JSON API under {server.url}/api/)"]
    if not token:
        served.append(f"token for actions: {server.token}  (or open {server.dashboard_url})")
    return served


def watch(
    system: System,
    args: argparse.Namespace,
    base: str,
    served: list[str],
    stop: StopSignals,
    started: float,
) -> bool:
    """Show the running tree until a stop is asked for or ``--for`` has passed (False),
    or the system stops at level 5 (True)."""
    name = system.tree.name
    state = remember_run(name, system.admin_port, args.tree)
    kind = LiveView if sys.stdout.isatty() else EventLines
    view = kind(system, sys.stdout, started)
    print(
        f"running {name} on the {base} base"
        + (f" (admin port {system.admin_port}; {state})" if system.admin_port else ""),
        flush=True,
    )
    if served:
        print("\n".join(served), flush=True)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    while not stop.requested:
        view.update()
        if system.stopped:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            break
        stop.wait(_REDRAW_S if isinstance(view, LiveView) else 0.2)
    return False


class EventLines:
    """Without a terminal: one line per event."""

    def __init__(self, system: System, out: TextIO, t0: float) -> None:
        self.system, self.out, self.seen, self.t0 = system, out, 0, t0

    def update(self) -> None:
        for e in self.system.events(self.seen):
            self.seen = e.seq
            level = f" level {e.level}" if e.level else ""
            detail = f": {e.detail}" if e.detail else ""
            self.out.write(f"{e.time - self.t0:8.2f}s {e.kind:<16} {e.path}{level}{detail}\n")
        self.out.flush()


class LiveView(EventLines):
    """In a terminal: the tree and the latest events, redrawn."""

    def update(self) -> None:
        status = self.system.status()
        try:
            memory = self.system.memory()
            mem = f"memory {memory.level.name.lower()} {memory.sample.percent:.0f}%"
            mem += " (shedding load)" if memory.shedding else ""
        except Exception:
            mem = "memory: off"
        events = self.system.events(max(0, self.seen - 200))[-_EVENTS_SHOWN:]
        if events:
            self.seen = events[-1].seq
        lines = [
            f"{self.system.tree.name}  [{status.phase}]  {mem}  ({time.time() - self.t0:.0f}s)",
            "",
            f"{'path':<34} {'state':<11} {'level':>5} {'restarts':>8}  {'node':<8} breaker",
        ]
        for s in status:
            name = "  " * s.path.count("/") + s.path.rsplit("/", 1)[-1]
            lines.append(
                f"{name:<34} {s.state:<11} {s.level or '':>5} {s.restarts or '':>8}"
                f"  {s.node or '-':<8} {s.breaker}"
            )
        lines += ["", "latest events:"]
        for e in events:
            level = f" level {e.level}" if e.level else ""
            lines.append(f"  {e.kind:<16} {e.path}{level} {e.detail[:70]}")
        self.out.write(CLEAR + "\n".join(lines) + "\n")
        self.out.flush()
