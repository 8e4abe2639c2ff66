"""pybreaker's behavioural tests (``tests/pybreaker_test.py``), ported to our breaker.

Translation: ``fail_max`` is ``failure_threshold``, ``reset_timeout`` is
``recovery_timeout``, ``fail_counter`` is ``consecutive_failures``, ``current_state`` is
``state`` (``"half-open"`` is ``half_open``), ``CircuitBreakerError`` is
:class:`CircuitOpenError`. pybreaker's default ``success_threshold`` is 1, ours 2, so the
ports pass it. Time is an injected fake clock instead of ``sleep``. The call that trips our
breaker raises the original error (pybreaker's ``throw_new_error_on_trip=False``).
pybreaker's ``exclude`` counts an excluded error as a success: our ``is_failure`` predicate
does the same (``ignore_on`` would leave the call unrecorded instead).

Not ported, and why:

- ``test_throw_new_error_on_trip_true``, ``test_traceback_in_circuitbreaker_error``: the
  tripping call always raises the original error; there is no option to replace it.
- ``test_fail_max_setter``, ``test_reset_timeout_setter``, ``test_success_threshold_property``,
  ``test_add_excluded_exception``, ``test_add_excluded_exceptions``,
  ``test_remove_excluded_exception``: settings are validated together at construction and
  fixed; build a new breaker to change them.
- ``test_add_listeners``: there is no bulk form (``on_state_change`` takes one listener).
- ``test_decorator_call_future``, ``test_no_tornado_raises``: Tornado futures; coroutine
  functions are decorated natively (``test_call_async_*`` below).
- ``test_failure_count_not_reset_during_creation``,
  ``test_state_opened_at_not_reset_during_creation``, ``test_success_threshold_redis_storage``
  and the Redis test cases (``test_namespace``, ``test_fallback_state``, ``test_missing_state``,
  ``test_cluster_mode`` and the Redis concurrency tests): state storage outside the process;
  ours lives in the breaker (or in its actor).
"""

import asyncio
import threading
from contextlib import contextmanager

import pytest

from stalwart.strategies import BreakerState, CircuitBreaker, CircuitOpenError, Outcome
from tests.strategies.fakes import Clock

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def err():
    raise NotImplementedError


def suc():
    return True


def breaker(clock=None, **options):
    options.setdefault("success_threshold", 1)
    return CircuitBreaker(clock=clock or Clock(), **options)


# pybreaker: test_successful_call
def test_successful_call():
    b = breaker()
    assert b.call(suc)
    assert b.consecutive_failures == 0 and b.state is CLOSED


# pybreaker: test_one_failed_call
def test_one_failed_call():
    b = breaker()
    with pytest.raises(NotImplementedError):
        b.call(err)
    assert b.consecutive_failures == 1 and b.state is CLOSED


# pybreaker: test_one_successful_call_after_failed_call
def test_one_successful_call_after_failed_call():
    b = breaker()
    with pytest.raises(NotImplementedError):
        b.call(err)
    assert b.consecutive_failures == 1
    assert b.call(suc)
    assert b.consecutive_failures == 0 and b.state is CLOSED


# pybreaker: test_several_failed_calls_setting_absent
def test_several_failed_calls_setting_absent():
    b = breaker(failure_threshold=3)
    for _ in range(3):  # the third opens it and raises the original error
        with pytest.raises(NotImplementedError):
            b.call(err)
    with pytest.raises(CircuitOpenError):
        b.call(err)
    assert b.consecutive_failures == 3 and b.state is OPEN


# pybreaker: test_throw_new_error_on_trip_false
def test_throw_new_error_on_trip_false():
    b = breaker(failure_threshold=3)
    for _ in range(3):
        with pytest.raises(NotImplementedError):
            b.call(err)
    assert b.consecutive_failures == 3 and b.state is OPEN
    with pytest.raises(CircuitOpenError):
        b.call(err)
    assert b.consecutive_failures == 3 and b.state is OPEN


# pybreaker: test_failed_call_after_timeout
def test_failed_call_after_timeout():
    clock = Clock()
    b = breaker(clock, failure_threshold=3, recovery_timeout=0.5)
    for _ in range(2):
        with pytest.raises(NotImplementedError):
            b.call(err)
    assert b.state is CLOSED
    with pytest.raises(NotImplementedError):
        b.call(err)
    assert b.consecutive_failures == 3
    clock.now += 0.6
    with pytest.raises(NotImplementedError):
        b.call(err)  # the trial fails: open again
    assert b.consecutive_failures == 4 and b.state is OPEN


# pybreaker: test_successful_after_timeout
def test_successful_after_timeout():
    clock = Clock()
    b = breaker(clock, failure_threshold=3, recovery_timeout=1)
    calls = []

    def counted():
        calls.append(1)
        return True

    for _ in range(3):
        with pytest.raises(NotImplementedError):
            b.call(err)
    with pytest.raises(CircuitOpenError):
        b.call(counted)
    assert b.consecutive_failures == 3
    clock.now += 2
    assert b.call(counted)
    assert b.consecutive_failures == 0 and b.state is CLOSED
    assert len(calls) == 1


# pybreaker: test_failed_call_when_halfopen
def test_failed_call_when_halfopen():
    b = breaker()
    b.half_open()
    assert b.consecutive_failures == 0 and b.state is HALF_OPEN
    with pytest.raises(NotImplementedError):
        b.call(err)
    assert b.consecutive_failures == 1 and b.state is OPEN


# pybreaker: test_successful_call_when_halfopen
def test_successful_call_when_halfopen():
    b = breaker()
    b.half_open()
    assert b.consecutive_failures == 0 and b.state is HALF_OPEN
    assert b.call(suc)
    assert b.consecutive_failures == 0 and b.state is CLOSED


# pybreaker: test_close
def test_close():
    b = breaker(failure_threshold=3)
    for _ in range(3):
        with pytest.raises(NotImplementedError):
            b.call(err)
    with pytest.raises(CircuitOpenError):
        b.call(err)
    assert b.consecutive_failures == 3 and b.state is OPEN
    b.close()
    assert b.consecutive_failures == 0 and b.state is CLOSED


# pybreaker: test_transition_events
def test_transition_events():
    b = breaker()
    out = []
    b.on_state_change(lambda cb, old, new: out.append(f"{old.value}->{new.value}"))
    assert b.state is CLOSED
    b.open()
    assert b.state is OPEN
    b.half_open()
    assert b.state is HALF_OPEN
    b.close()
    assert b.state is CLOSED
    assert out == ["closed->open", "open->half_open", "half_open->closed"]


# pybreaker: test_call_events
def test_call_events():
    b = breaker()
    out = []
    b.on_outcome(lambda cb, outcome, duration, exc: out.append((outcome, type(exc))))
    assert b.call(suc)
    with pytest.raises(NotImplementedError):
        b.call(err)
    assert out == [(Outcome.SUCCESS, type(None)), (Outcome.FAILURE, NotImplementedError)]


# pybreaker: test_generator
def test_generator():
    b = breaker()

    @b
    def suc_gen(value):
        "Docstring"
        yield value

    @b
    def err_gen(value):
        "Docstring"
        x = yield value
        raise NotImplementedError(x)

    s = suc_gen(True)
    e = err_gen(True)
    next(e)
    with pytest.raises(NotImplementedError):
        e.send(True)
    assert b.consecutive_failures == 1
    assert next(s)
    with pytest.raises(StopIteration):
        next(s)
    assert b.consecutive_failures == 0


# pybreaker: test_contextmanager
def test_contextmanager():
    b = breaker()

    class Foo:
        @contextmanager
        @b
        def wrapper(self):
            try:
                yield
            except NotImplementedError:
                raise ValueError from None

        def foo(self):
            with self.wrapper():
                raise NotImplementedError

    with pytest.raises(ValueError):
        Foo().foo()
    assert b.consecutive_failures == 1


# pybreaker: test_default_state
def test_default_state():
    for state in (OPEN, CLOSED, HALF_OPEN):
        assert breaker(state=state).state is state


# pybreaker: test_default_params
def test_default_params():
    b = CircuitBreaker()
    assert b.consecutive_failures == 0
    assert b.recovery_timeout == 60
    assert b.failure_threshold == 5
    assert b.state is CLOSED
    assert b.ignore_on == ()


# pybreaker: test_new_with_custom_reset_timeout
def test_new_with_custom_reset_timeout():
    b = CircuitBreaker(recovery_timeout=30)
    assert (b.recovery_timeout, b.failure_threshold, b.consecutive_failures) == (30, 5, 0)


# pybreaker: test_new_with_custom_fail_max
def test_new_with_custom_fail_max():
    b = CircuitBreaker(failure_threshold=10)
    assert (b.recovery_timeout, b.failure_threshold, b.consecutive_failures) == (60, 10, 0)


# pybreaker: test_new_with_custom_excluded_exceptions
def test_new_with_custom_excluded_exceptions():
    b = CircuitBreaker(ignore_on=(Exception,))
    assert b.ignore_on == (Exception,)


# pybreaker: test_call_with_no_args
def test_call_with_no_args():
    assert breaker().call(suc)


# pybreaker: test_call_with_args
def test_call_with_args():
    assert breaker().call(lambda a, b: [a, b], 42, "abc") == [42, "abc"]


# pybreaker: test_call_with_kwargs
def test_call_with_kwargs():
    assert breaker().call(lambda **kwargs: kwargs, a=1, b=2) == {"a": 1, "b": 2}


async def async_args(*args, **kwargs):
    return args or kwargs or True


# pybreaker: test_call_async_with_no_args
def test_call_async_with_no_args():
    assert asyncio.run(breaker().call_async(async_args))


# pybreaker: test_call_async_with_args
def test_call_async_with_args():
    assert asyncio.run(breaker().call_async(async_args, 42, "abc")) == (42, "abc")


# pybreaker: test_call_async_with_kwargs
def test_call_async_with_kwargs():
    assert asyncio.run(breaker().call_async(async_args, a=1, b=2)) == {"a": 1, "b": 2}


# pybreaker: test_add_listener
def test_add_listener():
    b = breaker()
    heard = []
    b.on_state_change(lambda cb, old, new: heard.append("first"))
    b.on_state_change(lambda cb, old, new: heard.append("second"))
    b.open()
    assert heard == ["first", "second"]


# pybreaker: test_remove_listener
def test_remove_listener():
    b = breaker()
    heard = []

    def first(cb, old, new):
        heard.append(new)

    b.on_state_change(first)
    b.remove_listener(first)
    b.open()
    assert heard == []


# pybreaker: test_excluded_exceptions
def test_excluded_exceptions():
    b = breaker(is_failure=lambda e: not isinstance(e, LookupError))
    with pytest.raises(NotImplementedError):
        b.call(err)
    assert b.consecutive_failures == 1
    with pytest.raises(LookupError):
        b.call(lambda: (_ for _ in ()).throw(LookupError()))
    assert b.consecutive_failures == 0  # not a system error: a success
    with pytest.raises(NotImplementedError):
        b.call(err)
    assert b.consecutive_failures == 1
    with pytest.raises(KeyError):  # subclasses too
        b.call(lambda: (_ for _ in ()).throw(KeyError()))
    assert b.consecutive_failures == 0


class TestException(Exception):
    __test__ = False

    def __init__(self, value):
        self.value = value


def raising(exc):
    def fn():
        raise exc

    return fn


# pybreaker: test_excluded_callable_exceptions
def test_excluded_callable_exceptions():
    def good(e):
        return type(e) is TestException and e.value == "good"

    b = breaker(is_failure=lambda e: not good(e))
    for exc, count in [(TestException("bad"), 1), (TestException("good"), 0)]:
        with pytest.raises(TestException):
            b.call(raising(exc))
        assert b.consecutive_failures == count
    with pytest.raises(NotImplementedError):
        b.call(err)
    assert b.consecutive_failures == 1


# pybreaker: test_excluded_callable_and_types_exceptions
def test_excluded_callable_and_types_exceptions():
    def excluded(e):
        return (type(e) is TestException and e.value == "good") or isinstance(e, LookupError)

    b = breaker(is_failure=lambda e: not excluded(e))
    steps = [
        (TestException("bad"), 1),
        (TestException("good"), 0),
        (NotImplementedError(), 1),
        (LookupError(), 0),
    ]
    for exc, count in steps:
        with pytest.raises(type(exc)):
            b.call(raising(exc))
        assert b.consecutive_failures == count


# pybreaker: test_decorator
def test_decorator():
    b = breaker()

    @b
    def suc_fn(value):
        "Docstring"
        return value

    @b
    def err_fn(value):
        "Docstring"
        raise NotImplementedError

    assert suc_fn.__doc__ == err_fn.__doc__ == "Docstring"
    assert (suc_fn.__name__, err_fn.__name__) == ("suc_fn", "err_fn")
    with pytest.raises(NotImplementedError):
        err_fn(True)
    assert b.consecutive_failures == 1
    assert suc_fn(True)
    assert b.consecutive_failures == 0


# pybreaker: test_name
def test_name():
    b = CircuitBreaker(name="test_breaker")
    assert b.name == "test_breaker"
    b.name = "breaker_test"
    assert b.name == "breaker_test"


def opened_and_waited(clock, **options):
    """A breaker (3 failures, 0.1 s to recover) that has opened and waited its timeout out."""
    b = breaker(clock, failure_threshold=3, recovery_timeout=0.1, **options)
    for _ in range(3):
        with pytest.raises(NotImplementedError):
            b.call(err)
    with pytest.raises(CircuitOpenError):
        b.call(err)
    clock.now += 0.2
    return b


# pybreaker: test_success_threshold_default_behavior
def test_success_threshold_default_behavior():
    b = opened_and_waited(Clock())
    assert b.call(suc)
    assert b.state is CLOSED


# pybreaker: test_success_threshold_multiple_successes_required
def test_success_threshold_multiple_successes_required():
    b = opened_and_waited(Clock(), success_threshold=3)
    for _ in range(2):
        assert b.call(suc)
        assert b.state is HALF_OPEN
    assert b.call(suc)
    assert b.state is CLOSED


# pybreaker: test_success_threshold_failure_resets_counter
def test_success_threshold_failure_resets_counter():
    clock = Clock()
    b = opened_and_waited(clock, success_threshold=3)
    for _ in range(2):
        assert b.call(suc)
    with pytest.raises(NotImplementedError):
        b.call(err)
    assert b.state is OPEN
    clock.now += 0.2
    for _ in range(2):  # the successes before the failure no longer count
        assert b.call(suc)
        assert b.state is HALF_OPEN


# pybreaker: test_create_new_state__bad_state
def test_create_new_state__bad_state():
    with pytest.raises(ValueError, match="state"):
        breaker(state="foo")


# pybreaker: test_notify_not_called_on_init
def test_notify_not_called_on_init():
    heard = []
    b = breaker(state="open")
    b.on_state_change(lambda cb, old, new: heard.append(new))
    assert b.state is OPEN and heard == []


# pybreaker: test_notify_called_on_state_change
def test_notify_called_on_state_change():
    heard = []
    b = breaker()
    b.on_state_change(lambda cb, old, new: heard.append((old, new)))
    b.open()
    assert heard == [(CLOSED, OPEN)]


def run_threads(target, n):
    start = threading.Barrier(n, timeout=30)

    def run():
        start.wait()
        target()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def fail_from_threads(b, threads, calls_each, error=Exception):
    """Call a function that ``b`` guards and that raises ``error``, ``calls_each`` times
    from each of ``threads`` threads at once; the errors are swallowed."""

    @b
    def failing():
        raise error

    def trigger_error():
        for _ in range(calls_each):
            try:
                failing()
            except error:
                pass

    run_threads(trigger_error, threads)


class SpecificException(Exception):
    pass


# pybreaker: test_fail_thread_safety (CircuitBreakerThreadsTestCase)
def test_fail_thread_safety():
    b = breaker(failure_threshold=3000, recovery_timeout=1)
    fail_from_threads(b, 3, 500, SpecificException)
    assert b.consecutive_failures == 1500 == b.counts().failures


# pybreaker: test_success_thread_safety (CircuitBreakerThreadsTestCase)
def test_success_thread_safety():
    b = breaker(failure_threshold=3000, recovery_timeout=1)
    decorated = b(suc)

    def trigger_success():
        for _ in range(500):
            decorated()

    run_threads(trigger_success, 3)
    assert b.counts().calls == 1500


# pybreaker: test_half_open_thread_safety (CircuitBreakerThreadsTestCase)
def test_half_open_thread_safety():
    clock = Clock()
    b = breaker(clock, failure_threshold=1, recovery_timeout=0.01)
    b.open()
    clock.now += 0.01
    half_opened = []
    b.on_state_change(lambda cb, old, new: new is HALF_OPEN and half_opened.append(1))
    fail_from_threads(b, 5, 1)
    assert len(half_opened) == 1


# pybreaker: test_fail_max_thread_safety (CircuitBreakerThreadsTestCase)
def test_fail_max_thread_safety():
    b = breaker(failure_threshold=3000, recovery_timeout=1)
    fail_from_threads(b, 3, 2000)
    assert b.consecutive_failures == b.failure_threshold


# pybreaker: test_calling (CircuitBreakerContextManagerTestCase)
def test_calling():
    clock = Clock()
    b = breaker(clock, failure_threshold=2, recovery_timeout=0.01)
    ran = []

    class TestError(Exception):
        pass

    def do_raise():
        with b:
            raise TestError

    def do_succeed():
        with b:
            ran.append(1)

    with pytest.raises(TestError):
        do_raise()
    with pytest.raises(TestError):  # ours: the tripping call raises the original error
        do_raise()
    assert b.consecutive_failures == 2 and b.state is OPEN
    with pytest.raises(CircuitOpenError):
        do_succeed()
    assert ran == []
    clock.now += 0.01
    do_succeed()
    assert ran == [1]
    assert b.consecutive_failures == 0 and b.state is CLOSED
