"""The ``stalwart_start`` fixture: systems shut down after the test, leftovers fail it."""

from pathlib import Path

from stalwart import Child, Supervisor
from stalwart.supervisors._bases import session_processes
from stalwart.testing import SystemsUnderTest
from tests.support import Ping, Worker, process_gone, wait_for
from tests.testing import actors
from tests.testing.actors import Alarm, Rang

pytest_plugins = ["pytester"]

TREE = Supervisor("t", children=[Child("w", Worker)])


def test_stalwart_start_gives_a_running_system(stalwart_start, base):
    system = stalwart_start(TREE, base=base)
    assert system.ask("t/w", Ping(3)).n == 3
    assert system.options.base == base


def test_stalwart_start_keeps_the_systems_files_in_the_tests_tmp_path(stalwart_start, tmp_path):
    system = stalwart_start(TREE)
    assert Path(str(system.options.state_dir)) == tmp_path / "state"
    assert system.options.report_path == str(tmp_path / "final-report.json")


def test_stalwart_start_passes_the_options_on(stalwart_start, tmp_path):
    system = stalwart_start(TREE, ask_timeout_s=7.5, state_dir=str(tmp_path / "mine"))
    assert system.options.ask_timeout_s == 7.5
    assert Path(str(system.options.state_dir)) == tmp_path / "mine"


def test_stalwart_start_shuts_its_systems_down_after_the_test(pytester):
    actors.STARTED.clear()
    pytester.makepyfile(
        """
        import pytest
        from stalwart import Child, Supervisor
        from tests.testing import actors
        from tests.testing.actors import Alarm

        @pytest.mark.parametrize("base", ["simple", "multiproc"])
        def test_starts_two(stalwart_start, base):
            for name in ("one", "two"):
                tree = Supervisor(name, children=[Child("a", Alarm)])
                actors.STARTED.append(stalwart_start(tree, base=base))
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
    systems = list(actors.STARTED)
    assert [s.options.base for s in systems] == ["simple"] * 2 + ["multiproc"] * 2
    assert all(s.stopped for s in systems)
    assert [p for s in systems if s._sid for p in session_processes(s._sid)] == []


def test_a_process_left_behind_by_a_system_errors_the_test(pytester):
    pytester.makepyfile(
        """
        from pathlib import Path
        from stalwart import Child, Supervisor
        from tests.testing.actors import Alarm, Careless, Rang

        def test_careless(stalwart_start):
            system = stalwart_start(
                Supervisor("c", children=[Child("a", Careless)]), base="multiproc"
            )
            Path("helper.pid").write_text(str(system.ask("c/a", Rang())))

        def test_tidy(stalwart_start):
            system = stalwart_start(
                Supervisor("t", children=[Child("a", Alarm)]), base="multiproc"
            )
            assert system.ask("t/a", Rang()) == 0
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=2, errors=1)  # test_careless passed, then errored at teardown
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_careless*",
            "*actor processes were left behind by the test's systems:",
            "*shutdown had to SIGKILL what outlived it: killed 1 leftover actor process(es)*",
        ]
    )
    assert "ERROR at teardown of test_tidy" not in result.stdout.str()
    helper = int((pytester.path / "helper.pid").read_text())
    wait_for(lambda: process_gone(helper))  # and it was killed, not left running


def test_systems_under_test_shut_down_newest_first_and_report_no_leftovers(base, tmp_path):
    systems = SystemsUnderTest(tmp_path)
    first = systems.start(Supervisor("first", children=[Child("a", Alarm)]), base=base)
    second = systems.start(Supervisor("second", children=[Child("a", Alarm)]), base=base)
    assert first.ask("first/a", Rang()) == second.ask("second/a", Rang()) == 0
    assert systems.running() == [first, second]
    second.shutdown()  # a test may shut one down itself
    assert systems.running() == [first]
    assert systems.close() == []
    assert first.stopped and second.stopped
