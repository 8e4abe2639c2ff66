"""Sample resources, predict exhaustion from their trends, act before it, score the predictions."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar, overload

import msgspec

from ..telemetry._insights import PredictionScore, score_predictions
from ..telemetry._store import RecoveryStore, Statement, open_store
from ._probes import Probe, default_probes
from ._trend import Trend, fit

log = logging.getLogger("stalwart.resources")
Action = Callable[[Trend], Any]
A = TypeVar("A", bound=Action)  # (a decorated action keeps its own type)


class Prediction(msgspec.Struct):
    """A resource predicted to reach its limit within ``ttl_s`` (deadline: when to score it).

    ``outcome``: ``hit`` (it was reached), ``false_alarm`` (not reached, nothing
    was done), ``averted`` (not reached after a prevention action ran), or
    ``None`` while it is open.
    """

    key: str
    time: float
    resource: str
    value: float
    limit: float
    slope: float
    confidence: float
    ttl_s: float
    deadline: float
    action: str = ""
    action_detail: str = ""
    outcome: str | None = None


class ResourceWatch:
    """Samples ``probes`` (CPU, disk, fds, connections by default) and predicts exhaustion.

    Each sample appends to a window of ``window`` readings per resource; a
    rising linear trend whose confidence is at least ``min_confidence`` and
    that reaches the limit within ``horizon_s`` becomes a :class:`Prediction`
    and runs the prevention actions registered for that resource (:meth:`on`).
    A reading at or above ``exhausted_at`` of the limit is an exhaustion. A
    prediction is scored ``hit`` when its resource is exhausted before its
    deadline (``ttl * (1 + tolerance)`` after it was made), else
    ``false_alarm``, or ``averted`` if an action ran. Everything is written to
    ``store`` when one is given. Call :meth:`sample` yourself, or
    :meth:`start` a thread that samples every ``interval_s``.
    """

    def __init__(
        self,
        probes: Iterable[Probe] | None = None,
        *,
        store: str | Path | RecoveryStore | None = None,
        interval_s: float = 5.0,
        window: int = 60,
        min_samples: int = 10,
        horizon_s: float = 600.0,
        min_confidence: float = 0.8,
        exhausted_at: float = 0.95,
        tolerance: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        checks = (
            ("interval_s", interval_s, interval_s > 0),
            ("window", window, isinstance(window, int) and window >= 3),
            ("min_samples", min_samples, isinstance(min_samples, int) and min_samples >= 3),
            ("horizon_s", horizon_s, horizon_s > 0),
            ("min_confidence", min_confidence, 0 <= min_confidence <= 1),
            ("exhausted_at", exhausted_at, 0 < exhausted_at <= 1),
            ("tolerance", tolerance, tolerance >= 0),
        )
        for name, value, ok in checks:
            if not ok:
                raise ValueError(f"ResourceWatch: {name}={value!r} is out of range")
        self.probes = list(default_probes() if probes is None else probes)
        names = [p.name for p in self.probes]
        if len(set(names)) != len(names):
            raise ValueError(f"ResourceWatch: probe names repeat: {names}")
        self.interval_s, self.window, self.min_samples = float(interval_s), window, min_samples
        self.horizon_s, self.min_confidence = float(horizon_s), float(min_confidence)
        self.exhausted_at, self.tolerance, self.clock = float(exhausted_at), float(tolerance), clock
        self.actions: dict[str, list[tuple[str, Action]]] = {}
        self._samples: dict[str, deque[tuple[float, float]]] = {
            name: deque(maxlen=window) for name in names
        }
        self._trends: dict[str, Trend] = {}
        self._open: dict[str, Prediction] = {}
        self._exhausted: set[str] = set()
        self.history: deque[Prediction] = deque(maxlen=1000)
        self.exhaustions: deque[tuple[float, str, bool]] = deque(maxlen=1000)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.store, self._own_store = open_store(store)

    # -- configuration -------------------------------------------------------------------------
    @overload
    def on(self, resource: str, action: A, name: str | None = None) -> A: ...
    @overload
    def on(
        self, resource: str, action: None = None, name: str | None = None
    ) -> Callable[[A], A]: ...
    def on(self, resource: str, action: Action | None = None, name: str | None = None) -> Any:
        """Register a prevention action for ``resource`` (also a decorator).

        It is called with the :class:`Trend` when exhaustion is predicted; what it
        returns is recorded as the action's detail.
        """
        if resource not in self._samples:
            raise ValueError(f"unknown resource {resource!r} (known: {', '.join(self._samples)})")

        def register(fn: Action) -> Action:
            self.actions.setdefault(resource, []).append((name or fn.__name__, fn))
            return fn

        return register(action) if action is not None else register

    # -- sampling ---------------------------------------------------------------------------
    def sample(self, now: float | None = None) -> list[Prediction]:
        """Read every probe once; returns the predictions made by this sample."""
        now = self.clock() if now is None else now
        made: list[Prediction] = []
        rows: dict[str, list[dict[str, Any]]] = {
            "resource_predictions": [],
            "resource_exhaustions": [],
        }
        statements: list[Statement] = []
        with self._lock:
            for probe in self.probes:
                try:
                    value, limit = probe.read()
                except Exception as exc:
                    log.warning("resource probe %s failed: %s", probe.name, exc)
                    continue
                self._samples[probe.name].append((now, value))
                if value >= self.exhausted_at * limit:
                    self._exhaustion(probe.name, now, value, limit, rows, statements)
                    continue
                if probe.name in self._exhausted:  # back under the limit: the trend starts over
                    self._exhausted.discard(probe.name)
                    self._samples[probe.name].clear()
                    self._samples[probe.name].append((now, value))
                prediction = self._predict(probe.name, limit)
                if prediction is not None:
                    made.append(prediction)
            self._score_due(now, statements)
        for prediction in made:
            self._act(prediction)
            rows["resource_predictions"].append(_prediction_row(prediction))
        if self.store is not None and (any(rows.values()) or statements):
            self.store.write_batch(rows, statements)
        return made

    def _exhaustion(
        self,
        name: str,
        now: float,
        value: float,
        limit: float,
        rows: dict[str, list[dict[str, Any]]],
        statements: list[Statement],
    ) -> None:
        if name in self._exhausted:
            return  # still exhausted: counted once
        self._exhausted.add(name)
        open_prediction = self._open.pop(name, None)
        predicted = open_prediction is not None
        if open_prediction is not None:
            self._close(open_prediction, "hit", now, statements)
        self.exhaustions.append((now, name, predicted))
        rows["resource_exhaustions"].append(
            {
                "time": now,
                "resource": name,
                "value": value,
                "limit_value": limit,
                "predicted": int(predicted),
            }
        )

    def _predict(self, name: str, limit: float) -> Prediction | None:
        samples = self._samples[name]
        trend = fit(name, [t for t, _ in samples], [v for _, v in samples], limit, self.min_samples)
        if trend is None:
            return None
        self._trends[name] = trend
        if (
            name in self._open
            or trend.ttl_s is None
            or trend.ttl_s > self.horizon_s
            or trend.confidence < self.min_confidence
        ):
            return None
        now = samples[-1][0]
        prediction = Prediction(
            f"{name}@{now:.6f}",
            now,
            name,
            trend.value,
            limit,
            trend.slope,
            trend.confidence,
            trend.ttl_s,
            now + trend.ttl_s * (1 + self.tolerance) + self.interval_s,
        )
        self._open[name] = prediction
        self.history.append(prediction)
        return prediction

    def _act(self, prediction: Prediction) -> None:
        trend = self._trends[prediction.resource]
        names, details = [], []
        for name, action in self.actions.get(prediction.resource, []):
            try:
                result = action(trend)
                details.append(f"{name}: {result!r}" if result is not None else name)
            except Exception as exc:
                log.warning("prevention action %s failed: %s", name, exc)
                details.append(f"{name} failed: {type(exc).__name__}: {exc}")
                continue
            names.append(name)
        if names:
            with self._lock:
                prediction.action = ",".join(names)
                self._samples[prediction.resource].clear()  # the trend starts over
        prediction.action_detail = "; ".join(details)[:500]

    def _score_due(self, now: float, statements: list[Statement]) -> None:
        for name, prediction in list(self._open.items()):
            if now > prediction.deadline:
                del self._open[name]
                self._close(
                    prediction, "averted" if prediction.action else "false_alarm", now, statements
                )

    def _close(
        self, prediction: Prediction, outcome: str, now: float, statements: list[Statement]
    ) -> None:
        prediction.outcome = outcome
        statements.append(
            (
                "UPDATE resource_predictions SET outcome=?, scored_at=? WHERE key=?",
                (outcome, now, prediction.key),
            )
        )

    # -- reading ----------------------------------------------------------------------------
    def trends(self) -> dict[str, Trend]:
        """The latest trend per resource."""
        with self._lock:
            return dict(self._trends)

    def open_predictions(self) -> list[Prediction]:
        """Predictions not scored yet."""
        with self._lock:
            return list(self._open.values())

    def score(self) -> PredictionScore:
        """Precision and recall of the predictions made so far."""
        with self._lock:
            outcomes = [p.outcome for p in self.history if p.outcome]
            flags = [predicted for _, _, predicted in self.exhaustions]
        return score_predictions(outcomes, flags)

    # -- running ----------------------------------------------------------------------------
    def start(self) -> ResourceWatch:
        """Sample every ``interval_s`` in a daemon thread until :meth:`stop`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="stalwart-resources", daemon=True
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception:
                log.exception("resource sampling failed")

    def stop(self) -> None:
        """Stop the sampling thread and close the store if this watch opened it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._own_store and self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> ResourceWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _prediction_row(p: Prediction) -> dict[str, Any]:
    return {
        "time": p.time,
        "key": p.key,
        "resource": p.resource,
        "value": p.value,
        "limit_value": p.limit,
        "slope": p.slope,
        "confidence": p.confidence,
        "ttl_s": p.ttl_s,
        "deadline": p.deadline,
        "action": p.action,
        "action_detail": p.action_detail,
        "outcome": p.outcome,
        "scored_at": None,
    }
