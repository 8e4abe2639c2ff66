"""The incident timeline folds the tree's events into failure episodes."""

from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart.dashboard import Timeline


def ev(seq, kind, path, level=0, strategy="", detail="", fingerprint="f1", t=None):
    return {
        "seq": seq,
        "time": 100.0 + seq if t is None else t,
        "kind": kind,
        "path": path,
        "level": level,
        "strategy": strategy,
        "detail": detail,
        "category": "connection",
        "fingerprint": fingerprint,
        "trace": f"trace-{seq}",
    }


CLIMB = [
    ev(1, "failure", "s/w", 1, "retry", "ConnectionError: reset"),
    ev(2, "failure", "s/w", 2, "backoff", "ConnectionError: reset"),
    ev(3, "dead-letter", "s/w", 0, "", "#1: gave up on the message"),
    ev(4, "failure", "s/w", 3, "restart", "ConnectionError: reset"),
    ev(5, "recovered", "s/w", 3, "restart", t=104.25),
]


def test_a_climb_up_the_ladder_is_one_episode_answered_by_the_level_that_worked():
    timeline = Timeline()
    timeline.feed(CLIMB)
    [episode] = timeline.newest()
    assert (episode.path, episode.outcome, episode.level, episode.strategy) == (
        "s/w",
        "recovered",
        3,
        "restart",
    )
    assert episode.error == "ConnectionError: reset" and episode.trace == "trace-1"
    assert episode.duration_ms == 3250.0  # from the first failure to the recovery
    assert episode.set_aside == 1
    assert [s.kind for s in episode.steps] == [
        "failure",
        "failure",
        "dead-letter",
        "failure",
        "recovered",
    ]


def test_a_new_failure_after_recovery_opens_a_new_episode_and_others_stay_apart():
    timeline = Timeline()
    timeline.feed(
        [
            *CLIMB,
            ev(6, "failure", "s/db", 1, "retry", "OSError: disk"),
            ev(7, "failure", "s/w", 1, "retry", "ConnectionError: again"),
            ev(8, "failure", "s/w", 1, "retry", "KeyError: other", fingerprint="f2"),
            ev(9, "recovered", "s/w", 1, "retry", fingerprint="f2"),
        ]
    )
    newest = timeline.newest()
    assert [(e.id, e.path, e.outcome) for e in newest] == [
        (8, "s/w", "recovered"),  # each error of an actor is its own episode
        (7, "s/w", "recovering"),
        (6, "s/db", "recovering"),
        (1, "s/w", "recovered"),
    ]
    timeline.feed([ev(10, "recovered", "s/w", 2, "backoff", fingerprint="")])
    assert [e.outcome for e in timeline.newest()][:2] == ["recovered", "recovered"]


def test_operator_requests_and_system_wide_measures_have_their_own_entries():
    timeline = Timeline()
    timeline.feed(
        [
            ev(1, "recovery-result", "s/w", 3, detail="ok: restarted"),
            ev(2, "recovery-result", "s/x", 3, detail="failed: unknown actor path 's/x'"),
            ev(3, "level5", "s", 5, "restart_tree", "too many restarts"),
        ]
    )
    assert [(e.kind, e.outcome, e.level) for e in timeline.newest()] == [
        ("level5", "system-wide", 5),
        ("requested", "failed", 0),
        ("requested", "done", 0),
    ]


def test_the_correlators_root_cause_is_named_on_the_episodes_it_explains():
    timeline = Timeline()
    timeline.feed(
        [
            ev(1, "failure", "s/db", 1, "retry"),
            ev(2, "failure", "s/api", 1, "retry", fingerprint="f9"),
            ev(3, "failure", "s/other", 1, "retry", t=500.0),
        ]
    )
    timeline.attach_incidents(
        [{"id": 7, "cause": "s/db", "dependents": ["s/api"], "opened": 101.5, "closed": 120.0}]
    )
    causes = {e.path: (e.root_cause, e.incident) for e in timeline.newest()}
    assert causes == {"s/db": ("s/db", 7), "s/api": ("s/db", 7), "s/other": ("", 0)}


def test_only_the_newest_episodes_are_kept():
    timeline = Timeline(keep=3)
    timeline.feed([ev(i, "failure", f"s/a{i}", 1, "retry") for i in range(1, 11)])
    assert [e.id for e in timeline.newest()] == [10, 9, 8]
    assert {path for path, _ in timeline.open} == {"s/a8", "s/a9", "s/a10"}


KINDS = ["failure", "crash", "retry", "restart", "recovered", "dead-letter", "escalate", "memory"]
event_lists = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.sampled_from(["s/a", "s/b", "s/c/d"]),
        st.integers(0, 5),
        st.sampled_from(["f1", "f2", ""]),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(event_lists, st.lists(st.integers(1, 60), max_size=6))
def test_feeding_in_pieces_or_twice_gives_the_same_timeline(items, cuts):
    events = [ev(i + 1, k, p, lv, "s", fingerprint=f) for i, (k, p, lv, f) in enumerate(items)]
    whole = Timeline()
    whole.feed(events)
    pieces = Timeline()
    start = 0
    for cut in sorted(cuts):
        pieces.feed(events[start:cut])
        pieces.feed(events[:cut])  # events already seen are ignored
        start = max(start, cut)
    pieces.feed(events[start:])
    assert [e for e in pieces.newest(1000)] == [e for e in whole.newest(1000)]
    for episode in whole.newest(1000):
        seqs = [s.seq for s in episode.steps]
        assert seqs == sorted(seqs) and seqs[0] == episode.id
        assert all(s.kind not in ("memory",) for s in episode.steps)
        closing = [s for s in episode.steps if s.kind == "recovered"]
        assert len(closing) <= 1 and (not closing or episode.steps[-1] is closing[0])
        assert (episode.outcome == "recovering") == (episode.duration_ms is None)
