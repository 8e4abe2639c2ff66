"""The root's registry finds what is below a path through an index of the paths by parent
(a Pool of supervisors ends its keys by the thousand: a scan of every path for each one
made ending them quadratic). Whatever is put and dropped, in whatever order, the index
answers what a scan of the held paths answers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart.supervisors._registry import PathIndex

SEGMENTS = st.sampled_from(["p", "k1", "k2", "w", "w.0", "x.protected"])
PATHS = st.lists(SEGMENTS, min_size=1, max_size=4).map(lambda parts: "/".join(["t", *parts]))
STEPS = st.lists(st.tuples(st.booleans(), PATHS), max_size=60)


def scan(held: dict[str, object], top: str) -> set[str]:
    return {p for p in held if p.startswith(top + "/")}


@settings(max_examples=300, deadline=None)
@given(STEPS, PATHS)
def test_what_is_below_a_path_is_what_a_scan_finds(steps, top) -> None:
    index, held = PathIndex(), {}
    for put, path in steps:
        if put:
            held[path] = True
            index.add(path)
        elif held.pop(path, None) is not None:
            index.remove(path, held)
        for probe in {top, "t", path}:
            assert {p for p in index.under(probe) if p in held} == scan(held, probe)
    for path in list(held):  # all dropped: no link is left behind
        del held[path]
        index.remove(path, held)
    assert index.under("t") == []
