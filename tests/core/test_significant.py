"""Significant children and ``auto_shutdown`` (OTP 24+), on real actor systems.

Ported from the ``significant`` group of OTP's ``lib/stdlib/test/supervisor_SUITE.erl``
(each test names its case). OTP's ``Sup`` is a supervisor started at run time under a
top that stays (``restart="transient"``, so that once it shuts itself down it stays
down to be seen); its children are started with ``start_child``. A child ends "by the
supervisor" with ``terminate_child``, is killed (SIGKILL on the multi-process base, a
handler dying in one process), ends abnormally (a handler dying) or normally
(``self.stop()``).

That a supervisor did *not* shut itself down is seen without waiting for time to pass:
it still answers ``which_children`` after the event, which it would refuse once it had
begun to stop.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from thespian.actors import WakeupMessage

from stalwart import ActorStopped, Child, Pool, SpecError, Supervisor, UnknownPath
from stalwart.actors.messages import StoppedNormally
from stalwart.supervisors import _effects, _root
from stalwart.supervisors.messages import InOrder
from tests.core.otp_actors import OtpChild
from tests.core.otp_support import OTP, child, crash, running, sup, wait_restarted
from tests.support import Ping, StopSelf, process_gone, wait_for

MODES = ("never", "any_significant", "all_significant")


def significant(name, restart):
    return Child(name, OtpChild, restart=restart, significant=True)


def sub(system, name, auto_shutdown, children=(), **kw):
    """A supervisor started under ``top`` (transient: once it stops, it stays stopped)."""
    spec = sup(name, [], restart="transient", auto_shutdown=auto_shutdown, max_restarts=5, **kw)
    path = system.start_child("top", spec)
    for c in children:
        system.start_child(path, c)
    return path


def end(system, base, path, how):
    """End the child at ``path``: by its supervisor, killed, abnormally or normally."""
    parent, name = path.rsplit("/", 1)
    if how == "supervisor":
        system.terminate_child(parent, name)
    elif how == "kill":
        crash(system, base, path)
    elif how == "abnormal":
        crash(system, "simple", path)
    else:
        system.tell(path, StopSelf())


def what_happened(system):
    status = system.status()
    rows = "\n".join(f"  {s.path}: {s.state}, incarnation {s.incarnation}" for s in status)
    events = "\n".join(f"  {e.kind} {e.path}: {e.detail}" for e in system.events())
    return f"phase {status.phase!r}; the tree:\n{rows}\nits events:\n{events}"


def names(system, path):
    return [i.name for i in system.which_children(path)]


def still_running(system, path, expected):
    """``path`` has not shut itself down: once its children are ``expected`` (as which
    names them), it still answers."""
    wait_for(lambda: names(system, path) == expected)
    assert system.status()[path].state == "running"


def shut_down(system, path, children):
    """``path`` stopped itself, and its children with it (a chain of supervisor processes
    that end one after another: slow on a loaded machine, hence the longer wait)."""
    wait_for(lambda: system.status()[path].state == "stopped", timeout=30)
    for c in children:
        with pytest.raises((ActorStopped, UnknownPath)):
            system.ask(f"{path}/{c}", Ping())
    assert any(e.kind == "auto-shutdown" and e.path == path for e in system.events())


@pytest.fixture
def system(make_system, base):
    return make_system(sup("top", [], max_restarts=20), base=base)


# OTP supervisor_SUITE: nonsignificant_temporary, nonsignificant_transient
@pytest.mark.parametrize("restart", ["temporary", "transient"])
def test_ends_of_non_significant_children_never_shut_their_supervisor_down(system, base, restart):
    for n, mode in enumerate(MODES):
        path = sub(system, f"s{n}", mode)
        for how in ("supervisor", "kill", "abnormal", "normal"):
            name = f"c_{how}"
            system.start_child(path, child(name, restart=restart))
            before = running(system, f"{path}/{name}")
            end(system, base, f"{path}/{name}", how)
            if restart == "transient" and how in ("kill", "abnormal"):
                wait_restarted(system, before)
                expected = [name]
            else:
                expected = [name] if restart == "transient" else []
            still_running(system, path, expected)
            if restart == "transient":  # (a temporary one's spec went with it)
                system.terminate_child(path, name)
                system.delete_child(path, name)


# OTP supervisor_SUITE: significant_temporary
def test_temporary_significant_children_shut_their_supervisor_down(system, base):
    kids = [significant("child1", "temporary"), significant("child2", "temporary")]
    kids.append(child("child3", restart="temporary"))

    # ended by its supervisor: no auto shutdown
    s1 = sub(system, "s1", "any_significant", kids)
    end(system, base, f"{s1}/child1", "supervisor")
    still_running(system, s1, ["child2", "child3"])
    # killed: auto shutdown
    system.start_child(s1, kids[0])
    end(system, base, f"{s1}/child1", "kill")
    shut_down(system, s1, ["child1", "child2", "child3"])

    for n, how in ((2, "abnormal"), (3, "normal")):
        path = sub(system, f"s{n}", "any_significant", kids)
        end(system, base, f"{path}/child1", how)
        shut_down(system, path, ["child1", "child2", "child3"])

    # all_significant: once the last significant child has ended
    s4 = sub(system, "s4", "all_significant", kids)
    end(system, base, f"{s4}/child1", "normal")
    still_running(system, s4, ["child2", "child3"])
    end(system, base, f"{s4}/child2", "normal")
    shut_down(system, s4, ["child2", "child3"])


# OTP supervisor_SUITE: significant_transient
def test_transient_significant_children_shut_their_supervisor_down_when_they_stop(system, base):
    kids = [significant("child1", "transient"), significant("child2", "transient")]
    kids.append(child("child3", restart="transient"))
    s1 = sub(system, "s1", "any_significant", kids)
    end(system, base, f"{s1}/child1", "supervisor")
    still_running(system, s1, ["child1", "child2", "child3"])
    system.restart_child(s1, "child1")
    for how in ("kill", "abnormal"):  # restarted, no auto shutdown
        before = running(system, f"{s1}/child1")
        end(system, base, f"{s1}/child1", how)
        wait_restarted(system, before)
        still_running(system, s1, ["child1", "child2", "child3"])
    end(system, base, f"{s1}/child1", "normal")
    shut_down(system, s1, ["child1", "child2", "child3"])

    s2 = sub(system, "s2", "all_significant", kids)
    end(system, base, f"{s2}/child1", "normal")
    still_running(system, s2, ["child1", "child2", "child3"])
    end(system, base, f"{s2}/child2", "normal")
    shut_down(system, s2, ["child1", "child2", "child3"])


# OTP supervisor_SUITE: significant_bystander
@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
def test_significant_children_stopped_for_a_siblings_restart_shut_nothing_down(
    system, base, strategy
):
    kids = [
        significant("child1", "transient"),
        child("child2", restart="transient"),
        significant("child3", "transient"),
    ]
    for mode in ("any_significant", "all_significant"):
        path = sub(system, f"s_{mode}", mode, kids, strategy=strategy)
        paths = [f"{path}/{c.name}" for c in kids]
        before = running(system, *paths)
        end(system, base, paths[1], "kill")
        restarted = {
            "one_for_one": paths[1:2],
            "one_for_all": paths,
            "rest_for_one": paths[1:],
        }[strategy]
        wait_restarted(system, {p: before[p] for p in restarted})
        still_running(system, path, ["child1", "child2", "child3"])


# OTP supervisor_SUITE: significant_escalation
@pytest.mark.parametrize("chained", [True, False])
def test_an_auto_shutdown_climbs_through_significant_supervisors(system, base, chained):
    a = sub(system, "a", "any_significant")
    inner = sup("b", [], restart="transient", auto_shutdown="any_significant", significant=chained)
    b = system.start_child(a, inner)
    system.start_child(b, significant("c", "transient"))
    end(system, base, f"{b}/c", "normal")
    if chained:  # b, significant in a, shut itself down: so does a
        shut_down(system, a, ["b"])
    else:
        wait_for(lambda: system.status()[b].state == "stopped")
        still_running(system, a, ["b"])


def test_the_top_of_the_tree_shutting_itself_down_stops_the_system(make_system, base):
    tree = Supervisor(
        "job",
        auto_shutdown="all_significant",
        levels=OTP,
        children=[significant("step1", "transient"), significant("step2", "transient")],
    )
    system = make_system(tree, base=base)
    running(system, "job/step1", "job/step2")
    system.tell("job/step1", StopSelf())
    assert system.ask("job/step2", Ping(1)).n == 1  # one of two ended: it goes on
    system.tell("job/step2", StopSelf())
    wait_for(lambda: system.stopped, explain=lambda: what_happened(system))
    assert "auto_shutdown" in system.status().stop_reason


def test_the_top_shutting_itself_down_stops_the_system_though_its_exit_is_seen_first(
    make_system, monkeypatch
):
    """On real processes the root may hear that the top's process exited before it reads
    what the top sent just before (Thespian reports an exit over a connection of its own).
    Here the root handles the top's mail with its ``StoppedNormally`` half a second late:
    the top must not have exited meanwhile, or it is taken for a crash and restarted."""
    late: dict[str, Any] = {}
    in_order, wakeup = _root._HANDLERS[InOrder], _root._HANDLERS[WakeupMessage]

    def hold_the_stop(root, msg, sender):  # (in the root's process, forked with the patch)
        if not late and any(type(item) is StoppedNormally for item in msg.items):
            late["mail"] = (msg, sender)
            root.wakeupAfter(timedelta(seconds=0.5), "late")
            return
        in_order(root, msg, sender)

    def then_handle_it(root, msg, sender):
        if msg.payload == "late":
            in_order(root, *late["mail"])
        else:
            wakeup(root, msg, sender)

    monkeypatch.setitem(_root._HANDLERS, InOrder, hold_the_stop)
    monkeypatch.setitem(_root._HANDLERS, WakeupMessage, then_handle_it)
    # the top leaves on the root's Release, not on its own after a while
    monkeypatch.setattr(_effects, "LEAVE_WAIT_S", 60.0)
    tree = Supervisor(
        "job", auto_shutdown="any_significant", children=[significant("step", "transient")]
    )
    system = make_system(tree, base="multiproc")
    running(system, "job/step")
    top = system.status()["job"].pid
    system.tell("job/step", StopSelf())
    wait_for(lambda: system.stopped, explain=lambda: what_happened(system))
    assert "auto_shutdown" in system.status().stop_reason
    assert not [e for e in system.events() if e.kind in ("crash", "restart-tree")]
    # and once the root had its Retired, the top's process left (it does not wait for the
    # system's shutdown)
    wait_for(lambda: process_gone(top))


# OTP supervisor_SUITE: significant_simple, significant_upgrade_never_any (the refusal)
def test_a_significant_child_needs_an_auto_shutdown_and_a_restart_that_lets_it_end(make_system):
    with pytest.raises(SpecError, match=r"^c: significant: a permanent child cannot be"):
        Child("c", OtpChild, significant=True)
    with pytest.raises(SpecError, match=r"^s/c: significant: needs auto_shutdown"):
        Supervisor("s", children=[significant("c", "transient")])
    with pytest.raises(SpecError, match=r"^p: auto_shutdown: a Pool never shuts itself down"):
        Pool("p", template=child("c"), auto_shutdown="any_significant")
    with pytest.raises(SpecError, match=r"^s: auto_shutdown: .*'sometimes'"):
        Supervisor("s", auto_shutdown="sometimes")  # type: ignore[arg-type]
