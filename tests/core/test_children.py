"""Children started and stopped at run time: OTP's ``start_child`` family.

Ported from OTP's ``lib/stdlib/test/supervisor_SUITE.erl`` (each test names its case) and
run on real actor systems, in one process and with a process per actor. Children run
with ``LevelPolicy.otp()`` (every failure restarts per the strategy), as in the other
ports. A child "dies" as in ``tests/core/otp_support.py``; OTP's pids are our paths.
"""

from __future__ import annotations

import pytest

from stalwart import (
    ActorStopped,
    AlreadyPresent,
    AlreadyStarted,
    BadMessage,
    Child,
    ChildCounts,
    ChildInfo,
    ChildRunning,
    Pool,
    StalwartError,
    StartFailed,
    UnknownMessage,
    UnknownPath,
)
from tests.core.dynamic_actors import (
    Calls,
    ChildCall,
    Starter,
    StartSession,
    StartWorker,
    StopWorker,
)
from tests.core.otp_actors import OtpChild
from tests.core.otp_support import (
    OTP,
    child,
    crash,
    failing_starts,
    gave_up,
    incarnations,
    running,
    sup,
    wait_restarted,
)
from tests.support import Ping, StopSelf, read_journal, wait_for

WORKER = "tests.core.otp_actors.OtpChild"


def counts(system, path):
    """OTP's ``get_child_counts``: [specs, active, supervisors, workers]."""
    c = system.count_children(path)
    assert isinstance(c, ChildCounts)
    return [c.specs, c.active, c.supervisors, c.workers]


def which(system, path):
    """``which_children`` as (name, path or None) pairs, in start order."""
    found = system.which_children(path)
    assert all(isinstance(i, ChildInfo) for i in found)
    return [(i.name, i.path) for i in found]


def which_once_up(system, path):
    """``which``, or None while ``path`` answers that it is stopping (its parent restarts it)."""
    try:
        return which(system, path)
    except ActorStopped:
        return None


# OTP supervisor_SUITE: child_adm
def test_child_adm_start_terminate_restart_and_delete_a_child(make_system, base):
    system = make_system(sup("top", [child("child1")]), base=base)
    assert which(system, "top") == [("child1", "top/child1")]
    assert counts(system, "top") == [1, 1, 0, 1]
    assert system.which_children("top")[0] == ChildInfo("child1", "top/child1", "worker", WORKER)

    with pytest.raises(AlreadyStarted, match="top/child1") as started:  # {already_started, Pid}
        system.start_child("top", child("child1"))
    assert started.value.path == "top/child1"

    with pytest.raises(UnknownPath, match="'hej'"):  # {error, not_found}
        system.terminate_child("top", "hej")
    with pytest.raises(UnknownPath, match="'foo'"):  # noproc
        system.terminate_child("foo", "child1")
    system.terminate_child("top", "child1")
    assert which(system, "top") == [("child1", None)]
    assert counts(system, "top") == [1, 0, 0, 1]
    with pytest.raises(ActorStopped):  # its path takes nothing while it is terminated
        system.ask("top/child1", Ping())
    system.terminate_child("top", "child1")  # like deleting what does not exist: ok

    with pytest.raises(AlreadyPresent, match="top/child1"):  # already_present
        system.start_child("top", child("child1"))

    before = incarnations(system, "top/child1")
    assert system.restart_child("top", "child1") == "top/child1"
    assert system.ask("top/child1", Ping(1)).incarnation > before["top/child1"]
    assert which(system, "top") == [("child1", "top/child1")]
    assert counts(system, "top") == [1, 1, 0, 1]
    with pytest.raises(ChildRunning, match="running"):  # {error, running}
        system.restart_child("top", "child1")
    with pytest.raises(UnknownPath, match="'child2'"):
        system.restart_child("top", "child2")

    with pytest.raises(ChildRunning, match="running"):
        system.delete_child("top", "child1")
    with pytest.raises(UnknownPath, match="'hej'"):
        system.delete_child("top", "hej")
    with pytest.raises(UnknownPath, match="'foo'"):
        system.delete_child("foo", "child1")
    system.terminate_child("top", "child1")
    system.delete_child("top", "child1")
    with pytest.raises(UnknownPath, match="'child1'"):
        system.restart_child("top", "child1")
    assert which(system, "top") == []
    assert counts(system, "top") == [0, 0, 0, 0]
    with pytest.raises(UnknownPath, match="top/child1"):  # its path went with its spec
        system.ask("top/child1", Ping())

    with pytest.raises(UnknownPath, match="'foo'"):
        system.start_child("foo", child("child1"))
    assert system.start_child("top", child("child1")) == "top/child1"
    assert system.ask("top/child1", Ping(2)).n == 2
    assert counts(system, "top") == [1, 1, 0, 1]
    for ask in (system.which_children, system.count_children):
        with pytest.raises(UnknownPath, match="'foo'"):
            ask("foo")
    with pytest.raises(UnknownPath, match="top/child1 is not a supervisor"):
        system.which_children("top/child1")


# OTP supervisor_SUITE: child_adm_simple
def test_child_adm_simple_a_pool_starts_instances_by_key(make_system, base):
    pool = Pool("pool", template=child("child"), levels=OTP, max_restarts=2, within_s=60)
    system = make_system(sup("top", [pool]), base=base)
    assert which(system, "top/pool") == []
    assert counts(system, "top/pool") == [1, 0, 0, 0]

    with pytest.raises(UnknownPath, match="'foo'"):
        system.start_child("foo", "k1")
    assert system.start_child("top/pool", "k1") == "top/pool/k1"
    assert which(system, "top/pool") == [("k1", "top/pool/k1")]
    assert counts(system, "top/pool") == [1, 1, 0, 1]
    system.start_child("top/pool", "k2")
    assert sorted(which(system, "top/pool")) == [("k1", "top/pool/k1"), ("k2", "top/pool/k2")]
    assert counts(system, "top/pool") == [1, 2, 0, 2]
    assert system.ask("top/pool/k2", Ping(3)).path == "top/pool/k2"

    system.terminate_child("top/pool", "k1")  # terminate_child(Sup, Pid): the instance goes
    assert which(system, "top/pool") == [("k2", "top/pool/k2")]
    assert counts(system, "top/pool") == [1, 1, 0, 1]
    with pytest.raises(UnknownPath, match="top/pool/k1"):
        system.ask("top/pool/k1", Ping())
    # (OTP answers ok for a pid that was a child; a key no instance has is unknown here)
    with pytest.raises(UnknownPath, match="'k1'"):
        system.terminate_child("top/pool", "k1")

    # {error, simple_one_for_one}: a Pool keeps no spec of a terminated instance
    for call in (system.restart_child, system.delete_child):
        with pytest.raises(BadMessage, match="is a Pool"):
            call("top/pool", "k2")
    with pytest.raises(BadMessage, match="takes the key"):
        system.start_child("top/pool", child("k3"))
    with pytest.raises(BadMessage, match="not a Pool"):
        system.start_child("top", "k3")


# OTP supervisor_SUITE: count_children, count_children_supervisor
@pytest.mark.parametrize("kind", ["worker", "supervisor"])
def test_count_children_of_a_pool_of_temporary_instances(make_system, base, kind):
    template = (
        child("child", restart="temporary")
        if kind == "worker"
        else sup("child", [], restart="temporary")
    )
    system = make_system(sup("top", [Pool("pool", template=template, levels=OTP)]), base=base)
    n = 40 if base == "simple" else 6
    for i in range(n):
        system.start_child("top/pool", f"c{i}")
    listed = system.which_children("top/pool")
    assert len(listed) == n and {i.kind for i in listed} == {kind}
    workers = n if kind == "worker" else 0
    assert counts(system, "top/pool") == [1, n, n - workers, workers]
    for i in range(n):
        system.terminate_child("top/pool", f"c{i}")
    assert counts(system, "top/pool") == [1, 0, 0, 0]


def spec_saved(system, base, strategy, how):
    """OTP's ``dont_save_child_specs_for_temporary_children(Type, How)``: a permanent or
    transient child's spec is kept, a temporary one's is not."""
    top = f"top/{how}"
    system.start_child("top", sup(how, [], strategy=strategy, max_restarts=10))

    def ended(name):
        path = f"{top}/{name}"
        if how == "supervisor":
            system.terminate_child(top, name)
        elif how == "normal":
            system.tell(path, StopSelf())
        elif how == "kill":
            crash(system, base, path)
        else:  # abnormal: an exception in a handler (a failure, not a process death)
            crash(system, "simple", path)

    for name, restart in (("child1", "permanent"), ("child2", "transient")):
        system.start_child(top, child(name, restart=restart))
        before = running(system, f"{top}/{name}")
        ended(name)
        if how == "supervisor" or (restart == "transient" and how == "normal"):
            wait_for(lambda name=name: which(system, top).count((name, None)) == 1)
            with pytest.raises(AlreadyPresent):  # already_present
                system.start_child(top, child(name, restart=restart))
            system.restart_child(top, name)
        else:  # restarted by the supervisor when not terminated by the API
            wait_restarted(system, before)
            with pytest.raises(AlreadyStarted):  # {already_started, _}
                system.start_child(top, child(name, restart=restart))
    system.start_child(top, child("child3", restart="temporary"))
    ended("child3")
    wait_for(lambda: [n for n, _ in which(system, top)] == ["child1", "child2"])
    assert system.start_child(top, child("child3", restart="temporary")) == f"{top}/child3"


# OTP supervisor_SUITE: do_not_save_child_specs_for_temporary_children
@pytest.mark.parametrize(
    ("base", "strategy"),
    [
        ("simple", "one_for_one"),
        ("simple", "one_for_all"),
        ("simple", "rest_for_one"),
        ("multiproc", "one_for_all"),
    ],
)
def test_do_not_save_child_specs_for_temporary_children(make_system, base, strategy):
    system = make_system(sup("top", [], max_restarts=10), base=base)
    for how in ("kill", "normal", "abnormal", "supervisor"):
        spec_saved(system, base, strategy, how)
    assert gave_up(system, "top") == 0


# OTP supervisor_SUITE: temporary_bystander
@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
def test_a_temporary_bystander_of_a_restart_is_not_restarted(make_system, base, strategy):
    system = make_system(sup("top", [sup("s", [], strategy=strategy, max_restarts=2)]), base=base)
    system.start_child("top/s", child("child1"))
    system.start_child("top/s", child("child2", restart="temporary"))
    before = running(system, "top/s/child1")
    system.tell("top/s/child1", StopSelf())  # normal exit of a permanent child: a restart
    wait_restarted(system, before)
    wait_for(lambda: which(system, "top/s") == [("child1", "top/s/child1")])
    assert gave_up(system, "top/s") == 0
    with pytest.raises(UnknownPath, match="top/s/child2"):
        system.ask("top/s/child2", Ping())


# OTP supervisor_SUITE: tree
def test_tree_a_supervisor_restarted_by_its_parent_forgets_its_dynamic_children(
    make_system, base, tmp_path
):
    fail = failing_starts(tmp_path)
    c3 = Child("child3", OtpChild, options={"fail_starts": str(fail)})
    tree = sup(
        "top",
        [
            sup("supchild1", [child("child1"), child("child2")], max_restarts=4),
            sup("supchild2", [], max_restarts=4),
            sup("supchild3", [], restart="transient", max_restarts=4),
        ],
        strategy="one_for_all",
        max_restarts=4,
    )
    system = make_system(tree, base=base, root_max_restarts=0)
    system.terminate_child("top", "supchild3")
    assert counts(system, "top") == [3, 2, 3, 0]
    assert counts(system, "top/supchild1") == [2, 2, 0, 2]
    assert counts(system, "top/supchild2") == [0, 0, 0, 0]

    system.start_child("top/supchild2", c3)
    system.start_child("top/supchild2", child("child4"))
    assert counts(system, "top/supchild2") == [2, 2, 0, 2]

    # only the child that dies is restarted
    kept = incarnations(system, "top/supchild1/child1", "top/supchild2/child3")
    before = running(system, "top/supchild2/child4")
    crash(system, base, "top/supchild2/child4")
    wait_restarted(system, before)
    assert incarnations(system, *kept) == kept
    assert counts(system, "top/supchild2") == [2, 2, 0, 2]

    # child3 cannot start again: supchild2 gives up, and top (one_for_all) restarts the
    # whole tree, but not the dynamic children
    fail.write_text("100")
    sups = running(system, "top/supchild1", "top/supchild2")
    crash(system, base, "top/supchild2/child3")
    assert gave_up(system, "top/supchild2", expect=1) == 1
    wait_restarted(system, sups, timeout=30)
    wait_for(lambda: counts(system, "top") == [3, 3, 3, 0], timeout=30)
    assert which(system, "top/supchild1") == [
        ("child1", "top/supchild1/child1"),
        ("child2", "top/supchild1/child2"),
    ]
    assert which(system, "top/supchild2") == []
    assert which(system, "top/supchild3") == []
    with pytest.raises(UnknownPath, match="restarted"):
        system.ask("top/supchild2/child4", Ping())


def test_dynamic_children_start_last_and_stop_first_and_join_their_restart_set(
    make_system, base, tmp_path
):
    journal = tmp_path / "journal"
    tree = sup("top", [child("a", journal), child("b", journal)], strategy="rest_for_one")
    system = make_system(tree, base=base)
    system.start_child("top", child("c", journal))
    system.start_child("top", sup("s", [child("d", journal)]))
    assert which(system, "top") == [
        ("a", "top/a"),
        ("b", "top/b"),
        ("c", "top/c"),
        ("s", "top/s"),
    ]
    # rest_for_one: b and everything started after it, dynamic children included
    before = running(system, "top/b", "top/c", "top/s/d")
    untouched = incarnations(system, "top/a")
    mark = len(read_journal(journal))
    crash(system, base, "top/b")
    wait_restarted(system, before)
    assert incarnations(system, "top/a") == untouched
    assert read_journal(journal)[mark:] == [
        "stop top/s/d",
        "stop top/c",
        "start top/b",
        "start top/c",
        "start top/s/d",
    ]
    mark = len(read_journal(journal))
    system.shutdown()
    assert read_journal(journal)[mark:] == [
        "stop top/s/d",
        "stop top/c",
        "stop top/b",
        "stop top/a",
    ]


# OTP supervisor_SUITE: one_for_one_escalation (the child is started with start_child)
def test_a_dynamic_child_counts_toward_restart_intensity(make_system, base, tmp_path):
    fail = failing_starts(tmp_path)
    c1 = Child("child1", OtpChild, levels=OTP, options={"fail_starts": str(fail)})
    system = make_system(sup("top", [sup("s", [], max_restarts=4)]), base=base)
    system.start_child("top/s", c1)
    system.start_child("top/s", child("child2"))
    fail.write_text("100")  # it cannot start again
    crash(system, base, "top/s/child1")
    assert gave_up(system, "top/s", expect=1) == 1  # escalated; top restarts s, without them
    wait_for(lambda: which_once_up(system, "top/s") == [], timeout=30)


# OTP supervisor_SUITE: sup_start_child_returns_error, sup_start_restart_child_returns_error
def test_a_child_that_fails_to_start_is_not_kept(make_system, base, tmp_path):
    fail = failing_starts(tmp_path, 1)
    spec = Child("child1", OtpChild, levels=OTP, options={"fail_starts": str(fail)})
    system = make_system(sup("top", []), base=base)
    with pytest.raises(StartFailed, match="top/child1 failed to start: RuntimeError"):
        system.start_child("top", spec)
    assert which(system, "top") == []
    with pytest.raises(UnknownPath, match=r"\(top/child1 failed to start: RuntimeError"):
        system.ask("top/child1", Ping())  # (the path says why it is gone)
    assert system.start_child("top", spec) == "top/child1"  # (its start works now)

    system.terminate_child("top", "child1")
    fail.write_text("1")
    with pytest.raises(StartFailed, match="top/child1"):
        system.restart_child("top", "child1")
    assert which(system, "top") == [("child1", None)]  # restart_child's keeps its spec
    assert system.restart_child("top", "child1") == "top/child1"


def test_a_child_spec_that_does_not_fit_among_its_siblings_is_refused(make_system):
    system = make_system(sup("top", [child("a")]))
    with pytest.raises(BadMessage, match="depends_on: unknown sibling 'zz'"):
        system.start_child("top", Child("b", OtpChild, depends_on=["zz"]))
    with pytest.raises(BadMessage, match="significant: needs auto_shutdown"):
        system.start_child("top", Child("b", OtpChild, restart="transient", significant=True))
    with pytest.raises(UnknownMessage, match="supervisor"):
        system.ask("top", Ping())  # a supervisor takes only the child requests
    with pytest.raises(BadMessage, match="expected a Child"):
        system.start_child("top", 42)  # type: ignore[arg-type]
    # one that depends on a declared sibling starts after it, with it in its restart set
    assert system.start_child("top", Child("b", OtpChild, depends_on=["a"])) == "top/b"


def test_children_started_and_stopped_by_an_actor(make_system, base):
    pool = Pool("sessions", template=Child("session", OtpChild), max_children=5)
    tree = sup("top", [Child("starter", Starter), sup("workers", []), pool])
    system = make_system(tree, base=base)
    path = system.ask("top/starter", StartWorker("top/workers", "w1"))
    assert path == "top/workers/w1"
    assert system.ask(path, Ping(4)).path == path  # System learns of it as it is asked
    with pytest.raises(AlreadyStarted):
        system.ask("top/starter", StartWorker("top/workers", "w1"))
    assert system.ask("top/starter", StopWorker("top/workers", "w1")) == "stopped"
    assert which(system, "top/workers") == [("w1", None)]
    session = system.ask("top/starter", StartSession("top/sessions", "alice"))
    assert session == "top/sessions/alice"
    assert system.ask(session, Ping(5)).n == 5


# -- bad input: an actor's calls are refused as the System's are ------------------------------
BAD_CALLS = [  # (call, supervisor, arguments): each is refused, naming what is wrong
    ("start_child", "top/calls", (Child("x", OtpChild),)),  # a worker is no supervisor
    ("start_child", "top/sessions", (42,)),  # a key must be a name
    ("start_child", "top/sessions", (None,)),
    ("start_child", "top/sessions", ("k", [1, 2])),  # options must be a table
    ("start_child", "top/sessions", ("a/b",)),
    ("start_child", "top/workers", ("k",)),  # not a Pool: no key
    ("terminate_child", "top/workers", (None,)),
    ("restart_child", "top/workers", (5,)),
    ("delete_child", "top/workers", ("",)),
    ("terminate_child", "top/workers", ("ghost",)),
    ("start_child", "_system", (Child("x", OtpChild),)),  # Stalwart's own supervisor
    ("terminate_child", "_system", ("memory",)),
    ("delete_child", "_system", ("memory",)),
]


def test_an_actors_child_calls_are_refused_as_the_systems_are(make_system, base):
    """The same error, with the same text, whether the System or an actor makes the call;
    and none of them changes a child."""
    pool = Pool("sessions", template=Child("session", OtpChild))
    tree = sup("top", [Child("calls", Calls), sup("workers", []), pool])
    system = make_system(tree, base=base)
    before = {path: which(system, path) for path in ("_system", "top/workers", "top/sessions")}
    for call, supervisor, args in BAD_CALLS:
        with pytest.raises(StalwartError) as raised:
            getattr(system, call)(supervisor, *args)
        error = raised.value
        answer = system.ask("top/calls", ChildCall(call, supervisor, args))
        assert answer == ("error", type(error).__name__, str(error)), (call, supervisor, args)
        assert isinstance(error, (BadMessage, UnknownPath)), (call, supervisor, args, error)
    assert {path: which(system, path) for path in before} == before
    system.memory_cleanup("warning")  # (its own children are all still there)


def test_errors_name_the_whole_path_of_a_child_started_at_run_time(make_system):
    sessions = Pool("sessions", template=Child("session", OtpChild))
    teams = Pool("teams", template=sup("team", []))
    system = make_system(sup("top", [sup("mid", [sessions, teams, sup("jobs", [])])]))
    with pytest.raises(BadMessage, match=r"^top/mid/sessions/a/b: name: must be letters"):
        system.start_child("top/mid/sessions", "a/b")
    with pytest.raises(BadMessage, match=r"^top/mid/teams/blue: options: a Pool of supervisors"):
        system.start_child("top/mid/teams", "blue", options={"size": 3})
    significant = Child("z", OtpChild, restart="transient", significant=True)
    with pytest.raises(BadMessage, match=r"^top/mid/jobs/z: significant: needs auto_shutdown"):
        system.start_child("top/mid/jobs", significant)


def test_an_option_that_cannot_go_to_another_process_is_named(make_system):
    import threading

    pool = Pool("sessions", template=Child("session", OtpChild))
    system = make_system(sup("top", [pool]), base="multiproc")
    with pytest.raises(BadMessage, match=r"StartChild \(options\['lock'\]\) cannot be sent"):
        system.start_child("top/sessions", "k", options={"n": 1, "lock": threading.Lock()})
    assert system.start_child("top/sessions", "k", options={"n": 1}) == "top/sessions/k"
