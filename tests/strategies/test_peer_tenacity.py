"""tenacity's behavioural tests, ported to ``stalwart.strategies.retry``.

From tenacity's ``tests/test_tenacity.py`` and ``tests/test_asyncio.py``
(Apache-2.0); each test names its origin. Time is a fake clock and sleeps are
recorded, so nothing here waits. Where our API differs the port keeps the
behaviour and says what changed: we raise the original error (tenacity's
``reraise=True``) or :class:`ResultRejected` instead of ``RetryError``; plain
``@retry`` does not retry bugs and bad input; ``after`` also runs after the
attempt that succeeds. Ported: 80 of tenacity's 161 tests in those two files.

Not ported (81 of 161), and why. From ``test_tenacity.py``:

- No repr contract: ``TestBase.test_retrying_repr``, ``TestBase.test_callstate_repr``.
- No ``name=`` option: ``TestRetryingName.test_str_default``, ``test_str_with_name``,
  ``test_str_preserved_by_copy``, ``test_str_overridden_by_copy``,
  ``test_get_fn_name_decorator``, ``test_get_fn_name_context_manager_no_name``,
  ``test_get_fn_name_context_manager_with_name``, ``test_logging_uses_name``.
- A policy that never stops is refused: ``TestStopConditions.test_never_stop``.
- No "all of" stop rule, and ``|`` is what ``max_attempts`` with ``stop_after_s``
  already does (``test_stop_any``): ``TestStopConditions.test_stop_all``,
  ``test_stop_and``, ``test_stop_or``.
- tenacity's legacy string API: ``TestStopConditions.test_legacy_explicit_stop_type``,
  ``TestWaitConditions.test_legacy_explicit_wait_type``.
- Stop and wait rules are data (schedules), not callables given the call state:
  ``TestStopConditions.test_stop_func_with_retry_state``,
  ``TestWaitConditions.test_wait_func``, ``test_wait_retry_state_attributes``.
- Our default first wait is 1 s: ``TestWaitConditions.test_no_sleep``.
- tenacity's arithmetic, not behaviour:
  ``TestWaitConditions.test_exponential_skips_power_after_reaching_max``.
- ``sum()`` starts from ``0``; schedules compose with ``+``:
  ``TestWaitConditions.test_wait_arbitrary_sum``.
- A statistical restatement of ``test_wait_random_exponential``:
  ``TestWaitConditions.test_wait_random_exponential_statistically``.
- tenacity's argument names and ``timedelta`` arguments (ours are seconds):
  ``TestWaitConditions.test_wait_exponential_jitter_timedelta``,
  ``test_wait_exponential_jitter_multiplier``,
  ``test_wait_exponential_jitter_initial_deprecated``,
  ``test_wait_exponential_jitter_initial_and_multiplier_raises``.
- Predicates are plain callables, combined with ``and``/``or`` in a lambda:
  ``TestRetryConditions.test_retry_any``, ``test_retry_all``, ``test_retry_and``,
  ``test_retry_or``, ``test_retry_or_with_plain_function``,
  ``test_retry_and_with_plain_function``, ``test_retry_or_coalesces``,
  ``test_retry_and_coalesces``.
- No ``TryAgain``: ``TestRetryConditions.test_retry_try_again``,
  ``test_retry_try_again_forever``, ``test_retry_try_again_with_cause_reraise``,
  ``test_retry_try_again_from_cause_reraise``, ``test_retry_try_again_forever_reraise``.
- No message-matching helpers (``retry_if`` takes a lambda):
  ``TestRetryConditions.test_retry_if_exception_message_negative_no_inputs``,
  ``test_retry_if_exception_message_negative_too_many_inputs``,
  ``test_retry_if_exception_message_empty_message``,
  ``test_retry_if_not_exception_message_empty_message``.
- It retries successful results until an error appears; results are retried
  only through ``retry_if_result``, as ``test_retry_until_exception_of_type_*``
  show: ``TestDecoratorWrapper.test_retry_if_not_exception_message_delay``.
- ``RetryState.elapsed`` carries it to callbacks; statistics do not:
  ``TestStatisticsKeys.test_delay_since_first_attempt_available_on_first_attempt``.
- No ``enabled`` switch: ``TestEnabled.test_enabled_false_skips_retry``,
  ``test_enabled_false_preserves_attributes``, ``test_enabled_false_via_retry_with``,
  ``test_enabled_true_retries_normally``,
  ``test_enabled_false_iter_raises_original_exception``,
  ``test_enabled_false_iter_succeeds_on_first_attempt``.
- No ``retry_with`` (build another policy): ``TestRetryWith.test_redefine_wait``,
  ``test_redefine_stop``, ``test_retry_error_cls_should_be_preserved``,
  ``test_retry_error_callback_should_be_preserved``,
  ``TestMockingSleep.test_decorated_retry_with``.
- No log helper; every retry is logged on ``stalwart.retry`` (see test_retry.py):
  ``TestBeforeAfterAttempts.test_before_sleep_log_raises``,
  ``test_before_sleep_log_raises_with_exc_info``, ``test_before_sleep_log_returns``,
  ``test_before_sleep_log_returns_with_exc_info``.
- There is no ``RetryError`` to unwrap:
  ``TestReraiseExceptions.test_reraise_from_retry_error``,
  ``test_reraise_timeout_from_retry_error``.
- ``on_give_up`` notifies; ``fallback()`` supplies a value instead:
  ``TestRetryErrorCallback.test_retry_error_callback``.
- A typeguard check; mypy checks our overloads:
  ``TestRetryTyping.test_retry_type_annotations``.
- Policies hold callables, a random generator and a weak reference to
  themselves; they are not meant to be pickled: ``TestPickle.test_retrying_picklable``,
  ``test_retrying_picklable_after_run``, ``test_retry_strategies_picklable``,
  ``test_retrying_pickle_round_trip_works``.

From ``test_asyncio.py``:

- No repr contract: ``TestAsyncio.test_repr``.
- No ``enabled`` switch: ``TestAsyncEnabled.test_enabled_false_skips_retry``,
  ``test_enabled_false_aiter_raises_original_exception``,
  ``test_enabled_false_aiter_succeeds_on_first_attempt``.
- asyncio only: ``TestTrio.test_trio_basic``.
- No ``TryAgain``: ``TestContextManager.test_reraise_try_again_with_cause``.
- Iterator attempts carry no result: ``TestContextManager.test_retry_with_result``.
- No predicate combinators: ``TestContextManager.test_retry_with_async_result_or``,
  ``test_retry_with_async_result_ror``, ``test_retry_with_async_result_and``,
  ``test_retry_with_async_result_rand``.
- One policy serves ``for`` and ``async for``:
  ``TestContextManager.test_async_retying_iterator``.
"""

import asyncio
import functools
import inspect
import pickle
import random
from unittest import mock

import pytest

from stalwart.strategies import (
    Exponential,
    Fixed,
    Linear,
    Random,
    ResultRejected,
    chain,
    retry,
)

from .fakes import Clock

RNG = random.Random(7)


def no_wait(**options):
    """A policy that records its sleeps instead of sleeping (``policy.slept``)."""
    slept = []
    options.setdefault("delay", 0.0)
    policy = retry(sleep=slept.append, **options)
    policy.slept = slept
    return policy


# -- tenacity's helpers, translated ------------------------------------------------------
class AfterCount:
    """tenacity's ``*AfterCount`` and ``*UntilCount`` helpers in one.

    ``go()`` gives ``first()`` for its first ``count`` calls and ``then()`` after them;
    each is a function that returns a value or raises.
    """

    def __init__(self, count, first, then=lambda: True):
        self.counter = 0
        self.count = count
        self.first = first
        self.then = then

    def go(self):
        if self.counter < self.count:
            self.counter += 1
            return self.first()
        return self.then()


class CustomError(Exception):
    def __init__(self, value):
        self.value = value

    def __str__(self):
        return self.value


DERIVED_MESSAGE = "This is a Custom exception class"


def io_error():
    raise OSError("Hi there, I'm an IOError")


def name_error():
    raise NameError("Hi there, I'm a NameError")


def custom_error():
    raise CustomError(DERIVED_MESSAGE)


def raised_from(error, cause):
    """A function that raises ``error`` from the error ``cause()`` raises."""

    def act():
        try:
            cause()
        except Exception as e:
            raise error from e

    return act


def attempts_until_stop(ends, **options):
    """How many attempts a policy makes when attempt ``i`` ends at ``ends[i]`` and fails."""
    clock = Clock()
    times = iter(ends)
    calls = []

    def fail():
        calls.append(clock.now)
        clock.now = max(clock.now, next(times))
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        retry(clock=clock, sleep=clock.sleep, **options)(fail)()
    return len(calls)


# -- TestStopConditions ---------------------------------------------------------------------
# tenacity: TestStopConditions.test_stop_any
def test_stop_any():
    options = {"max_attempts": 4, "stop_after_s": 1, "delay": 0}
    assert attempts_until_stop([0.1, 0.2, 0.8, 0.8, 0.9], **options) == 4
    assert attempts_until_stop([0.1, 0.8, 1.8, 1.9], **options) == 3


# tenacity: TestStopConditions.test_stop_after_attempt
def test_stop_after_attempt():
    assert attempts_until_stop([0.0] * 5, max_attempts=3, delay=0) == 3


# tenacity: TestStopConditions.test_stop_after_delay
def test_stop_after_delay():
    options = {"stop_after_s": 1, "delay": 0}
    assert attempts_until_stop([0.5, 0.999, 1.5], **options) == 3
    assert attempts_until_stop([0.5, 1.0, 1.5], **options) == 2
    assert attempts_until_stop([0.5, 1.001, 1.5], **options) == 2


# tenacity: TestStopConditions.test_stop_before_delay
def test_stop_before_delay():
    assert attempts_until_stop([0.5, 0.999, 1.5], stop_after_s=1, delay=Fixed(0.0001)) == 3
    assert attempts_until_stop([0.5, 1.0, 1.5], stop_after_s=1, delay=Fixed(0.001)) == 2
    # a whole second's wait never fits: it stops before sleeping, after the first attempt
    assert attempts_until_stop([0.5, 1.0, 1.5], stop_after_s=1, delay=Fixed(1)) == 1
    assert attempts_until_stop([0.5, 1.001, 1.5], stop_after_s=1, delay=Fixed(0)) == 2


# -- TestWaitConditions ---------------------------------------------------------------------
# tenacity: TestWaitConditions.test_fixed_sleep
def test_fixed_sleep():
    assert Fixed(1).next_delay(12, 0.0, RNG) == 1


# tenacity: TestWaitConditions.test_incrementing_sleep
def test_incrementing_sleep():
    schedule = Linear(start=500, step=100)
    assert [schedule.next_delay(n, 0.0, RNG) for n in (1, 2, 3)] == [500, 600, 700]


# tenacity: TestWaitConditions.test_random_sleep
def test_random_sleep():
    times = {Random(1, 20).next_delay(1, 0.0, RNG) for _ in range(1000)}
    assert len(times) > 1
    assert all(1 <= t <= 20 for t in times)


# tenacity: TestWaitConditions.test_random_sleep_withoutmin_
def test_random_sleep_without_min():
    times = {Random(high=2).next_delay(1, 0.0, RNG) for _ in range(4)}
    assert len(times) > 1
    assert all(0 <= t <= 2 for t in times)


# tenacity: TestWaitConditions.test_exponential
def test_exponential():
    schedule = Exponential(1)
    assert [schedule.next_delay(n, 0.0, RNG) for n in range(1, 9)] == [
        1, 2, 4, 8, 16, 32, 64, 128,
    ]  # fmt: skip


# tenacity: TestWaitConditions.test_exponential_with_max_wait
def test_exponential_with_max_wait():
    schedule = Exponential(1).capped(40)
    delays = [schedule.next_delay(n, 0.0, RNG) for n in (*range(1, 9), 50)]
    assert delays == [1, 2, 4, 8, 16, 32, 40, 40, 40]


# tenacity: TestWaitConditions.test_exponential_caps_when_max_multiplier_ratio_underflows
def test_exponential_caps_when_max_multiplier_ratio_underflows():
    assert Exponential(1e300).capped(1e-100).next_delay(1, 0.0, RNG) == 1e-100


def sleeps_with_min_wait(schedule, min_wait_s, attempts):
    policy = no_wait(max_attempts=attempts + 1, delay=schedule, min_wait_s=min_wait_s)
    with pytest.raises(OSError):
        policy(AfterCount(10**6, io_error).go)()
    return policy.slept


# tenacity: TestWaitConditions.test_exponential_with_min_wait
def test_exponential_with_min_wait():
    slept = sleeps_with_min_wait(Exponential(1), 20, 20)
    assert slept[:8] == [20, 20, 20, 20, 20, 32, 64, 128]
    assert slept[19] == 524288


# tenacity: TestWaitConditions.test_exponential_with_max_wait_and_multiplier
def test_exponential_with_max_wait_and_multiplier():
    schedule = Exponential(1).capped(50)
    delays = [schedule.next_delay(n, 0.0, RNG) for n in (*range(1, 9), 50)]
    assert delays == [1, 2, 4, 8, 16, 32, 50, 50, 50]


# tenacity: TestWaitConditions.test_exponential_with_min_wait_and_multiplier
def test_exponential_with_min_wait_and_multiplier():
    slept = sleeps_with_min_wait(Exponential(2), 20, 20)
    assert slept[:8] == [20, 20, 20, 20, 32, 64, 128, 256]
    assert slept[19] == 1048576


# tenacity: TestWaitConditions.test_exponential_with_min_wait_andmax__wait
def test_exponential_with_min_wait_and_max_wait():
    slept = sleeps_with_min_wait(Exponential(1).capped(100), 10, 20)
    assert slept[:9] == [10, 10, 10, 10, 16, 32, 64, 100, 100]
    assert slept[19] == 100


# tenacity: TestWaitConditions.test_wait_combine
# tenacity: TestWaitConditions.test_wait_double_sum
def test_wait_combine():
    schedule = Random(0, 3) + Fixed(5)
    for _ in range(1000):
        assert 5 <= schedule.next_delay(1, 0.0, RNG) <= 8


# tenacity: TestWaitConditions.test_wait_triple_sum
def test_wait_triple_sum():
    schedule = Fixed(1) + Random(0, 3) + Fixed(5)
    for _ in range(1000):
        assert 6 <= schedule.next_delay(1, 0.0, RNG) <= 9


# tenacity: TestWaitConditions.test_wait_chain
def test_wait_chain():
    schedule = chain((Fixed(1), 2), (Fixed(4), 2), Fixed(8))
    delays = [schedule.next_delay(n, 0.0, RNG) for n in range(1, 11)]
    assert delays == [1, 1, 4, 4, 8, 8, 8, 8, 8, 8]


# tenacity: TestWaitConditions.test_wait_chain_multiple_invocations
def test_wait_chain_multiple_invocations():
    policy = no_wait(
        delay=chain((Fixed(1), 1), (Fixed(2), 1), Fixed(3)),
        max_attempts=5,
        retry_if_result=lambda x: x == 1,
    )
    always_return_1 = policy(lambda: 1)
    for _ in range(2):  # the schedule starts again with each call
        with pytest.raises(ResultRejected):
            always_return_1()
        assert policy.slept == [1.0, 2.0, 3.0, 3.0]
        policy.slept.clear()


# tenacity: TestWaitConditions.test_wait_chain_requires_at_least_one_strategy
def test_wait_chain_requires_at_least_one_strategy():
    with pytest.raises(ValueError):
        chain()


# tenacity: TestWaitConditions.test_wait_random_exponential
def test_wait_random_exponential():
    schedule = Exponential(0.5).capped(60).jittered("full")
    for _ in range(1000):
        for n, high in [(1, 0.5), (2, 1), (3, 2), (4, 4), (5, 8), (6, 16), (7, 32), (8, 60)]:
            assert 0 <= schedule.next_delay(n, 0.0, RNG) <= high
    capped = Exponential(10).capped(5).jittered("full")
    for _ in range(1000):
        assert 0 <= capped.next_delay(1, 0.0, RNG) <= 5


# tenacity: TestWaitConditions.test_wait_exponential_jitter
def test_wait_exponential_jitter():
    schedule = (Exponential(1) + Random(0, 1)).capped(60)
    for _ in range(1000):
        for n, low in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 32)]:
            assert low <= schedule.next_delay(n, 0.0, RNG) <= low + 1
        assert [schedule.next_delay(n, 0.0, RNG) for n in (7, 8, 9)] == [60, 60, 60]


# tenacity: TestWaitConditions.test_wait_exponential_jitter_min
def test_wait_exponential_jitter_min():
    for _ in range(100):
        slept = sleeps_with_min_wait((Exponential(1) + Random(0, 1)).capped(60), 5, 4)
        assert slept[:3] == [5, 5, 5]
        assert 8 <= slept[3] <= 9


class WaitFor(Exception):
    """An error that says how long to wait before trying again."""

    def __init__(self, seconds):
        super().__init__(f"retry after {seconds}")
        self.retry_after = seconds


# tenacity: TestWaitConditions.test_wait_exception
def test_wait_exception():
    # adapted: the error itself asks for the wait (a Retry-After), not a predicate
    for seconds in (3.5, 10.0):
        policy = no_wait(max_attempts=2)

        def wait_for(seconds=seconds):
            raise WaitFor(seconds)

        assert policy(AfterCount(1, wait_for).go)()
        assert policy.slept == [seconds]


# -- TestRetryConditions --------------------------------------------------------------------
# tenacity: TestRetryConditions.test_retry_if_result
def test_retry_if_result():
    assert no_wait(max_attempts=2, retry_if_result=lambda x: x == 1)(returning(2))() == 2
    with pytest.raises(ResultRejected):
        no_wait(max_attempts=2, retry_if_result=lambda x: x == 1)(returning(1))()


# tenacity: TestRetryConditions.test_retry_if_not_result
def test_retry_if_not_result():
    assert no_wait(max_attempts=2, retry_if_result=lambda x: x != 1)(returning(1))() == 1
    with pytest.raises(ResultRejected):
        no_wait(max_attempts=2, retry_if_result=lambda x: x != 1)(returning(2))()


def returning(value):
    return lambda: value


# -- TestDecoratorWrapper -------------------------------------------------------------------
# tenacity: TestDecoratorWrapper.test_with_wait
def test_with_wait():
    policy = no_wait(delay=0.05, backoff=1.0, max_attempts=10, retry_if_result=lambda r: r is None)
    assert policy(AfterCount(5, lambda: None).go)() is True
    assert policy.slept == [0.05] * 5


# tenacity: TestDecoratorWrapper.test_with_stop_on_return_value
def test_with_stop_on_return_value():
    policy = no_wait(max_attempts=3, retry_if_result=lambda r: r is None)
    with pytest.raises(ResultRejected) as info:
        policy(AfterCount(5, lambda: None).go)()
    assert info.value.attempts == 3 and info.value.result is None


# tenacity: TestDecoratorWrapper.test_with_stop_on_exception
def test_with_stop_on_exception():
    policy = no_wait(max_attempts=3, retry_if_result=lambda r: r is None)
    with pytest.raises(OSError):
        policy(AfterCount(5, io_error).go)()


# tenacity: TestDecoratorWrapper.test_retry_if_exception_of_type
def test_retry_if_exception_of_type():
    io = no_wait(max_attempts=10, retry_on=OSError)
    assert io(AfterCount(5, io_error).go)()
    with pytest.raises(NameError):
        io(AfterCount(5, name_error).go)()
    custom = no_wait(max_attempts=10, retry_on=CustomError)
    assert custom(AfterCount(5, custom_error).go)()
    with pytest.raises(NameError):
        custom(AfterCount(5, name_error).go)()


# tenacity: TestDecoratorWrapper.test_retry_except_exception_of_type
def test_retry_except_exception_of_type():
    not_io = no_wait(max_attempts=10, retry_on=Exception, give_up_on=OSError)
    assert not_io(AfterCount(5, name_error).go)()
    with pytest.raises(OSError):
        not_io(AfterCount(5, io_error).go)()


# tenacity: TestDecoratorWrapper.test_retry_until_exception_of_type_attempt_number
def test_retry_until_exception_of_type_attempt_number():
    # results are always retried; NameError is not (a bug, by default)
    fn = no_wait(max_attempts=10, retry_if_result=lambda r: True)(
        AfterCount(5, lambda: True, name_error).go
    )
    with pytest.raises(NameError):
        fn()
    assert fn.statistics.attempts == 6


# tenacity: TestDecoratorWrapper.test_retry_until_exception_of_type_no_type
def test_retry_until_exception_of_type_no_type():
    policy = no_wait(max_attempts=10, retry_if_result=lambda r: True, give_up_on=Exception)
    fn = policy(AfterCount(5, lambda: True, name_error).go)
    with pytest.raises(NameError):
        fn()
    assert fn.statistics.attempts == 6


# tenacity: TestDecoratorWrapper.test_retry_until_exception_of_type_wrong_exception
def test_retry_until_exception_of_type_wrong_exception():
    # two results, then an OSError that is retried but attempts have run out
    policy = no_wait(max_attempts=3, retry_if_result=lambda r: True, give_up_on=NameError)
    with pytest.raises(OSError) as info:
        policy(AfterCount(2, lambda: True, io_error).go)()
    assert "gave up after 3 attempt(s)" in info.value.__notes__[-1]


# tenacity: TestDecoratorWrapper.test_retry_if_exception_message
def test_retry_if_exception_message():
    message = DERIVED_MESSAGE
    policy = no_wait(max_attempts=5, retry_if=lambda e: str(e) == message)
    assert policy(AfterCount(3, custom_error).go)()


# tenacity: TestDecoratorWrapper.test_retry_if_not_exception_message
# tenacity: TestDecoratorWrapper.test_retry_if_not_exception_message_match
def test_retry_if_not_exception_message():
    message = DERIVED_MESSAGE
    fn = no_wait(max_attempts=5, retry_if=lambda e: str(e) != message)(
        AfterCount(2, custom_error).go
    )
    with pytest.raises(CustomError):
        fn()
    assert fn.statistics.attempts == 1


# tenacity: TestDecoratorWrapper.test_retry_if_exception_message_match
def test_retry_if_exception_message_match():
    policy = no_wait(max_attempts=5, retry_if=lambda e: str(e).startswith("Thi"))
    assert policy(AfterCount(3, custom_error).go)()


# tenacity: TestDecoratorWrapper.test_retry_if_exception_cause_type
def test_retry_if_exception_cause_type():
    policy = no_wait(max_attempts=10, retry_if=lambda e: isinstance(e.__cause__, NameError))
    assert policy(AfterCount(5, raised_from(OSError, name_error)).go)()
    with pytest.raises(NameError):
        policy(AfterCount(5, raised_from(NameError, io_error)).go)()


# tenacity: TestDecoratorWrapper.test_retry_preserves_argument_defaults
def test_retry_preserves_argument_defaults():
    # adapted: the wrapper is (*args, **kwargs); what callers see is its signature
    def function_with_defaults(a=1):
        return a

    def function_with_kwdefaults(*, a=1):
        return a

    policy = retry(max_attempts=3, delay=0.01)
    for fn in (function_with_defaults, function_with_kwdefaults):
        assert inspect.signature(policy(fn)) == inspect.signature(fn)
        assert policy(fn)() == 1


# tenacity: TestDecoratorWrapper.test_defaults
def test_defaults():
    custom = retry(AfterCount(2, custom_error).go)
    custom.retry.sleep = lambda s: None
    assert custom()
    # a difference on purpose: plain @retry leaves bugs (NameError) alone
    bug = retry(AfterCount(2, name_error).go)
    with pytest.raises(NameError):
        bug()
    assert bug.statistics.attempts == 1


# tenacity: TestDecoratorWrapper.test_retry_function_object
def test_retry_function_object():
    class Hello:
        def __call__(self):
            return "Hello"

    assert retry(max_attempts=3, delay=0.01)(Hello())() == "Hello"


# tenacity: TestDecoratorWrapper.test_retry_function_attributes
def test_retry_function_attributes():
    fn = no_wait(max_attempts=3, retry_if_result=lambda r: r is None)(
        AfterCount(2, lambda: None).go
    )
    assert fn() is True
    assert fn.statistics.attempts == 3
    assert fn.retry.statistics.attempts == 3
    fn = no_wait(max_attempts=3, retry_if_result=lambda r: r is None)(
        AfterCount(2, lambda: None).go
    )
    with mock.patch.object(fn.retry, "max_attempts", 1), pytest.raises(ResultRejected) as info:
        fn()
    assert info.value.attempts == 1
    assert fn.statistics.attempts == 1 and fn.retry.statistics.attempts == 1


# -- TestStatisticsKeys ---------------------------------------------------------------------
def outer(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


# tenacity: TestStatisticsKeys.test_statistics_visible_through_outer_decorator
def test_statistics_visible_through_outer_decorator():
    @outer
    @retry(max_attempts=3)
    def my_call():
        return "ok"

    assert my_call() == "ok"
    assert my_call.statistics.attempts == 1
    assert my_call.statistics is my_call.__wrapped__.statistics


# -- TestBeforeAfterAttempts ----------------------------------------------------------------
# tenacity: TestBeforeAfterAttempts.test_before_attempts
def test_before_attempts():
    seen = []
    no_wait(max_attempts=1, before=lambda s: seen.append(s.attempt))(lambda: None)()
    assert seen == [1]


# tenacity: TestBeforeAfterAttempts.test_after_attempts
def test_after_attempts():
    # adapted: ours runs `after` after the successful attempt too
    seen = []

    def flaky():
        if len(seen) < 2:
            raise Exception("testing after_attempts handler")

    no_wait(max_attempts=3, after=lambda s: seen.append((s.attempt, s.error is None)))(flaky)()
    assert seen == [(1, False), (2, False), (3, True)]


# tenacity: TestBeforeAfterAttempts.test_before_sleep
def test_before_sleep():
    seen = []

    def flaky():
        if len(seen) < 2:
            raise Exception("testing before_sleep_attempts handler")

    policy = no_wait(
        max_attempts=3,
        delay=0.01,
        before_sleep=lambda s: seen.append((s.attempt, s.next_delay > 0)),
    )
    policy(flaky)()
    assert seen == [(1, True), (2, True)]


# -- TestReraiseExceptions ------------------------------------------------------------------
# tenacity: TestReraiseExceptions.test_reraise_by_default
def test_reraise_by_default():
    calls = []

    def reraised_by_default():
        calls.append("x")
        raise KeyError("Bad key")

    with pytest.raises(KeyError):
        no_wait(max_attempts=2, delay=0.1, retry_on=KeyError)(reraised_by_default)()
    assert len(calls) == 2


# tenacity: TestReraiseExceptions.test_reraise_no_exception
def test_reraise_no_exception():
    calls = []
    with pytest.raises(ResultRejected):
        no_wait(max_attempts=2, delay=0.1, retry_if_result=lambda r: True)(
            lambda: calls.append("x")
        )()
    assert len(calls) == 2


# -- TestStatistics -------------------------------------------------------------------------
# tenacity: TestStatistics.test_stats
def test_stats():
    foobar = retry(lambda: 42)
    assert foobar.statistics.attempts == 0
    foobar()
    assert foobar.statistics.attempts == 1


# tenacity: TestStatistics.test_stats_failing
def test_stats_failing():
    def foobar():
        raise ConnectionError(42)

    wrapped = no_wait(max_attempts=2)(foobar)
    assert wrapped.statistics.attempts == 0
    with pytest.raises(ConnectionError):
        wrapped()
    assert wrapped.statistics.attempts == 2


# tenacity: TestStatistics.test_retry_object_statistics_synced
def test_retry_object_statistics_synced():
    foobar = retry(max_attempts=3)(lambda: 42)
    foobar()
    assert foobar.retry.statistics.attempts == foobar.statistics.attempts


# tenacity: TestStatistics.test_retry_object_statistics_during_execution
def test_retry_object_statistics_during_execution():
    attempts = []

    @retry(max_attempts=3, delay=0, retry_on=ValueError)
    def foobar():
        attempts.append(foobar.retry.statistics.attempts)
        if len(attempts) < 3:
            raise ValueError("retry")
        return 42

    foobar()
    assert attempts == [1, 2, 3]


# -- TestContextManager ---------------------------------------------------------------------
# tenacity: TestContextManager.test_context_manager_retry_one
def test_context_manager_retry_one():
    raise_ = True
    for attempt in no_wait(max_attempts=3):
        with attempt:
            if raise_:
                raise_ = False
                raise Exception("Retry it!")
    assert not raise_


# tenacity: TestContextManager.test_context_manager_on_error
def test_context_manager_on_error():
    class LocalError(Exception):
        pass

    with pytest.raises(LocalError):
        for attempt in no_wait(retry_on=OSError):
            with attempt:
                raise LocalError("Don't retry!")


# tenacity: TestContextManager.test_context_manager_retry_error
def test_context_manager_retry_error():
    # adapted: the last error itself, not a RetryError
    calls = []
    with pytest.raises(Exception, match="Retry it!"):
        for attempt in no_wait(max_attempts=2):
            with attempt:
                calls.append(attempt.number)
                raise Exception("Retry it!")
    assert calls == [1, 2]


# tenacity: TestContextManager.test_context_manager_reraise
def test_context_manager_reraise():
    class LocalError(Exception):
        pass

    with pytest.raises(LocalError):
        for attempt in no_wait(max_attempts=2):
            with attempt:
                raise LocalError("Don't retry!")


# -- TestInvokeAsCallable -------------------------------------------------------------------
def counting(fails, error=Exception):
    def f():
        f.calls.append(len(f.calls) + 1)
        if len(f.calls) <= fails:
            raise error("Retry it!")
        return 42

    f.calls = []
    return f


# tenacity: TestInvokeAsCallable.test_retry_one
def test_retry_one():
    f = counting(1)
    assert no_wait().call(f) == 42
    assert f.calls == [1, 2]


# tenacity: TestInvokeAsCallable.test_on_error
def test_on_error():
    class LocalError(Exception):
        pass

    f = counting(1, LocalError)
    with pytest.raises(LocalError):
        no_wait(retry_on=OSError).call(f)
    assert f.calls == [1]


# tenacity: TestInvokeAsCallable.test_retry_error
# tenacity: TestInvokeAsCallable.test_reraise
def test_retry_error():
    # adapted: the last error itself, not a RetryError (tenacity's reraise=True)
    f = counting(10)
    with pytest.raises(Exception, match="Retry it!"):
        no_wait(max_attempts=2).call(f)
    assert f.calls == [1, 2]


# -- TestRetryException ---------------------------------------------------------------------
# tenacity: TestRetryException.test_retry_error_is_pickleable
def test_retry_error_is_pickleable():
    expected = ResultRejected(123, 3, "poll")
    actual = pickle.loads(pickle.dumps(expected))
    assert (actual.result, actual.attempts) == (123, 3)


# -- TestMockingSleep -----------------------------------------------------------------------
# tenacity: TestMockingSleep.test_decorated
def test_decorated():
    def fail():
        raise NotImplementedError  # not retried by plain @retry: say it is

    decorated = retry(max_attempts=5, delay=0.1, retry_on=NotImplementedError)(fail)
    decorated.retry.sleep = mock.Mock()
    with pytest.raises(NotImplementedError):
        decorated()
    assert decorated.retry.sleep.call_count == 4


# -- test_asyncio.py: TestAsyncio -----------------------------------------------------------
async def _async_function(thing):
    await asyncio.sleep(0)
    return thing.go()


def retryable_coroutine(**options):
    @no_wait(max_attempts=10, **options)
    async def _retryable_coroutine(thing):
        await asyncio.sleep(0)
        return thing.go()

    return _retryable_coroutine


# tenacity: TestAsyncio.test_retry
def test_async_retry():
    thing = AfterCount(5, io_error)
    asyncio.run(retryable_coroutine()(thing))
    assert thing.counter == thing.count


# tenacity: TestAsyncio.test_iscoroutinefunction
def test_async_iscoroutinefunction():
    fn = retryable_coroutine()
    assert asyncio.iscoroutinefunction(fn)
    assert inspect.iscoroutinefunction(fn)


# tenacity: TestAsyncio.test_retry_using_async_retying
def test_async_retry_using_call_async():
    thing = AfterCount(5, io_error)
    asyncio.run(no_wait(max_attempts=10).call_async(_async_function, thing))
    assert thing.counter == thing.count


# tenacity: TestAsyncio.test_stop_after_attempt
def test_async_stop_after_attempt():
    thing = AfterCount(2, io_error)
    with pytest.raises(OSError):
        asyncio.run(no_wait(max_attempts=2).call_async(_async_function, thing))
    assert thing.counter == 2


# tenacity: TestAsyncio.test_retry_attributes
def test_async_retry_attributes():
    fn = retryable_coroutine()
    assert hasattr(fn, "retry") and hasattr(fn, "statistics")


# tenacity: TestAsyncio.test_statistics_visible_through_outer_decorator
def test_async_statistics_visible_through_outer_decorator():
    def async_outer(fn):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            return await fn(*args, **kwargs)

        return wrapper

    @async_outer
    @retry(max_attempts=3)
    async def my_call():
        return "ok"

    async def main():
        assert await my_call() == "ok"
        return my_call.statistics.attempts

    assert asyncio.run(main()) == 1
    assert my_call.statistics is my_call.__wrapped__.statistics


# tenacity: TestAsyncio.test_retry_preserves_argument_defaults
def test_async_retry_preserves_argument_defaults():
    async def function_with_defaults(a=1):
        return a

    async def function_with_kwdefaults(*, a=1):
        return a

    policy = retry(max_attempts=3, delay=0.01)
    for fn in (function_with_defaults, function_with_kwdefaults):
        assert inspect.signature(policy(fn)) == inspect.signature(fn)


# tenacity: TestAsyncio.test_attempt_number_is_correct_for_interleaved_coroutines
def test_attempt_number_is_correct_for_interleaved_coroutines():
    attempts = []

    def after(state):
        if state.error is not None:  # ours also reports the attempt that succeeds
            attempts.append((id(state.stats), state.attempt))

    fn = retryable_coroutine(after=after)
    thing1, thing2 = AfterCount(3, io_error), AfterCount(3, io_error)

    async def main():
        await asyncio.gather(fn(thing1), fn(thing2))

    asyncio.run(main())
    # no waits between retries, only in the coroutine, so the calls interleave
    even_things, even_numbers = zip(*attempts[::2], strict=True)
    odd_things, odd_numbers = zip(*attempts[1::2], strict=True)
    assert len(set(even_things)) == 1 and len(set(odd_things)) == 1
    assert set(even_things) != set(odd_things)
    assert list(even_numbers) == list(odd_numbers) == [1, 2, 3]


# -- test_asyncio.py: TestContextManager ----------------------------------------------------
# tenacity: TestContextManager.test_do_max_attempts
def test_async_do_max_attempts():
    async def main():
        attempts = 0
        with pytest.raises(Exception, match="again"):
            async for attempt in no_wait(max_attempts=3):
                with attempt:
                    attempts += 1
                    raise Exception("again")
        return attempts

    assert asyncio.run(main()) == 3


# tenacity: TestContextManager.test_async_with_attempt_manager
def test_async_with_attempt_manager():
    async def main():
        attempts = 0
        with pytest.raises(Exception, match="again"):
            async for attempt in no_wait(max_attempts=3):
                async with attempt:
                    attempts += 1
                    raise Exception("again")
        return attempts

    assert asyncio.run(main()) == 3


# tenacity: TestContextManager.test_reraise
def test_async_reraise():
    class LocalError(Exception):
        pass

    async def main():
        async for attempt in no_wait(max_attempts=1):
            with attempt:
                raise LocalError

    with pytest.raises(LocalError):
        asyncio.run(main())


# tenacity: TestContextManager.test_sleeps
def test_async_sleeps():
    policy = no_wait(max_attempts=1, delay=1)

    async def main():
        async for attempt in policy:
            with attempt:
                raise Exception("once")

    with pytest.raises(Exception, match="once"):
        asyncio.run(main())
    assert policy.slept == []


# tenacity: TestContextManager.test_retry_with_async_exc
def test_async_retry_with_async_exc():
    class LocalError(Exception):
        pass

    async def is_exc(e):
        return isinstance(e, LocalError)

    async def main():
        attempts = 0
        async for attempt in no_wait(max_attempts=10, retry_if=is_exc):
            async with attempt:  # adapted: an async predicate needs `async with`
                attempts += 1
                if attempts < 3:
                    raise LocalError
        return attempts

    assert asyncio.run(main()) == 3


# tenacity: TestContextManager.test_retry_with_async_result
def test_async_retry_with_async_result():
    # adapted: results are retried in the decorator form
    async def lt_3(x):
        return x < 3

    attempts = []

    @no_wait(max_attempts=10, retry_if_result=lt_3)
    async def count():
        attempts.append(1)
        return len(attempts)

    assert asyncio.run(count()) == 3


# -- test_asyncio.py: TestDecoratorWrapper, TestSyncFunctionWithAsyncSleep -----------------
# tenacity: TestDecoratorWrapper.test_retry_function_attributes (test_asyncio.py)
def test_async_retry_function_attributes():
    fn = no_wait(max_attempts=2)(_async_function)

    async def main():
        assert await fn(AfterCount(1, io_error))
        first = fn.statistics.attempts
        with mock.patch.object(fn.retry, "max_attempts", 1), pytest.raises(OSError):
            await fn(AfterCount(2, io_error))
        return first, fn.statistics.attempts, fn.retry.statistics.attempts

    assert asyncio.run(main()) == (2, 1, 1)


# tenacity: TestSyncFunctionWithAsyncSleep.test_sync_function_with_async_sleep
def test_async_sleep_is_awaited():
    # adapted: an async function (ours keep a sync function sync)
    mock_sleep = mock.AsyncMock()
    thing = AfterCount(2, lambda: None)

    @retry(sleep=mock_sleep, delay=1, backoff=1.0, retry_if_result=lambda x: x is None)
    async def function():
        return thing.go()

    assert asyncio.run(function()) is True
    assert mock_sleep.await_count == 2
