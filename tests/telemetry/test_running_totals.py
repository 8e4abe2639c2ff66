"""Running totals as pure logic: what the telemetry actor counts, checked against the incidents
themselves (a reference the rows give), and the sketch the percentiles are read from."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart.supervisors._incident_log import IncidentLog
from stalwart.supervisors.messages import Event
from stalwart.telemetry._figures import GAMMA, RUN_GAUGES, sketch_index, sketch_quantile
from stalwart.telemetry._totals import RunningTotals
from tests.telemetry.test_incident_log import events


def ev(t, kind, path="s/w", level=1, fingerprint="f1", detail="", duration_ms=0.0):
    return Event(0, t, kind, path, level, detail, "unknown", fingerprint, "", duration_ms)


def record(events, quiet_s=None):
    """Fold ``events`` as the telemetry actor does: the log, and the totals fed from it."""
    log = IncidentLog(quiet_s)
    totals = RunningTotals(log=log)
    seen = {}
    for e in events:
        totals.event(e)
        changed = log.feed(e)
        seen.update((i.id, i) for i in changed)
        totals.incidents(changed)
    return log, totals, [seen[i] for i in sorted(seen)]


def test_an_incident_given_up_then_taken_up_again_counts_once_by_how_it_ended():
    events = [
        ev(1.0, "failure", level=3),
        ev(1.2, "poison", level=3),  # set aside: given up...
        ev(2.5, "failure", level=4),  # ...the same error, soon: the same trouble goes on
        ev(2.7, "recovered", level=4, duration_ms=1700.0),
    ]
    _, totals, [incident] = record(events, {"s/w": 2.0})
    assert incident.outcome == "recovered"
    values = totals.values
    assert values[("stalwart_incidents", ("s/w", "3", "given_up"))] == 1  # counted as it was
    assert values[("stalwart_incidents_taken_up", ("s/w",))] == 1  # and taken back
    t = totals.snapshot()
    assert (t.incidents, t.incidents_recovered, t.incidents_given_up) == (1, 1, 0)
    assert t.incident_success_rate == 1.0 and t.errors == 2
    assert t.mttr_mean_s == incident.duration_s


def test_what_is_written_adds_up_to_what_is_counted():
    log, totals, _ = record([ev(1.0, "failure"), ev(1.5, "recovered"), ev(2.0, "failure")])
    first = totals.statements()
    assert totals.statements() == []  # (nothing new since)
    totals.incidents(log.end_all(3.0))
    second = totals.statements()
    added: dict[tuple[str, str], float] = {}
    for sql, (name, labels, value) in first + second:
        if "value + excluded.value" in sql:
            added[(name, labels)] = added.get((name, labels), 0.0) + value
        else:
            added[(name, labels)] = value  # a gauge
    assert sum(v for (n, _), v in added.items() if n == "stalwart_incidents_opened") == 2
    assert added[("stalwart_incidents_open", '{"path":"s/w"}')] == 0  # (set, not added)


@settings(max_examples=300, deadline=None)
@given(events)
def test_the_totals_agree_with_the_incidents_and_no_counter_goes_down(items):
    log = IncidentLog({"s/a": 1.0, "s/b": 1.0, "s/b.protected": 1.0})
    totals = RunningTotals(log=log)
    seen, now = {}, 0.0
    for kind, path, fingerprint, gap, detail in items:
        now += gap
        e = ev(now, kind, path, 1, fingerprint, detail, gap * 500)
        before = {k: v for k, v in totals.values.items() if k[0] not in RUN_GAUGES}
        totals.event(e)
        changed = log.feed(e)
        found = log.attempt(path, fingerprint, gap > 1.5, gap)
        changed += [found] if found is not None else []
        seen.update((i.id, i) for i in changed)
        totals.incidents(changed)
        assert all(d > 0 for d in totals.added.values())
        assert all(totals.values[k] >= v for k, v in before.items())  # (counters)
        for p in {"s/a", "s/b", "s/b.protected"}:
            open_now = sum(1 for (q, _) in log.open if q == p)
            assert totals.values.get(("stalwart_incidents_open", (p,)), 0) == open_now
        totals.statements()
    totals.incidents(log.end_all(now + 1))
    t = totals.snapshot()
    outcomes = [i.outcome for i in seen.values()]
    assert t.incidents == len(seen)
    assert t.incidents_recovered == outcomes.count("recovered")
    assert t.incidents_given_up == outcomes.count("given up")
    assert t.incidents_unresolved == outcomes.count("unresolved")
    assert t.incidents_open == 0
    recovered = [i.duration_s for i in seen.values() if i.outcome == "recovered"]
    # (a later attempt may lengthen a recovered incident: its time was taken when it ended)
    assert math.fsum(recovered) >= (t.mttr_mean_s or 0.0) * len(recovered) - 1e-9
    assert t.errors == sum(1 for kind, *_ in items if kind in ("failure", "crash"))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(1e-4, 3600.0), min_size=1, max_size=200),
    st.floats(0.01, 1.0),
)
def test_a_percentile_from_the_sketch_is_at_most_two_percent_above_the_exact_one(values, q):
    counts: dict[int, float] = {}
    for v in values:
        counts[sketch_index(v)] = counts.get(sketch_index(v), 0) + 1
    exact = float(np.percentile(values, 100 * q, method="inverted_cdf"))  # (nearest rank)
    estimate = sketch_quantile(counts, q)
    assert exact * (1 - 1e-9) <= estimate <= exact * GAMMA * (1 + 1e-9)
