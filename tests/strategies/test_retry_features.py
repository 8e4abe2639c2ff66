"""retry: results, callbacks, minimum and error-driven waits, async predicates and sleeps."""

import asyncio
import contextvars
import pickle

import pytest

from stalwart.strategies import Exponential, Fixed, ResultRejected, retry

from .fakes import Clock, Flaky


def returns(*values):
    """A function returning ``values`` one by one (the last one forever)."""
    queue = list(values)
    calls = []

    def fn():
        calls.append(1)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    fn.calls = calls
    return fn


def test_retry_if_result_retries_until_the_result_is_accepted():
    fn = returns(None, None, "ready")
    slept = []
    wrapped = retry(
        max_attempts=5,
        delay=0.5,
        backoff=1.0,
        retry_if_result=lambda r: r is None,
        sleep=slept.append,
    )(fn)
    assert wrapped() == "ready"
    assert (len(fn.calls), slept) == (3, [0.5, 0.5])
    assert wrapped.statistics.last_result is None and wrapped.statistics.attempts == 3


def test_a_result_still_rejected_when_attempts_run_out_raises_result_rejected():
    def poll():
        return "pending"

    with pytest.raises(ResultRejected, match=r"poll: result 'pending' still rejected") as info:
        retry(max_attempts=3, delay=0, retry_if_result=lambda r: r == "pending")(poll)()
    assert (info.value.result, info.value.attempts) == ("pending", 3)


def test_result_rejected_pickles():
    error = ResultRejected([1, 2], 4, "poll")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.result, copy.attempts, str(copy)) == ([1, 2], 4, str(error))


def test_retry_if_result_leaves_errors_to_the_error_rules():
    fn = Flaky(1)
    wrapped = retry(max_attempts=3, delay=0, retry_if_result=lambda r: False)(fn)
    assert wrapped()[0] == "ok"
    assert fn.calls == 2


def test_before_and_after_see_every_attempt_with_its_outcome():
    clock = Clock()
    seen = []
    state = {"n": 0}

    def work():
        clock.now += 1.0
        state["n"] += 1
        if state["n"] < 3:
            raise ConnectionError(f"try {state['n']}")
        return "ok"

    wrapped = retry(
        max_attempts=3,
        delay=0.5,
        backoff=1.0,
        clock=clock,
        sleep=clock.sleep,
        before=lambda s: seen.append(("before", s.attempt, s.elapsed)),
        after=lambda s: seen.append(("after", s.attempt, s.elapsed, str(s.error), s.result)),
    )(work)
    assert wrapped() == "ok"
    assert seen == [
        ("before", 1, 0.0),
        ("after", 1, 1.0, "try 1", None),
        ("before", 2, 1.5),
        ("after", 2, 2.5, "try 2", None),
        ("before", 3, 3.0),
        ("after", 3, 4.0, "None", "ok"),
    ]


def test_callbacks_run_in_the_iterator_form_too():
    seen = []
    policy = retry(
        max_attempts=3,
        delay=0,
        before=lambda s: seen.append(("before", s.attempt)),
        after=lambda s: seen.append(("after", s.attempt, s.error is None)),
    )
    fn = Flaky(1)
    for attempt in policy:
        with attempt:
            fn()
    assert seen == [("before", 1), ("after", 1, False), ("before", 2), ("after", 2, True)]


def test_min_wait_s_is_a_floor_under_every_wait():
    slept = []
    retry(max_attempts=4, delay=Exponential(0.1), min_wait_s=0.3, sleep=slept.append)(Flaky(3))()
    assert slept == [0.3, 0.3, 0.4]


class RateLimited(Exception):
    def __init__(self, retry_after):
        super().__init__("HTTP 429 too many requests")
        self.status_code = 429
        self.retry_after = retry_after


class Response:
    def __init__(self, headers):
        self.headers = headers


class HttpError(Exception):
    def __init__(self, status, headers):
        super().__init__(f"status {status}")
        self.response = Response(headers)


def test_an_error_that_asks_for_a_wait_gets_at_least_that_long():
    slept = []
    fn = Flaky(2, error=RateLimited(7))
    assert retry(max_attempts=3, delay=1.0, sleep=slept.append)(fn)()[0] == "ok"
    assert slept == [7.0, 7.0]


def test_a_retry_after_header_on_the_response_drives_the_wait():
    slept = []
    fn = Flaky(1, error=HttpError(503, {"Retry-After": "12"}))
    retry(max_attempts=2, delay=0.5, sleep=slept.append)(fn)()
    assert slept == [12.0]


def test_a_shorter_retry_after_does_not_shorten_the_schedule():
    slept = []
    retry(max_attempts=2, delay=5.0, sleep=slept.append)(Flaky(1, error=RateLimited(1)))()
    assert slept == [5.0]


def test_honor_retry_after_false_keeps_the_schedule():
    slept = []
    fn = Flaky(1, error=RateLimited(60))
    retry(max_attempts=2, delay=0.5, honor_retry_after=False, sleep=slept.append)(fn)()
    assert slept == [0.5]


def test_a_retry_after_past_stop_after_s_gives_up_at_once():
    fn = Flaky(5, error=RateLimited(120))
    with pytest.raises(RateLimited):
        retry(stop_after_s=30, delay=1.0, sleep=lambda s: None)(fn)()
    assert fn.calls == 1


def test_async_predicates_are_awaited():
    asked = []

    async def transient(exc):
        asked.append(exc)
        return "blip" in str(exc)

    async def not_ready(result):
        return result < 3

    state = {"n": 0}

    @retry(max_attempts=6, delay=0, retry_if=transient, retry_if_result=not_ready)
    async def fetch():
        state["n"] += 1
        if state["n"] == 1:
            raise ConnectionError("blip")
        return state["n"]

    assert asyncio.run(fetch()) == 3
    assert len(asked) == 1


def test_an_async_predicate_in_a_plain_call_is_refused_clearly():
    async def transient(exc):
        return True

    with pytest.raises(TypeError, match="retry_if returned an awaitable"):
        retry(max_attempts=3, delay=0, retry_if=transient)(Flaky(1))()


def test_an_injected_async_sleep_is_awaited():
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    @retry(max_attempts=3, delay=0.01, backoff=3.0, sleep=fake_sleep)
    async def fetch(fn):
        return fn()

    assert asyncio.run(fetch(Flaky(2)))[0] == "ok"
    assert slept == [0.01, 0.03]


def test_an_injected_plain_sleep_is_used_by_the_async_form():
    slept = []

    @retry(max_attempts=3, delay=0.01, backoff=1.0, sleep=slept.append)
    async def fetch(fn):
        return fn()

    asyncio.run(fetch(Flaky(2)))
    assert slept == [0.01, 0.01]


def test_async_with_attempt_awaits_an_async_predicate():
    async def transient(exc):
        return isinstance(exc, ConnectionError)

    async def main():
        fn = Flaky(2)
        numbers = []
        async for attempt in retry(max_attempts=3, delay=0, retry_if=transient):
            async with attempt:
                numbers.append(attempt.number)
                fn()
        return numbers

    assert asyncio.run(main()) == [1, 2, 3]


def test_statistics_show_the_running_call_from_its_first_attempt():
    seen = []
    fn = Flaky(2)

    @retry(max_attempts=3, delay=Fixed(0))
    def watched():
        seen.append(watched.statistics.attempts)
        return fn()

    watched()
    seen.append(watched.statistics.attempts)
    assert seen == [1, 2, 3, 3]


def test_statistics_before_any_call_count_no_attempts():
    assert retry(max_attempts=2).statistics.attempts == 0


def test_an_async_sleep_for_a_plain_function_is_refused_when_decorating():
    async def fake_sleep(seconds):
        pass

    def plain():
        return 1

    with pytest.raises(TypeError, match="plain cannot await it"):
        retry(max_attempts=2, sleep=fake_sleep)(plain)


def test_policies_made_and_forgotten_per_call_leave_nothing_behind():
    from stalwart.strategies._retry_state import LAST_CALLS

    def handle_requests():
        for _ in range(200):
            for attempt in retry(max_attempts=2, delay=0):  # a new policy per request
                with attempt:
                    pass
        return len(LAST_CALLS.get({}))

    assert contextvars.Context().run(handle_requests) <= 17  # an empty context


VERDICT_SAMPLES = [
    ConnectionError("invalid state: expected 1 got 2"),
    ConnectionResetError("reset"),
    BrokenPipeError(),
    TimeoutError("invalid token"),
    OSError("no space left on device"),
    RuntimeError("HTTP 503"),
    RuntimeError("invalid response"),
    RateLimited(3),
    HttpError(404, {}),
    HttpError(401, {}),
    ValueError("bad"),
    KeyError("k"),
    ImportError("no module named x"),
    RecursionError(),
    MemoryError(),
]


@pytest.mark.parametrize("error", VERDICT_SAMPLES, ids=lambda e: f"{type(e).__name__}({e})")
def test_the_default_filter_follows_classify(error):
    from stalwart.strategies import ErrorCategory, classify
    from stalwart.strategies._retry_state import is_final

    info = classify(error)
    final = (
        info.category
        in {
            ErrorCategory.VALIDATION,
            ErrorCategory.CONFIGURATION,
            ErrorCategory.CRASH,
        }
        or not info.retryable
    )
    assert is_final(error) == final
