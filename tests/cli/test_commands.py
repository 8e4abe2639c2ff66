"""The `stalwart` command driven as a user drives it: real processes, signals, a terminal."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOP = "examples/shop/shop.toml"
NEVER_STARTS = """
[supervisor]
name = "app"
[[supervisor.children]]
name = "w"
actor = "tests.support:Worker"
options = { fail_start_flag = "%s" }
"""


def stalwart(*args, env=None, timeout=60, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "stalwart", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        **kwargs,
    )


_BACKGROUND: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_command_left_running():
    """A test that fails before it stops its command still leaves nothing running."""
    yield
    while _BACKGROUND:
        proc = _BACKGROUND.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def run_in_background(*args, env):
    """``stalwart ARGS`` as a child process (its first line is read by the caller)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stalwart", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _BACKGROUND.append(proc)
    return proc


def first_line(proc):
    """The command's first line of output; if it ended before writing one, what it said."""
    line = proc.stdout.readline()
    if not line:
        proc.wait(30)
        raise AssertionError(f"exited {proc.returncode} without output: {proc.stderr.read()}")
    return line


def state_env(tmp_path):
    return {**os.environ, "STALWART_STATE_DIR": str(tmp_path / "state")}


def test_check_accepts_the_shop_and_refuses_a_bad_tree_with_exit_code_2(tmp_path):
    ok = stalwart("check", SHOP)
    assert ok.returncode == 0 and "shop/storefront/api  (Api)" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / SHOP).read_text().replace('strategy = "one_for_all"', 'strategy = "x"'))
    out = stalwart("check", str(bad))
    assert out.returncode == 2
    assert "bad.toml: shop/storefront (supervisor.children[3]): strategy: expected one of" in (
        out.stderr
    )


def test_run_refuses_a_bad_tree_before_anything_starts(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / SHOP).read_text().replace("replicas = 3", "replicas = -3"))
    out = stalwart("run", str(bad), "--for", "5", env=state_env(tmp_path))
    assert out.returncode == 2 and "replicas: must be" in out.stderr
    assert "running" not in out.stdout


def test_run_prints_one_line_per_event_without_a_terminal_and_stops_after_for(tmp_path):
    out = stalwart("run", SHOP, "--for", "2", env=state_env(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("running shop on the simple base (control endpoint 127.0.0.1:")
    assert "\x1b" not in out.stdout  # no terminal: no redraw sequences
    assert any("tree-started" in line and "shop" in line for line in lines)
    assert lines[-2:] == ["stopping (reverse dependency order)...", "stopped"]


def test_sigterm_stops_it_in_order_with_exit_code_0(tmp_path):
    proc = run_in_background("run", SHOP, env=state_env(tmp_path))
    assert first_line(proc).startswith("running shop")
    # it is serving: its event lines have begun, and the tree has started
    while "tree-started" not in (line := proc.stdout.readline()):
        assert line, "the command ended before its tree started"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.rstrip().endswith("stopped")


def test_a_tree_that_stops_at_level_5_exits_1(tmp_path):
    flag = tmp_path / "no-start"
    flag.write_text("on")
    tree = tmp_path / "app.toml"
    tree.write_text(NEVER_STARTS % flag)
    out = stalwart("run", str(tree), "--for", "10", env=state_env(tmp_path))
    assert out.returncode == 1
    assert "level 5: app/w: 3 restarts within 5s exceeded" in out.stderr


def test_status_recover_and_chaos_steer_a_running_multiprocess_tree(tmp_path):
    env = state_env(tmp_path)
    proc = run_in_background("run", SHOP, "--base", "multiproc", "--chaos", env=env)
    try:
        first = first_line(proc)
        assert first.startswith("running shop on the multiproc base (admin port"), first
        note = json.loads((tmp_path / "state" / "shop.json").read_text())
        status = stalwart("status", env=env)
        assert status.returncode == 0, status.stderr
        assert "inventory" in status.stdout and "running" in status.stdout
        old_pid = int(status.stdout.split("inventory")[1].split("pid ")[1].split()[0])

        recover = stalwart("recover", "shop/inventory", "--level", "3", env=env)
        assert recover.returncode == 0, recover.stderr
        assert recover.stdout.startswith("shop/inventory: level 3 ok")
        after = stalwart("status", "--port", str(note["admin_port"]), env=env).stdout
        new_pid = int(after.split("inventory")[1].split("pid ")[1].split()[0])
        assert new_pid != old_pid and "restarts 1" in after.split("inventory")[1].splitlines()[0]

        chaos = stalwart("chaos", SHOP, "--raise", "shop/db", env=env)
        assert chaos.returncode == 0 and "raise injected into shop/db" in chaos.stdout
        killed = stalwart("chaos", SHOP, "--kill", "shop/storefront/sessions", env=env)
        assert killed.returncode == 0, killed.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            view = stalwart("status", env=env).stdout
            sessions = view.split("sessions")[1].splitlines()[0]
            if "restarts 1" in sessions and "running" in sessions:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(view)
        actor_pids = {int(part.split()[0]) for part in view.split("pid ")[1:]}
        # the sessions of its actors, read while they run (after the stop they are gone)
        actor_sessions = {_session(pid) for pid in actor_pids} - {None, os.getsid(0)}
        assert actor_sessions, view
        unknown = stalwart("recover", "shop/nobody", "--level", "3", env=env)
        assert unknown.returncode == 2 and "shop/nobody" in unknown.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not (tmp_path / "state" / "shop.json").exists()  # the note goes with it
    deadline = time.monotonic() + 15
    while left := [p for p in psutil.process_iter() if _session(p.pid) in actor_sessions]:
        if time.monotonic() > deadline:
            raise AssertionError(f"left behind: {[(p.pid, p.status()) for p in left]}")
        time.sleep(0.2)


def test_status_without_a_running_tree_says_so_and_how_to_start_one(tmp_path):
    out = stalwart("status", env=state_env(tmp_path))
    assert out.returncode == 2
    assert out.stderr == (
        f"stalwart: no running tree noted in {tmp_path / 'state'}/: start it with"
        " `stalwart run` (a tree that a script start()s is reachable from here only on a"
        " multi-process base: give --port with its System.admin_port)\n"
    )
    closed = stalwart("status", "--port", "1", env=state_env(tmp_path))
    assert closed.returncode == 2 and "no Stalwart system listens on 127.0.0.1:1" in closed.stderr


def _listening():
    return sorted(
        c.laddr.port for c in psutil.Process().net_connections("inet") if c.status == "LISTEN"
    )


def _session(pid):
    try:
        return os.getsid(pid)
    except OSError:
        return None


HANGS_AND_LEAKS = """
[system]
base = "multiproc"

[supervisor]
name = "lab"
health_interval_s = 0.3
health_misses = 4

[[supervisor.children]]
name = "w"
actor = "tests.support:Worker"

[[supervisor.children]]
name = "v"
actor = "tests.support:Worker"
"""


def start_lab(tmp_path, *flags):
    """``stalwart run`` of the lab tree (HANGS_AND_LEAKS): (env, tree file, process, port)."""
    env = state_env(tmp_path)
    tree = tmp_path / "lab.toml"
    tree.write_text(HANGS_AND_LEAKS)
    proc = run_in_background("run", str(tree), *flags, env=env)
    assert first_line(proc).startswith("running lab on the multiproc base")
    port = json.loads((tmp_path / "state" / "lab.json").read_text())["admin_port"]
    return env, tree, proc, port


def test_chaos_hang_is_found_and_replaced_and_leak_holds_real_memory(tmp_path):
    env, tree, proc, _ = start_lab(tmp_path, "--chaos")
    try:

        def pid_of(name):
            view = stalwart("status", env=env).stdout
            line = next(line for line in view.splitlines() if line.strip().startswith(name + " "))
            # no pid while it is being restarted
            return (int(line.split("pid ")[1].split()[0]) if "pid " in line else 0), line

        v_pid, _ = pid_of("v")
        before = psutil.Process(v_pid).memory_info().rss
        leak = stalwart("chaos", str(tree), "--leak", "lab/v", "--size", "64MiB", env=env)
        assert leak.returncode == 0, leak.stderr
        deadline = time.monotonic() + 20
        while psutil.Process(v_pid).memory_info().rss - before < 60 * 2**20:
            assert time.monotonic() < deadline, "the leak did not show in the process's RSS"
            time.sleep(0.1)

        w_pid, _ = pid_of("w")
        hang = stalwart("chaos", str(tree), "--hang", "lab/w", env=env)
        assert hang.returncode == 0, hang.stderr
        deadline = time.monotonic() + 30
        while True:  # health checks find it hung; its process is killed and replaced
            pid, line = pid_of("w")
            if pid not in (0, w_pid) and "running" in line:
                break
            assert time.monotonic() < deadline, line
            time.sleep(0.2)
        assert not psutil.pid_exists(w_pid) or psutil.Process(w_pid).status() == "zombie"
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_chaos_is_refused_unless_the_tree_was_started_for_it(tmp_path):
    from stalwart import StalwartError, System
    from tests.support import Ping

    env, tree, proc, port = start_lab(tmp_path)
    try:
        listening = _listening()
        with System.attach(port) as system:
            w = system.status()["lab/w"].pid
            for kind in ("--hang", "--raise", "--kill", "--leak"):
                refused = stalwart("chaos", str(tree), kind, "lab/w", env=env)
                assert refused.returncode == 2, (kind, refused.stdout)
                assert "fault injection is off in this system" in refused.stderr, kind
                assert "injected" not in refused.stdout
            with pytest.raises(StalwartError, match="fault injection is off"):
                system.inject("lab/w", "kill")  # attached from Python: the same answer
            events = [e for e in system.events() if e.kind.startswith("chaos")]
            assert [e.kind for e in events] == ["chaos-refused"] * 5
            assert system.ask("lab/w", Ping(3)).n == 3  # not hanging: no fault arrived
            assert system.status()["lab/w"].pid == w and system.status()["lab/w"].restarts == 0
        assert _listening() == listening  # detached: nothing of it stays open here
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_chaos_at_a_rate_for_a_time_injects_rate_times_seconds(tmp_path):
    from stalwart import System

    env, tree, proc, port = start_lab(tmp_path, "--chaos")
    try:
        chaos = stalwart(
            "chaos", str(tree), "--raise", "lab/v", "--rate", "5", "--for", "2", env=env
        )
        assert chaos.returncode == 0, chaos.stderr
        assert "raise injected into lab/v (10 times)" in chaos.stdout
        with System.attach(port) as system:
            injected = [e for e in system.events() if e.kind == "chaos" and e.path == "lab/v"]
            assert len(injected) == 10
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_run_serves_the_dashboard_on_loopback_and_stops_it_with_the_tree(tmp_path):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_in_background("run", SHOP, "--serve", str(port), env=state_env(tmp_path))
    try:
        assert first_line(proc).startswith("running shop")
        served = proc.stdout.readline()
        assert served.startswith(f"dashboard: http://127.0.0.1:{port}/"), served
        token_line = proc.stdout.readline()
        assert token_line.startswith("token for actions: ")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert b"dashboard.js" in page.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/dashboard", timeout=10) as r:
            snapshot = json.loads(r.read())
        assert snapshot["name"] == "shop" and "shop/storefront/api" in {
            n["path"] for n in snapshot["tree"]
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # the port is closed again


def test_run_refuses_a_bad_serve_address(tmp_path):
    out = stalwart("run", SHOP, "--serve", "localhost:http", env=state_env(tmp_path))
    assert out.returncode == 2 and "--serve: expected [HOST:]PORT, got 'localhost:http'" in (
        out.stderr
    )


def test_a_stop_signal_is_a_flag_the_command_polls_and_its_handlers_go_back():
    """Ctrl-C and SIGTERM set a flag (an Event set from a handler can deadlock with the
    main thread inside its wait: SIGTERM once went unanswered for a minute)."""
    from stalwart.cli._common import StopSignals

    before = signal.getsignal(signal.SIGTERM)
    stop = StopSignals()
    try:
        assert stop.wait(0.05) is False
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(30) is True and stop.requested
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGTERM) is before
