"""Reports from a recovery store: a terminal report and a self-contained HTML page.

Both lead with the incidents (how many, how many recovered, the time to recover), then
the attempts they took. The HTML page has an SVG timeline (see :mod:`._report_svg`).
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

from ..strategies import AdaptiveSelector
from ._insights import Insights, insights
from ._metrics import Metrics
from ._report_svg import LEVEL_COLOURS, svg_timeline
from ._store import RecoveryStore


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


def learned_strategies(
    store: RecoveryStore, window_s: float | None = None, now: float | None = None
) -> list[dict[str, Any]]:
    """The strategy the selector prefers per (category, level), with what its attempts did
    in the window: counted from the same attempt rows as the effectiveness table."""
    state = store.strategy_scores()
    since = -1.0 if window_s is None else (time.time() if now is None else now) - window_s
    recorded = {
        (category, int(level), strategy): (int(n), int(ok or 0), mean)
        for category, level, strategy, n, ok, mean in store.db.execute(
            "SELECT category, level, strategy, count(*), sum(success), avg(duration_s)"
            " FROM recovery_performance WHERE time >= ? GROUP BY category, level, strategy",
            (since,),
        )
    }
    selector = AdaptiveSelector({lvl: () for lvl in range(1, 6)})
    selector.load_state(state)
    keys = sorted({tuple(k.split("|")[:2]) for k in state})
    rows = []
    for category, level in keys:
        names = sorted({k.split("|")[2] for k in state if k.startswith(f"{category}|{level}|")})
        selector.candidates[int(level)] = tuple(names)
        ranked = selector.ranking(category, int(level))
        if ranked:
            best = ranked[0].strategy
            n, ok, mean = recorded.get((category, int(level), best), (0, 0, None))
            rows.append(
                {
                    "category": category,
                    "level": int(level),
                    "strategy": best,
                    "attempts": n,
                    "success_rate": ok / n if n else None,
                    "mean_time_s": mean,
                    "alternatives": [r.strategy for r in ranked[1:]],
                }
            )
    return rows


def worst_actors(m: Metrics, limit: int = 10) -> list[tuple[str, dict[str, Any]]]:
    """Actors by incident success rate (worst first), then by how much they needed."""

    def badness(item: tuple[str, dict[str, Any]]) -> tuple[float, int, int]:
        a = item[1]
        rate = a["incident_success_rate"]
        return (2.0 if rate is None else rate, -a["incidents"], -a["attempts"])

    return sorted(m.per_actor.items(), key=badness)[:limit]


def figure_lines(m: Metrics) -> list[str]:
    """The figures: incidents first, then the attempts they took."""
    lines = [
        f"{'incidents':>10} {'recovered':>10} {'given up':>9} {'open':>6} {'success':>8}"
        f" {'MTTR p50':>9} {'p95':>8} {'p99':>8}",
        f"{m.incidents:>10} {m.incidents_recovered:>10} {m.incidents_given_up:>9}"
        f" {m.incidents_open + m.incidents_unresolved:>6} {_pct(m.incident_success_rate):>8}"
        f" {_fmt_s(m.mttr_p50_s):>9} {_fmt_s(m.mttr_p95_s):>8} {_fmt_s(m.mttr_p99_s):>8}",
        "",
        f"{'attempts':>10} {'worked':>10} {'failed':>9} {'success':>8} {'p50':>8} {'p95':>8}"
        f" {'restarts':>9} {'requested':>10} {'errors/min':>11}",
        f"{m.attempts:>10} {m.attempts_succeeded:>10} {m.attempts_failed:>9}"
        f" {_pct(m.attempt_success_rate):>8} {_fmt_s(m.attempt_p50_s):>8}"
        f" {_fmt_s(m.attempt_p95_s):>8} {m.restarts:>9} {m.requested:>10}"
        f" {m.errors_per_min:>11.2f}",
    ]
    resolved = "  ".join(f"level {lvl}: {n}" for lvl, n in sorted(m.incidents_by_level.items()))
    levels = "  ".join(f"level {lvl}: {n}" for lvl, n in sorted(m.attempts_by_level.items()))
    lines += ["", f"Incidents recovered at: {resolved or 'none'}"]
    lines += [f"Attempts by level: {levels or 'none'}"]
    return lines


def report_text(store: RecoveryStore, window_s: float | None = None) -> str:
    """A terminal report: figures, worst actors, learned strategies, open errors, alerts."""
    now = time.time()
    m = store.metrics(window_s, now=now)
    window = "all history" if window_s is None else f"the last {window_s:g}s"
    lines = [f"Stalwart recovery report - {store.path} - {window}", ""]
    lines += figure_lines(m)
    if m.open_breakers:
        lines.append(f"Open breakers: {', '.join(m.open_breakers)}")
    lines += ["", "Worst actors"]
    for path, a in worst_actors(m) or []:
        lines.append(
            f"  {path:<40} {a['incidents']:>5} incidents {_pct(a['incident_success_rate']):>7}"
            f" recovered  {a['attempts']:>6} attempts {_pct(a['attempt_success_rate']):>7}"
        )
    if not m.per_actor:
        lines.append("  (nothing recorded)")
    lines += ["", "Learned strategy per category (its attempts in the window)"]
    learned = learned_strategies(store, window_s, now)
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
        ("incidents", str(m.incidents)),
        ("recovered", _pct(m.incident_success_rate)),
        ("MTTR p50", _fmt_s(m.mttr_p50_s)),
        ("MTTR p95", _fmt_s(m.mttr_p95_s)),
        ("MTTR p99", _fmt_s(m.mttr_p99_s)),
        ("attempts", str(m.attempts)),
        ("attempts worked", _pct(m.attempt_success_rate)),
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
    parts.append(svg_timeline(store, window_s))
    parts.append(
        "<h2>Worst actors</h2><table><tr><th>actor</th><th>incidents</th><th>recovered</th>"
        "<th>attempts</th><th>attempts worked</th></tr>"
    )
    parts += [
        f"<tr><td>{html.escape(p)}</td><td>{a['incidents']}</td>"
        f"<td>{_pct(a['incident_success_rate'])}</td><td>{a['attempts']}</td>"
        f"<td>{_pct(a['attempt_success_rate'])}</td></tr>"
        for p, a in worst_actors(m)
    ]
    parts.append(
        "</table><h2>Learned strategy per category</h2><p>The strategy the selector prefers,"
        " and what its attempts did in this report's window.</p><table><tr><th>category</th>"
        "<th>level</th><th>strategy</th><th>attempts</th><th>worked</th><th>mean time</th></tr>"
    )
    parts += [
        f"<tr><td>{html.escape(r['category'])}</td><td>{r['level']}</td>"
        f"<td>{html.escape(r['strategy'])}</td><td>{r['attempts']}</td>"
        f"<td>{_pct(r['success_rate'])}</td><td>{_fmt_s(r['mean_time_s'])}</td></tr>"
        for r in learned_strategies(store, window_s, now)
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
