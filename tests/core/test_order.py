"""Per-path order and redelivery: one sender's messages to a path arrive in the order
sent, each handled once, whatever restarts, redirections and SIGKILLs happen between.

Hypothesis generates the interleavings of sends (tells, bursts of tells, asks) with
clean restarts (levels 3 and 4) and, on the multi-process base, SIGKILLs of the
actor's process; the log the actor checkpointed must be exactly what was sent.
"""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stalwart import Child, RecoveryRequest, Supervisor
from tests.support import (
    Crash,
    GetLog,
    Note,
    NoteAsked,
    OrderLog,
    Worker,
    sigkill,
    wait_for,
    wait_for_file,
)

PATH = "s/log"
OPS = st.lists(
    st.sampled_from(["tell", "burst", "ask", "restart", "subtree", "kill"]), min_size=1, max_size=10
)


def unbounded(*children):
    """A tree whose restarts never exceed its intensity (every kill counts as a crash)."""
    return Supervisor("s", max_restarts=100_000, within_s=1.0, children=list(children))


def kill_running(system, path, killed):
    """SIGKILL the running instance of ``path`` (not one already killed)."""
    pid = wait_for(
        lambda: (s := system.status()[path]).state == "running" and s.pid not in killed and s.pid,
        timeout=30,
    )
    killed.add(pid)
    sigkill(pid)


@pytest.mark.parametrize("examples", [12])
def test_one_senders_messages_arrive_in_order_and_once_across_restarts_and_kills(
    make_system, base, examples
):
    system = make_system(unbounded(Child("log", OrderLog)), base=base)
    values = itertools.count()
    killed: set[int] = set()

    @settings(
        max_examples=examples if base == "multiproc" else 3 * examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(OPS)
    def interleaving(ops):
        start = len(system.ask(PATH, GetLog(), timeout=60))
        sent = []
        for op in ops:
            if op in ("tell", "burst"):
                for _ in range(1 if op == "tell" else 5):
                    sent.append(next(values))
                    system.tell(PATH, Note(sent[-1]))
            elif op == "ask":
                sent.append(next(values))
                assert system.ask(PATH, NoteAsked(sent[-1]), timeout=60) == start + len(sent)
            elif op == "kill" and base == "multiproc":
                kill_running(system, PATH, killed)
            else:  # a clean restart of the actor, or of its subtree (on the in-process base,
                # where no process can be killed, in place of a kill too)
                level = 4 if op == "subtree" else 3
                assert system.request_recovery(RecoveryRequest(PATH, level), timeout=60).ok
        assert system.ask(PATH, GetLog(), timeout=60)[start:] == sent

    interleaving()
    assert system.dead_letters() == []


def test_tells_queued_behind_a_handler_killed_mid_message_are_handled_once_in_order(
    make_system, tmp_path
):
    system = make_system(unbounded(Child("log", OrderLog)), base="multiproc")
    started = tmp_path / "handling-0"
    pid = system.status()[PATH].pid
    system.tell(PATH, Note(0, started=str(started), sleep_s=60))  # killed while handling it
    for value in range(1, 50):
        system.tell(PATH, Note(value))  # queued behind it, in the dying process or on the way
    wait_for_file(started)
    sigkill(pid)
    # asked after them on the same channel: answered only once all 50 are handled
    log = system.ask(PATH, GetLog(), timeout=60)
    assert log == list(range(50))  # the one being handled and every queued one, once each
    assert system.status()[PATH].restarts == 1 and system.dead_letters() == []


def test_a_tell_whose_actor_keeps_dying_before_confirming_it_becomes_a_dead_letter(make_system):
    system = make_system(unbounded(Child("w", Worker)), base="multiproc")
    system.tell("s/w", Crash())  # its process dies handling it, every time it comes
    letters = wait_for(lambda: system.dead_letters(), timeout=60)
    assert [d.message for d in letters] == [Crash()]
    assert "died 6 times before confirming it" in letters[0].error
    assert system.ask("s/w", GetLog(), timeout=30) == []  # and it serves what comes next
    assert system.status()["s/w"].restarts == 6
