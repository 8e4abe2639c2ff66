import asyncio
import threading
import time

import pytest

from stalwart.strategies import OperationTimeout, batch_with_retry, fallback, safe_call, timeout


def test_timeout_returns_the_result_of_a_fast_call():
    assert timeout(1.0)(lambda x: x + 1)(1) == 2


def test_timeout_raises_a_timeout_error_naming_the_function():
    release = threading.Event()

    @timeout(0.05)
    def stuck():
        release.wait(5)

    with pytest.raises(TimeoutError, match=r"stuck did not finish within 0\.05s"):
        stuck()
    release.set()


def test_timeout_passes_errors_through():
    @timeout(1.0)
    def boom():
        raise KeyError("k")

    with pytest.raises(KeyError):
        boom()


def test_timeout_cancels_a_coroutine():
    cancelled = []

    @timeout(0.05)
    async def slow():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(OperationTimeout):
        asyncio.run(slow())
    assert cancelled == [True]


def test_fallback_keeps_the_arguments_and_chains_in_order():
    order = []

    def primary(x):
        order.append("primary")
        raise ConnectionError()

    def second(x):
        order.append("second")
        raise TimeoutError()

    def third(x):
        order.append("third")
        return x * 10

    assert fallback(second, third)(primary)(4) == 40
    assert order == ["primary", "second", "third"]
    assert fallback(third)(fallback(second)(primary))(5) == 50


def test_fallback_raises_the_last_error_with_the_others_noted():
    def a():
        raise ConnectionError("a")

    def b():
        raise TimeoutError("b")

    with pytest.raises(TimeoutError) as info:
        fallback(b)(a)()
    assert any("ConnectionError('a')" in n for n in info.value.__notes__)


def test_fallback_only_catches_the_listed_errors():
    def a():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        fallback(lambda: 1, on=ConnectionError)(a)()


def test_fallback_for_coroutines_accepts_sync_and_async_alternatives():
    async def primary():
        raise ConnectionError()

    async def alt():
        return "async-alt"

    assert asyncio.run(fallback(alt)(primary)()) == "async-alt"
    assert asyncio.run(fallback(lambda: "sync-alt")(primary)()) == "sync-alt"


def test_safe_call_returns_the_default_and_logs(caplog):
    assert safe_call(lambda: 1 / 0, default=-1) == -1
    assert "safe_call" in caplog.text
    assert safe_call(lambda a, b: a + b, 1, 2) == 3


def test_safe_call_on_a_coroutine_function():
    async def boom():
        raise ValueError()

    assert asyncio.run(safe_call(boom, default="d")) == "d"


def test_batch_with_retry_isolates_bad_items_and_retries_transient_failures():
    seen_batches = []
    transient = {"left": 1}

    def process(batch):
        seen_batches.append(list(batch))
        if transient["left"]:
            transient["left"] -= 1
            raise ConnectionError("blip")
        bad = [i for i in batch if i % 7 == 0]
        if bad:
            raise ValueError(f"bad item {bad[0]}")

    ok, failed = batch_with_retry(range(1, 21), process, batch_size=5, max_retries=1)
    assert sorted(ok) == [i for i in range(1, 21) if i % 7 != 0]
    assert [item for item, _ in failed] == [7, 14]
    assert all(isinstance(err, ValueError) for _, err in failed)
    assert seen_batches[0] == seen_batches[1] == [1, 2, 3, 4, 5]


def test_batch_with_retry_validates_its_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        batch_with_retry([1], lambda b: None, batch_size=0)


def test_timeout_rejects_a_non_positive_limit():
    with pytest.raises(ValueError, match="seconds"):
        timeout(0)


def test_timeout_does_not_wait_for_the_stuck_thread():
    gate = threading.Event()
    started = time.monotonic()
    with pytest.raises(OperationTimeout):
        timeout(0.05)(lambda: gate.wait(2))()
    assert time.monotonic() - started < 1.5
    gate.set()


def test_async_timeout_passes_through_a_timeout_error_the_call_raises_itself():
    @timeout(60)
    async def upstream():
        raise TimeoutError("the upstream said: gateway timeout")

    with pytest.raises(TimeoutError, match="gateway timeout") as info:
        asyncio.run(upstream())
    assert type(info.value) is TimeoutError


def test_sync_timeout_passes_through_a_timeout_error_the_call_raises_itself():
    @timeout(60)
    def upstream():
        raise TimeoutError("the upstream said: gateway timeout")

    with pytest.raises(TimeoutError, match="gateway timeout") as info:
        upstream()
    assert type(info.value) is TimeoutError
