"""The telemetry actor's settings (``start(..., telemetry={...})``), checked when declared."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..supervisors.spec import SpecError
from ._alerts import AlertRule

Positive = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(ge=1)]


class TelemetrySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What ``telemetry={...}`` may hold; each is checked when ``start()`` (or a tree file)
    is read, so a mistake is named before anything starts."""

    flush_rows: Count = 500
    flush_interval_s: Positive = 0.5
    retention_age_s: Positive | None = None
    retention_rows: Annotated[int, msgspec.Meta(ge=0)] | None = None  # 0: keep every row
    stability_window_s: Positive = 60.0
    timeout_percentile: Annotated[float, msgspec.Meta(gt=0, le=100)] = 99.0
    timeout_factor: Positive = 3.0
    timeout_min_s: Positive = 1.0
    timeout_max_s: Positive = 30.0
    alert_window_s: Positive = 300.0
    alert_interval_s: Positive = 2.0
    alert_rules: tuple[AlertRule, ...] | None = None


def check_telemetry(settings: Any) -> TelemetrySettings:
    """``settings`` checked; a SpecError names ``telemetry.<field>`` and what was wrong."""
    try:
        checked = msgspec.convert(dict(settings or {}), TelemetrySettings, strict=False)
    except (msgspec.ValidationError, TypeError, ValueError) as exc:
        text = str(exc)
        field = text.rsplit("`$.", 1)[1].rstrip("`").split("[")[0] if "`$." in text else ""
        if text.startswith("Object contains unknown field `"):
            field = text.split("`")[1]
            known = ", ".join(TelemetrySettings.__struct_fields__)
            text = f"unknown setting (known: {known})"
        else:
            text = text.rsplit(" - at ", 1)[0]
        raise SpecError("start", f"telemetry.{field}" if field else "telemetry", text) from None
    if checked.timeout_min_s > checked.timeout_max_s:
        problem = (
            f"must be at most timeout_max_s ({checked.timeout_min_s:g} > "
            f"{checked.timeout_max_s:g}): a learned timeout is kept between the two"
        )
        raise SpecError("start", "telemetry.timeout_min_s", problem)
    return checked
