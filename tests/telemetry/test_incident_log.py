"""Incidents from the tree's events, by the rules both the store and the dashboard follow.

Pure logic: known event sequences, each with the answer worked out by hand, and a property
test that no sequence breaks the bookkeeping.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart.supervisors._incident_log import IncidentLog


def ev(t, kind, path="s/w", level=0, fingerprint="f1", strategy="", detail="", duration_ms=0.0):
    return {
        "time": t,
        "kind": kind,
        "path": path,
        "level": level,
        "fingerprint": fingerprint,
        "strategy": strategy,
        "detail": detail,
        "category": "unknown",
        "duration_ms": duration_ms,
    }


def fold(events, quiet_s=None):
    log = IncidentLog(quiet_s)
    seen = {}
    for e in events:
        for incident in log.feed(e):
            seen[incident.id] = incident
    return log, [seen[i] for i in sorted(seen)]


def two_attempts(t0, path, fingerprint="f1"):
    """A failure at level 1, its retry fails, the level-2 retry works."""
    return [
        ev(t0, "failure", path, 1, fingerprint, "retry", "RuntimeError: flaky"),
        ev(t0 + 0.1, "failure", path, 2, fingerprint, "backoff", "RuntimeError: flaky"),
        ev(t0 + 0.5, "recovered", path, 2, fingerprint, "backoff", duration_ms=500.0),
    ]


def test_three_failures_each_recovered_at_level_two_are_three_recovered_incidents():
    events = two_attempts(10.0, "s/a") + two_attempts(20.0, "s/b") + two_attempts(30.0, "s/a")
    log, incidents = fold(events)
    assert [(i.path, i.outcome, i.level, i.strategy) for i in incidents] == [
        ("s/a", "recovered", 2, "backoff"),
        ("s/b", "recovered", 2, "backoff"),
        ("s/a", "recovered", 2, "backoff"),  # a failure after the recovery is a new incident
    ]
    assert [i.failures for i in incidents] == [2, 2, 2]
    assert [i.duration_s for i in incidents] == [0.5, 0.5, 0.5]
    assert log.open == {}


def test_the_time_to_recover_is_never_less_than_the_supervisor_measured_or_the_attempts():
    # the root recorded the error late (0.5 s before the recovery, where the supervisor
    # measured 0.9 s from the message's first failure): the measurement wins
    log, [incident] = fold(
        [
            ev(10.0, "failure", level=1),
            ev(10.5, "recovered", level=1, strategy="retry", duration_ms=900.0),
        ]
    )
    assert incident.duration_s == 0.9
    log.attempt("s/w", "f1", False, 0.7)
    log.attempt("s/w", "f1", True, 0.6)  # the last attempt is recorded after the recovery
    assert (incident.attempts, incident.attempts_failed) == (2, 1)
    assert incident.duration_s == 0.7 + 0.6


def test_work_set_aside_gives_the_incident_up_until_the_same_error_comes_back_soon():
    events = [
        ev(1.0, "failure", level=3, strategy="restart"),
        ev(1.2, "poison", level=3),
        ev(1.2, "dead-letter"),
    ]
    log, [incident] = fold(events, {"s/w": 2.0})
    assert (incident.outcome, incident.set_aside, incident.ended) == ("given up", 1, 1.2)
    # within the quiet period: the ladder still remembers it, the same trouble goes on
    for e in [ev(2.5, "failure", level=4), ev(2.7, "recovered", level=4, strategy="restart")]:
        log.feed(e)
    assert (incident.outcome, incident.level, incident.ended) == ("recovered", 4, 2.7)
    assert incident.duration_s == 2.7 - 1.0 and incident.failures == 2


def test_after_the_quiet_period_the_same_error_is_a_new_incident():
    _, incidents = fold(
        [
            ev(1.0, "failure", level=1),
            ev(1.1, "dead-letter"),
            ev(9.0, "failure", level=1),
        ],
        {"s/w": 2.0},
    )
    assert [(i.outcome, i.started) for i in incidents] == [("given up", 1.0), ("open", 9.0)]


def test_a_crash_is_recovered_when_a_new_instance_runs():
    _, [incident] = fold(
        [
            ev(1.0, "crash", level=3, fingerprint=""),
            ev(1.0, "restart", level=3, fingerprint="crash-fp", strategy="restart"),
            ev(1.4, "restarted", level=3, fingerprint=""),
        ]
    )
    assert (incident.kind, incident.outcome, incident.level, incident.strategy) == (
        "crash",
        "recovered",
        3,
        "restart",
    )
    assert incident.duration_s == 1.4 - 1.0


def test_a_new_instance_does_not_end_a_failed_message_that_still_waits_for_it():
    _, [incident] = fold(
        [ev(1.0, "failure", level=3, strategy="restart"), ev(1.1, "restarted", level=3)]
    )
    assert incident.outcome == "open"  # its message is redelivered: its recovery is the proof


def test_a_breaker_that_closes_again_ends_the_outage_of_the_actor_behind_it():
    behind = "s/pay.protected"
    _, [incident] = fold(
        [
            ev(1.0, "failure", behind, 1, "conn", "retry"),
            ev(1.1, "dead-letter", behind, 0, "conn"),  # DownstreamError: set aside
            ev(1.2, "breaker", "s/pay", detail="open"),
            ev(2.3, "breaker", "s/pay", detail="half_open"),
            ev(2.4, "breaker", "s/pay", detail="closed"),
        ],
        {behind: 5.0},
    )
    assert (incident.outcome, incident.set_aside, incident.ended) == ("recovered", 1, 2.4)


def test_plain_code_that_runs_out_of_levels_gives_up_for_good():
    _, incidents = fold(
        [
            ev(1.0, "failure", "svc", 1),
            ev(1.1, "escalate", "svc", 2),
            ev(1.2, "unrecovered", "svc", 2),
            ev(1.3, "failure", "svc", 1),  # the next call's failure: not taken up again
        ]
    )
    assert [(i.outcome, i.level) for i in incidents] == [("given up", 2), ("open", 1)]


def test_a_child_terminated_or_ended_idle_gives_up_what_was_open_there_and_below():
    # a session's key ended mid-recovery: no new instance will ever end its incident
    log, incidents = fold(
        [
            ev(1.0, "failure", "app/sessions/u1", 1),
            ev(1.1, "crash", "app/teams/red/a", 3),
            ev(1.2, "failure", "app/sessions/u10", 1),  # (another key: its name starts so)
            ev(1.3, "failure", "app/w.1", 1),  # (a replica of app/w)
            ev(2.0, "child-terminated", "app/sessions/u1"),
            ev(2.1, "idle-stop", "app/teams/red"),
            ev(2.2, "child-terminated", "app/w"),
        ]
    )
    assert [(i.path, i.outcome, i.ended) for i in incidents] == [
        ("app/sessions/u1", "given up", 2.0),
        ("app/teams/red/a", "given up", 2.1),
        ("app/sessions/u10", "open", None),
        ("app/w.1", "given up", 2.2),
    ]
    assert list(log.open) == [("app/sessions/u10", "f1")]


def test_what_is_open_when_recording_stops_is_unresolved():
    log, [incident] = fold([ev(1.0, "held", level=0)])
    assert [i.outcome for i in log.end_all(5.0)] == ["unresolved"]
    assert incident.ended == 5.0 and log.open == {}


KINDS = [
    "failure",
    "crash",
    "hung",
    "held",
    "poison",
    "dead-letter",
    "recovered",
    "restarted",
    "unhung",
    "retry",
    "restart",
    "unrecovered",
    "breaker",
    "memory",
    "child-terminated",
    "idle-stop",
]
events = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.sampled_from(["s/a", "s/b", "s/b.protected"]),
        st.sampled_from(["f1", "f2", ""]),
        st.floats(0.0, 3.0),
        st.sampled_from(["closed", "open", ""]),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(events)
def test_no_sequence_of_events_breaks_the_bookkeeping(items):
    log = IncidentLog({"s/a": 1.0, "s/b": 1.0, "s/b.protected": 1.0})
    now, seen = 0.0, {}
    for kind, path, fingerprint, gap, detail in items:
        now += gap
        e = ev(now, kind, path, 1, fingerprint, detail=detail, duration_ms=gap * 500)
        for incident in log.feed(e):
            seen[incident.id] = incident
        log.attempt(path, fingerprint, gap > 1.5, gap)
    for (path, fingerprint), incident in log.open.items():
        assert (incident.path, incident.fingerprint) == (path, fingerprint)
        assert incident.outcome == "open" and incident.ended is None
    for incident in seen.values():
        assert incident.failures >= 1 and incident.attempts >= incident.attempts_failed
        if incident.outcome == "open":
            assert log.open[(incident.path, incident.fingerprint)] is incident
        else:
            assert incident.ended is not None and incident.ended >= incident.started
            assert incident.duration_s >= incident.ended - incident.started
            assert incident.duration_s >= incident.attempts_s
    # every incident ends once recording stops
    log.end_all(now + 1)
    assert log.open == {} and all(i.outcome != "open" for i in seen.values())
