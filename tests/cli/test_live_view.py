"""What `stalwart run` shows: in a terminal, one frame redrawn in place on the alternate
screen, within the terminal's rows, headed by the dashboard's address and token, the
terminal given back however it ends; without one, event lines at a bounded rate."""

import fcntl
import io
import os
import pty
import re
import select
import signal
import socket
import struct
import sys
import termios
import time
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart.cli._view import (
    ENTER,
    ERASE_BELOW,
    HOME,
    LEAVE,
    EventLines,
    LineBudget,
    LiveScreen,
    fit,
    terminal_size,
)
from tests.cli.test_commands import ROOT, SHOP

ROWS, COLUMNS = 18, 72
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_on_a_terminal(tmp_path, *args, interrupt_after_frames=0):
    """``stalwart run ARGS`` on a pseudo-terminal of ROWS x COLUMNS: (exit code, output).
    With ``interrupt_after_frames``, Ctrl-C (SIGINT) once that many frames are out."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, on a terminal of a known size
        try:
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
            os.chdir(ROOT)
            os.environ["STALWART_STATE_DIR"] = str(tmp_path / "state")
            os.execv(sys.executable, [sys.executable, "-m", "stalwart", "run", *args])
        finally:
            os._exit(127)
    chunks: list[str] = []
    deadline = time.monotonic() + 90
    interrupted = False
    try:
        while time.monotonic() < deadline:
            drawn = "".join(chunks).count(HOME)
            if interrupt_after_frames and not interrupted and drawn >= interrupt_after_frames:
                os.kill(pid, signal.SIGINT)
                interrupted = True
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # (the terminal's other end closed: the command has ended)
                break
            if not data:
                break
            chunks.append(data.decode(errors="replace"))
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), "".join(chunks)


def frames_of(screen):
    """The frames drawn on the alternate screen, and what came before and after it."""
    before, entered, rest = screen.partition(ENTER)
    assert entered, "the alternate screen was never entered"
    drawn, left, after = rest.partition(LEAVE)
    assert left, "the terminal was not given back"
    frames = [f for f in drawn.split(HOME) if f]
    return before, frames, after


def test_the_live_view_redraws_in_place_within_the_terminal_headed_by_address_and_token(
    tmp_path,
):
    port = _free_port()
    code, screen = run_on_a_terminal(tmp_path, SHOP, "--for", "3", "--serve", str(port))
    assert code == 0, screen
    before, frames, after = frames_of(screen)
    token = re.search(r"token for actions: (\S+)", before).group(1)
    assert before.startswith("running shop on the simple base")
    assert len(frames) >= 3
    for frame in frames:
        assert frame.endswith(ERASE_BELOW)  # what an earlier, longer frame left is erased
        lines = _ESCAPE.sub("", frame).split("\r\n")
        assert len(lines) <= ROWS  # nothing scrolls: it stays in the terminal's rows
        assert all(len(line) < COLUMNS for line in lines)
        assert lines[0].startswith("shop  [running]  memory ")
        # what the percentage is of: a cgroup's limit or the machine's memory
        assert re.search(r"memory \w+ \d+% of (cgroup v[12] /|machine)", lines[0]), lines[0]
        assert lines[1] == f"dashboard: http://127.0.0.1:{port}/"
        assert lines[2] == f"token for actions: {token}"
        assert lines[4].startswith("path") and "restarts" in lines[4]
    assert "\x1b[2J" not in screen  # never cleared into the scrollback
    assert after == "stopping (reverse dependency order)...\r\nstopped\r\n"


def test_the_frame_shows_the_whole_tree_and_as_many_of_the_latest_events_as_fit():
    out = _Terminal(rows=30, columns=120)
    system = _FakeSystem([_event(n) for n in range(1, 40)])
    with LiveScreen(system, out, 0.0, ["dashboard: http://127.0.0.1:1/"]) as view:
        view.update()
    frame = _ESCAPE.sub("", out.getvalue().split(HOME)[1]).split("\n")
    assert len(frame) == 30 and frame[1] == "dashboard: http://127.0.0.1:1/"
    assert [line.split()[0] for line in frame[4:9]] == ["shop", "db", "workers", "w.0", "w.2"]
    assert frame[10] == "latest events:"
    assert "shop/x21 " in frame[11] and "shop/x39 " in frame[-1]  # the latest 19


def test_ctrl_c_gives_the_terminal_back_and_stops_the_tree_in_order(tmp_path):
    code, screen = run_on_a_terminal(tmp_path, SHOP, interrupt_after_frames=2)
    assert code == 0, screen  # Ctrl-C is how `run` is stopped
    _before, frames, after = frames_of(screen)
    assert frames and screen.rstrip().endswith("stopped")
    assert "stopping (reverse dependency order)..." in after and "Traceback" not in screen


def test_an_error_while_drawing_gives_the_terminal_back():
    out = _Terminal(rows=24, columns=80)

    class Broken(_FakeSystem):
        def status(self, path=None, *, offset=0, limit=None):
            raise RuntimeError("the tree went away")

    with pytest.raises(RuntimeError), LiveScreen(Broken([]), out, 0.0, []) as view:
        view.update()
    assert out.getvalue() == ENTER + LEAVE


@given(
    top=st.lists(st.text(max_size=5), max_size=4),
    tree=st.lists(st.text(max_size=5), max_size=40),
    events=st.lists(st.text(max_size=5), max_size=40),
    rows=st.integers(1, 60),
)
def test_a_frame_never_has_more_lines_than_the_terminal_and_always_starts_with_its_top(
    top, tree, events, rows
):
    frame = fit(top, tree, events, rows)
    assert len(frame) <= rows
    assert frame[: len(top)] == top[:rows]
    if len(top) + 1 + len(tree) + 2 + len(events) <= rows:
        assert frame == [*top, "", *tree, *(["", "latest events:", *events] if events else [])]


def test_a_budget_allows_a_burst_then_a_steady_rate():
    now = [0.0]
    budget = LineBudget(burst=5, per_s=2.0, clock=lambda: now[0])
    assert [budget.take() for _ in range(6)] == [True] * 5 + [False]
    now[0] += 1.0
    assert [budget.take() for _ in range(3)] == [True, True, False]
    now[0] += 100.0
    assert sum(budget.take() for _ in range(10)) == 5  # (no more than a burst saved up)


def test_without_a_terminal_a_flood_of_events_is_a_bounded_number_of_lines():
    """600 events in a minute: a burst and a line a second, the rest counted by kind."""
    now = [0.0]
    system = _FakeSystem([])
    out = io.StringIO()
    with EventLines(system, out, 0.0, clock=lambda: now[0]) as lines:
        for second in range(60):
            system.emit(
                [_event(second * 10 + n + 1, "restart" if n else "retry") for n in range(10)]
            )
            lines.update()
            now[0] += 1.0
    written = out.getvalue().splitlines()
    shown = [line for line in written if "not shown" not in line]
    held = [line for line in written if "not shown" in line]
    assert 20 <= len(shown) <= 20 + 60 and len(held) <= 7
    counted = sum(int(re.search(r"\.\.\. (\d+) more", line).group(1)) for line in held)
    assert len(shown) + counted == 600  # every event is either shown or counted
    assert re.search(r"\.\.\. \d+ more event\(s\) not shown \(restart \d+, retry \d+\)", held[0])


def test_without_a_terminal_a_few_events_are_all_shown_at_once():
    system = _FakeSystem([_event(n) for n in range(1, 6)])
    out = io.StringIO()
    with EventLines(system, out, 0.0) as lines:
        lines.update()
    assert len(out.getvalue().splitlines()) == 5 and "not shown" not in out.getvalue()


# -- stand-ins: a terminal of a given size, a system with given events --------------------------
class _Terminal(io.StringIO):
    def __init__(self, rows, columns):
        super().__init__()
        self.rows, self.columns = rows, columns


@pytest.fixture(autouse=True)
def _terminal_sizes(monkeypatch):
    """A stand-in terminal says its size; a real one is asked."""
    real = terminal_size
    monkeypatch.setattr(
        "stalwart.cli._view.terminal_size",
        lambda out: (out.rows, out.columns) if isinstance(out, _Terminal) else real(out),
    )


def _event(n, kind="restart"):
    return SimpleNamespace(
        seq=n, time=float(n), kind=kind, path=f"shop/x{n}", level=3, detail="a detail"
    )


class _FakeSystem:
    def __init__(self, events):
        self.all = list(events)
        self.tree = SimpleNamespace(name="shop")

    def emit(self, events):
        self.all += events

    def events(self, since=0):
        return [e for e in self.all if e.seq > since]

    def status(self, path=None, *, offset=0, limit=None):
        from stalwart.supervisors import ActorStatus, Status

        paths = ["shop", "shop/db", "shop/workers", "shop/workers/w.0", "shop/workers/w.2"]
        return Status(ActorStatus(p, "actor", "running") for p in paths)

    def memory(self):
        raise RuntimeError("memory is off here")


def test_without_a_terminal_a_flood_of_real_events_is_cut_to_a_burst_and_counted(tmp_path):
    from tests.cli.test_send import Lab

    running = Lab(tmp_path, "simple", "--chaos")
    try:
        chaos = running.command("chaos", "--raise", "lab/w", "--rate", "50", "--for", "2")
        assert chaos.returncode == 0, chaos.stderr
    finally:
        written = running.stop().splitlines()
    shown = [line for line in written if re.match(r"\s*[\d.]+s chaos ", line)]
    held = [line for line in written if "not shown" in line]
    counted = sum(int(m.group(1)) for line in held if (m := re.search(r"\bchaos (\d+)", line)))
    assert len(shown) + counted == 100, written  # each injection: shown, or counted
    assert held and len(written) <= 30, written
