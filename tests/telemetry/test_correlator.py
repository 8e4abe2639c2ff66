"""The correlator's window and analysis: bounded memory, patterns, and planted root causes."""

import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from stalwart import Breaker, Child, SpecError, Supervisor, start
from stalwart.supervisors import dependency_graph
from stalwart.telemetry import Correlator, CorrelatorSettings
from stalwart.telemetry import _correlator as correlator_module
from tests.support import Worker

MB = 1024 * 1024


def _fill(c, count):
    for i in range(count):
        c.add(
            i * 0.001,
            f"s/service{i % 300}",
            f"fingerprint-{i % 5000}",
            trace=f"trace-{i}",
            example=f"ValueError: case {i % 5000}",
        )


def test_the_window_stays_under_a_megabyte_through_100k_events():
    warm = Correlator(CorrelatorSettings(capacity=2000, max_fingerprints=64))
    _fill(warm, 20_000)  # the first use imports what numpy loads lazily: not the window's
    warm.analyze(20.0)
    # only what was allocated through the correlator or this test counts: a thread another
    # test left winding down allocates at the same time, in the same process
    ours = [
        tracemalloc.Filter(True, path, all_frames=True)
        for path in (__file__, correlator_module.__file__)
    ]

    def fill_and_analyze():
        c = Correlator(depends_on={"s/api": ("s/db",)})
        _fill(c, 100_000)
        return c, c.analyze(100.0), tracemalloc.take_snapshot().filter_traces(ours)

    # on a thread of its own: tracemalloc records 12 frames of every allocation, and on
    # pytest's deep stack most of them would be pytest's, costing time and showing nothing;
    # a fresh thread's stack is shallow, so the 12 frames reach from each allocation back to
    # this test, every frame of ours kept
    tracemalloc.start(12)
    try:
        with ThreadPoolExecutor(1) as pool:
            c, analysis, traces = pool.submit(fill_and_analyze).result()
    finally:
        tracemalloc.stop()
    held = sum(stat.size for stat in traces.statistics("filename"))
    assert len(c) == 10_000 and c.added == 100_000 and analysis.events == 10_000
    assert c.nbytes() <= MB, c.nbytes()
    assert held <= MB, f"{held} bytes held after 100,000 events"


def test_a_dominant_error_and_a_high_rate_are_found():
    c = Correlator()
    for i in range(60):
        c.add(90 + i * 0.1, "s/db", "conn-refused", example="ConnectionError: refused")
    for i in range(10):
        c.add(90 + i, f"s/other{i}", f"fp{i}")
    analysis = c.analyze(100.0)
    assert analysis.dominant is not None
    assert analysis.dominant.fingerprint == "conn-refused"
    assert analysis.dominant.paths == ("s/db",)
    assert analysis.dominant.example == "ConnectionError: refused"
    assert analysis.high_rate and analysis.rate_per_s == pytest.approx(7.0)


def test_no_dominant_pattern_when_errors_are_spread():
    c = Correlator()
    for i in range(50):
        c.add(99 - i * 0.1, "s/a", f"fp{i % 10}")
    assert c.analyze(100.0).dominant is None


def test_a_burst_against_a_quiet_baseline_is_an_anomaly_and_a_steady_rate_is_not():
    c = Correlator()
    for second in range(50, 100):  # one error a second, for a long while
        c.add(second + 0.5, "s/steady", "x")
        c.add(second + 0.5, "s/bursty", "y")
    for i in range(12):  # then a burst in the last second
        c.add(99.2 + i * 0.05, "s/bursty", "y")
    anomalies = {a.path: a for a in c.analyze(100.0).anomalies}
    assert list(anomalies) == ["s/bursty"]
    assert anomalies["s/bursty"].current == 13 and anomalies["s/bursty"].zscore >= 3


def test_errors_in_the_same_trace_are_tied_even_when_far_apart_in_time():
    c = Correlator(CorrelatorSettings(attribution_s=1.0), {"s/api": ("s/db",)})
    for i in range(5):
        c.add(50 + i * 5, "s/db", "db-down", trace=f"t{i}")
        c.add(50 + i * 5 + 3, "s/api", "downstream", trace=f"t{i}")  # 3 s later: too late alone
    (cause,) = c.analyze(100.0).root_causes
    assert (cause.path, cause.dependents, cause.explained) == ("s/db", ("s/api",), 1.0)


def test_errors_without_a_dependency_in_between_are_not_tied():
    c = Correlator(depends_on={"s/api": ("s/db",)})
    for i in range(5):
        c.add(50 + i, "s/db", "db-down")
        c.add(50 + i + 0.1, "s/cache", "miss")  # s/cache does not depend on s/db
    assert c.analyze(100.0).root_causes == ()


def test_once_an_incident_is_settled_old_errors_explain_nothing():
    c = Correlator(depends_on={"s/api": ("s/db",)})
    for i in range(5):
        c.add(50 + i, "s/db", "db-down")
        c.add(50 + i + 0.1, "s/api", "downstream")
    assert [r.path for r in c.analyze(100.0).root_causes] == ["s/db"]
    c.settle("s/db", 60.0)
    assert c.analyze(100.0).root_causes == ()
    c.add(70, "s/db", "db-down")
    c.add(70.2, "s/api", "downstream")
    assert [r.path for r in c.analyze(100.0).root_causes] == ["s/db"]


def test_errors_below_a_supervisor_count_as_the_supervisor_s():
    tree = Supervisor(
        "s",
        children=[
            Supervisor("storage", children=[Child("db", Worker)]),
            Child("pay", Worker, breaker=Breaker()),
            Supervisor("front", depends_on=["storage", "pay"], children=[Child("api", Worker)]),
        ],
    )
    graph = dependency_graph(tree)
    assert graph["s/front/api"] == ("s/storage", "s/pay")
    assert graph["s/pay"] == ("s/pay.protected",)
    c = Correlator(depends_on=graph)
    for i in range(4):
        c.add(50 + i, "s/storage/db", "db-down")
        c.add(50 + i + 0.2, "s/front/api", "downstream")
    (cause,) = c.analyze(100.0).root_causes
    assert (cause.path, cause.dependents) == ("s/storage/db", ("s/front/api",))


def test_more_distinct_names_than_kept_stay_bounded():
    c = Correlator(CorrelatorSettings(capacity=100, max_fingerprints=16, max_paths=8))
    for i in range(5000):
        c.add(float(i), f"s/p{i % 50}", f"fp{i}")
    analysis = c.analyze(5000.0)
    assert analysis.events <= 100
    assert len(c._fps.names) <= 17 and len(c._paths.names) <= 9  # "(other)" included


@pytest.mark.parametrize(
    ("settings_", "field"),
    [
        ({"capacity": 0}, "capacity"),
        ({"window_s": -1}, "window_s"),
        ({"dominant_share": 1.5}, "dominant_share"),
        ({"attribution": 5}, "attribution"),
        ({"z_threshold": "high"}, "z_threshold"),
    ],
)
def test_bad_settings_name_the_setting(settings_, field):
    with pytest.raises(SpecError, match=rf"correlator: {field}"):
        CorrelatorSettings.of(settings_)
    with pytest.raises(SpecError, match=rf"correlator: {field}"):
        start(Supervisor("s", children=[Child("w", Worker)]), correlator=settings_)


# -- planted root causes -------------------------------------------------------------------------


@st.composite
def cascades(draw):
    """A random dependency graph, a planted root cause, the dependents it takes down, and noise."""
    n = draw(st.integers(3, 9))
    names = [f"t/s{i}" for i in range(n)]
    deps = {name: set() for name in names}
    for j in range(n):  # s_j may depend on any s_i with i < j: no cycles
        for i in range(j):
            if draw(st.booleans()):
                deps[names[j]].add(names[i])
    root = draw(st.sampled_from(names))

    def closure(start, edges):
        found, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in found:
                    found.add(nxt)
                    todo.append(nxt)
        return found

    dependents_of = {name: {m for m in names if name in deps[m]} for name in names}
    below = closure(root, dependents_of)
    assume(below)
    failing = draw(st.sets(st.sampled_from(sorted(below)), min_size=1))
    above = closure(root, deps)
    related = {root} | below | above
    for f in failing:
        related |= closure(f, deps)
    quiet = [m for m in names if m not in related and not (closure(m, deps) & related)]
    noisy = [m for m in quiet if not (closure(m, dependents_of) & related)]
    rounds = draw(st.integers(2, 8))
    events = []
    for k in range(rounds):
        t = 10.0 + k * draw(st.floats(0.5, 4.0))
        events.append((t, root, "root-error", f"trace{k}"))
        for f in sorted(failing):
            events.append((t + draw(st.floats(0.01, 2.0)), f, "downstream", ""))
    for m in noisy:
        for _ in range(draw(st.integers(0, 4))):
            events.append((draw(st.floats(5.0, 50.0)), m, "noise", ""))
    return deps, root, failing, sorted(events)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(cascades())
def test_the_planted_root_cause_is_found_with_its_dependents(case):
    deps, root, failing, events = case
    c = Correlator(CorrelatorSettings(window_s=120.0), {k: tuple(v) for k, v in deps.items()})
    for t, path, fp, trace in events:
        c.add(t, path, fp, trace=trace)
    causes = {r.path: r for r in c.analyze(60.0).root_causes}
    assert root in causes, (causes, root, failing)
    assert set(causes[root].dependents) == failing
    for other, cause in causes.items():
        if other != root:
            assert not set(cause.dependents) & (failing | {root})


def test_a_dependency_that_recovered_in_between_explains_nothing():
    c = Correlator(depends_on={"s/api": ("s/db",)})
    c.add(50.0, "s/db", "db-down")
    c.recovered(50.5, "s/db")
    c.add(51.0, "s/api", "payments-down")  # the database was fine again by then
    c.add(52.0, "s/api", "payments-down")
    analysis = c.analyze(60.0)
    assert analysis.root_causes == () and analysis.events == 3


NAMES = st.sampled_from(["a", "a/b", "a/b.1", "a/bc", "db", "db/x", "db.0", "q", "q/db", "dbx"])


@settings(max_examples=200, deadline=None)
@given(paths=st.lists(NAMES, min_size=1, max_size=25), asked=st.lists(NAMES, max_size=25))
def test_dependency_ids_kept_as_names_come_match_a_scan_of_every_name(paths, asked):
    """A path's dependency ids are kept and extended as names are added (a storm of
    failures at new paths adds them all the time): they always match a scan of every
    name, as they were found before."""
    c = Correlator(depends_on={"a": ("db",), "q": ("a/b",)})
    for n, (path, ask) in enumerate(zip(paths, asked + paths)):
        c.add(float(n), path, "f")
        pid = c._paths.ids[ask] if ask in c._paths.ids else c._paths.ids[path]
        names = c._paths.names
        deps = c._closure(names[pid])
        scanned = [
            i
            for i, name in enumerate(names)
            if i and (name in deps or any(name.startswith((d + "/", d + ".")) for d in deps))
        ]
        assert list(c._dependency_ids(pid)) == scanned
