"""`stalwart node` refuses bad input with a clear message and starts nothing."""

import pytest

from stalwart.supervisors._bases import free_port
from tests.cli.test_commands import stalwart


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--join", "nowhere", "--name", "b"], 2, "--join: expected HOST:PORT, got 'nowhere'"),
        (
            ["--join", "127.0.0.1:1", "--name", "b", "--capability", "gpu"],
            2,
            "--capability: expected NAME=VALUE, got 'gpu'",
        ),
        (
            ["--join", "127.0.0.1:1", "--name", "b", "--listen", "10.0.0.1:0"],
            2,
            "listen: 10.0.0.1 is not loopback",
        ),
        (["--join", "127.0.0.1:1", "--name", "a/b"], 2, "node: expected a name without '/'"),
    ],
)
def test_bad_input_names_what_is_wrong(args, code, message):
    out = stalwart("node", *args)
    assert out.returncode == code and message in out.stderr, out.stderr


def test_without_a_leader_it_says_so_and_exits_1():
    port = free_port()
    out = stalwart("node", "--join", f"127.0.0.1:{port}", "--name", "b")
    assert out.returncode == 1
    assert f"no leader listens at 127.0.0.1:{port} (start it first)" in out.stderr
