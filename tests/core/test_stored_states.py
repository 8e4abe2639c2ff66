"""What an earlier run stored for paths not started yet (``StoredStates``): whatever is
dropped, in whatever order, what is below a path, skipping some paths and what is below
them, is what a scan of the entries left finds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart.supervisors._stored import StoredStates

SEGMENTS = st.sampled_from(["p", "k1", "k1-b", "k2", "w", "w.0"])
PATHS = st.lists(SEGMENTS, min_size=1, max_size=4).map(lambda parts: "/".join(["t", *parts]))


def scan(held: dict[str, int], top: str, skipped: set[str]) -> dict[str, int]:
    def hidden(path: str) -> bool:  # at or below a skipped path that is below ``top``
        parts = path[len(top) + 1 :].split("/")
        return any(f"{top}/{'/'.join(parts[: i + 1])}" in skipped for i in range(len(parts)))

    return {p: v for p, v in held.items() if p.startswith(top + "/") and not hidden(p)}


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(PATHS, st.integers(), max_size=30),
    st.lists(st.tuples(st.booleans(), PATHS), max_size=20),
    st.sets(PATHS, max_size=4),
    PATHS,
)
def test_what_is_below_a_path_is_what_a_scan_finds(states, drops, skipped, top) -> None:
    stored, held = StoredStates(states), dict(states)
    for below, path in drops:
        if below:
            gone = stored.drop_under(path)
            assert set(gone) == set(scan(held, path, set()))
            for p in gone:
                del held[p]
        else:
            stored.drop([path])
            held.pop(path, None)
        assert bool(stored) == bool(held) and all(p in stored for p in held)
        for probe in {top, "t", path}:
            assert stored.under(probe) == scan(held, probe, set())
            assert stored.under(probe, skip=skipped.__contains__) == scan(held, probe, skipped)
    stored.drop(list(held))
    assert not stored and stored.under("t") == {}
