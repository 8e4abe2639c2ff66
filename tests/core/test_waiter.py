"""An ask's waiter (``System.ask`` waits on one until its answer is settled)."""

from __future__ import annotations

import threading

from stalwart.supervisors._transport import _Waiter


def test_the_first_answer_stands_and_every_later_wait_passes_at_once() -> None:
    waiter = _Waiter()
    assert not waiter.settled
    waiter.settle("first")
    waiter.settle("second")
    assert waiter.settled and waiter.value == "first"
    assert waiter.wait(0) and waiter.wait(0)  # (a wait does not take the answer away)
    assert waiter.value == "first"


def test_a_wait_nobody_answers_ends_unsettled() -> None:
    waiter = _Waiter()
    assert waiter.wait(0.01) is False
    assert not waiter.settled and waiter.value is None
    waiter.settle(1)  # (an answer after the wait gave up is still kept)
    assert waiter.wait(0) and waiter.value == 1


def test_an_answer_from_another_thread_wakes_the_waiting_one_whenever_it_comes() -> None:
    for i in range(300):  # settled before, during or after the wait begins
        waiter = _Waiter()
        answerer = threading.Thread(target=waiter.settle, args=(i,))
        answerer.start()
        assert waiter.wait(30) and waiter.value == i
        answerer.join()


def test_answers_settled_at_once_by_two_threads_leave_one_that_stands() -> None:
    notified: list[int] = []
    for _ in range(200):
        waiter = _Waiter(notified.append)
        start = threading.Barrier(2)

        def answer(value: int, waiter: _Waiter = waiter, start: threading.Barrier = start) -> None:
            start.wait()
            waiter.settle(value)

        answerers = [threading.Thread(target=answer, args=(v,)) for v in (1, 2)]
        for answerer in answerers:
            answerer.start()
        assert waiter.wait(30) and waiter.value in (1, 2)
        for answerer in answerers:
            answerer.join()
        assert waiter.wait(0) and notified[-1] == waiter.value  # told once, of the one
    assert len(notified) == 200
