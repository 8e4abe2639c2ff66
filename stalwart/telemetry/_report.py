"""Reports from a recovery store: a terminal report and a self-contained HTML page.

The HTML page has an SVG timeline: one lane per actor, a marker per incident
(failures coloured by the level that answered them, recoveries, restarts,
poison messages, level-5 measures). Incidents are gathered into time buckets,
so a store of millions of attempts still renders a light page.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

from ..strategies import AdaptiveSelector
from ._insights import Insights, insights
from ._store import Metrics, RecoveryStore

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


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ago(t: float, now: float) -> str:
    d = max(0.0, now - t)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if d >= size:
            return f"{d / size:.0f}{unit} ago"
    return f"{d:.0f}s ago"


def learned_strategies(store: RecoveryStore) -> list[dict[str, Any]]:
    """The best strategy per (category, level) by what was recorded."""
    state = store.strategy_scores()
    selector = AdaptiveSelector({lvl: () for lvl in range(1, 6)})
    selector.load_state(state)
    keys = sorted({tuple(k.split("|")[:2]) for k in state})
    rows = []
    for category, level in keys:
        names = sorted({k.split("|")[2] for k in state if k.startswith(f"{category}|{level}|")})
        selector.candidates[int(level)] = tuple(names)
        ranked = selector.ranking(category, int(level))
        if ranked:
            best = ranked[0]
            rows.append(
                {
                    "category": category,
                    "level": int(level),
                    "strategy": best.strategy,
                    "success_rate": best.success_rate,
                    "mean_time_s": best.mean_time_s,
                    "attempts": sum(r.attempts for r in ranked),
                    "alternatives": [r.strategy for r in ranked[1:]],
                }
            )
    return rows


def worst_actors(m: Metrics, limit: int = 10) -> list[tuple[str, dict[str, Any]]]:
    return sorted(m.per_actor.items(), key=lambda kv: (kv[1]["success_rate"], -kv[1]["attempts"]))[
        :limit
    ]


def report_text(store: RecoveryStore, window_s: float | None = None) -> str:
    """A terminal report: figures, worst actors, learned strategies, open errors, alerts."""
    now = time.time()
    m = store.metrics(window_s, now=now)
    window = "all history" if window_s is None else f"the last {window_s:g}s"
    lines = [f"Stalwart recovery report - {store.path} - {window}", ""]
    lines.append(
        f"{'attempts':>10} {'success':>9} {'mean':>8} {'p50':>8} {'p95':>8}"
        f" {'failed':>8} {'restarts':>9} {'errors/min':>11}"
    )
    lines.append(
        f"{m.attempts:>10} {_pct(m.success_rate):>9} {_fmt_s(m.mean_s):>8}"
        f" {_fmt_s(m.p50_s):>8} {_fmt_s(m.p95_s):>8} {m.failures:>8} {m.restarts:>9}"
        f" {m.errors_per_min:>11.2f}"
    )
    levels = "  ".join(f"level {lvl}: {n}" for lvl, n in sorted(m.by_level.items()))
    lines += ["", f"Attempts by level: {levels or 'none'}"]
    if m.open_breakers:
        lines.append(f"Open breakers: {', '.join(m.open_breakers)}")
    lines += ["", "Worst actors"]
    for path, a in worst_actors(m) or []:
        lines.append(f"  {path:<40} {a['attempts']:>7} attempts  {_pct(a['success_rate']):>7}")
    if not m.per_actor:
        lines.append("  (no recovery attempts recorded)")
    lines += ["", "Learned strategy per category"]
    learned = learned_strategies(store)
    for r in learned:
        lines.append(
            f"  {r['category']:<20} level {r['level']}  {r['strategy']:<16}"
            f" {_pct(r['success_rate']):>7}  {_fmt_s(r['mean_time_s']):>7}"
            f"  ({r['attempts']} attempts)"
        )
    if not learned:
        lines.append("  (nothing learned yet)")
    lines += ["", "Open errors"]
    open_errors = store.errors(status="open", limit=20)
    for e in open_errors:
        lines.append(
            f"  #{e['id']:<5} {e['path']:<30} {e['category'] or '-':<18}"
            f" x{e['count']:<5} {_ago(e['last_seen'], now):>8}  {e['message'][:60]}"
        )
    if not open_errors:
        lines.append("  (none)")
    lines += ["", "Active alerts"]
    alerts = store.alerts(active=True)
    for a in alerts:
        lines.append(f"  {a['severity']:<9} {a['message']}")
    if not alerts:
        lines.append("  (none)")
    memory = store.query(
        "SELECT tier, count(*) AS n, sum(freed_bytes) AS freed FROM"
        " memory_events GROUP BY tier ORDER BY tier"
    )
    if memory:
        lines += ["", "Memory cleanups"]
        for r in memory:
            lines.append(f"  {r['tier']:<12} {r['n']:>5} runs  freed {r['freed'] or 0:>14,} bytes")
    lines += insight_lines(insights(store, window_s, now))
    return "\n".join(lines) + "\n"


def insight_lines(found: Insights) -> list[str]:
    """The insights part of the terminal report."""
    lines = ["", "Error rate per service (errors/min, first half -> second half)"]
    for t in found.error_trends[:10]:
        lines.append(
            f"  {t.path:<40} {t.errors:>6} errors  {t.first_per_min:>7.2f} -> "
            f"{t.second_per_min:<7.2f} {t.direction}"
        )
    if not found.error_trends:
        lines.append("  (no errors)")
    lines += ["", "Effectiveness per level and strategy"]
    for e in found.effectiveness:
        lines.append(
            f"  level {e.level}  {e.strategy:<18} {e.attempts:>7} attempts"
            f"  {_pct(e.success_rate):>7}  {_fmt_s(e.mean_s):>7}"
        )
    if not found.effectiveness:
        lines.append("  (no attempts)")
    p = found.predictions
    lines += ["", "Resource predictions"]
    if p.predictions or p.exhaustions:
        lines.append(
            f"  {p.predictions} scored: {p.hits} hit, {p.false_alarms} false alarm,"
            f" {p.averted} averted; {p.exhaustions} exhaustions, {p.predicted_exhaustions}"
            f" foreseen; precision {_pct(p.precision)}, recall {_pct(p.recall)}"
        )
    else:
        lines.append("  (none recorded)")
    lines += ["", "Recommendations"]
    lines += [f"  - {advice}" for advice in found.recommendations] or ["  (none)"]
    return lines


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


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1b1b1b}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;margin-top:6px}td,th{padding:3px 10px;border-bottom:1px solid #eee;
text-align:left}th{font-weight:600}
svg text.lane{font-size:12px}svg text.axis{font-size:11px;fill:#555}
svg line.rule{stroke:#e5e5e5}.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px}
"""


def render_html(
    store: RecoveryStore, window_s: float | None = None, title: str = "Stalwart recovery report"
) -> str:
    """The report as one self-contained HTML page (no scripts, no external files)."""
    now = time.time()
    m = store.metrics(window_s, now=now)
    cards = [
        ("attempts", str(m.attempts)),
        ("success", _pct(m.success_rate)),
        ("mean", _fmt_s(m.mean_s)),
        ("p50", _fmt_s(m.p50_s)),
        ("p95", _fmt_s(m.p95_s)),
        ("failed", str(m.failures)),
        ("restarts", str(m.restarts)),
        ("open breakers", str(len(m.open_breakers))),
    ]
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(store.path)} - generated {time.strftime('%Y-%m-%d %H:%M:%S')}</p>",
        "<div class='cards'>",
    ]
    parts += [f"<div class='card'>{k}<b>{html.escape(v)}</b></div>" for k, v in cards]
    parts.append("</div><h2>Timeline of failures and recoveries</h2><div class='legend'>")
    parts += [
        f"<span><i style='background:{LEVEL_COLOURS[lvl]}'></i>level {lvl}</span>"
        for lvl in range(1, 6)
    ]
    parts.append(
        "<span>&#9670; recovered</span><span>&#9632; restart/crash</span>"
        "<span>&#10005; poison</span></div>"
    )
    parts.append(_svg(timeline(store, window_s)))
    parts.append(
        "<h2>Worst actors</h2><table><tr><th>actor</th><th>attempts</th><th>success</th></tr>"
    )
    parts += [
        f"<tr><td>{html.escape(p)}</td><td>{a['attempts']}</td>"
        f"<td>{_pct(a['success_rate'])}</td></tr>"
        for p, a in worst_actors(m)
    ]
    parts.append(
        "</table><h2>Learned strategy per category</h2><table><tr><th>category</th>"
        "<th>level</th><th>strategy</th><th>expected success</th><th>mean time</th></tr>"
    )
    parts += [
        f"<tr><td>{html.escape(r['category'])}</td><td>{r['level']}</td>"
        f"<td>{html.escape(r['strategy'])}</td><td>{_pct(r['success_rate'])}</td>"
        f"<td>{_fmt_s(r['mean_time_s'])}</td></tr>"
        for r in learned_strategies(store)
    ]
    parts.append(
        "</table><h2>Open errors</h2><table><tr><th>#</th><th>actor</th>"
        "<th>category</th><th>count</th><th>message</th></tr>"
    )
    parts += [
        f"<tr><td>{e['id']}</td><td>{html.escape(e['path'])}</td>"
        f"<td>{html.escape(e['category'] or '-')}</td><td>{e['count']}</td>"
        f"<td>{html.escape((e['message'] or '')[:120])}</td></tr>"
        for e in store.errors(status="open", limit=50)
    ]
    found = insights(store, window_s, now)
    parts.append("</table><h2>Recommendations</h2><ul id='recommendations'>")
    parts += [f"<li>{html.escape(a)}</li>" for a in found.recommendations] or ["<li>none</li>"]
    p = found.predictions
    parts.append(
        f"</ul><h2>Resource predictions</h2><p id='predictions'>{p.predictions} scored:"
        f" {p.hits} hit, {p.false_alarms} false alarm, {p.averted} averted;"
        f" {p.exhaustions} exhaustions, {p.predicted_exhaustions} foreseen; precision"
        f" {_pct(p.precision)}, recall {_pct(p.recall)}</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html_report(
    store: RecoveryStore,
    out: str | Path,
    window_s: float | None = None,
    title: str = "Stalwart recovery report",
) -> Path:
    """Write the HTML report to ``out``; returns its path."""
    path = Path(out)
    path.write_text(render_html(store, window_s, title), encoding="utf-8")
    return path
