"""circuitbreaker's behavioural tests (``tests/test_functional.py``, ``tests/test_unit.py``),
ported to our breaker.

Like circuitbreaker's suite, the functional tests run for each kind of decorated function:
plain, generator, coroutine and async generator. Translation: ``failure_count`` is
``consecutive_failures``, ``open_remaining`` is ``remaining_open_s`` (0, not negative, once
the wait is over), ``CircuitBreakerError`` is :class:`CircuitOpenError`,
``expected_exception`` is ``record_on`` (a type or tuple) or ``is_failure`` (a predicate of
the exception alone). circuitbreaker closes after one successful trial: the ports pass
``success_threshold=1``. Time is an injected fake clock instead of ``sleep``.

Not ported, and why:

- ``test_circuitbreaker_monitor``: there is no process-wide registry of breakers
  (``CircuitBreakerMonitor``); the tree's breaker actors report to the dashboard instead.
- ``test_circuitbreaker_should_save_last_exception_on_failure_call``,
  ``test_circuitbreaker_should_clear_last_exception_on_success_call``: no ``last_failure``;
  outcome listeners receive each call's exception.
- ``test_circuitbreaker_should_call_fallback_function_if_open``,
  ``test_circuitbreaker_should_not_call_function_if_open``,
  ``test_circuitbreaker_call_fallback_function_with_parameters``: the breaker has no
  fallback; ``fallback(...)`` and ``Recovery.protect(fallback=...)`` compose one around it.
- ``test_circuit_decorator_without_args``, ``test_circuit_decorator_with_args``: there is no
  ``circuit`` factory; the breaker object is the decorator (its settings are checked by the
  ``expected_exception`` ports below).
- ``test_advanced_usage_circuitbreaker_subclass``,
  ``test_advanced_usage_circuitbreaker_subclass_with_list``,
  ``test_advanced_usage_circuitbreaker_subclass_with_predicate``,
  ``test_advanced_usage_circuitbreaker_default_expected_exception``: settings are constructor
  arguments, not class attributes of a subclass.
"""

import asyncio
import inspect

import pytest

from stalwart.strategies import BreakerState, CircuitBreaker, CircuitOpenError
from tests.strategies.fakes import Clock

KINDS = ["sync-function", "sync-generator", "async-function", "async-generator"]


class Inner:
    """The function under the breaker: returns a value or raises, as the test says."""

    def __init__(self):
        self.value, self.error, self.calls = object(), None, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.value


def function_of(kind, inner):
    def sync_fn(*a, **kw):
        return inner(*a, **kw)

    def sync_gen(*a, **kw):
        yield inner(*a, **kw)

    async def async_fn(*a, **kw):
        return inner(*a, **kw)

    async def async_gen(*a, **kw):
        yield inner(*a, **kw)

    return dict(zip(KINDS, [sync_fn, sync_gen, async_fn, async_gen], strict=True))[kind]


def resolve(kind, result):
    """What circuitbreaker's ``resolve_call`` fixture does: run the call to its value."""
    if kind == "sync-function":
        return result
    if kind == "sync-generator":
        return list(result)

    async def collect():
        if kind == "async-function":
            return await result
        return [x async for x in result]

    return asyncio.run(collect())


def expected(kind, inner):
    return [inner.value] if kind.endswith("generator") else inner.value


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


# circuitbreaker: test_circuit_pass_through
def test_circuit_pass_through(kind):
    inner = Inner()
    guarded = CircuitBreaker()(function_of(kind, inner))
    assert resolve(kind, guarded()) == expected(kind, inner)


# circuitbreaker: test_threshold_hit_prevents_consequent_calls
def test_threshold_hit_prevents_consequent_calls(kind):
    inner = Inner()
    inner.error = OSError("down")
    b = CircuitBreaker(failure_threshold=1, name="threshold_1")
    guarded = b(function_of(kind, inner))
    assert b.state is BreakerState.CLOSED
    with pytest.raises(OSError):
        resolve(kind, guarded())
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        resolve(kind, guarded())
    assert inner.calls == 1


# circuitbreaker: test_circuitbreaker_recover_half_open
def test_circuitbreaker_recover_half_open(kind):
    clock, inner = Clock(), Inner()
    b = CircuitBreaker(3, 1, 1, name="threshold_3", clock=clock)
    guarded = b(function_of(kind, inner))
    assert b.state is BreakerState.CLOSED
    assert resolve(kind, guarded())
    inner.error = OSError("Connection refused")
    for count in (1, 2):
        with pytest.raises(OSError):
            resolve(kind, guarded())
        assert b.state is BreakerState.CLOSED and b.consecutive_failures == count
    with pytest.raises(OSError):
        resolve(kind, guarded())
    assert b.state is BreakerState.OPEN and b.consecutive_failures == 3
    assert 0 < b.remaining_open_s <= 1
    for _ in range(2):
        with pytest.raises(CircuitOpenError):
            resolve(kind, guarded())
        assert b.state is BreakerState.OPEN and b.consecutive_failures == 3
        assert 0 < b.remaining_open_s <= 1
    clock.now += 1
    assert b.state is BreakerState.HALF_OPEN and b.remaining_open_s == 0
    with pytest.raises(OSError):
        resolve(kind, guarded())  # the trial runs and fails
    assert b.state is BreakerState.OPEN and b.consecutive_failures == 4
    assert 0 < b.remaining_open_s <= 1
    with pytest.raises(CircuitOpenError):
        resolve(kind, guarded())


# circuitbreaker: test_circuitbreaker_reopens_after_successful_calls
def test_circuitbreaker_reopens_after_successful_calls(kind):
    clock, inner = Clock(), Inner()
    b = CircuitBreaker(2, 1, 1, name="threshold_2", clock=clock)
    guarded = b(function_of(kind, inner))
    assert b.name == "threshold_2"
    assert b.state is BreakerState.CLOSED and b.consecutive_failures == 0
    assert resolve(kind, guarded())
    inner.error = OSError("Connection refused")
    with pytest.raises(OSError):
        resolve(kind, guarded())
    assert b.state is BreakerState.CLOSED and b.consecutive_failures == 1
    with pytest.raises(OSError):
        resolve(kind, guarded())
    assert b.state is BreakerState.OPEN and b.consecutive_failures == 2
    assert 0 < b.remaining_open_s <= 1
    with pytest.raises(CircuitOpenError):
        resolve(kind, guarded())
    inner.error = None  # from now on it would succeed, but the wait is not over
    with pytest.raises(CircuitOpenError):
        resolve(kind, guarded())
    assert b.state is BreakerState.OPEN and b.consecutive_failures == 2
    clock.now += 1
    assert b.state is BreakerState.HALF_OPEN and b.consecutive_failures == 2
    assert b.remaining_open_s == 0
    assert resolve(kind, guarded())
    assert b.state is BreakerState.CLOSED and b.consecutive_failures == 0
    for _ in range(3):
        assert resolve(kind, guarded())


# circuitbreaker: test_circuitbreaker__str__
def test_circuitbreaker__str__():
    assert "'Foobar'" in str(CircuitBreaker(name="Foobar"))


# circuitbreaker: test_circuitbreaker_unnamed__str__
def test_circuitbreaker_unnamed__str__():
    assert "'breaker'" in str(CircuitBreaker())


# circuitbreaker: test_circuitbreaker_error__str__
def test_circuitbreaker_error__str__():
    b = CircuitBreaker(name="Foobar", recovery_timeout=30, clock=Clock())
    b.open()
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: None)
    assert str(info.value) == "circuit 'Foobar' is open: calls are rejected for another 30.000s"


# circuitbreaker: test_circuitbreaker_wrapper_matches_function_type
def test_circuitbreaker_wrapper_matches_function_type(kind):
    function = function_of(kind, Inner())
    wrapper = CircuitBreaker(name="Foobar")(function)
    is_async, is_generator = kind.startswith("async-"), kind.endswith("-generator")
    for test, expect in [
        (inspect.isgeneratorfunction, not is_async and is_generator),
        (inspect.iscoroutinefunction, is_async and not is_generator),
        (inspect.isasyncgenfunction, is_async and is_generator),
    ]:
        assert test(function) == test(wrapper) == expect


class FooError(Exception):
    def __init__(self, val=None):
        self.val = val


class BarError(Exception):
    pass


def counts_as_failure(exc, **options):
    """Whether one ``exc`` opens a breaker with a threshold of one failure."""
    b = CircuitBreaker(1, 10.0, 1, **options)

    def raise_it():
        raise exc

    with pytest.raises(type(exc)):
        b.call(raise_it)
    return b.state is BreakerState.OPEN


# circuitbreaker: test_breaker_expected_exception_is_predicate
def test_breaker_expected_exception_is_predicate():
    def is_four_foo(e):
        return isinstance(e, FooError) and e.val == 4

    assert counts_as_failure(FooError(4), is_failure=is_four_foo)
    assert not counts_as_failure(FooError(2), is_failure=is_four_foo)


# circuitbreaker: test_breaker_default_constructor_traps_Exception
def test_breaker_default_constructor_traps_Exception():
    assert counts_as_failure(Exception())
    assert counts_as_failure(FooError())


# circuitbreaker: test_breaker_expected_exception_is_custom_exception
def test_breaker_expected_exception_is_custom_exception():
    assert counts_as_failure(FooError(), record_on=FooError)
    assert not counts_as_failure(Exception(), record_on=FooError)


# circuitbreaker: test_breaker_constructor_expected_exception_is_exception_list
def test_breaker_constructor_expected_exception_is_exception_list():
    for exc, failure in [(FooError(), True), (BarError(), True), (Exception(), False)]:
        assert counts_as_failure(exc, record_on=(FooError, BarError)) is failure


# circuitbreaker: test_constructor_mistake_name_bytes
def test_constructor_mistake_name_bytes():
    with pytest.raises(ValueError, match="record_on: must be exception types"):
        CircuitBreaker(10, 20, record_on=b"foobar")


# circuitbreaker: test_constructor_mistake_name_unicode
def test_constructor_mistake_name_unicode():
    with pytest.raises(ValueError, match="record_on: must be exception types"):
        CircuitBreaker(10, 20, record_on="foobar")


# circuitbreaker: test_constructor_mistake_expected_exception
def test_constructor_mistake_expected_exception():
    class Widget:
        pass

    with pytest.raises(ValueError, match="record_on: must be exception types"):
        CircuitBreaker(10, 20, record_on=Widget)
    with pytest.raises(ValueError, match="is_failure: must be a callable"):
        CircuitBreaker(10, 20, is_failure=Widget())
