"""Small guards around a call: ``timeout``, ``fallback``, ``safe_call``, ``batch_with_retry``."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

from ._retry import Retrying

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("stalwart.strategies")


class OperationTimeout(TimeoutError):
    """A call guarded by :func:`timeout` did not finish in time."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(f"{name} did not finish within {seconds:g}s")
        self.name = name
        self.seconds = seconds


def timeout(seconds: float) -> Callable[[F], F]:
    """Limit a call to ``seconds``; raise :class:`OperationTimeout` (a ``TimeoutError``) after.

    ``async def`` functions are cancelled at the deadline. A ``TimeoutError`` the
    call raises itself passes through unchanged in both forms: only an overrun of
    this limit is an ``OperationTimeout``. Plain functions run on
    a daemon thread and the caller stops waiting at the deadline; Python cannot
    interrupt arbitrary code, so a plain function that never returns keeps its
    thread busy.
    """
    if seconds <= 0:
        raise ValueError(f"timeout: seconds must be > 0, got {seconds}")

    def decorate(fn: F) -> F:
        name = getattr(fn, "__qualname__", repr(fn))
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_guarded(*args: Any, **kwargs: Any) -> Any:
                deadline = asyncio.timeout(seconds)
                try:
                    async with deadline:
                        return await fn(*args, **kwargs)
                except TimeoutError as exc:
                    if deadline.expired():  # ours; a TimeoutError of the call's own passes through
                        raise OperationTimeout(name, seconds) from exc
                    raise

            return async_guarded  # type: ignore[return-value]

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            outcome: list[Any] = []

            def run() -> None:
                try:
                    outcome.append((True, fn(*args, **kwargs)))
                except BaseException as exc:
                    outcome.append((False, exc))

            worker = threading.Thread(target=run, name=f"timeout:{name}", daemon=True)
            worker.start()
            worker.join(seconds)
            if not outcome:
                raise OperationTimeout(name, seconds)
            ok, value = outcome[0]
            if ok:
                return value
            raise value

        return guarded  # type: ignore[return-value]

    return decorate


def fallback(
    *alternatives: Callable[..., Any],
    on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
) -> Callable[[F], F]:
    """When the call raises one of ``on``, try ``alternatives`` in order with the same arguments.

    The first alternative that returns wins. If all fail, the last error is raised
    with the earlier ones attached as notes. Stack decorators to chain, or pass
    several alternatives. Alternatives may be plain or ``async def``.
    """
    if not alternatives:
        raise ValueError("fallback needs at least one alternative")

    def decorate(fn: F) -> F:
        chain: tuple[Callable[..., Any], ...] = (fn, *alternatives)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_guarded(*args: Any, **kwargs: Any) -> Any:
                errors: list[BaseException] = []
                for candidate in chain:
                    try:
                        result = candidate(*args, **kwargs)
                        if inspect.isawaitable(result):
                            result = await result
                        return result
                    except on as exc:
                        errors.append(exc)
                raise _all_failed(errors)

            return async_guarded  # type: ignore[return-value]

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            errors: list[BaseException] = []
            for candidate in chain:
                try:
                    return candidate(*args, **kwargs)
                except on as exc:
                    errors.append(exc)
            raise _all_failed(errors)

        return guarded  # type: ignore[return-value]

    return decorate


def _all_failed(errors: list[BaseException]) -> BaseException:
    last = errors[-1]
    for earlier in errors[:-1]:
        last.add_note(f"stalwart.fallback: also failed earlier: {earlier!r}")
    return last


def safe_call(fn: Callable[..., Any], /, *args: Any, default: Any = None, **kwargs: Any) -> Any:
    """Call ``fn`` and return its result, or ``default`` if it raises (the error is logged).

    For an ``async def`` function this returns an awaitable with the same behaviour.
    """
    if inspect.iscoroutinefunction(fn):
        return _safe_await(fn, args, kwargs, default)
    try:
        return fn(*args, **kwargs)
    except Exception:
        log.warning("safe_call: %s failed; returning the default", _name(fn), exc_info=True)
        return default


async def _safe_await(fn: Callable[..., Any], args: Any, kwargs: Any, default: Any) -> Any:
    try:
        return await fn(*args, **kwargs)
    except Exception:
        log.warning("safe_call: %s failed; returning the default", _name(fn), exc_info=True)
        return default


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))


class BatchResult(NamedTuple):
    """Items that were processed, and the items that failed with their errors."""

    succeeded: list[Any]
    failed: list[tuple[Any, BaseException]]


def batch_with_retry(
    items: Iterable[T],
    fn: Callable[[Sequence[T]], Any],
    batch_size: int = 100,
    max_retries: int = 3,
    *,
    delay: float = 0.0,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
) -> BatchResult:
    """Process ``items`` in batches with ``fn(batch)``, retrying each batch.

    A batch that still fails after ``max_retries`` retries is split and its
    items are tried one at a time (each with the same retries), so one bad item
    does not sink the rest. Returns ``(succeeded, failed_with_errors)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_with_retry: batch_size must be >= 1, got {batch_size}")
    if max_retries < 0:
        raise ValueError(f"batch_with_retry: max_retries must be >= 0, got {max_retries}")
    policy = Retrying(max_attempts=max_retries + 1, delay=delay, backoff=2.0, retry_on=retry_on)
    pending = list(items)
    succeeded: list[T] = []
    failed: list[tuple[T, BaseException]] = []
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        try:
            policy.call(fn, batch)
            succeeded.extend(batch)
            continue
        except Exception as exc:
            if len(batch) == 1:
                failed.append((batch[0], exc))
                continue
        for item in batch:
            try:
                policy.call(fn, [item])
                succeeded.append(item)
            except Exception as exc:
                failed.append((item, exc))
    return BatchResult(succeeded, failed)
