"""Backoff schedules: how long to wait before each retry.

A schedule maps a 1-based attempt number to a delay in seconds. Schedules are
frozen msgspec Structs, so they can be written in a TOML tree spec, sent in a
message and compared; they compose like tenacity's wait rules::

    Fixed(0.1) + Random(0, 0.05)                   # sum of two schedules
    chain((Fixed(0.1), 3), Exponential(0.1))       # 3 fixed waits, then exponential
    Exponential(0.1).capped(5).jittered("full")    # capped, then full jitter

Jitter needs randomness: every schedule takes a ``random.Random`` in
:meth:`Backoff.next_delay`, so a seeded generator gives a reproducible sequence.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Literal, Union

import msgspec

JitterKind = Literal["none", "full", "equal", "decorrelated"]
_DEFAULT_RNG = random.Random()


class Backoff(
    msgspec.Struct, frozen=True, tag_field="kind", tag=str.lower, forbid_unknown_fields=True
):
    """Base class of all schedules; subclasses implement :meth:`base_delay`."""

    def base_delay(self, attempt: int) -> float:
        """The delay before retry ``attempt`` (1-based), before any jitter."""
        raise TypeError(f"{type(self).__name__} is abstract")

    def next_delay(self, attempt: int, previous: float, rng: random.Random) -> float:
        """The delay before retry ``attempt``; ``previous`` is the last delay used."""
        return max(0.0, self.base_delay(attempt))

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """Yield the delays for attempts 1, 2, 3, ... forever."""
        rng = rng or _DEFAULT_RNG
        previous = 0.0
        attempt = 1
        while True:
            previous = self.next_delay(attempt, previous, rng)
            yield previous
            attempt += 1

    # msgspec needs the concrete union for decoding; every Backoff is one of its members
    def __add__(self, other: Backoff) -> Backoff:
        return Sum(self, other)  # type: ignore[arg-type]

    def capped(self, maximum: float) -> Backoff:
        """This schedule with every delay limited to ``maximum`` seconds."""
        return Capped(self, maximum)  # type: ignore[arg-type]

    def jittered(self, jitter: JitterKind = "full", cap: float | None = None) -> Backoff:
        """This schedule with jitter applied (see :class:`Jitter`)."""
        return Jitter(self, jitter, cap)  # type: ignore[arg-type]


class Fixed(Backoff, frozen=True):
    """The same delay before every attempt."""

    delay: float = 1.0

    def base_delay(self, attempt: int) -> float:
        return self.delay


class Linear(Backoff, frozen=True):
    """``start + step * (attempt - 1)``."""

    start: float = 1.0
    step: float = 1.0

    def base_delay(self, attempt: int) -> float:
        return self.start + self.step * (attempt - 1)


class Exponential(Backoff, frozen=True):
    """``initial * factor ** (attempt - 1)``."""

    initial: float = 1.0
    factor: float = 2.0

    def base_delay(self, attempt: int) -> float:
        try:
            return float(self.initial * self.factor ** (attempt - 1))
        except OverflowError:
            return float("inf")


class Fibonacci(Backoff, frozen=True):
    """``unit`` times the Fibonacci numbers 1, 1, 2, 3, 5, 8, ..."""

    unit: float = 1.0

    def base_delay(self, attempt: int) -> float:
        a, b = 1, 1
        for _ in range(attempt - 1):
            a, b = b, a + b
            if a > 1e300:
                return float("inf")
        return self.unit * a


class Random(Backoff, frozen=True):
    """A uniformly random delay in ``[low, high]`` (combine with ``+``)."""

    low: float = 0.0
    high: float = 1.0

    def base_delay(self, attempt: int) -> float:
        return (self.low + self.high) / 2

    def next_delay(self, attempt: int, previous: float, rng: random.Random) -> float:
        return max(0.0, rng.uniform(self.low, self.high))


class Sum(Backoff, frozen=True):
    """The sum of two schedules' delays."""

    first: AnyBackoff
    second: AnyBackoff

    def base_delay(self, attempt: int) -> float:
        return self.first.base_delay(attempt) + self.second.base_delay(attempt)

    def next_delay(self, attempt: int, previous: float, rng: random.Random) -> float:
        return self.first.next_delay(attempt, previous, rng) + self.second.next_delay(
            attempt, previous, rng
        )


class Capped(Backoff, frozen=True):
    """A schedule whose delays never exceed ``maximum``."""

    schedule: AnyBackoff
    maximum: float

    def base_delay(self, attempt: int) -> float:
        return min(self.maximum, self.schedule.base_delay(attempt))

    def next_delay(self, attempt: int, previous: float, rng: random.Random) -> float:
        return min(self.maximum, self.schedule.next_delay(attempt, previous, rng))


class Chain(Backoff, frozen=True):
    """Schedules one after another; build it with :func:`chain`.

    Each step is ``(schedule, attempts)``; the last step may be a bare schedule,
    which then applies to every later attempt. Attempt numbers restart at 1 for
    each step, so ``Exponential`` after three fixed waits starts at ``initial``.
    """

    steps: tuple[tuple[AnyBackoff, int] | AnyBackoff, ...]

    def _locate(self, attempt: int) -> tuple[Backoff, int]:
        remaining = attempt
        last: Backoff | None = None
        for step in self.steps:
            if isinstance(step, Backoff):
                return step, remaining
            schedule, count = step
            last = schedule
            if remaining <= count:
                return schedule, remaining
            remaining -= count
        if last is None:
            raise ValueError("Chain needs at least one step")
        return last, remaining

    def base_delay(self, attempt: int) -> float:
        schedule, local = self._locate(attempt)
        return schedule.base_delay(local)

    def next_delay(self, attempt: int, previous: float, rng: random.Random) -> float:
        schedule, local = self._locate(attempt)
        return schedule.next_delay(local, previous, rng)


class Jitter(Backoff, frozen=True):
    """Randomises a schedule, after the AWS "Exponential Backoff and Jitter" analysis.

    - ``none``: the schedule's delay ``d`` unchanged.
    - ``full``: uniform in ``[0, d]``.
    - ``equal``: ``d / 2`` plus uniform in ``[0, d / 2]``.
    - ``decorrelated``: uniform in ``[base, 3 * previous]`` where ``base`` is the
      schedule's first delay and ``previous`` the last delay used (``base`` at first).

    ``cap`` bounds the result (needed for ``decorrelated``, which otherwise grows freely).
    """

    schedule: AnyBackoff
    jitter: JitterKind = "full"
    cap: float | None = None

    def base_delay(self, attempt: int) -> float:
        d = self.schedule.base_delay(attempt)
        return d if self.cap is None else min(self.cap, d)

    def next_delay(self, attempt: int, previous: float, rng: random.Random) -> float:
        kind = self.jitter
        if kind == "decorrelated":
            base = max(0.0, self.schedule.base_delay(1))
            upper = max(base, 3.0 * max(previous, base))
            d = rng.uniform(base, upper)
        else:
            d = max(0.0, self.schedule.next_delay(attempt, previous, rng))
            if kind == "full":
                d = rng.uniform(0.0, d)
            elif kind == "equal":
                d = d / 2 + rng.uniform(0.0, d / 2)
        return d if self.cap is None else min(self.cap, d)


def chain(*steps: tuple[Backoff, int] | Backoff) -> Chain:
    """``chain((Fixed(1), 3), Exponential(1))``: three fixed waits, then exponential."""
    if not steps:
        raise ValueError("chain() needs at least one step")
    for step in steps[:-1]:
        if isinstance(step, Backoff):
            raise ValueError("only the last step of chain() may omit its attempt count")
    return Chain(tuple(steps))  # type: ignore[arg-type]


AnyBackoff = Union[Fixed, Linear, Exponential, Fibonacci, Random, Sum, Capped, Chain, Jitter]  # noqa: UP007


def schedule_from(
    delay: float | Backoff,
    backoff: float = 1.0,
    max_delay: float | None = None,
    jitter: bool | JitterKind = False,
) -> Backoff:
    """Build a schedule from the familiar ``delay``/``backoff``/``jitter`` arguments."""
    if isinstance(delay, Backoff):
        schedule: Backoff = delay
    elif backoff == 1.0:
        schedule = Fixed(float(delay))
    else:
        schedule = Exponential(float(delay), float(backoff))
    if max_delay is not None:
        schedule = schedule.capped(max_delay)
    kind: JitterKind = "full" if jitter is True else ("none" if jitter is False else jitter)
    if kind != "none":
        schedule = schedule.jittered(kind, max_delay)
    return schedule
