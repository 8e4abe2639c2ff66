"""A phi-accrual failure detector (Hayashibara et al.; as in Akka and Cassandra).

Instead of a fixed timeout, it keeps the recent intervals between heartbeats
and turns the silence since the last one into ``phi``: how unlikely it is that
a heartbeat is merely late, on a log10 scale (phi 8: one chance in 10^8).
A node is suspected once phi passes the threshold. Regular heartbeats make the
estimate tight, so a real loss is declared after a small multiple of the
interval; jittery ones widen it, so a slow but living node is not declared lost.
"""

from __future__ import annotations

import math
from collections import deque


class PhiAccrual:
    """One monitored node's detector. Times are in seconds, from any monotonic clock.

    ``min_std_s`` keeps a very regular history from making phi jump at the first
    late heartbeat; ``acceptable_pause_s`` is added to the expected interval
    (a garbage-collection pause, a busy machine).
    """

    def __init__(
        self,
        threshold: float = 8.0,
        window: int = 200,
        min_std_s: float = 0.1,
        acceptable_pause_s: float = 1.0,
        first_interval_s: float = 0.5,
    ) -> None:
        if threshold <= 0 or window < 2 or min_std_s <= 0 or acceptable_pause_s < 0:
            raise ValueError("threshold and min_std_s must be > 0, window >= 2, pause >= 0")
        self.threshold = threshold
        self.min_std_s = min_std_s
        self.acceptable_pause_s = acceptable_pause_s
        self.intervals: deque[float] = deque(maxlen=window)
        # a first estimate, until real intervals come in
        self.intervals.extend((first_interval_s, first_interval_s))
        self.last: float | None = None

    def heartbeat(self, now: float) -> None:
        """A heartbeat arrived at ``now``."""
        if self.last is not None and now > self.last:
            self.intervals.append(now - self.last)
        self.last = now if self.last is None else max(self.last, now)

    def phi(self, now: float) -> float:
        """How suspicious the silence since the last heartbeat is (0: not at all)."""
        if self.last is None:
            return 0.0
        n = len(self.intervals)
        mean = sum(self.intervals) / n
        var = sum((x - mean) ** 2 for x in self.intervals) / n
        std = max(math.sqrt(var), self.min_std_s)
        elapsed = max(0.0, now - self.last)
        y = min(40.0, max(-10.0, (elapsed - mean - self.acceptable_pause_s) / std))
        # the logistic approximation of the normal CDF that Akka uses
        e = math.exp(-y * (1.5976 + 0.070566 * y * y))
        p_later = e / (1.0 + e) if y > 0 else 1.0 - 1.0 / (1.0 + e)
        return max(0.0, -math.log10(max(p_later, 1e-300)))

    def available(self, now: float) -> bool:
        """False once phi has passed the threshold."""
        return self.phi(now) < self.threshold

    def silence(self, now: float) -> float:
        """Seconds since the last heartbeat."""
        return 0.0 if self.last is None else max(0.0, now - self.last)
