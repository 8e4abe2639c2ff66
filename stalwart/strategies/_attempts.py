"""The iterator forms of :class:`Retrying`: ``for attempt in policy: with attempt: ...``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType

from ._retry import Retrying
from ._retry_state import RetryStats, async_truth, publish, truth


class Attempt:
    """One attempt of the iterator form; use it as a ``with`` (or ``async with``) block.

    An error in the block that the policy retries is swallowed and the loop goes
    on after the wait; any other error, or the last one, leaves the block
    unchanged (with a note). Under ``async for``, an async ``retry_if`` needs
    ``async with attempt``.
    """

    def __init__(self, policy: Retrying, stats: RetryStats, started: float) -> None:
        self._policy = policy
        self._stats = stats
        self._started = started
        self._number = stats.attempts
        self.delay: float | None = None

    @property
    def number(self) -> int:
        """The 1-based number of this attempt."""
        return self._number

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            self._policy._report(self._stats, self._started, None, None)
            return False
        _, wanted, asked = self._policy._failed(self._stats, self._started, exc)
        if wanted and self._policy.retry_if is not None:
            wanted = truth(self._policy.retry_if(exc), "retry_if")
        return self._decide(exc, wanted, asked)

    async def __aenter__(self) -> Attempt:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            self._policy._report(self._stats, self._started, None, None)
            return False
        _, wanted, asked = self._policy._failed(self._stats, self._started, exc)
        if wanted and self._policy.retry_if is not None:
            wanted = await async_truth(self._policy.retry_if(exc))
        return self._decide(exc, wanted, asked)

    def _decide(self, exc: BaseException, wanted: bool, asked: float | None) -> bool:
        """Whether to swallow ``exc`` and try again (after ``self.delay``)."""
        self.delay = self._policy._wait_or_stop(self._stats, self._started, wanted, exc, asked)
        return self.delay is not None


def attempts(policy: Retrying) -> Iterator[Attempt]:
    """The attempts of one call of ``policy``, waiting between them."""
    stats = RetryStats(attempts=0)
    started = policy._start_call(stats)
    while True:
        attempt = _next_attempt(policy, stats, started)
        yield attempt
        if attempt.delay is None:
            publish(policy._key, stats)
            return
        policy._sleep_sync(attempt.delay)


async def async_attempts(policy: Retrying) -> AsyncIterator[Attempt]:
    """:func:`attempts` for ``async for``: the waits use the async sleep."""
    stats = RetryStats(attempts=0)
    started = policy._start_call(stats)
    while True:
        attempt = _next_attempt(policy, stats, started)
        yield attempt
        if attempt.delay is None:
            publish(policy._key, stats)
            return
        await policy._sleep_async(attempt.delay)


def _next_attempt(policy: Retrying, stats: RetryStats, started: float) -> Attempt:
    """Count one more attempt of the call, tell ``before``, and make its block."""
    stats.attempts += 1
    if policy.before is not None:
        policy.before(policy._state(stats, started, stats.attempts))
    return Attempt(policy, stats, started)
