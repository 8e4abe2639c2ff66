"""Alerts from thresholds, with cooldown and auto-resolve. Pure logic, no actor."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import msgspec

from ._metrics import Metrics
from .messages import Alert

MIN_INCIDENTS = 1  # ended incidents before the incident success rate is judged
MIN_ATTEMPTS = 5  # attempts before the attempt success rate is judged


class AlertRule(msgspec.Struct, frozen=True):
    """Raise ``warning``/``critical`` when ``metric`` crosses the thresholds.

    ``direction`` is ``above`` (bad when high, e.g. recovery time) or ``below``
    (bad when low, e.g. success rate). After an alert resolves, the same rule
    does not raise again for ``cooldown_s``.
    """

    name: str
    metric: str
    warning: float
    critical: float
    direction: Literal["above", "below"] = "above"
    cooldown_s: float = 300.0
    unit: str = ""

    def severity(self, value: float | None) -> str | None:
        """``critical``, ``warning`` or None for ``value``."""
        if value is None:
            return None
        if self.direction == "above":
            return (
                "critical"
                if value >= self.critical
                else "warning"
                if value >= self.warning
                else None
            )
        return (
            "critical" if value <= self.critical else "warning" if value <= self.warning else None
        )


DEFAULT_RULES = (
    AlertRule("recovery_time", "mttr_p95_s", 5.0, 10.0, "above", unit="s"),
    AlertRule("success_rate", "incident_success_pct", 80.0, 60.0, "below", unit="%"),
    AlertRule("error_frequency", "errors_per_min", 10.0, 30.0, "above", unit="/min"),
    AlertRule("memory_level", "memory_percent", 85.0, 95.0, "above", unit="%"),
)


def alert_values(m: Metrics, memory_percent: float | None) -> dict[str, float | None]:
    """What a rule's ``metric`` may name, from the figures over the alert window.

    A success rate is None (judged neither way) until enough has ended to judge it:
    :data:`MIN_INCIDENTS` incidents, :data:`MIN_ATTEMPTS` attempts.
    """
    ended = m.incidents_recovered + m.incidents_given_up
    incident_rate = m.incident_success_rate
    attempt_rate = m.attempt_success_rate
    return {
        "mttr_p50_s": m.mttr_p50_s,
        "mttr_p95_s": m.mttr_p95_s,
        "mttr_p99_s": m.mttr_p99_s,
        "incident_success_pct": None
        if incident_rate is None or ended < MIN_INCIDENTS
        else 100 * incident_rate,
        "incidents_open": float(m.incidents_open),
        "attempt_success_pct": None
        if attempt_rate is None or m.attempts < MIN_ATTEMPTS
        else 100 * attempt_rate,
        "attempt_p95_s": m.attempt_p95_s,
        "errors_per_min": m.errors_per_min,
        "memory_percent": memory_percent,
    }


AlertListener = Callable[[Alert], None]


class _State:
    __slots__ = ("raised_at", "resolved_at", "severity")

    def __init__(self) -> None:
        self.severity: str | None = None
        self.raised_at = 0.0
        self.resolved_at = float("-inf")


class AlertManager:
    """Evaluates rules against current metric values; reports raises, changes and resolves."""

    def __init__(self, rules: tuple[AlertRule, ...] = DEFAULT_RULES, scope: str = "system") -> None:
        self.rules = rules
        self.scope = scope
        self._state = {rule.name: _State() for rule in rules}
        self._listeners: list[AlertListener] = []

    def subscribe(self, listener: AlertListener) -> None:
        """Call ``listener(alert)`` for every change."""
        self._listeners.append(listener)

    def active(self) -> dict[str, str]:
        """Rule name -> severity of the alerts currently raised."""
        return {name: s.severity for name, s in self._state.items() if s.severity}

    def evaluate(self, values: Mapping[str, float | None], now: float) -> list[Alert]:
        """Compare ``values`` (metric -> value) with the rules; returns what changed."""
        changes = []
        for rule in self.rules:
            if rule.metric not in values:
                continue
            state, value = self._state[rule.name], values[rule.metric]
            severity = rule.severity(value)
            if severity == state.severity:
                continue
            if severity is None:
                state.severity, state.resolved_at = None, now
                changes.append(
                    Alert(
                        rule.name,
                        self.scope,
                        "resolved",
                        f"{rule.name} back to normal ({_show(value, rule)})",
                        value,
                        now,
                    )
                )
                continue
            if state.severity is None and now - state.resolved_at < rule.cooldown_s:
                continue  # cooling down after the last one cleared
            if state.severity is None:
                state.raised_at = now
            state.severity = severity
            changes.append(
                Alert(
                    rule.name,
                    self.scope,
                    severity,
                    f"{rule.name} {severity}: {_show(value, rule)} (threshold"
                    f" {rule.warning if severity == 'warning' else rule.critical}"
                    f"{rule.unit})",
                    value,
                    now,
                )
            )
        for alert in changes:
            for listener in list(self._listeners):
                listener(alert)
        return changes


def _show(value: float | None, rule: AlertRule) -> str:
    return "n/a" if value is None else f"{value:.3g}{rule.unit}"
