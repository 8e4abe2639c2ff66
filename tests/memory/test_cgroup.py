"""The cgroup reader on stand-in trees: v1 and v2 layouts, parents' limits, PSI, bad files.

Each test writes a filesystem of its own under ``tmp_path`` (``proc/self/cgroup``,
``proc/self/mountinfo`` and the mounted hierarchy, in the kernel's formats) and points
the reader at it through its ``root``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stalwart.memory import CgroupReader, MemorySampler, locate_cgroup, read_pressure

MiB = 2**20
V1_NO_LIMIT = "9223372036854771712"
PSI = "some avg10=12.50 avg60=3.10 avg300=0.80 total=987654\nfull avg10=4.00 avg60=1.00 avg300=0.20 total=123456\n"  # noqa: E501

# a hybrid host (like many still in service): v1 controllers, a v2 tree without memory
V1_PROC = """12:pids:/user.slice/user-0.slice
9:blkio:/user.slice
4:memory:{path}
1:name=systemd:/user.slice/user-0.slice/session-1.scope
0::/user.slice/user-0.slice/session-1.scope
"""
V1_MOUNTS = """22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 25 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids
36 25 0:32 {root} {point} rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
"""  # noqa: E501
V2_MOUNTS = """22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
26 22 0:24 {root} {point} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""  # noqa: E501


def v1_stat(inactive: int = 0, hierarchical: str = V1_NO_LIMIT) -> str:
    return (
        f"cache 0\nrss 0\ninactive_file {inactive // 2}\nhierarchical_memory_limit {hierarchical}\n"
        f"hierarchical_memsw_limit {V1_NO_LIMIT}\ntotal_cache 0\ntotal_inactive_file {inactive}\n"
    )


def with_ancestors(groups, path, mount_root, unlimited):
    """Every cgroup from ``path`` up to the mount's top, those not given with no limit."""
    full = dict(groups)
    shown = path[len(mount_root.rstrip("/")) :] or "/"
    parts = [p for p in shown.split("/") if p]
    for depth in range(len(parts) + 1):
        full.setdefault("/" + "/".join(parts[:depth]), (unlimited, 0, 0))
    return full


def v1_host(
    root: Path,
    path: str,
    groups: dict[str, tuple[str, int, int]],  # cgroup path -> (limit, usage, inactive file)
    point: str = "/sys/fs/cgroup/memory",
    mount_root: str = "/",
    hierarchical: str = V1_NO_LIMIT,
) -> Path:
    """A cgroup v1 host: the memory hierarchy mounted at ``point`` showing ``mount_root``."""
    (root / "proc/self").mkdir(parents=True, exist_ok=True)
    (root / "proc/self/cgroup").write_text(V1_PROC.format(path=path))
    escaped = point.replace(" ", "\\040")
    (root / "proc/self/mountinfo").write_text(V1_MOUNTS.format(root=mount_root, point=escaped))
    top = root / point.lstrip("/")
    for group, (limit, usage, inactive) in with_ancestors(
        groups, path, mount_root, V1_NO_LIMIT
    ).items():
        folder = top / group.lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "memory.limit_in_bytes").write_text(limit + "\n")
        (folder / "memory.usage_in_bytes").write_text(f"{usage}\n")
        mine = group == path or (mount_root != "/" and group == "/")
        (folder / "memory.stat").write_text(v1_stat(inactive, hierarchical if mine else limit))
        (folder / "memory.use_hierarchy").write_text("1\n")
    return top


def v2_host(
    root: Path,
    path: str,
    groups: dict[str, tuple[str, int, int]],  # cgroup path -> (memory.max, current, inactive)
    point: str = "/sys/fs/cgroup",
    mount_root: str = "/",
    controllers: str = "cpuset cpu io memory pids",
) -> Path:
    """A cgroup v2 host; the root cgroup gets no memory.max (as on a real kernel)."""
    (root / "proc/self").mkdir(parents=True, exist_ok=True)
    (root / "proc/self/cgroup").write_text(f"0::{path}\n")
    (root / "proc/self/mountinfo").write_text(V2_MOUNTS.format(root=mount_root, point=point))
    top = root / point.lstrip("/")
    top.mkdir(parents=True, exist_ok=True)
    (top / "cgroup.controllers").write_text(controllers + "\n")
    for group, (limit, current, inactive) in with_ancestors(
        groups, path, mount_root, "max"
    ).items():
        folder = top / group.lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        if group != "/":
            (folder / "memory.max").write_text(limit + "\n")
            (folder / "memory.high").write_text("max\n")
            (folder / "memory.current").write_text(f"{current}\n")
        (folder / "memory.stat").write_text(f"anon 0\nfile 0\ninactive_file {inactive}\n")
        (folder / "memory.pressure").write_text(PSI)
    return top


KUBE = "/kubepods/pod1/c1"


def test_v1_limit_with_usage_less_the_inactive_page_cache(tmp_path):
    v1_host(
        tmp_path,
        KUBE,
        {
            "/": (V1_NO_LIMIT, 4000 * MiB, 0),
            "/kubepods": (V1_NO_LIMIT, 900 * MiB, 0),
            "/kubepods/pod1": (V1_NO_LIMIT, 400 * MiB, 0),
            KUBE: (str(512 * MiB), 300 * MiB, 100 * MiB),
        },
        hierarchical=str(512 * MiB),
    )
    group = CgroupReader(tmp_path).read()
    assert (group.version, group.path, group.limit) == (1, KUBE, 512 * MiB)
    assert group.limit_file == "memory.limit_in_bytes"
    assert group.used == 200 * MiB  # usage_in_bytes - total_inactive_file (not inactive_file)
    assert group.describe() == f"cgroup v1 {KUBE}" and group.notes == ()
    assert [level.path for level in group.levels][:4] == [KUBE, "/kubepods/pod1", "/kubepods", "/"]


def test_the_sampler_reports_a_v1_limit_and_where_it_came_from(tmp_path):
    v1_host(tmp_path, KUBE, {KUBE: (str(512 * MiB), 300 * MiB, 100 * MiB)})
    sample = MemorySampler(root=tmp_path).sample()
    assert (sample.source, sample.limit, sample.used) == ("cgroup", 512 * MiB, 200 * MiB)
    assert sample.percent == pytest.approx(100 * 200 / 512)
    assert sample.limit_from == f"cgroup v1 {KUBE}"


def test_a_budget_above_the_cgroup_limit_is_used_but_said_and_warned_of(tmp_path, caplog):
    """The kernel stops the tree at the cgroup's limit whatever the budget: a budget above
    it is measured against as asked, and each sample, and a warning, say so."""
    v1_host(tmp_path, KUBE, {KUBE: (str(512 * MiB), 300 * MiB, 100 * MiB)})
    with caplog.at_level(logging.WARNING, logger="stalwart.memory"):
        sample = MemorySampler(budget=2 * 1024 * MiB, root=tmp_path).sample()
    assert (sample.source, sample.limit) == ("budget", 2 * 1024 * MiB)
    said = f"2048 MiB is above the limit of cgroup v1 {KUBE} (512 MiB): the kernel stops"
    assert sample.notes and sample.notes[0].startswith(said)
    assert [r.getMessage() for r in caplog.records] == [f"memory_budget: {sample.notes[0]}"]
    below = MemorySampler(budget=256 * MiB, root=tmp_path).sample()
    assert (below.source, below.notes) == ("budget", ())


def test_a_limit_file_that_cannot_be_read_is_named_as_why_the_machine_is_used(tmp_path):
    v1_host(tmp_path, KUBE, {KUBE: ("lots", 300 * MiB, 0)})
    sample = MemorySampler(root=tmp_path).sample()
    assert sample.source == "system"
    assert sample.limit_from.startswith(f"machine (cgroup v1 {KUBE}: ")
    assert "memory.limit_in_bytes" in sample.limit_from and sample.notes


def test_v1_huge_limit_is_no_limit_and_the_machine_is_used_and_named(tmp_path):
    v1_host(tmp_path, KUBE, {"/": (V1_NO_LIMIT, 10, 0), KUBE: (V1_NO_LIMIT, 300 * MiB, 0)})
    assert CgroupReader(tmp_path).read().limit is None
    sample = MemorySampler(root=tmp_path).sample()
    assert sample.source == "system"
    assert sample.limit_from == f"machine (cgroup v1 {KUBE} sets no limit)"


def test_v1_a_parents_smaller_limit_applies(tmp_path):
    v1_host(
        tmp_path,
        KUBE,
        {
            "/": (V1_NO_LIMIT, 4000 * MiB, 0),
            "/kubepods": (V1_NO_LIMIT, 900 * MiB, 0),
            "/kubepods/pod1": (str(256 * MiB), 200 * MiB, 8 * MiB),
            KUBE: (V1_NO_LIMIT, 150 * MiB, 0),
        },
    )
    group = CgroupReader(tmp_path).read()
    assert (group.path, group.limit, group.used) == ("/kubepods/pod1", 256 * MiB, 192 * MiB)
    assert group.describe() == f"cgroup v1 /kubepods/pod1 (a parent of {KUBE})"


def test_v1_a_parent_shared_with_busy_siblings_can_be_nearer_its_limit(tmp_path):
    v1_host(
        tmp_path,
        KUBE,
        {
            "/kubepods/pod1": (str(1024 * MiB), 1000 * MiB, 0),  # 98 %: the siblings fill it
            KUBE: (str(512 * MiB), 100 * MiB, 0),  # 20 %
        },
    )
    group = CgroupReader(tmp_path).read()
    assert (group.path, group.limit, group.used) == ("/kubepods/pod1", 1024 * MiB, 1000 * MiB)


def test_v1_a_parent_without_use_hierarchy_does_not_limit_its_children(tmp_path):
    top = v1_host(
        tmp_path,
        KUBE,
        {"/kubepods/pod1": (str(64 * MiB), 60 * MiB, 0), KUBE: (V1_NO_LIMIT, 10 * MiB, 0)},
    )
    (top / "kubepods/pod1/memory.use_hierarchy").write_text("0\n")
    assert CgroupReader(tmp_path).read().limit is None


def test_v1_in_a_container_the_hierarchical_limit_shows_the_limits_above_the_mount(tmp_path):
    # the container sees its own cgroup as the mount's top: its parents are not there
    v1_host(
        tmp_path,
        "/docker/abc",
        {"/": (V1_NO_LIMIT, 300 * MiB, 50 * MiB)},
        mount_root="/docker/abc",
        hierarchical=str(1024 * MiB),
    )
    group = CgroupReader(tmp_path).read()
    assert (group.limit, group.used, group.limit_file) == (
        1024 * MiB,
        250 * MiB,
        "hierarchical_memory_limit",
    )
    assert group.describe().startswith("cgroup v1 /docker/abc (hierarchical_memory_limit")


def test_the_mount_point_comes_from_mountinfo_spaces_and_all(tmp_path):
    point = "/run/cg roups/mem"
    v1_host(tmp_path, KUBE, {KUBE: (str(128 * MiB), 10 * MiB, 0)}, point=point)
    place, notes = locate_cgroup(tmp_path)
    assert place.folder == str(tmp_path / point.lstrip("/") / KUBE.lstrip("/")) and notes == []
    assert CgroupReader(tmp_path).read().limit == 128 * MiB


def test_v2_limit_and_a_parents_smaller_one(tmp_path):
    v2_host(
        tmp_path,
        "/a/b/c",
        {
            "/": ("", 0, 0),
            "/a": ("max", 900 * MiB, 0),
            "/a/b": (str(300 * MiB), 200 * MiB, 20 * MiB),
            "/a/b/c": (str(600 * MiB), 100 * MiB, 0),
        },
    )
    group = CgroupReader(tmp_path).read()
    assert (group.version, group.path, group.limit) == (2, "/a/b", 300 * MiB)
    assert group.used == 180 * MiB and group.limit_file == "memory.max"
    assert group.notes == ()  # the root cgroup's missing memory.max is expected
    assert group.describe() == "cgroup v2 /a/b (a parent of /a/b/c)"


def test_v2_memory_high_counts_when_lower(tmp_path):
    top = v2_host(tmp_path, "/svc", {"/svc": (str(600 * MiB), 100 * MiB, 0)})
    (top / "svc/memory.high").write_text(f"{400 * MiB}\n")
    group = CgroupReader(tmp_path).read()
    assert (group.limit, group.limit_file) == (400 * MiB, "memory.high")


def test_v2_in_a_namespace_the_mount_shows_the_containers_own_cgroup(tmp_path):
    top = v2_host(tmp_path, "/", {"/": ("", 0, 0)})
    (top / "memory.max").write_text(f"{256 * MiB}\n")  # the namespace's root is not the host's
    (top / "memory.current").write_text(f"{64 * MiB}\n")
    sample = MemorySampler(root=tmp_path).sample()
    assert (sample.limit, sample.limit_from) == (256 * MiB, "cgroup v2 /")


def test_a_v2_tree_without_the_memory_controller_is_not_taken(tmp_path):
    v2_host(tmp_path, "/svc", {"/svc": (str(600 * MiB), 1, 0)}, controllers="cpu pids")
    (tmp_path / "sys/fs/cgroup/svc/memory.current").unlink()
    reader = CgroupReader(tmp_path)
    assert reader.place is None
    assert reader.notes == ["cgroup v2 at /sys/fs/cgroup: no memory controller"]
    assert MemorySampler(root=tmp_path).sample().limit_from == (
        "machine (cgroup v2 at /sys/fs/cgroup: no memory controller)"
    )


def test_without_cgroup_files_the_machine_is_used_and_says_why(tmp_path):
    sample = MemorySampler(root=tmp_path).sample()
    assert sample.source == "system"
    assert sample.limit_from.startswith("machine (") and "proc/self/cgroup: missing" in (
        sample.limit_from
    )


def test_psi_comes_from_the_v2_cgroup_else_from_proc(tmp_path):
    v2 = tmp_path / "v2"
    v2_host(v2, "/svc", {"/svc": (str(600 * MiB), 100 * MiB, 0)})
    sampler = MemorySampler(root=v2)
    assert sampler.pressure_from == str(v2 / "sys/fs/cgroup/svc/memory.pressure")
    sample = sampler.sample()
    assert (sample.pressure.some_avg10, sample.pressure.full_avg60) == (12.5, 1.0)
    assert (sample.pressure.some_total_us, sample.pressure.full_total_us) == (987654, 123456)

    v1 = tmp_path / "v1"
    v1_host(v1, KUBE, {KUBE: (str(512 * MiB), 1, 0)})
    (v1 / "proc/pressure").mkdir()
    (v1 / "proc/pressure/memory").write_text(PSI)
    assert MemorySampler(root=v1).sample().pressure_from == str(v1 / "proc/pressure/memory")


def test_without_a_psi_file_the_sample_says_none_and_nothing_breaks(tmp_path):
    v1_host(tmp_path, KUBE, {KUBE: (str(512 * MiB), 1, 0)})
    sample = MemorySampler(root=tmp_path).sample()
    assert (sample.pressure, sample.pressure_from, sample.source) == (None, "none", "cgroup")


def test_a_psi_file_that_cannot_be_read_is_named_and_nothing_breaks(tmp_path):
    v1_host(tmp_path, KUBE, {KUBE: (str(512 * MiB), 1, 0)})
    (tmp_path / "proc/pressure").mkdir()
    (tmp_path / "proc/pressure/memory").write_text("not psi\n")
    sample = MemorySampler(root=tmp_path).sample()
    assert sample.pressure is None and sample.source == "cgroup"
    assert sample.pressure_from == f"none ({tmp_path}/proc/pressure/memory cannot be read)"


def test_a_malformed_file_is_logged_once_and_the_parents_limit_still_applies(tmp_path, caplog):
    top = v1_host(
        tmp_path,
        KUBE,
        {"/kubepods/pod1": (str(256 * MiB), 100 * MiB, 0), KUBE: ("lots", 50 * MiB, 0)},
    )
    sampler = MemorySampler(root=tmp_path)
    with caplog.at_level("WARNING", logger="stalwart.memory"):
        first, second = sampler.sample(), sampler.sample()
    bad = top / KUBE.lstrip("/") / "memory.limit_in_bytes"
    assert first.limit == 256 * MiB and first.notes == (f"{bad}: not a number: 'lots'",)
    assert second.notes == first.notes
    warned = [r.getMessage() for r in caplog.records if r.name == "stalwart.memory"]
    assert warned == [f"memory limit: {bad}: not a number: 'lots' (no limit taken from it)"]


# -- malformed contents: never a crash, never a limit from a bad file -----------------------------
CONTENT = st.one_of(
    st.sampled_from(["max", "", "-1", "12abc", "1e9", "0x10", " 42 ", V1_NO_LIMIT, "\x00"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.binary(max_size=24),
)
V1_FILES = ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory.stat")
V2_FILES = ("memory.max", "memory.high", "memory.current", "memory.stat")


def as_text(content: bytes | str | None) -> str | None:
    return content.decode("utf-8", "replace") if isinstance(content, bytes) else content


def expected_limit(content: bytes | str | None) -> tuple[int | None, bool]:
    """What a limit file holding ``content`` (None: missing) gives, and whether a note
    should say why it gave none (missing, not a number, negative)."""
    text = as_text(content)
    if text is None:
        return None, True
    if text.strip() == "max":
        return None, False
    try:
        value = int(text.strip())
    except ValueError:
        return None, True
    if value < 0:
        return None, True
    return (value, False) if value < 2**62 else (None, False)  # huge: v1's "no limit"


def write(folder: Path, name: str, content: bytes | str | None) -> None:
    path = folder / name
    if content is None:
        path.unlink(missing_ok=True)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    version=st.sampled_from([1, 2]),
    contents=st.lists(st.one_of(st.none(), CONTENT), min_size=4, max_size=4),
)
@example(version=2, contents=[None, "0", " 42 ", None])  # a limit of 0: was ZeroDivisionError
@example(version=1, contents=["4294967297", "10485761", None, None])  # usage above its parent's
def test_any_file_contents_give_a_limit_or_no_limit_from_that_level_with_a_note(version, contents):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        parent = 4096 * MiB  # a sound limit above, which a bad file below must not hide
        if version == 1:
            top = v1_host(root, "/p/c", {"/p": (str(parent), 10 * MiB, 0), "/p/c": ("1", 1, 0)})
            names = V1_FILES
        else:
            top = v2_host(root, "/p/c", {"/p": (str(parent), 10 * MiB, 0), "/p/c": ("1", 1, 0)})
            names = V2_FILES
        leaf = top / "p/c"
        for name, content in zip(names, contents, strict=False):
            write(leaf, name, content)
        group = CgroupReader(root).read()  # never raises
        own = group.levels[0]
        limit_files = names[:2] if version == 2 else names[:1]
        expected = [expected_limit(content) for content in contents[: len(limit_files)]]
        limits = [value for value, _noted in expected if value is not None]
        assert own.limit == (min(limits) if limits else None)
        assert group.limit is not None and group.limit <= parent
        for name, (_value, noted) in zip(limit_files, expected, strict=True):
            if noted:
                assert any(note.startswith(str(leaf / name)) for note in group.notes), group.notes
        sample = MemorySampler(root=root).sample()
        assert sample.percent >= 0 and sample.limit > 0


@settings(max_examples=150, deadline=None)
@given(
    proc=st.one_of(st.text(max_size=80), st.sampled_from(["4:memory:", "0::", "0::/../x"])),
    mounts=st.one_of(
        st.text(max_size=120),
        st.sampled_from(
            [
                "1 2 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw",
                "1 2 0:1 /x /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
                "1 2 0:1 / /../../etc rw - cgroup cgroup rw,memory",
                "1 2 - cgroup",
            ]
        ),
    ),
)
def test_any_proc_files_locate_a_real_folder_or_nothing_with_a_note(proc, mounts):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "proc/self").mkdir(parents=True)
        (root / "proc/self/cgroup").write_text(proc, errors="surrogateescape")
        (root / "proc/self/mountinfo").write_text(mounts, errors="surrogateescape")
        (root / "sys/fs/cgroup/memory/x").mkdir(parents=True)
        place, notes = locate_cgroup(root)
        if place is None:
            assert notes
        else:
            folder = Path(place.folder)
            assert folder.is_dir() and (folder == root or root in folder.parents)
        assert MemorySampler(root=root).sample().limit > 0


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_any_psi_text_gives_figures_in_range_or_none(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "memory"
        path.write_text(text, errors="surrogateescape")
        pressure = read_pressure(path)
        if pressure is not None:
            assert 0 <= pressure.some_avg10 <= 100 and 0 <= pressure.full_avg10 <= 100
            assert pressure.some_total_us >= 0
