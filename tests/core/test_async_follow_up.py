"""The multi-process async pump sends what answered coroutines ask next before it listens
again: it learns from the event loop when the coroutines it answered have run on."""

from __future__ import annotations

import asyncio
import threading

from stalwart import Child, Supervisor
from stalwart.supervisors._transport import _future_waiter
from tests.support import Counter, Ping


def test_caught_up_is_told_only_after_the_woken_coroutines_ran_to_their_next_await():
    ran: list[str] = []

    async def main() -> list[str]:
        waiters = []
        for name in ("a", "b"):
            future, waiter = _future_waiter()
            waiters.append(waiter)

            async def step(name: str = name, future: asyncio.Future[object] = future) -> None:
                await future
                ran.append(name)  # what a coroutine does before its next ask
                await asyncio.sleep(3600)  # (its next await)

            asyncio.get_running_loop().create_task(step())
        await asyncio.sleep(0)  # both wait now
        caught_up = threading.Event()
        seen: list[str] = []

        def pump() -> None:  # another thread, as the pump is
            for waiter in waiters:
                waiter.settle("answer")
            settler = waiters[0].settler
            assert settler is not None and waiters[1].settler is settler
            settler.tell_when_caught_up(caught_up)
            caught_up.wait(30)
            seen.extend(ran)

        thread = threading.Thread(target=pump)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.001)
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()
        return seen

    assert asyncio.run(main()) == ["a", "b"]  # both had run on when it was told


def test_caught_up_is_told_by_the_loop_when_nothing_is_due():
    async def main() -> bool:
        _future, waiter = _future_waiter()
        assert waiter.settler is not None
        event = threading.Event()
        waiter.settler.tell_when_caught_up(event)
        await asyncio.sleep(0)  # (the loop's next turn)
        return event.is_set()

    assert asyncio.run(main())


def test_one_coroutine_asking_again_and_again_gets_every_answer_in_order(make_system):
    system = make_system(Supervisor("s", children=[Child("c", Counter)]), base="multiproc")

    async def main() -> list[int]:
        return [await system.ask_async("s/c", Ping(1)) for _ in range(200)]

    assert asyncio.run(main()) == list(range(1, 201))
