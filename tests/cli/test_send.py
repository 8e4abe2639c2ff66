"""`stalwart send`, and `status`, `recover` and `chaos` reaching a tree on every base: on
the simple base through the control endpoint its `stalwart run` opens, on the others
through Thespian's admin. Bad input is one line and exit code 2, never a traceback."""

import http.client
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from stalwart import ManagedActor
from stalwart.cli._common import UsageError
from stalwart.cli._messages import decode, handled_types, message_type
from tests.cli.test_commands import ROOT
from tests.support import Ping, Pong, Work, wait_for

LAB = """
[system]
base = "%s"

[supervisor]
name = "lab"

[[supervisor.children]]
name = "w"
actor = "tests.support:Worker"

[[supervisor.children]]
name = "guarded"
actor = "tests.support:Worker"
breaker = { failure_threshold = 3 }
"""


class Lab:
    """A `stalwart run` of the lab tree, its output going to a file."""

    def __init__(self, folder: Path, base: str, *flags: str, tree: str = LAB) -> None:
        self.folder = folder
        self.env = {**os.environ, "STALWART_STATE_DIR": str(folder / "state")}
        self.tree = folder / "lab.toml"
        self.tree.write_text(tree % base)
        self.out = folder / "run.out"
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stalwart", "run", str(self.tree), *flags],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
            )
        self.note_file = folder / "state" / "lab.json"
        try:
            wait_for(lambda: self.note_file.exists() or self.proc.poll() is not None, 60)
            assert self.proc.poll() is None, self.proc.stderr.read()
        except BaseException:  # never leave the run behind (nor its actors: it stops them)
            self.stop()
            raise

    @property
    def note(self):
        return json.loads(self.note_file.read_text())

    def command(self, *args, cwd=ROOT):
        return subprocess.run(
            [sys.executable, "-m", "stalwart", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=cwd,
            env=self.env,
        )

    def stop(self) -> str:
        """SIGTERM, as a service manager stops it; what it wrote."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _out, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        assert self.proc.returncode == 0, err
        return self.out.read_text()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One lab on the simple base for the tests that only send to it."""
    running = Lab(tmp_path_factory.mktemp("lab"), "simple", "--chaos")
    try:
        yield running
    finally:
        running.stop()


def test_send_asks_an_actor_of_a_simple_base_tree_and_prints_its_reply_as_json(lab):
    out = lab.command("send", "lab/w", "Ping", "--json", '{"n": 3}')
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert (reply["n"], reply["path"], reply["pid"]) == (3, "lab/w", lab.proc.pid)


def test_send_tell_sends_without_waiting_for_a_reply(lab):
    told = lab.command("send", "lab/w", "Work", "--json", '{"id": 7}', "--tell")
    assert (told.returncode, told.stdout, told.stderr) == (0, "sent Work to lab/w\n", "")

    def handled():
        out = lab.command("send", "lab/w", "Ping")
        return 7 in json.loads(out.stdout)["state"]["handled"]

    wait_for(handled, 30)


def test_send_to_a_breaker_reaches_the_actor_it_protects(lab):
    out = lab.command("send", "lab/guarded", "Ping", "--json", '{"n": 5}')
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n"] == 5


def test_send_takes_a_message_type_as_module_and_class(lab):
    out = lab.command("send", "lab/w", "tests.support:Ping", "--json", '{"n": 2}')
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n"] == 2


BAD_INPUT = [
    (
        ("lab/nobody", "Ping"),
        "stalwart: unknown actor path 'lab/nobody' (actors: lab/w, lab/guarded.protected,"
        " lab/guarded, _system/memory, _system/telemetry, _system/correlator)\n",
    ),
    (
        ("lab/w", "Pingg"),
        "stalwart: lab/w (Worker) handles no message type 'Pingg'; it handles AnswerThenStop,"
        " Crash, GetLog, Never, Ping, StopSelf, Work\n",
    ),
    (
        ("lab/w", "tests.support:Pong"),
        "stalwart: lab/w (Worker) has no handler for tests.support:Pong; it handles"
        " AnswerThenStop, Crash, GetLog, Never, Ping, StopSelf, Work\n",
    ),
    (
        ("lab/w", "Work", "--json", '{"id": "seven"}'),
        "stalwart: --json does not fit Work.id: Expected `int`, got `str`\n",
    ),
    (
        ("lab/w", "Work", "--json", "{}"),
        "stalwart: --json does not fit Work: Object missing required field `id`\n",
    ),
    (
        ("lab/w", "Work", "--json", '{"id": '),
        "stalwart: --json is not JSON: Input data was truncated\n",
    ),
    (
        ("lab", "Ping"),
        "stalwart: lab is a supervisor, which handles no messages of yours\n",
    ),
    (
        ("lab/w", "Ping", "--timeout", "0"),
        "stalwart: --timeout: must be more than 0 seconds, got 0\n",
    ),
]


@pytest.mark.parametrize(
    ("args", "said"),
    BAD_INPUT,
    ids=[
        "unknown-path",
        "unknown-type",
        "type-not-handled",
        "wrong-field",
        "missing-field",
        "not-json",
        "supervisor",
        "timeout",
    ],
)
def test_send_refuses_bad_input_in_one_line_naming_it_with_exit_code_2(lab, args, said):
    out = lab.command("send", *args)
    assert (out.returncode, out.stdout, out.stderr) == (2, "", said)


def test_an_error_the_actor_answers_with_is_one_line_and_exit_code_1(lab):
    failed = lab.command(
        "send", "lab/w", "Work", "--json", '{"id": 1, "fail_times": -1, "error": "value"}'
    )
    assert (failed.returncode, failed.stdout) == (1, "")
    assert failed.stderr.startswith("stalwart: lab/w: HandlerError: ") and "bad input 1" in (
        failed.stderr
    )
    assert failed.stderr.count("\n") == 1
    silent = lab.command("send", "lab/w", "Never", "--timeout", "0.5")
    assert (silent.returncode, silent.stdout) == (1, "")
    assert silent.stderr == "stalwart: lab/w: Timeout: no reply from lab/w within 0.5s\n"


def test_status_recover_and_chaos_reach_a_tree_on_the_simple_base(lab):
    status = lab.command("status")
    assert status.returncode == 0, status.stderr
    w = next(line for line in status.stdout.splitlines() if line.strip().startswith("w "))
    assert "running" in w and f"pid {lab.proc.pid}" in w  # inside its `stalwart run`
    chaos = lab.command("chaos", "--raise", "lab/guarded")
    assert (chaos.returncode, chaos.stdout) == (0, "raise injected into lab/guarded (1 time)\n")
    recover = lab.command("recover", "lab/w", "--level", "3")
    assert recover.returncode == 0, recover.stderr
    assert recover.stdout.startswith("lab/w: level 3 ok")
    unknown = lab.command("recover", "lab/nobody", "--level", "3")
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "stalwart: unknown actor path 'lab/nobody'\n",
    )


def test_status_of_a_large_tree_shows_its_first_rows_those_not_running_and_counts(lab):
    every = lab.command("status", "--all")
    assert every.returncode == 0, every.stderr
    rows = every.stdout.splitlines()[1:]  # (after the [phase] line)
    assert len(rows) >= 4
    short = lab.command("status", "--limit", "2")
    assert short.returncode == 0, short.stderr
    lines = short.stdout.splitlines()
    assert lines[1:3] == rows[:2]
    assert lines[-1].startswith(f"... {len(rows) - 2} more rows not shown, of {len(rows)}")
    assert lines[-1].endswith("running); --all shows every row")
    refused = lab.command("status", "--limit", "0")
    said = "stalwart: --limit: must be 1 or more, got 0\n"
    assert (refused.returncode, refused.stderr) == (2, said)


def test_a_shortened_status_keeps_the_rows_not_running_past_its_limit():
    from stalwart.cli._control import shortened
    from stalwart.supervisors import ActorStatus, Status

    def row(path, state="running"):
        return ActorStatus(path, "actor", state, 0, 0, "", 1)

    status = Status((row("t"), *(row(f"t/a{i}") for i in range(5)), row("t/z", "stopped")))
    text = shortened(status, 3)
    assert [line.split()[0] for line in text.splitlines()[1:-1]] == ["t", "a0", "a1", "z"]
    assert text.splitlines()[-1] == (
        "... 3 more rows not shown, of 7 (past the first 3: 3 running, 1 stopped);"
        " --all shows every row"
    )
    assert shortened(status, 7) == str(status)


def test_the_control_endpoint_is_noted_privately_and_refuses_calls_without_its_token(lab):
    note = lab.note
    assert note["admin_port"] is None and note["pid"] == lab.proc.pid
    assert stat.S_IMODE(lab.note_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(lab.note_file.parent.stat().st_mode) == 0o700
    host, _, port = note["endpoint"].rpartition(":")
    assert host == "127.0.0.1"

    def post(body, headers, where="/"):
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("POST", where, body, headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    for header in ({}, {"Authorization": "Bearer not-the-token"}):
        assert post(b'{"op": "status"}', header)[0] == 401
    token = {"Authorization": f"Bearer {note['token']}"}
    assert post(b'{"op": "status"}', token, "/other")[0] == 400
    status, body = post(b'{"op": "shutdown"}', token)  # (no such call)
    assert status == 200 and json.loads(body)["error"] == "usage"
    status, body = post(b'{"op": "status"}', token)
    assert status == 200 and json.loads(body)["value"]["phase"] == "running"


def test_the_note_and_the_endpoint_go_when_the_tree_stops(tmp_path):
    running = Lab(tmp_path, "simple")
    try:
        host, _, port = running.note["endpoint"].rpartition(":")
    finally:
        running.stop()
    assert not running.note_file.exists()
    gone = running.command("status")
    assert gone.returncode == 2 and "no running tree noted" in gone.stderr
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    with pytest.raises(ConnectionRefusedError):
        connection.request("POST", "/", b"{}")


def test_send_reaches_a_multiprocess_tree_from_another_folder(tmp_path):
    """Attached through the admin: the actor's modules import from where `run` ran."""
    running = Lab(tmp_path, "multiproc")
    try:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        out = running.command("send", "lab/w", "Ping", "--json", '{"n": 4}', cwd=elsewhere)
        assert out.returncode == 0, out.stderr
        reply = json.loads(out.stdout)
        assert reply["n"] == 4 and reply["pid"] != running.proc.pid  # its own process
        told = running.command("send", "lab/w", "Work", "--json", '{"id": 9}', "--tell")
        assert told.stdout == "sent Work to lab/w\n", told.stderr
        bad = running.command("send", "lab/w", "Work", "--json", '{"id": []}', cwd=elsewhere)
        assert (bad.returncode, bad.stderr) == (
            2,
            "stalwart: --json does not fit Work.id: Expected `int`, got `array`\n",
        )
        port = str(running.note["admin_port"])
        by_port = running.command("send", "lab/w", "GetLog", "--port", port)
        assert by_port.returncode == 0 and 9 in json.loads(by_port.stdout), by_port.stderr
    finally:
        running.stop()


# -- finding the message type from the actor (no tree needed) ----------------------------------
class Annotated(ManagedActor):
    def receiveMsg_Ping(self, msg: Ping, sender: object) -> None: ...

    def receiveMsg_Work(self, msg, sender):  # no annotation: the name in this module
        ...

    def receiveMsg_Elsewhere(self, msg, sender):  # neither: give it as module:Class
        ...


def test_the_message_types_are_found_from_the_handlers_annotations_and_module():
    assert handled_types(Annotated) == {"Elsewhere": None, "Ping": Ping, "Work": Work}
    assert message_type("t/a", Annotated, "Ping") is Ping
    assert message_type("t/a", Annotated, "tests.support:Ping") is Ping
    with pytest.raises(UsageError, match=r"the class of Elsewhere .* give it as module:Class"):
        message_type("t/a", Annotated, "Elsewhere")
    with pytest.raises(UsageError, match=r"has no handler for tests\.support:Pong"):
        message_type("t/a", Annotated, "tests.support:Pong")


def test_json_is_decoded_by_msgspec_and_a_field_that_does_not_fit_is_named():
    assert decode(Work, '{"id": 3, "sleep_s": 0.5}') == Work(3, sleep_s=0.5)
    with pytest.raises(UsageError, match=r"^--json does not fit Pong.n: Expected `int`"):
        decode(Pong, '{"n": "x", "path": "p", "pid": 1, "incarnation": 1}')
    with pytest.raises(UsageError, match="cannot be built from JSON"):
        decode(UsageError, "{}")
