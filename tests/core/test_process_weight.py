"""What an actor process holds: numpy, sqlite-utils and the HTTP API only once used.

On the multi-process bases every actor process is forked from its supervisor's, and a
fork costs in proportion to what the forking process holds; so Stalwart imports numpy,
sqlite-utils and the HTTP API (with Prometheus' client) the first time they are used.
Each check runs in an interpreter of its own: a test process has imported them already.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec

from stalwart import ManagedActor
from stalwart._deferred import np

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "sqlite_utils", "prometheus_client", "http.server")


class HeavyModules(msgspec.Struct, frozen=True):
    pass


class Instance(ManagedActor):
    """Answers with the heavy modules its process holds, and its pid."""

    def receiveMsg_HeavyModules(self, msg: HeavyModules, sender: Any) -> None:
        import os

        self.reply(sender, (sorted(m for m in HEAVY if m in sys.modules), os.getpid()))


def in_fresh_interpreter(code: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_importing_stalwart_imports_none_of_numpy_sqlite_utils_and_the_http_api():
    code = f"import sys, stalwart; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    assert in_fresh_interpreter(code) == "[]"


def pool_instance_holds() -> None:
    """A tree on ``multiproc`` with the default services (recovery store, correlator);
    a Pool instance started at run time answers with what its process holds."""
    from stalwart import Child, Pool, Supervisor, start

    pool = Pool("pool", template=Child("instance", Instance, restart="temporary"))
    tree = Supervisor("app", children=[pool])
    with start(tree, base="multiproc", report_path=None) as system:
        path = system.start_child("app/pool", "one", timeout=60)
        held, pid = system.ask(path, HeavyModules(), timeout=30)
        print(held, pid != 0)


def test_an_actor_process_forked_on_multiproc_holds_none_of_them():
    code = "from tests.core.test_process_weight import pool_instance_holds; pool_instance_holds()"
    assert in_fresh_interpreter(code) == "[] True"


def test_the_deferred_module_is_the_real_one_once_read():
    assert int(np.array([1, 2, 3]).sum()) == 6
    assert np.ndarray is sys.modules["numpy"].ndarray
