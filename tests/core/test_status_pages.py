"""The live tree read in pages and in brief: ``System.status(path, offset, limit)`` and
``System.summary(path, limit)``, on both bases; bad input named; the dashboard's poll
and the live view bounded on a tree larger than they show."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from stalwart import BadMessage, Child, Supervisor, UnknownPath
from stalwart.cli._view import LiveScreen
from stalwart.telemetry._api import TREE_FLAGGED, TREE_ROWS, Api, SystemBackend
from tests.support import StopSelf, Worker, wait_for


def shop(groups: int = 3, replicas: int = 4) -> Supervisor:
    return Supervisor(
        "shop",
        children=[
            Child("db", Worker),
            *(
                Supervisor(f"g{i}", children=[Child("w", Worker, replicas=replicas)])
                for i in range(groups)
            ),
            Child("temp", Worker, restart="temporary"),
        ],
    )


def polled(api: Api) -> dict[str, Any]:
    """The page's poll, once the figures it reads in the background are in (so no read is
    under way when the test's system stops)."""
    return wait_for(lambda: (s := api.dashboard(query={}, body=b""))["figures"] == "ready" and s)


def test_a_page_of_a_subtree_comes_in_tree_order_with_the_number_of_rows_in_all(make_system, base):
    system = make_system(shop(), base=base)
    whole = system.status()
    assert whole.total == len(whole) and whole.total >= 1 + 1 + 3 * 5 + 1
    page = system.status("shop/g1", offset=2, limit=3)
    assert [s.path for s in page] == ["shop/g1/w.1", "shop/g1/w.2", "shop/g1/w.3"]
    assert page.total == 5 and page.phase == "running"
    assert [s.path for s in system.status(limit=2)] == [s.path for s in whole][:2]
    assert list(system.status("shop/g2", offset=5)) == []
    assert [s.path for s in system.status("shop/db")] == ["shop/db"]


def test_a_summary_counts_by_state_and_kind_and_lists_what_needs_a_look(make_system):
    system = make_system(shop())
    brief = system.summary("shop")
    assert brief.counts == {"running": 1 + 1 + 3 * 5 + 1}
    assert brief.kinds == {"supervisor": 4, "actor": 14}
    assert brief.unhealthy == () and brief.unhealthy_total == 0
    system.tell("shop/temp", StopSelf())  # a temporary child that stopped: not restarted
    wait_for(lambda: system.summary("shop").counts.get("stopped") == 1)
    brief = system.summary("shop", limit=5)
    assert [s.path for s in brief.unhealthy] == ["shop/temp"] and brief.unhealthy_total == 1
    assert brief.unhealthy[0].state == "stopped" and brief.total == 18
    assert system.summary("shop/g0").counts == {"running": 5}


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.status(offset=-1), "offset"),
        (lambda s: s.status(limit=-5), "limit"),
        (lambda s: s.status(limit="ten"), "limit"),
        (lambda s: s.summary(limit=-1), "limit"),
    ],
)
def test_a_bad_offset_or_limit_is_refused_naming_the_field(make_system, call, field):
    system = make_system(shop(1, 2))
    with pytest.raises(BadMessage, match=f"\\$\\.{field}"):
        call(system)


def test_an_unknown_path_is_refused(make_system):
    system = make_system(shop(1, 2))
    with pytest.raises(UnknownPath, match="shop/nope"):
        system.status("shop/nope")
    with pytest.raises(UnknownPath, match="shop/nope"):
        system.summary("shop/nope")


def test_the_dashboard_shows_a_large_tree_bounded_with_its_counts_and_what_needs_a_look(
    make_system,
):
    groups = (TREE_ROWS + 200) // 100
    system = make_system(shop(groups, 99))  # (the temporary child comes after every group)
    api = Api(SystemBackend(system), "token")
    snapshot = polled(api)
    total = len(system.status())  # (the system's own services included)
    assert total > system.summary("shop").total == 1 + 1 + groups * 100 + 1
    assert snapshot["actors"]["total"] == total and len(snapshot["tree"]) == TREE_ROWS
    assert snapshot["actors"]["counts"] == {"running": total}
    system.tell("shop/temp", StopSelf())
    wait_for(lambda: system.summary().counts.get("stopped") == 1)
    snapshot = polled(api)
    shown = {n["path"]: n for n in snapshot["tree"]}
    assert len(shown) == TREE_ROWS + 1 and shown["shop/temp"]["state"] == "stopped"
    assert snapshot["actors"]["unhealthy"] == 1 and TREE_FLAGGED >= 1


def test_a_small_tree_is_on_the_dashboard_whole(make_system):
    system = make_system(shop())
    snapshot = polled(Api(SystemBackend(system), "token"))
    assert [n["path"] for n in snapshot["tree"]] == [s.path for s in system.status()]
    assert snapshot["actors"]["shown"] == snapshot["actors"]["total"] == len(snapshot["tree"])


_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _Screen(io.StringIO):
    rows, columns = 12, 100


def test_the_live_view_reads_a_screenful_and_lists_what_needs_a_look_first(
    make_system, monkeypatch
):
    monkeypatch.setattr("stalwart.cli._view.terminal_size", lambda out: (out.rows, out.columns))
    system = make_system(shop(3, 20))
    system.tell("shop/temp", StopSelf())
    wait_for(lambda: system.summary().counts.get("stopped") == 1)
    out = _Screen()
    with LiveScreen(system, out, 0.0, []) as view:
        view.update()
    lines = [line for line in _ESCAPE.sub("", out.getvalue()).split("\n") if line.strip()]
    assert len(lines) <= _Screen.rows
    assert "in the tree (running " in lines[1] and "stopped 1); 1 need a look" in lines[1]
    assert lines[2].startswith("path") and lines[3].startswith("shop/temp ")
    assert "stopped" in lines[3]


def test_children_added_at_run_time_come_in_tree_order_in_pages_as_in_the_whole(make_system):
    system = make_system(shop(2, 3))
    assert system.start_child("shop/g0", Child("extra", Worker)) == "shop/g0/extra"
    whole = [s.path for s in system.status()]
    assert whole.index("shop/g0/extra") < whole.index("shop/g1")  # (under its supervisor)
    page = system.status("shop/g0")
    assert [s.path for s in page] == [p for p in whole if p.startswith("shop/g0")]
    assert [s.path for s in system.status(offset=3, limit=4)] == whole[3:7]
