"""The five levels, reached in order, reset after success, bounded by restart intensity."""

import json

import pytest

from stalwart import (
    Child,
    LevelPolicy,
    PoisonMessageError,
    RecoveryFailed,
    Supervisor,
    SystemStopped,
)
from stalwart.testing import wait_for_event
from tests.support import FAST, RESTART_FIRST, Done, Ping, Work, Worker, wait_for


def failure_levels(system, path):
    return [e.level for e in system.events() if e.kind == "failure" and e.path == path]


def test_each_level_is_reached_in_order_by_a_child_that_keeps_failing(make_system, base):
    """Levels 1-4 in order; level 4 repeats; level 5 only once restart intensity is exceeded."""
    tree = Supervisor(
        "app",
        max_restarts=3,
        within_s=60,
        children=[Child("w", Worker, levels=FAST), Child("other", Worker)],
    )
    system = make_system(tree, base=base, root_max_restarts=3)
    with pytest.raises(PoisonMessageError, match="app/w"):
        system.ask("app/w", Work(1, fail_times=-1), timeout=10)
    assert failure_levels(system, "app/w") == [1, 2, 3]
    for n in (2, 3):  # the ladder is at its top: each fails at level 4, a restart each
        with pytest.raises(PoisonMessageError):
            system.ask("app/w", Work(n, fail_times=-1), timeout=10)
    assert failure_levels(system, "app/w") == [1, 2, 3, 4, 4]
    assert not any(e.kind == "level5" for e in system.events())
    # the fourth restart within 60 s exceeds the supervisor's intensity: it gives up
    with pytest.raises(RecoveryFailed, match="restart intensity of app exceeded"):
        system.ask("app/w", Work(4, fail_times=-1), timeout=10)
    wait_for_event(system, "tree-started", where=lambda e: "incarnation 2" in e.detail)
    # the whole tree came back and serves again
    assert system.ask("app/w", Ping(7), timeout=10).n == 7
    kinds = [e.kind for e in system.events()]
    assert kinds.index("escalate") < kinds.index("level5") < kinds.index("restart-tree")


def test_a_success_then_a_quiet_period_resets_the_ladder(make_system, base):
    policy = LevelPolicy(
        basic_attempts=1, basic_delay_s=0.001, enhanced_attempts=2, quiet_period_s=2.0
    )  # (long enough that a busy machine's pause between two asks stays inside it)
    system = make_system(Supervisor("app", children=[Child("w", Worker, levels=policy)]), base=base)
    # fails twice: level 1, then level 2 succeeds
    assert system.ask("app/w", Work(1, fail_times=2), timeout=10).attempts == 3
    assert failure_levels(system, "app/w") == [1, 2]
    # within the quiet period the ladder stays high
    assert system.ask("app/w", Work(2, fail_times=1), timeout=10).attempts == 2
    assert failure_levels(system, "app/w")[-1] == 2
    wait_for(lambda: system.status()["app/w"].level == 0, timeout=10)
    assert system.ask("app/w", Work(3, fail_times=1), timeout=10).attempts == 2
    assert failure_levels(system, "app/w")[-1] == 1
    wait_for(lambda: len([e for e in system.events() if e.kind == "recovered"]) == 3)


def test_restart_intensity_escalates_to_the_parent_then_the_root_which_stops_in_order(
    make_system, base, tmp_path
):
    flag = tmp_path / "no-start"
    journal = tmp_path / "journal"
    opts = {"fail_start_flag": str(flag), "journal": str(journal)}
    tree = Supervisor(
        "top",
        max_restarts=1,
        within_s=30,
        children=[
            Child("db", Worker, options={"journal": str(journal)}),
            Supervisor(
                "mid",
                max_restarts=1,
                within_s=30,
                depends_on=["db"],
                children=[
                    Child("crashy", Worker, levels=RESTART_FIRST, options=opts),
                ],
            ),
        ],
    )
    report = tmp_path / "report.json"
    system = make_system(tree, base=base, root_max_restarts=0, report_path=str(report))
    flag.write_text("on")
    with pytest.raises((RecoveryFailed, PoisonMessageError, SystemStopped)):
        system.ask("top/mid/crashy", Work(1, fail_times=-1, error="runtime"), timeout=20)
    wait_for(lambda: system.stopped, timeout=30)
    kinds = [e.kind for e in system.events()]
    # the subtree exceeded its intensity and failed to its parent, which took it to level 5
    assert kinds.index("escalate") < kinds.index("level5")
    data = json.loads(report.read_text())
    assert data["level"] == 5 and data["reason"].startswith("level 5")
    assert {s["path"]: s["state"] for s in data["status"]}["top/db"] == "stopped"
    assert system.final_report["reason"] == data["reason"]
    # the orderly stop took the dependent subtree down before its dependency
    lines = journal.read_text().splitlines()
    stops = [line.split(" ", 1)[1] for line in lines if " stop " in line]
    assert stops[-1] == "stop top/db"
    with pytest.raises(SystemStopped):
        system.ask("top/db", Ping(), timeout=5)


@pytest.mark.parametrize("error", ["value", "value-locked", "value-timed-out"])
def test_non_retryable_errors_are_answered_at_once_without_restarts(make_system, base, error):
    system = make_system(Supervisor("app", children=[Child("w", Worker)]), base=base)
    pid = system.status()["app/w"].pid
    from stalwart import HandlerError

    for n in (1, 2, 3):  # whatever its message says, bad input restarts nothing
        with pytest.raises(HandlerError, match=f"ValueError: .*{n}"):
            system.ask("app/w", Work(n, fail_times=-1, error=error), timeout=10)
    status = system.status()["app/w"]
    assert (status.restarts, status.pid) == (0, pid)
    assert isinstance(system.ask("app/w", Work(4), timeout=10), Done)


def test_poison_messages_become_dead_letters_that_can_be_redelivered(make_system, base, tmp_path):
    flag = tmp_path / "backend-down"
    flag.write_text("down")
    system = make_system(Supervisor("app", children=[Child("w", Worker, levels=FAST)]), base=base)
    work = Work(5, fail_while=str(flag))
    with pytest.raises(PoisonMessageError):
        system.ask("app/w", work, timeout=10)
    letters = system.dead_letters()
    assert [(d.path, d.message) for d in letters] == [("app/w", work)]
    assert "freshly restarted" in letters[0].error
    flag.unlink()  # the backend is back
    done = system.redeliver(letters[0].id, timeout=10)
    assert done.id == 5
    assert system.dead_letters() == []


def test_a_tree_whose_child_never_starts_fails_to_start_naming_it(base, tmp_path):
    from stalwart import start

    flag = tmp_path / "no-start"
    flag.write_text("on")
    tree = Supervisor("app", children=[Child("w", Worker, options={"fail_start_flag": str(flag)})])
    with pytest.raises(SystemStopped, match=r"level 5: app/w: 3 restarts within 5s exceeded"):
        start(tree, base=base, report_path=str(tmp_path / "report.json"), start_timeout_s=20)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["level"] == 5  # the restart of the whole tree did not help either
