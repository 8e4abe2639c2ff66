"""A linear trend over recent samples, and when it reaches the limit.

Least squares over (time, value); ``confidence`` is the fit's R² scaled down
while there are few samples (``r2 * min(1, n / min_samples)``), so a noisy or
short series predicts nothing. A series that is not rising predicts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from .._deferred import np


class Trend(msgspec.Struct, frozen=True):
    """A fitted trend: ``slope`` per second, the fitted value now, and the time to the limit."""

    resource: str
    value: float
    limit: float
    slope: float
    fitted: float
    r2: float
    confidence: float
    ttl_s: float | None  # None: not rising, or no limit ahead

    @property
    def rising(self) -> bool:
        """The trend goes up."""
        return self.slope > 0


def fit(
    resource: str,
    times: Sequence[float],
    values: Sequence[float],
    limit: float,
    min_samples: int = 10,
) -> Trend | None:
    """Fit ``values`` over ``times``; None with fewer than 3 samples."""
    n = len(times)
    if n < 3 or n != len(values):
        return None
    t = np.asarray(times, dtype=float)
    y = np.asarray(values, dtype=float)
    t = t - t[-1]  # now is 0: the intercept is the fitted value now
    spread = float(np.ptp(t))
    if spread <= 0:
        return None
    slope, fitted = np.polyfit(t, y, 1)
    residual = y - (slope * t + fitted)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 0.0 if total <= 1e-12 else max(0.0, 1.0 - float(np.sum(residual**2)) / total)
    confidence = r2 * min(1.0, n / max(1, min_samples))
    ttl: float | None = None
    if slope > 0 and limit > fitted:
        with np.errstate(over="ignore"):
            ttl = float(np.float64(limit - fitted) / slope)
        if not np.isfinite(ttl):
            ttl = None  # rising too slowly to ever matter
    elif slope > 0:
        ttl = 0.0
    return Trend(
        resource,
        float(y[-1]),
        float(limit),
        float(slope),
        float(fitted),
        r2,
        confidence,
        ttl,
    )
