"""The paths the telemetry actor knows the store keeps records for (``PathRecords``):
whatever is noted and popped, in whatever order, what is below a path is what a scan of
the paths left finds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart.telemetry._path_records import PathRecords

SEGMENTS = st.sampled_from(["p", "k1", "k1-b", "k2", "w", "w.0"])
PATHS = st.lists(SEGMENTS, min_size=1, max_size=4).map(lambda parts: "/".join(["t", *parts]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), PATHS), max_size=40), st.lists(PATHS, max_size=5))
def test_what_is_below_a_path_is_what_a_scan_finds(steps, tops) -> None:
    records, held = PathRecords(), set()
    for noted, path in steps:
        if noted:
            records.note(path).add("op")
            held.add(path)
        elif path in held:
            assert records.pop(path) == {"op"}
            held.discard(path)
        assert (path in records) == (path in held)
        for top in [*tops, "t"]:
            found = records.under(top)
            assert len(found) == len(set(found))
            assert set(found) == {p for p in held if p.startswith(top + "/")}
