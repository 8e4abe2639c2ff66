"""`stalwart child`: a supervisor's children listed, started, terminated, restarted and
deleted on a running tree, through the control endpoint (simple base) and through
Thespian's admin (multiproc). Bad input is one line and exit code 2; what the tree
refuses is one line and exit code 1."""

import pytest

from tests.cli.test_send import LAB, Lab
from tests.support import wait_for

TREE = (
    LAB
    + """
[[supervisor.children]]
name = "sessions"
max_children = 2
  [supervisor.children.template]
  name = "session"
  actor = "tests.support:Worker"
"""
)
WORKER = '{"name": "x", "actor": "tests.support:Worker", "restart": "transient"}'


def running(tmp_path_factory, base):
    lab = Lab(tmp_path_factory.mktemp(f"children-{base}"), base, tree=TREE)
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="module", params=["simple", "multiproc"])
def lab(request, tmp_path_factory):
    yield from running(tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def simple_lab(tmp_path_factory):
    yield from running(tmp_path_factory, "simple")


def ok(lab, *args):
    out = lab.command("child", *args)
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    return out.stdout


def refused(lab, code, *args):
    out = lab.command("child", *args)
    assert (out.returncode, out.stdout) == (code, ""), out.stdout
    assert out.stderr.startswith("stalwart: ") and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


def test_child_lists_starts_terminates_restarts_and_deletes(lab):
    # (the child behind a breaker runs two instances: the breaker and the actor)
    assert ok(lab, "list", "lab").splitlines()[0] == (
        "lab: 3 specs, 4 active (1 supervisor, 2 workers)"
    )
    assert ok(lab, "start", "lab", "--spec", WORKER) == "started lab/x\n"
    listed = ok(lab, "list", "lab").splitlines()
    assert listed[-1].split() == ["x", "lab/x", "worker", "tests.support.Worker"]
    assert ok(lab, "terminate", "lab", "x") == "terminated lab/x\n"
    assert ok(lab, "list", "lab").splitlines()[-1].split()[:2] == ["x", "-"]
    assert "AlreadyPresent" in refused(lab, 1, "start", "lab", "--spec", WORKER)
    assert ok(lab, "restart", "lab", "x") == "restarted lab/x\n"
    assert "ChildRunning" in refused(lab, 1, "delete", "lab", "x")
    ok(lab, "terminate", "lab", "x")
    assert ok(lab, "delete", "lab", "x") == "deleted lab/x\n"
    assert "lab/x" not in ok(lab, "list", "lab")


def test_child_starts_a_pools_instances_by_key_with_their_options(lab):
    assert ok(lab, "start", "lab/sessions", "--key", "k1", "--options", '{"a": 1}') == (
        "started lab/sessions/k1\n"
    )
    ok(lab, "start", "lab/sessions", "--key", "k2")
    assert "PoolFull" in refused(lab, 1, "start", "lab/sessions", "--key", "k3")
    wait_for(lambda: "k1" in lab.command("status").stdout)  # (status reads the registry)
    assert ok(lab, "list", "lab/sessions").splitlines()[0] == (
        "lab/sessions: 1 spec, 2 active (0 supervisors, 2 workers)"
    )
    ok(lab, "terminate", "lab/sessions", "k1")
    ok(lab, "terminate", "lab/sessions", "k2")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("list", "nope"), "unknown actor path 'nope'"),
        (("terminate", "lab", "nobody"), "lab has no child 'nobody'"),
        (("start", "lab", "--spec", "{"), "--spec is not JSON"),
        (("start", "lab", "--spec", '{"name": "y", "actor": "nope:X"}'), "cannot import"),
        (("start", "lab", "--spec", '{"name": "y"}'), "actor: missing"),
        (("start", "lab/sessions", "--key", "a/b"), "name: must be letters"),
        (("start", "lab/sessions", "--key", "k", "--options", "[1]"), "--options: expected"),
        (("restart", "lab/sessions", "k"), "is a Pool"),
        (("list", "lab/w"), "lab/w is not a supervisor"),
    ],
    ids=["unknown", "no-child", "not-json", "import", "missing", "key", "options", "pool", "actor"],
)
def test_bad_input_is_one_line_naming_it_with_exit_code_2(simple_lab, args, said):
    assert said in refused(simple_lab, 2, *args)
