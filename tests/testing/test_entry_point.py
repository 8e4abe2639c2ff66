"""The plugin reaches a project through its ``pytest11`` entry point, with no conftest."""

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

PACKAGE = '''
"""A tiny service of a user's own: a counter under a supervisor."""
import msgspec
from stalwart import Child, ManagedActor, Supervisor


class Add(msgspec.Struct, frozen=True):
    n: int


class Counter(ManagedActor):
    def on_start(self):
        self.total = self.restored_state or 0

    def receiveMsg_Add(self, msg, sender):
        self.total += msg.n
        self.reply(sender, self.total)

    def snapshot(self):
        return self.total


tree = Supervisor("app", children=[Child("counter", Counter)])
'''

TESTS = """
import pytest
from stalwart.testing import inject_fault, wait_for_event
from tinyapp import Add, tree


@pytest.mark.parametrize("base", ["simple", "multiproc"])
def test_the_counter_survives_a_fault(stalwart_start, base):
    system = stalwart_start(tree, base=base, chaos=True)
    assert system.ask("app/counter", Add(2)) == 2
    fault = inject_fault(system, "app/counter")
    assert system.ask("app/counter", Add(3)) == 5
    wait_for_event(system, "recovered", "app/counter", since=fault.seq)


def test_the_clock_is_there_too(stalwart_clock):
    stalwart_clock.advance(5)
    assert stalwart_clock() == 5
"""


def test_the_plugin_is_registered_as_a_pytest11_entry_point():
    found = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert found.get("stalwart") == "stalwart.testing.plugin"


def run_pytest(project, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(project)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_pytest_plugin_used_from_a_temporary_project_through_its_entry_point(tmp_path):
    project = tmp_path / "project"
    (project / "tinyapp").mkdir(parents=True)
    (project / "tinyapp" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    (project / "test_tinyapp.py").write_text(textwrap.dedent(TESTS))
    assert not list(project.rglob("conftest.py"))

    used = run_pytest(project)
    assert used.returncode == 0, used.stdout + used.stderr
    assert "3 passed" in used.stdout

    without = run_pytest(project, "-p", "no:stalwart")  # the entry point's name
    assert without.returncode != 0
    assert "fixture 'stalwart_start' not found" in without.stdout
