import asyncio
import logging
import random

import pytest

from stalwart.strategies import Fixed, retry


class Flaky:
    """Fails ``failures`` times with ``error``, then returns ``value``."""

    def __init__(self, failures, error=None, value="ok"):
        self.failures = failures
        self.error = error or ConnectionError("refused")
        self.value = value
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return (self.value, args, kwargs)


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
