"""The `stalwart` command at its edges: a folder where a file belongs, a reader that goes
away, Ctrl-C, a tree that other commands cannot reach. One clear line, never a traceback."""

import json
import os
import signal
import socket
import subprocess
import sys

import psutil
import pytest

from stalwart import System
from stalwart.telemetry import RecoveryStore
from tests.cli.test_commands import (  # noqa: F401  (the fixture stops what a test left)
    ROOT,
    SHOP,
    _no_command_left_running,
    first_line,
    run_in_background,
    stalwart,
    state_env,
)

TREE_COMMANDS = [("check",), ("run", "--for", "5"), ("chaos", "--raise", "shop/db")]


@pytest.mark.parametrize("command", TREE_COMMANDS, ids=[c[0] for c in TREE_COMMANDS])
def test_a_folder_given_for_a_tree_file_is_one_line_naming_the_tree_file_in_it(tmp_path, command):
    out = stalwart(command[0], "examples/shop", *command[1:], env=state_env(tmp_path))
    assert out.returncode == 2
    assert out.stderr == (
        "stalwart: examples/shop: is a folder, not a tree file (.toml);"
        " did you mean examples/shop/shop.toml?\n"
    )
    assert out.stdout == ""


def test_a_folder_without_one_tree_file_is_named_without_a_guess(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')  # TOML, not a tree
    out = stalwart("check", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr == f"stalwart: {tmp_path}: is a folder, not a tree file (.toml)\n"
    for name in ("a.toml", "b.toml"):
        (tmp_path / name).write_text((ROOT / SHOP).read_text())
    several = stalwart("check", str(tmp_path))
    assert several.returncode == 2
    assert several.stderr.endswith(f"; it holds {tmp_path / 'a.toml'}, {tmp_path / 'b.toml'}\n")


def test_a_python_file_given_for_a_tree_file_is_named_as_such():
    out = stalwart("check", "examples/shop/tree.py")
    assert out.returncode == 2
    assert out.stderr == "stalwart: examples/shop/tree.py: is Python, not a tree file (.toml)\n"


@pytest.mark.parametrize("command", ["report", "serve"])
def test_a_folder_given_for_a_recovery_store_is_one_line(command):
    out = stalwart(command, "--db", "examples/shop", timeout=30)
    assert out.returncode == 2
    assert out.stderr == "stalwart: recovery store 'examples/shop' is a folder, not a file\n"


def test_serve_names_a_store_it_cannot_open_and_a_port_it_cannot_listen_on(tmp_path):
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    out = stalwart("serve", "--db", str(broken), "--port", "0", timeout=30)
    assert out.returncode == 2
    assert out.stderr == (
        f"stalwart: {broken}: not a usable recovery store (file is not a database)\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = stalwart("serve", "--db", str(tmp_path / "s.db"), "--port", str(port), timeout=30)
    assert busy.returncode == 2
    assert busy.stderr == f"stalwart: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def _closed_pipe():
    """The writing end of a pipe whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    return write


@pytest.mark.parametrize("command", ["check", "report"])
def test_output_to_a_reader_that_went_away_ends_quietly_with_exit_code_141(tmp_path, command):
    store = tmp_path / "r.db"
    RecoveryStore(store).close()
    args = {"check": ["check", SHOP], "report": ["report", "--db", str(store)]}
    write = _closed_pipe()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "stalwart", *args[command]],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=ROOT,
            env=state_env(tmp_path),
        )
    finally:
        os.close(write)
    assert (out.returncode, out.stderr) == (141, "")


def test_run_piped_to_a_reader_that_stops_after_one_line_still_stops_the_tree(tmp_path):
    """`stalwart run ... | head -1`: the tree stops in order, no process is left behind."""
    env = state_env(tmp_path)
    proc = run_in_background("run", SHOP, "--base", "multiproc", env=env)
    assert first_line(proc).startswith("running shop on the multiproc base")
    port = json.loads((tmp_path / "state" / "shop.json").read_text())["admin_port"]
    with System.attach(port) as system:
        pids = [s.pid for s in system.status() if s.pid]
    sessions = {os.getsid(pid) for pid in pids} - {os.getsid(0)}
    tree = [p for p in psutil.process_iter() if _session(p.pid) in sessions]
    assert sessions and tree
    proc.stdout.close()  # the reader goes: whatever `run` writes next finds no one
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)
    _gone, alive = psutil.wait_procs(tree, timeout=30)
    for left in alive:  # (only if the tree was not stopped: they hold stderr open)
        left.kill()
    assert alive == []
    err = proc.stderr.read()
    assert code == 141 and "Traceback" not in err, err
    assert not (tmp_path / "state" / "shop.json").exists()  # it got to the end of its stop


def _session(pid):
    try:
        return os.getsid(pid)
    except OSError:
        return None


def test_ctrl_c_while_a_command_waits_ends_it_with_exit_code_130_and_no_traceback(tmp_path):
    """`status` waiting for an admin that never answers, interrupted."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(60)
        port = silent.getsockname()[1]
        proc = run_in_background("status", "--port", str(port), env=state_env(tmp_path))
        probe, _ = silent.accept()  # is anything listening? (then closed)
        waiting, _ = silent.accept()  # the command talks to its admin, and waits for it
        assert psutil.Process(proc.pid).children(recursive=True) == []
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        probe.close()
        waiting.close()
    assert (proc.returncode, out, err) == (130, "", "")


SLOW_TREE = """
[supervisor]
name = "app"
[[supervisor.children]]
name = "w"
actor = "slowly_imported:Worker"
"""
SLOW_MODULE = """
import time
print("importing slowly_imported", flush=True)
time.sleep(120)
from tests.support import Worker
"""


@pytest.mark.parametrize("command", ["check", "run"])
def test_ctrl_c_while_a_tree_files_module_is_imported_is_one_line_and_exit_code_130(
    tmp_path, command
):
    (tmp_path / "slowly_imported.py").write_text(SLOW_MODULE)
    tree = tmp_path / "slow.toml"
    tree.write_text(SLOW_TREE)
    env = state_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    proc = run_in_background(command, str(tree), env=env)
    assert first_line(proc) == "importing slowly_imported\n"  # it is in the import now
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (130, "")
    assert err == (
        f"stalwart: {tree}: interrupted while importing 'slowly_imported'"
        " for app/w (supervisor.children[0])\n"
    )


def test_a_note_left_by_a_killed_run_on_the_simple_base_is_no_running_tree(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(30)
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    note = {"name": "shop", "admin_port": None, "pid": dead.pid, "tree": SHOP}
    (folder / "current.json").write_text(json.dumps(note))
    out = stalwart("status", env=state_env(tmp_path))
    assert out.returncode == 2 and "no running tree noted" in out.stderr, out.stderr


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        (
            "basic_attempts = 1",
            "basic_attemps = 1",
            "stalwart: changed.toml: shop (supervisor): levels.basic_attemps: unknown setting"
            " (known: basic_attempts, basic_delay_s, enhanced_attempts,",
        ),
        (
            'base = "',
            'base = "cloud-',
            "stalwart: changed.toml: system: base: expected one of simple, multiproc, tcp,"
            " got 'cloud-",
        ),
    ],
    ids=["misspelt-setting", "bad-base"],
)
def test_check_lists_what_is_accepted_for_a_misspelt_setting_and_for_a_bad_base(
    tmp_path, old, new, said
):
    changed = tmp_path / "changed.toml"
    changed.write_text((ROOT / SHOP).read_text().replace(old, new, 1))
    out = stalwart("check", str(changed))
    assert out.returncode == 2
    assert out.stderr.startswith(said), out.stderr
