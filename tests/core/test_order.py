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

from stalwart import Breaker, Child, RecoveryRequest, Supervisor
from stalwart.actors._order import Outbox
from stalwart.actors.messages import Request, Told
from tests.support import (
    Crash,
    GetLog,
    Misdirecting,
    MisdirectToSupervisor,
    Note,
    NoteAsked,
    OrderLog,
    Work,
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
    for n in range(1, 5):
        system.tell("s/w", Work(n))  # queued behind it: innocent, handled once it is given up
    assert system.ask("s/w", GetLog(), timeout=60) == [1, 2, 3, 4]
    # (a Worker answers a tell to its sender too: the System's root keeps those as dead letters)
    letters = [d for d in system.dead_letters() if type(d.message).__name__ != "Done"]
    assert [d.message for d in letters] == [Crash()]
    assert "died 6 times before confirming it" in letters[0].error
    assert system.status()["s/w"].restarts == 6


def test_a_tell_that_hangs_its_actor_is_given_up_and_the_ones_behind_it_are_handled(
    make_system,
):
    tree = Supervisor(
        "s",
        max_restarts=100_000,
        within_s=1.0,
        health_interval_s=0.2,
        health_misses=2,
        children=[Child("w", Worker)],
    )
    system = make_system(tree, base="multiproc")
    system.tell("s/w", Work(0, sleep_s=3600))  # hangs its handler, every time it comes
    for n in range(1, 4):
        system.tell("s/w", Work(n))
    letters = wait_for(
        lambda: [d for d in system.dead_letters() if isinstance(d.message, Work)], timeout=120
    )
    assert [d.message.id for d in letters] == [0] and "kills or hangs" in letters[0].error
    assert system.ask("s/w", GetLog(), timeout=60) == [1, 2, 3]


@pytest.mark.parametrize("base", ["simple", "multiproc"])
def test_tells_and_asks_through_a_breaker_keep_their_order(make_system, base):
    system = make_system(unbounded(Child("log", OrderLog, breaker=Breaker())), base=base)
    for n in range(0, 30, 3):
        assert system.ask(PATH, NoteAsked(n), timeout=30) == n // 3 * 3 + 1
        system.tell(PATH, Note(n + 1))
        system.tell(PATH, Note(n + 2))
    assert system.ask(PATH, GetLog(), timeout=30) == list(range(30))
    assert system.dead_letters() == []


def test_a_message_whose_predecessor_never_comes_is_handled_once_its_sender_stays_silent(
    make_system,
):
    system = make_system(unbounded(Child("log", OrderLog)))
    assert system.ask(PATH, NoteAsked(1)) == 1
    # number 2 of a channel whose number 1 was lost with its sender: asked again in vain
    # (the root knows no such channel), the log goes on without it after GAP_LOOKS looks
    ghost = Told(Note(2), "ghost.", 2, 1, system._root)
    system.tell(PATH, ghost)
    assert system.ask(PATH, GetLog(), timeout=30) == [1]  # another channel: not held up
    assert wait_for(lambda: system.ask(PATH, GetLog()) == [1, 2], timeout=30)
    system.tell(PATH, ghost)  # the same message again: handled already, dropped
    assert system.ask(PATH, NoteAsked(3)) == 3


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["tell", "ask", "answer", "ack", "forget"]), st.integers(0, 30))
    )
)
def test_a_senders_base_never_passes_a_message_the_path_has_not_confirmed(steps):
    out = Outbox()
    confirmed: set[int] = set()
    asked: dict[str, int] = {}
    for op, k in steps:
        if op in ("tell", "ask"):
            seq, base = out.number()
            assert base <= seq and all(s in confirmed for s in range(1, base))
            if op == "ask":
                asked[f"r{seq}"] = seq
                out.keep(seq, Request(f"r{seq}", None, None), f"r{seq}")
            else:
                out.keep(seq, Told(None, "c", seq, base, None))
        elif op == "answer" and asked:
            request_id = sorted(asked)[k % len(asked)]
            out.answered(request_id)  # handled in order: everything before it too
            confirmed.update(range(1, asked.pop(request_id) + 1))
        elif op == "ack" and out.next > 1:
            upto = k % out.next
            out.confirm(upto)
            confirmed.update(range(1, upto + 1))
        elif op == "forget" and asked:
            request_id = sorted(asked)[k % len(asked)]
            out.forget(request_id)  # its caller gave up: it no longer holds the base back
            confirmed.add(asked.pop(request_id))
        for request_id in [r for r, s in asked.items() if s in confirmed]:
            del asked[request_id]
        assert set(out.unacked) == {s for s in range(1, out.next) if s not in confirmed}
        assert set(out.ids) == {r for r, s in asked.items() if s in out.unacked}


def test_a_request_delivered_again_after_its_answer_is_forgotten_is_not_run_again(make_system):
    """A transport that lost an acknowledgement delivers a message again, possibly much later
    (found by ``benchmarks/partition_soak.py``: a deposit applied twice after a partition).
    Its number says it was handled: it is answered while the answer is remembered, and
    dropped after that, never run again."""
    system = make_system(unbounded(Child("log", OrderLog)))

    def request(n: int) -> Request:
        return Request(f"again-{n}", Note(n), system._root, chan="again.", seq=n + 1, base=1)

    for n in range(300):  # more than an actor remembers answers of
        system.tell(PATH, request(n))
    system.tell(PATH, request(0))  # the first, again, long after
    system.tell(PATH, request(299))  # and the last, whose answer is remembered
    assert system.ask(PATH, GetLog()) == list(range(300))


def test_a_message_numbered_for_another_path_goes_to_that_path_and_leaves_this_ones_channel_alone(
    make_system, base
):
    """Thespian addresses a process by its port, and a new process may listen on the port of
    one that died: what was on its way to the dead instance of one path reaches another
    actor (found by ``benchmarks/soak.py``: a deposit answered by a supervisor, and an account
    that never answered again). A numbered message says which path it is for: the process
    that is not that path hands it to the root, which sends it on, and the channel it came
    on is left as it was (taken as its own, its numbers, another path's, would have moved
    the channel past every message still to come)."""
    tree = unbounded(
        Child("log", OrderLog),
        Child("other", OrderLog),
        Child("mis", Misdirecting),
        Child("pay", OrderLog, breaker=Breaker()),
    )
    system = make_system(tree, base=base)
    root = system._root
    # number 40 of channel "c." to s/other, where a port reused would have brought it
    system.tell(PATH, Told(Note(100), "c.", 40, 40, root, to="s/other"))
    # then the channel's own first messages to s/log
    system.tell(PATH, Told(Note(1), "c.", 1, 1, root, to=PATH))
    system.tell(PATH, Told(Note(2), "c.", 2, 1, root, to=PATH))
    assert wait_for(lambda: system.ask("s/other", GetLog()) == [100], timeout=30)
    assert wait_for(lambda: system.ask(PATH, GetLog()) == [1, 2], timeout=30)
    # a request numbered for s/other that reaches s/log is answered by s/other
    request = Request("for-other", NoteAsked(101), root, chan="d.", seq=7, base=7, to="s/other")
    system.tell(PATH, request)
    assert wait_for(lambda: system.ask("s/other", GetLog()) == [100, 101], timeout=30)
    assert system.ask(PATH, GetLog()) == [1, 2]
    # and one that reaches their supervisor (a request numbered for s/log, not one of the
    # requests about its children) is answered by s/log too, not refused by the supervisor
    system.tell("s/mis", MisdirectToSupervisor(102, PATH))
    assert wait_for(lambda: system.ask(PATH, GetLog()) == [1, 2, 102], timeout=30)
    # a breaker in front of a path is that path's actor too: it hands the request on, not to
    # the actor it protects, and its own channel from that sender goes on from 1
    system.tell(
        "s/pay",
        Request("via-breaker", NoteAsked(103), root, chan="e.", seq=40, base=40, to="s/other"),
    )
    assert wait_for(lambda: system.ask("s/other", GetLog()) == [100, 101, 103], timeout=30)
    system.tell("s/pay", Told(Note(3), "e.", 1, 1, root, to="s/pay"))
    assert wait_for(lambda: system.ask("s/pay", GetLog()) == [3], timeout=30)
