"""Sampling: sizes, cgroup v2 folders and PSI files in the kernel's formats, real processes
(cgroup v1 and parents: test_cgroup.py)."""

import os
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart import SpecError
from stalwart.memory import (
    CgroupReader,
    MemorySampler,
    own_cgroup,
    parse_size,
    read_cgroup,
    read_pressure,
)

CGROUP_STAT = """anon 104857600
file 52428800
kernel 4194304
shmem 0
file_mapped 1048576
active_anon 100000000
inactive_anon 4857600
active_file 20000000
inactive_file 32428800
unevictable 0
"""
PSI = """some avg10=12.50 avg60=3.10 avg300=0.80 total=987654
full avg10=4.00 avg60=1.00 avg300=0.20 total=123456
"""


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512MiB", 512 * 2**20),
        ("2GB", 2 * 10**9),
        ("1.5GiB", int(1.5 * 2**30)),
        ("64 kib", 64 * 1024),
        ("1000", 1000),
        ("512M", 512 * 10**6),  # (the single letters are decimal, as "MB")
        (4096, 4096),
    ],
)
def test_sizes_in_the_usual_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12 parsecs", "unknown unit 'parsecs'"),
        ("-5MiB", "must be > 0"),
        ("-1", "must be > 0"),
        ("99999999999999999999TiB", "must be at most 9223372036854775807 bytes"),
        (10**30, "must be at most"),
        (float("nan"), "must be > 0"),
        (-1, "must be > 0"),
        ("0MB", "must be > 0"),
        (True, "expected a size"),
        ("lots", "expected a size"),
    ],
)
def test_a_bad_size_names_the_option(value, message):
    with pytest.raises(SpecError, match=rf"memory_budget.*{message}"):
        parse_size(value)


@given(st.text(max_size=12))
def test_any_text_is_a_size_or_a_clear_error(text):
    try:
        assert parse_size(text) > 0
    except SpecError as exc:
        assert "memory_budget" in str(exc)


def write_cgroup(folder: Path, current="157286400", high="max", limit="268435456"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "memory.current").write_text(current + "\n")
    (folder / "memory.max").write_text(limit + "\n")
    (folder / "memory.high").write_text(high + "\n")
    (folder / "memory.stat").write_text(CGROUP_STAT)
    return folder


def test_cgroup_usage_leaves_out_the_inactive_page_cache(tmp_path):
    group = read_cgroup(write_cgroup(tmp_path / "g"))
    assert group.limit == 268435456
    assert group.used == 157286400 - 32428800


def test_cgroup_max_means_no_limit_and_high_counts_when_lower(tmp_path):
    assert read_cgroup(write_cgroup(tmp_path / "a", limit="max")).limit is None
    assert read_cgroup(write_cgroup(tmp_path / "b", high="200000000")).limit == 200000000
    assert read_cgroup(tmp_path / "nothing-here") is None


def test_the_sampler_uses_the_cgroup_limit_when_there_is_one(tmp_path):
    folder = write_cgroup(tmp_path / "g")
    sample = MemorySampler(cgroup=folder, pressure_path=None).sample()
    assert sample.source == "cgroup"
    assert sample.limit == 268435456
    assert sample.percent == pytest.approx(100 * (157286400 - 32428800) / 268435456)
    unlimited = write_cgroup(tmp_path / "u", limit="max")
    assert MemorySampler(cgroup=unlimited, pressure_path=None).sample().source == "system"


def test_own_cgroup_follows_the_unified_hierarchy_line(tmp_path):
    write_cgroup(tmp_path / "sys" / "kubepods" / "pod1")
    proc = tmp_path / "cgroup"
    proc.write_text("12:memory:/ignored/v1\n0::/kubepods/pod1\n")
    assert own_cgroup(proc, tmp_path / "sys") == tmp_path / "sys" / "kubepods" / "pod1"
    proc.write_text("12:memory:/only/v1\n")
    assert own_cgroup(proc, tmp_path / "sys") is None


def test_psi_lines_are_read(tmp_path):
    path = tmp_path / "memory"
    path.write_text(PSI)
    pressure = read_pressure(path)
    assert (pressure.some_avg10, pressure.full_avg10) == (12.5, 4.0)
    path.write_text("garbage\n")
    assert read_pressure(path) is None
    assert read_pressure(tmp_path / "missing") is None


def test_the_real_psi_file_parses_when_the_kernel_has_one():
    if not Path("/proc/pressure/memory").exists():
        pytest.skip("this kernel has no /proc/pressure/memory (PSI off)")
    pressure = read_pressure()
    assert pressure is not None and 0 <= pressure.some_avg10 <= 100


def test_the_real_cgroup_parses_on_this_machine_v1_or_v2():
    reader = CgroupReader()
    if reader.place is None:
        pytest.skip(f"no cgroup memory controller is mounted for this process: {reader.notes}")
    group = reader.read()
    assert group is not None and group.levels[0].current > 0 and group.notes == ()
    assert group.own_path == reader.place.path


def test_the_start_of_the_memory_actor_says_what_it_measures_against_once(make_system, caplog):
    from stalwart import Child, Supervisor
    from tests.support import Worker

    with caplog.at_level("INFO", logger="stalwart.memory"):
        system = make_system(Supervisor("s", children=[Child("w", Worker)]))
        sample = system.memory().sample
    said = [r.getMessage() for r in caplog.records if r.name == "stalwart.memory"]
    assert len(said) == 1, said
    assert said[0].startswith(f"memory pressure is measured against {sample.limit_from}:")
    assert sample.limit_from.split(" ")[0] in ("cgroup", "machine")
    assert f"PSI from {sample.pressure_from}" in said[0]


def test_the_machine_figure_uses_available_memory():
    sample = MemorySampler(cgroup=Path("/nonexistent"), pressure_path=None).sample()
    vm = psutil.virtual_memory()
    assert sample.source == "system" and sample.limit == vm.total
    # used is total - available (not total - free); allow for what changed in between
    assert abs(sample.used - (vm.total - vm.available)) < 0.05 * vm.total


def test_a_budget_sums_the_real_rss_of_the_processes():
    me = os.getpid()
    budget = 8 * 2**30
    sampler = MemorySampler(budget, pids=lambda: [me, 999_999_999], pressure_path=None)
    sample = sampler.sample()
    rss = psutil.Process(me).memory_info().rss
    assert sample.source == "budget" and list(sample.processes) == [me]  # the dead pid is left out
    assert abs(sample.used - rss) < 64 * 2**20
    assert sample.percent == pytest.approx(100 * sample.used / budget)


def test_a_process_that_joins_the_actor_systems_session_is_counted_at_once(make_system):
    from stalwart import Child, Supervisor
    from tests.support import Spawn, Spawner

    tree = Supervisor("s", children=[Child("spawner", Spawner)])
    system = make_system(tree, base="multiproc", memory_budget="1TiB")
    before = system.memory().sample.processes
    assert system.status()["s/spawner"].pid in before
    helper = system.ask("s/spawner", Spawn())
    # not only after the periodic listing (every few seconds): at the next sample
    assert helper not in before and helper in system.memory().sample.processes
