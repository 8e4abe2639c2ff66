"""The HTML report's SVG timeline: one lane per actor, a marker per event bucket.

Failures are coloured by the level that answered them; recoveries, restarts, poison
messages and level-5 measures have shapes of their own. Events are gathered into time
buckets, so a store of millions of attempts still renders a light page.
"""

from __future__ import annotations

import html
import time
from typing import Any

from ._store import RecoveryStore

LEVEL_COLOURS = {1: "#4c9a2a", 2: "#c7a600", 3: "#e07b00", 4: "#d03b1f", 5: "#7b1fa2", 0: "#777"}
MARKED_KINDS = (
    "failure",
    "recovered",
    "crash",
    "restart",
    "start-failure",
    "poison",
    "dead-letter",
    "level5",
    "restart-tree",
    "escalate",
)


def timeline(
    store: RecoveryStore, window_s: float | None = None, bins: int = 300, lanes: int = 40
) -> dict[str, Any]:
    """Incidents per actor lane and time bucket, for the SVG timeline."""
    where = "WHERE kind IN ({})".format(", ".join("?" for _ in MARKED_KINDS))
    params: list[Any] = list(MARKED_KINDS)
    if window_s is not None:
        where += " AND time >= ?"
        params.append(time.time() - window_s)
    t0, t1 = store.db.execute(f"SELECT min(time), max(time) FROM events {where}", params).fetchone()
    if t0 is None:
        return {"t0": 0.0, "t1": 0.0, "lanes": [], "marks": []}
    width = max((t1 - t0) / bins, 1e-6)
    top = [
        r[0]
        for r in store.db.execute(
            f"SELECT path FROM events {where} GROUP BY path ORDER BY count(*) DESC LIMIT ?",
            (*params, lanes),
        ).fetchall()
    ]
    marks = [
        {
            "path": path,
            "kind": kind,
            "level": level or 0,
            "bin": int(b),
            "count": n,
            "first": first,
            "strategy": strategy or "",
            "detail": detail or "",
        }
        for path, kind, level, b, n, first, strategy, detail in store.db.execute(
            f"SELECT path, kind, max(level), CAST((time - ?) / ? AS INTEGER) AS b, count(*),"
            f" min(time), max(strategy), max(detail) FROM events {where}"
            f" GROUP BY path, kind, b ORDER BY b",
            (t0, width, *params),
        ).fetchall()
        if path in top
    ]
    return {"t0": t0, "t1": t1, "width": width, "lanes": sorted(top), "marks": marks}


def _svg(data: dict[str, Any]) -> str:
    lanes = data["lanes"]
    if not lanes:
        return '<p class="empty">No incidents recorded.</p>'
    left, lane_h, plot_w = 260, 26, 900
    height = lane_h * len(lanes) + 40
    t0, t1 = data["t0"], data["t1"]
    span = max(t1 - t0, 1e-6)
    out = [
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{left + plot_w + 20}"'
        f' height="{height}" role="img" aria-label="incident timeline">'
    ]
    for i, lane in enumerate(lanes):
        y = 20 + i * lane_h
        out.append(
            f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" class="lane">'
            f"{html.escape(lane)}</text>"
        )
        out.append(f'<line x1="{left}" y1="{y}" x2="{left + plot_w}" y2="{y}" class="rule"/>')
    for mark in data["marks"]:
        y = 20 + lanes.index(mark["path"]) * lane_h
        t = data["t0"] + (mark["bin"] + 0.5) * data["width"]
        x = left + plot_w * (t - t0) / span
        colour = LEVEL_COLOURS.get(mark["level"], "#777")
        when = time.strftime("%H:%M:%S", time.localtime(mark["first"]))
        title = html.escape(
            f"{mark['path']} {mark['kind']} level {mark['level']}"
            f" {mark['strategy']} x{mark['count']} at {when}: {mark['detail']}"
        )
        kind = mark["kind"]
        attrs = (
            f'class="incident {kind}" data-path="{html.escape(mark["path"])}"'
            f' data-kind="{kind}" data-level="{mark["level"]}" data-count="{mark["count"]}"'
        )
        if kind == "recovered":
            shape = (
                f'<path d="M{x:.1f} {y - 6} L{x + 6:.1f} {y} L{x:.1f} {y + 6}'
                f' L{x - 6:.1f} {y} Z" fill="#2e7d32"/>'
            )
        elif kind in ("poison", "dead-letter"):
            shape = (
                f'<path d="M{x - 5:.1f} {y - 5} L{x + 5:.1f} {y + 5} M{x + 5:.1f} {y - 5}'
                f' L{x - 5:.1f} {y + 5}" stroke="#b71c1c" stroke-width="2.5"/>'
            )
        elif kind in ("crash", "restart", "start-failure", "escalate"):
            shape = f'<rect x="{x - 5:.1f}" y="{y - 5}" width="10" height="10" fill="{colour}"/>'
        elif kind in ("level5", "restart-tree"):
            shape = (
                f'<circle cx="{x:.1f}" cy="{y}" r="8" fill="none" stroke="#7b1fa2"'
                ' stroke-width="3"/>'
            )
        else:
            shape = f'<circle cx="{x:.1f}" cy="{y}" r="5" fill="{colour}"/>'
        out.append(f"<g {attrs}><title>{title}</title>{shape}</g>")
    axis_y = height - 12
    for frac in (0, 0.25, 0.5, 0.75, 1):
        t = t0 + frac * span
        x = left + plot_w * frac
        label = (
            time.strftime("%H:%M:%S", time.localtime(t))
            if frac == 0 or span >= 120
            else f"+{t - t0:.2f}s"
        )
        out.append(
            f'<text x="{x:.0f}" y="{axis_y}" text-anchor="middle" class="axis">{label}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def svg_timeline(store: RecoveryStore, window_s: float | None = None) -> str:
    """The timeline of ``store`` (over ``window_s``) as an SVG element."""
    return _svg(timeline(store, window_s))
