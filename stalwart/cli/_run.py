"""``stalwart check TREE.toml`` and ``stalwart run TREE.toml``.

``run`` starts the tree and shows it live (:mod:`._view`): in a terminal, a view of
the tree (state, level, restarts, breaker, memory level) redrawn in place; otherwise one
line per event, rate-limited. Ctrl-C or SIGTERM stops it in order. It notes the tree in
the state directory for the other commands; on the simple base it also opens the control
endpoint they reach it by (:mod:`._reach`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import tomllib
from typing import Any

from ..supervisors import System, _tree_file, start
from ..supervisors._tree_file import MAX_FILE_BYTES, TreeFile, TreeFileError, load_tree
from ._common import (
    EXIT_LEVEL5,
    EXIT_OK,
    Interrupted,
    StopSignals,
    UsageError,
    forget_run,
    remember_run,
)
from ._reach import ControlServer
from ._view import EventLines, LiveScreen

_REDRAW_S = 0.5
_POLL_S = 0.2  # without a terminal: how often new events are looked for
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
    except KeyboardInterrupt as exc:  # (a module of the tree's can take a while to import)
        raise Interrupted(f"{path}: interrupted while {_importing(exc)}") from None


def _importing(exc: BaseException) -> str:
    """What loading the tree file was doing when ``exc`` came: importing which module, for
    which actor (read from the frames of the loader, where that is where it was)."""
    path, module = "", ""
    tb = exc.__traceback__
    while tb is not None:
        code, seen = tb.tb_frame.f_code, tb.tb_frame.f_locals
        if code.co_name == "_child" and code.co_filename == _tree_file.__file__:
            path = f"{seen.get('path')} ({seen.get('where')})"
        elif code.co_name == "resolve_actor_class" and "module_name" in seen:
            module, path = seen["module_name"], path or str(seen.get("path"))
        tb = tb.tb_next
    return f"importing {module!r} for {path}" if module else "loading it"


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
        served = serve_dashboard(system, address, args.token) if address else None
        control = open_control(system) if base == "simple" else None
    except BaseException:
        system.shutdown()
        stop.restore()
        raise
    stopped_at_level5 = False
    try:
        stopped_at_level5 = watch(system, args, base, served, control, stop, started)
    finally:
        forget_run(tree_file.tree.name)  # (no command looks for the tree while it stops)
        if control is not None:
            control.stop()
        with contextlib.suppress(BrokenPipeError):  # (no one reads: the tree stops all the same)
            if not stopped_at_level5:
                print("stopping (reverse dependency order)...", flush=True)
        system.shutdown()
        stop.restore()
    report = system.final_report
    if stopped_at_level5 or (report and report.get("level") == 5):
        reason = (report or {}).get("reason", "level 5")
        print(f"the system stopped at level 5: {reason}", flush=True)
        return EXIT_LEVEL5
    print("stopped", flush=True)
    return EXIT_OK


class Served:
    """The dashboard ``run`` serves: what to say of it, at the start and atop the view."""

    def __init__(self, server: Any, token_given: bool) -> None:
        self.server, self.token_given = server, token_given

    def lines(self) -> list[str]:
        """Said once: the address, the JSON API, the token unless the user gave it."""
        url = self.server.url
        said = [f"dashboard: {url}/  (JSON API under {url}/api/)"]
        if not self.token_given:
            said.append(
                f"token for actions: {self.server.token}  (or open {self.server.dashboard_url})"
            )
        return said

    def top(self) -> list[str]:
        """Atop every frame of the live view: the address, and the token."""
        top = [f"dashboard: {self.server.url}/"]
        return top if self.token_given else [*top, f"token for actions: {self.server.token}"]


def serve_dashboard(system: System, address: tuple[str, int], token: str | None) -> Served:
    """Serve the dashboard and the JSON API of ``system`` at ``address``."""
    try:
        server = system.serve_api(*address, token=token)
    except OSError as exc:
        raise UsageError(f"--serve: cannot listen on {address[0]}:{address[1]}: {exc}") from None
    return Served(server, bool(token))


def open_control(system: System) -> ControlServer | None:
    """The control endpoint of a tree on the simple base (None if it cannot listen: the
    tree runs all the same, and the other commands say they cannot reach it)."""
    try:
        return ControlServer(system)
    except OSError as exc:
        print(f"stalwart: no control endpoint for status, send...: {exc}", file=sys.stderr)
        return None


def watch(
    system: System,
    args: argparse.Namespace,
    base: str,
    served: Served | None,
    control: ControlServer | None,
    stop: StopSignals,
    started: float,
) -> bool:
    """Show the running tree until a stop is asked for or ``--for`` has passed (False),
    or the system stops at level 5 (True)."""
    name = system.tree.name
    endpoint = (control.address, control.token) if control else None
    state = remember_run(name, system.admin_port, args.tree, endpoint)
    where = f"admin port {system.admin_port}" if system.admin_port else ""
    where = where or (f"control endpoint {control.address}" if control else "")
    print(f"running {name} on the {base} base" + (f" ({where}; {state})" if where else ""))
    for line in served.lines() if served else []:
        print(line)
    sys.stdout.flush()
    view: LiveScreen | EventLines
    if sys.stdout.isatty():
        view = LiveScreen(system, sys.stdout, started, served.top() if served else [])
    else:
        view = EventLines(system, sys.stdout, started)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    with view:
        while not stop.requested:
            view.update()
            if system.stopped:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(_REDRAW_S if isinstance(view, LiveScreen) else _POLL_S)
    return False
