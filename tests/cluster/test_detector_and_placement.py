"""The failure detector, placement rules and cluster settings, without a network."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart import Child, Supervisor, start
from stalwart.actors._placement import AVOID, NODE, parse_capability, placeable, satisfies
from stalwart.cluster import PhiAccrual, join
from stalwart.supervisors.spec import SpecError
from tests.support import Worker

intervals = st.lists(st.floats(0.2, 0.8), min_size=5, max_size=100)


@settings(max_examples=200, deadline=None)
@given(intervals, st.floats(0.0, 5.0), st.floats(0.0, 5.0))
def test_phi_only_grows_with_silence(gaps, a, b):
    d = PhiAccrual()
    t = 0.0
    for gap in gaps:
        t += gap
        d.heartbeat(t)
    lo, hi = sorted((a, b))
    assert 0.0 <= d.phi(t + lo) <= d.phi(t + hi)


@settings(max_examples=200, deadline=None)
@given(intervals)
def test_heartbeats_as_regular_as_before_are_never_suspected(gaps):
    d = PhiAccrual(threshold=8.0)
    t = 0.0
    for gap in gaps:
        t += gap
        d.heartbeat(t)
        assert d.available(t)
    assert d.available(t + max(gaps))  # the longest usual gap is no reason to suspect it


@settings(max_examples=100, deadline=None)
@given(intervals)
def test_a_long_silence_is_always_declared(gaps):
    d = PhiAccrual(threshold=8.0, acceptable_pause_s=1.0)
    t = 0.0
    for gap in gaps:
        t += gap
        d.heartbeat(t)
    seen = [0.5, 0.5, *gaps]  # the detector starts from two intervals of first_interval_s
    mean = sum(seen) / len(seen)
    std = max(math.sqrt(sum((g - mean) ** 2 for g in seen) / len(seen)), 0.1)
    assert not d.available(t + mean + 1.0 + 8 * std)


def test_with_half_second_heartbeats_a_node_is_declared_after_about_two_seconds():
    d = PhiAccrual(threshold=8.0, acceptable_pause_s=1.0, first_interval_s=0.5)
    for i in range(1, 41):
        d.heartbeat(i * 0.5)
    assert d.available(20.0 + 1.5) and not d.available(20.0 + 2.5)


def test_jittery_heartbeats_widen_the_margin():
    steady, jittery = PhiAccrual(), PhiAccrual()
    for i in range(1, 61):
        steady.heartbeat(i * 0.5)
        jittery.heartbeat(i * 0.5 + (0.3 if i % 2 else -0.3))
    assert jittery.phi(30.3 + 2.0) < steady.phi(30.0 + 2.0)


@pytest.mark.parametrize(
    ("caps", "reqs", "ok"),
    [
        ({"gpu": 2}, {"gpu": 1}, True),
        ({"gpu": 1}, {"gpu": 2}, False),
        ({"zone": "b"}, {"zone": "b"}, True),
        ({"zone": "b"}, {"zone": "c"}, False),
        ({}, {"zone": "c"}, False),
        ({"ssd": True}, {"ssd": True}, True),
        ({"ssd": 1}, {"ssd": True}, False),  # a flag is not a count
        ({NODE: "b", "gpu": 1}, {"gpu": 1, AVOID: ("b",)}, False),
        ({NODE: "c", "gpu": 1}, {"gpu": 1, AVOID: ("b",)}, True),
        ({"anything": 1}, None, True),
    ],
)
def test_requirements_are_met_by_equal_values_or_larger_numbers(caps, reqs, ok):
    assert satisfies(caps, reqs) is ok


def test_placeable_lists_live_nodes_that_qualify():
    nodes = {"leader": {}, "b": {"gpu": 1}, "c": {"gpu": 4}}
    assert placeable({"gpu": 2}, nodes, ()) == ["c"]
    assert placeable({"gpu": 1}, nodes, ("b",)) == ["c"]
    assert placeable({"gpu": 1}, nodes, ("b", "c")) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu=1", ("gpu", 1)),
        ("zone=b", ("zone", "b")),
        ("ssd=true", ("ssd", True)),
        ("mem_gb=7.5", ("mem_gb", 7.5)),
    ],
)
def test_capabilities_from_the_command_line(text, expected):
    assert parse_capability(text) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_bad_capability_text_is_refused_with_a_clear_error(text):
    try:
        key, _value = parse_capability(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert key and not key.startswith("stalwart.") and "=" in text


def test_bad_requirements_and_cluster_options_name_the_field():
    with pytest.raises(SpecError, match=r"requires.*expected a string, number or boolean"):
        Child("w", Worker, requires={"gpu": [1]})
    with pytest.raises(SpecError, match=r"requires.*reserved"):
        Child("w", Worker, requires={"stalwart.node": "b"})
    tree = Supervisor("t", children=[Child("w", Worker)])
    with pytest.raises(SpecError, match=r"listen.*not loopback.*trust"):
        start(tree, base="tcp", listen=("10.1.2.3", 1900))
    with pytest.raises(SpecError, match=r'node.*needs base="tcp"'):
        start(tree, node="b")
    with pytest.raises(SpecError, match=r"cluster.*heartbeat_s"):
        start(tree, base="tcp", cluster={"heartbeat_s": 0})
    with pytest.raises(SpecError, match=r"cluster.*fence_s: must be more than two heartbeats"):
        start(tree, base="tcp", cluster={"fence_s": 0.5})  # it would fence between heartbeats
    with pytest.raises(SpecError, match=r"cluster.*fence_margin_s: must be >= 0"):
        start(tree, base="tcp", cluster={"fence_margin_s": -1})
    with pytest.raises(SpecError, match=r"cluster.*unknown field `colour`"):
        start(tree, base="tcp", cluster={"colour": "red"})


def test_joining_needs_a_leader_and_stays_on_loopback_unless_told():
    from stalwart import SystemStopped
    from stalwart.supervisors._bases import free_port

    port = free_port()
    with pytest.raises(SystemStopped, match=f"no leader listens at 127.0.0.1:{port}"):
        join(("127.0.0.1", port), "b")
    with pytest.raises(SpecError, match=r"leader.*not loopback"):
        join(("10.0.0.9", 1900), "b")
    with pytest.raises(SpecError, match=r"node"):
        join(("127.0.0.1", port), "a/b")


def test_a_tree_file_declares_requirements_and_the_cluster(tmp_path):
    from stalwart import TreeFileError, load_tree

    good = tmp_path / "lab.toml"
    good.write_text(
        """
[system]
base = "tcp"
listen = ["127.0.0.1", 1900]
capabilities = { zone = "a" }
cluster = { expect_nodes = ["b"], heartbeat_s = 0.25 }

[supervisor]
name = "lab"
[[supervisor.children]]
name = "trainer"
actor = "tests.support:Worker"
requires = { gpu = 1, zone = "b" }
"""
    )
    tree_file = load_tree(str(good))
    [trainer] = tree_file.tree.children
    assert trainer.requires == {"gpu": 1, "zone": "b"}
    options = tree_file.system_options()
    assert options.node == "leader" and options.listen == ("127.0.0.1", 1900)
    assert options.cluster["expect_nodes"] == ["b"]
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("gpu = 1,", "gpu = [1],"))
    with pytest.raises(TreeFileError, match=r"lab/trainer.*requires"):
        load_tree(str(bad))
