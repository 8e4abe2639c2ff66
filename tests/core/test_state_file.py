"""The checkpoint file: the newest whole state wins, torn writes and earlier runs do not."""

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart.actors._state_file import _HEADER, StateFile, drop_earlier, latest


def test_the_newest_state_of_the_newest_earlier_instance_is_read(tmp_path):
    d = str(tmp_path)
    first, second = StateFile(d, "s/w.2", 1), StateFile(d, "s/w.2", 2)
    first.write({"n": 1}, (("r1", "one"),))
    first.write({"n": 2}, (("r1", "one"), ("r2", "two")))
    assert latest(d, "s/w.2", 2) == (1, {"n": 2}, (("r1", "one"), ("r2", "two")), ())
    second.write({"n": 3}, ())
    assert latest(d, "s/w.2", 3) == (2, {"n": 3}, (), ())
    assert latest(d, "s/w.2", 1) is None  # an instance never reads its own or later files
    assert latest(d, "s/w", 9) is None  # another path (a prefix of this one) has none
    first.close()
    second.close()


def test_an_instance_drops_earlier_files_once_it_has_written_its_own(tmp_path):
    d = str(tmp_path)
    StateFile(d, "a/b", 1).write(1, ())
    StateFile(d, "a/bc", 1).write(1, ())
    assert sorted(os.listdir(tmp_path / "a" / "b")) == ["1.a", "1.b"]  # two slots each
    StateFile(d, "a/b", 2).write(2, ())
    assert sorted(os.listdir(tmp_path / "a" / "b")) == ["2.a", "2.b"]
    assert latest(d, "a/bc", 2) == (1, 1, (), ())  # another path's files are left alone
    drop_earlier(d, "a/bc", 5)
    assert latest(d, "a/bc", 5) is None


def test_a_path_s_files_go_with_what_is_below_it_and_no_name_leaves_its_folder(tmp_path):
    from stalwart.actors._state_file import drop_under

    d = str(tmp_path)
    for path in ("a/b", "a/b/c", "a/bc", "a/b.c", "a/.."):
        StateFile(d, path, 1).write(path, ())
    assert latest(d, "a/..", 2) == (1, "a/..", (), ())  # (".." is a name here, no more)
    assert sorted(os.listdir(tmp_path)) == ["a"]
    drop_under(d, "a/b")
    assert latest(d, "a/b", 2) is None and latest(d, "a/b/c", 2) is None
    assert [latest(d, p, 2)[1] for p in ("a/bc", "a/b.c", "a/..")] == ["a/bc", "a/b.c", "a/.."]


def test_an_incarnation_number_that_comes_round_again_reads_and_then_beats_its_namesake(
    tmp_path,
):
    # a supervisor killed before the root heard of its child's last instance starts the
    # next one with the same number: it reads what its namesake kept, and its own writes win
    d = str(tmp_path)
    namesake = StateFile(d, "s/w", 4)
    for n in (1, 2, 3):
        namesake.write(n, ())
    namesake.close()
    assert latest(d, "s/w", 5) == (4, 3, (), ())
    again = StateFile(d, "s/w", 4)
    again.write("mine", ())
    again.close()
    assert latest(d, "s/w", 5) == (4, "mine", (), ())


def test_a_missing_directory_has_no_state():
    assert latest("/nonexistent/stalwart-state", "s/w", 5) is None


@settings(max_examples=200, deadline=None)
@given(
    states=st.lists(st.integers(), min_size=1, max_size=8),
    cut=st.integers(min_value=0, max_value=200),
)
def test_a_write_torn_by_a_kill_leaves_the_state_before_it(tmp_path_factory, states, cut):
    d = str(tmp_path_factory.mktemp("state"))
    f = StateFile(d, "s/w", 1)
    for state in states:
        f.write(state, (("r", state),))
    f.close()
    # the last write is torn at byte ``cut`` (a kill in the middle of it)
    last = f.files[len(states) % 2]
    data = last.read_bytes()  # (an earlier, longer record may have left bytes after it)
    record = _HEADER.size + _HEADER.unpack_from(data)[2]
    torn = cut < record
    last.write_bytes(data[:cut] if torn else data)
    found = latest(d, "s/w", 2)
    if not torn:
        assert found == (1, states[-1], (("r", states[-1]),), ())
    elif len(states) > 1:
        assert found == (1, states[-2], (("r", states[-2]),), ())
    else:
        assert found is None


def test_a_new_state_folder_sweeps_those_whose_starting_process_died(tmp_path):
    import subprocess
    import sys

    from stalwart.actors._state_file import drop_state, new_state_dir

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f"stalwart-state-{gone.pid}-abc"
    live = tmp_path / f"stalwart-state-{os.getpid()}-def"
    stale.mkdir()
    live.mkdir()
    made = new_state_dir(tmp_path)
    assert not stale.exists() and live.exists()
    assert os.path.basename(made).startswith(f"stalwart-state-{os.getpid()}-")
    drop_state(made)
    assert not os.path.exists(made)


PATHS = st.sampled_from(["a", "a/b", "a/b/c", "a/bc", "ab", "x/y"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), PATHS, st.integers(1, 4)),
        st.tuples(st.just("drop_earlier"), PATHS, st.integers(1, 5)),
        st.tuples(st.just("drop_under"), PATHS, st.just(0)),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(ops=OPS)
def test_the_in_process_table_keeps_what_a_plain_table_would(ops):
    """The in-process table (by path, counting the paths below each) answers as a plain
    table of ``(path, incarnation) -> state`` scanned whole would."""
    from collections import Counter

    from stalwart.actors._state_file import (
        _TABLES,
        _above,
        drop_state,
        drop_under,
        new_table,
        open_state,
    )

    directory = new_table(f"model-{id(ops)}")
    plain: dict[tuple[str, int], int] = {}
    try:
        for n, (op, path, number) in enumerate(ops):
            if op == "write":
                open_state(directory, path, number).write(n, ())
                plain = {k: v for k, v in plain.items() if not (k[0] == path and k[1] < number)}
                plain[(path, number)] = n
            elif op == "drop_earlier":
                drop_earlier(directory, path, number)
                plain = {k: v for k, v in plain.items() if not (k[0] == path and k[1] < number)}
            else:
                drop_under(directory, path)
                below = path + "/"
                plain = {
                    k: v for k, v in plain.items() if k[0] != path and not k[0].startswith(below)
                }
            for p in ("a", "a/b", "a/b/c", "a/bc", "ab", "x/y"):
                mine = sorted(i for q, i in plain if q == p)
                found = latest(directory, p, 99)
                assert (
                    (found[0], found[1]) == (mine[-1], plain[(p, mine[-1])])
                    if mine
                    else found is None
                )
            table = _TABLES[directory]  # (the paths below each, counted as kept)
            assert table.below == dict(Counter(a for q in table.states for a in _above(q)))
    finally:
        drop_state(directory)
