import asyncio
import logging
import random

import pytest

from stalwart.strategies import Fixed, retry

from .fakes import Clock, Flaky


def no_sleep(recorded):
    return recorded.append


def test_familiar_form_retries_then_returns_and_keeps_arguments():
    slept = []
    fn = Flaky(2)
    wrapped = retry(
        max_attempts=3,
        delay=1.0,
        backoff=2.0,
        jitter=False,
        retry_on=(ConnectionError,),
        sleep=slept.append,
    )(fn)
    assert wrapped(1, k=2) == ("ok", (1,), {"k": 2})
    assert fn.calls == 3
    assert slept == [1.0, 2.0]
    stats = wrapped.retry.statistics
    assert (stats.attempts, stats.total_delay, stats.gave_up) == (3, 3.0, False)
    assert isinstance(stats.last_error, ConnectionError)


def test_familiar_form_with_jitter_sleeps_at_most_the_exponential_delay():
    slept = []
    wrapped = retry(
        max_attempts=3,
        delay=1.0,
        backoff=2.0,
        jitter=True,
        sleep=slept.append,
        rng=random.Random(3),
    )(Flaky(2))
    wrapped()
    assert 0 <= slept[0] <= 1.0 and 0 <= slept[1] <= 2.0


def test_bare_decorator_uses_defaults():
    fn = Flaky(1)
    wrapped = retry(fn)
    wrapped.retry.sleep = lambda s: None
    assert wrapped()[0] == "ok"


def test_gives_up_after_max_attempts_with_the_original_error_and_a_note():
    fn = Flaky(10)
    wrapped = retry(max_attempts=3, delay=0)(fn)
    with pytest.raises(ConnectionError) as info:
        wrapped()
    assert fn.calls == 3
    assert any("gave up after 3 attempt" in n for n in info.value.__notes__)
    assert wrapped.retry.statistics.gave_up


def test_errors_not_listed_are_raised_at_once():
    fn = Flaky(5, error=KeyError("nope"))
    with pytest.raises(KeyError):
        retry(max_attempts=5, delay=0, retry_on=(ConnectionError,))(fn)()
    assert fn.calls == 1


def test_give_up_on_wins_over_retry_on():
    fn = Flaky(5, error=ConnectionRefusedError())
    with pytest.raises(ConnectionRefusedError):
        retry(max_attempts=5, delay=0, give_up_on=ConnectionRefusedError)(fn)()
    assert fn.calls == 1


def test_predicate_chooses_what_is_retried():
    fn = Flaky(2, error=RuntimeError("HTTP 503"))
    wrapped = retry(max_attempts=5, delay=0, retry_if=lambda e: "503" in str(e))(fn)
    assert wrapped()[0] == "ok"
    other = Flaky(2, error=RuntimeError("HTTP 400"))
    with pytest.raises(RuntimeError):
        retry(max_attempts=5, delay=0, retry_if=lambda e: "503" in str(e))(other)()
    assert other.calls == 1


def test_stop_after_total_time_gives_up_before_sleeping_past_it():
    slept = []
    fn = Flaky(100)
    with pytest.raises(ConnectionError):
        retry(max_attempts=None, stop_after_s=0.05, delay=0.02, backoff=1.0, sleep=slept.append)(
            fn
        )()
    assert slept == [0.02, 0.02]
    assert fn.calls == 3


def test_stop_after_total_time_uses_real_time():
    fn = Flaky(1000)
    with pytest.raises(ConnectionError):
        retry(max_attempts=None, stop_after_s=0.2, delay=0.05, backoff=1.0)(fn)()
    assert 2 <= fn.calls <= 6


def test_callbacks_before_sleep_and_on_give_up():
    seen, gave_up = [], []
    wrapped = retry(
        max_attempts=3,
        delay=Fixed(0.0),
        before_sleep=lambda s: seen.append((s.attempt, type(s.error).__name__)),
        on_give_up=lambda s: gave_up.append(s.attempt),
    )(Flaky(9))
    with pytest.raises(ConnectionError):
        wrapped()
    assert seen == [(1, "ConnectionError"), (2, "ConnectionError")]
    assert gave_up == [3]


def test_logs_each_retry_at_debug_and_the_give_up_as_a_warning(caplog):
    caplog.set_level(logging.DEBUG, logger="stalwart.retry")
    with pytest.raises(ConnectionError):
        retry(max_attempts=2, delay=0)(Flaky(5))()
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert any(lvl == "DEBUG" and "retrying" in m for lvl, m in messages)
    assert any(lvl == "WARNING" and "giving up after 2" in m for lvl, m in messages)


def test_iterator_form_retries_the_block():
    fn = Flaky(2)
    policy = retry(max_attempts=4, delay=0)
    numbers = []
    for attempt in policy:
        with attempt:
            numbers.append(attempt.number)
            fn()
    assert numbers == [1, 2, 3]
    assert policy.statistics.attempts == 3


def test_iterator_form_raises_when_attempts_run_out():
    policy = retry(max_attempts=2, delay=0)
    with pytest.raises(ConnectionError):
        for attempt in policy:
            with attempt:
                raise ConnectionError("down")


def test_async_decorator_retries_a_coroutine():
    calls = []

    @retry(max_attempts=3, delay=0.001)
    async def fetch(x):
        calls.append(x)
        if len(calls) < 3:
            raise TimeoutError()
        return x * 2

    assert asyncio.run(fetch(21)) == 42
    assert calls == [21, 21, 21]


def test_async_iterator_form():
    async def main():
        n = 0
        async for attempt in retry(max_attempts=3, delay=0):
            with attempt:
                n += 1
                if n < 2:
                    raise ConnectionError()
        return n

    assert asyncio.run(main()) == 2


def test_bad_configuration_names_the_field():
    with pytest.raises(ValueError, match="max_attempts"):
        retry(max_attempts=0)
    with pytest.raises(ValueError, match="never stops"):
        retry(max_attempts=None)
    for hook in ("retry_if", "retry_if_result", "before", "after", "before_sleep", "sleep"):
        with pytest.raises(ValueError, match=f"retry: {hook} must be callable, got 3"):
            retry(**{hook: 3})


def run_in_form(form, policy, body):
    """Run ``body`` (a plain function) under ``policy`` in one of its five forms."""

    async def async_body():
        return body()

    async def async_iterate():
        async for attempt in policy:
            with attempt:
                return body()

    def iterate():
        for attempt in policy:
            with attempt:
                return body()

    runners = {
        "decorator": lambda: policy(body)(),
        "call": lambda: policy.call(body),
        "async": lambda: asyncio.run(policy(async_body)()),
        "iterator": iterate,
        "async iterator": lambda: asyncio.run(async_iterate()),
    }
    return runners[form]()


FORMS = ["decorator", "call", "async", "iterator", "async iterator"]


@pytest.mark.parametrize("form", FORMS)
def test_stop_after_s_counts_the_first_attempt_in_every_form(form):
    clock = Clock()
    starts = []

    def slow_failure():
        starts.append(clock.now)
        clock.now += 0.3
        raise ConnectionError("slow and failing")

    policy = retry(stop_after_s=0.45, delay=0, clock=clock, sleep=clock.sleep)
    with pytest.raises(ConnectionError):
        run_in_form(form, policy, slow_failure)
    assert starts == [0.0, 0.3]  # a third attempt would start at 0.6, past the budget


def test_stop_after_s_alone_bounds_attempts_by_time_only():
    clock = Clock()
    fn = Flaky(10)
    wrapped = retry(stop_after_s=30, delay=1.0, backoff=1.0, clock=clock, sleep=clock.sleep)(fn)
    assert wrapped()[0] == "ok"
    assert fn.calls == 11
    assert wrapped.retry.max_attempts is None


def test_retry_on_and_retry_if_must_both_hold():
    wrong_type = Flaky(5, error=RuntimeError("boom"))
    policy = retry(max_attempts=5, delay=0, retry_on=(ConnectionError,), retry_if=lambda e: True)
    with pytest.raises(RuntimeError):
        policy(wrong_type)()
    assert wrong_type.calls == 1
    refused = Flaky(5, error=ConnectionError("HTTP 400"))
    with pytest.raises(ConnectionError):
        retry(
            max_attempts=5, delay=0, retry_on=ConnectionError, retry_if=lambda e: "503" in str(e)
        )(refused)()
    assert refused.calls == 1


def test_the_predicate_runs_once_per_failure_even_when_giving_up_at_once():
    asked = []

    def never(exc):
        asked.append(exc)
        return False

    with pytest.raises(ConnectionError):
        retry(max_attempts=3, delay=0, retry_if=never)(Flaky(5))()
    assert len(asked) == 1


def test_statistics_belong_to_each_call_when_calls_of_one_policy_nest():
    policy = retry(max_attempts=5, delay=0)
    inner = policy(Flaky(1))  # one failure: 2 attempts each time it is called
    outer_failures = [2]

    @policy
    def outer():
        inner()
        if outer_failures[0]:
            outer_failures[0] -= 1
            raise ConnectionError("outer blip")
        return "done"

    assert outer() == "done"
    assert policy.statistics.attempts == 3
    assert outer.statistics.attempts == 3


def test_statistics_belong_to_each_call_when_a_function_recurses():
    policy = retry(max_attempts=5, delay=0)
    failures = {0: 2, 1: 1, 2: 0}  # depth -> failures left at that depth

    @policy
    def descend(depth):
        if depth < 2:
            descend(depth + 1)
        if failures[depth]:
            failures[depth] -= 1
            raise ConnectionError(f"blip at depth {depth}")
        return depth

    assert descend(0) == 0
    assert descend.retry.statistics.attempts == 3  # the outermost call's own attempts


def test_statistics_belong_to_each_asyncio_task():
    policy = retry(max_attempts=5, delay=0)

    async def main():
        first_done = asyncio.Event()
        second_done = asyncio.Event()
        flaky = Flaky(2)

        @policy
        async def fetch(fn):
            return fn()

        async def first():
            await fetch(flaky)  # three attempts
            first_done.set()
            await second_done.wait()
            return policy.statistics.attempts

        async def second():
            await first_done.wait()
            await fetch(lambda: "at once")
            second_done.set()
            return policy.statistics.attempts

        return await asyncio.gather(first(), second())

    assert asyncio.run(main()) == [3, 1]


@pytest.mark.parametrize(
    "error",
    [
        NameError("name 'x' is not defined"),
        TypeError("unsupported operand"),
        AttributeError("'NoneType' object has no attribute 'id'"),
        KeyError("user"),
        ValueError("not a number: 'abc'"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_plain_retry_does_not_retry_bugs_or_bad_input(error):
    fn = Flaky(5, error=error)
    wrapped = retry(fn)
    wrapped.retry.sleep = lambda s: None
    with pytest.raises(type(error)):
        wrapped()
    assert fn.calls == 1


def test_retry_on_names_the_errors_to_retry_even_bugs():
    fn = Flaky(2, error=KeyError("cache not warm yet"))
    assert retry(max_attempts=3, delay=0, retry_on=KeyError)(fn)()[0] == "ok"
    assert fn.calls == 3


def test_plain_retry_still_retries_what_may_pass():
    for error in (ConnectionError("reset"), TimeoutError(), RuntimeError("HTTP 503"), OSError()):
        fn = Flaky(1, error=error)
        assert retry(max_attempts=2, delay=0)(fn)()[0] == "ok", error
