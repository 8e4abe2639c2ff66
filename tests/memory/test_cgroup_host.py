"""The cgroup reader against this machine's real cgroup files, and a real limited cgroup.

The second test makes a cgroup v1 child (with a limit) and a grandchild below this
process's own memory cgroup, runs a real Stalwart system in the grandchild, and removes
both afterwards. It needs root and the v1 memory controller, and says so when it skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from stalwart.memory import CgroupReader

ROOT = Path(__file__).resolve().parents[2]
MiB = 2**20


def real_reader() -> CgroupReader:
    reader = CgroupReader()
    if reader.place is None:
        pytest.skip(f"no cgroup memory controller is mounted for this process: {reader.notes}")
    return reader


def number(path: Path) -> int | None:
    """What the kernel's file says, read the plain way: None for no limit."""
    text = path.read_text().strip()
    return None if text == "max" or int(text) >= 2**62 else int(text)


def test_the_reader_agrees_with_what_this_machines_cgroup_files_say():
    reader = real_reader()
    place = reader.place
    folder = Path(place.folder)
    # the folder found is the one the kernel lists this process in
    assert str(os.getpid()) in (folder / "cgroup.procs").read_text().split()
    kernel_path = {
        1: [ln.split(":", 2)[2] for ln in Path("/proc/self/cgroup").read_text().splitlines()
            if "memory" in ln.split(":")[1].split(",")],
        2: [ln[3:] for ln in Path("/proc/self/cgroup").read_text().splitlines()
            if ln.startswith("0::")],
    }[place.version]  # fmt: skip
    assert kernel_path == [place.path]
    group = reader.read()
    limit_name = "memory.limit_in_bytes" if place.version == 1 else "memory.max"
    usage_name = "memory.usage_in_bytes" if place.version == 1 else "memory.current"
    peak_name = "memory.max_usage_in_bytes" if place.version == 1 else "memory.peak"
    level = folder
    for read in group.levels:
        if read.limit_file == "hierarchical_memory_limit":
            stat = dict(ln.split() for ln in (folder / "memory.stat").read_text().splitlines())
            assert read.limit == int(stat["hierarchical_memory_limit"]) < 2**62
            continue
        if (level / limit_name).exists():
            assert read.limit == number(level / limit_name), read
        current = read.current
        if current is not None and (level / peak_name).exists():
            assert 0 < current <= int((level / peak_name).read_text())
        elif current is not None:
            assert current > 0 and (level / usage_name).exists()
        level = level.parent
    assert group.notes == ()


CHILD = """
import json, logging, os, sys
Path = __import__("pathlib").Path
(Path(sys.argv[1]) / "cgroup.procs").write_text(str(os.getpid()))
said = []
class Keep(logging.Handler):
    def emit(self, record):
        said.append(record.getMessage())
logging.getLogger("stalwart.memory").addHandler(Keep())
logging.getLogger("stalwart.memory").setLevel(logging.INFO)
from stalwart import Supervisor, start
from stalwart.testing import wait_until
from tests.support import touched
options = dict(report_path=None, memory_interval_s=0.1, memory={"horizon_s": 0})
with start(Supervisor("t"), **options) as system:
    first = system.memory().sample
    held = touched(max(0, int(first.limit * 0.78) - first.used))
    reports = wait_until(
        lambda: [r for r in system.memory().cleanups if r.trigger != "manual"], timeout=60
    )
    print(json.dumps({
        "limit": first.limit, "limit_from": first.limit_from, "source": first.source,
        "percent": first.percent, "tier": reports[0].tier, "trigger": reports[0].trigger,
        "percent_before": reports[0].percent_before, "said": said,
    }))
"""


def test_a_real_v1_parent_limit_drives_the_tiers_of_a_system_in_its_child(tmp_path):
    reader = real_reader()
    if reader.place.version != 1:
        pytest.skip("this test makes its limited cgroup on the v1 memory controller only")
    if os.geteuid() != 0:
        pytest.skip("making a cgroup needs root")
    parent = Path(reader.place.folder) / f"stalwart-test-{uuid.uuid4().hex[:8]}"
    inner = parent / "inner"
    try:
        parent.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a cgroup below {reader.place.folder}: {exc}")
    try:
        inner.mkdir()
        (parent / "memory.limit_in_bytes").write_text(str(256 * MiB))
        run = subprocess.run(
            [sys.executable, "-c", CHILD, str(inner)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        got = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        for folder in (inner, parent):
            if folder.exists():
                folder.rmdir()
    own = reader.place.path.rstrip("/")
    name = parent.name
    assert got["source"] == "cgroup" and got["limit"] == 256 * MiB
    assert got["limit_from"] == f"cgroup v1 {own}/{name} (a parent of {own}/{name}/inner)"
    assert got["percent"] < 70 and got["percent_before"] >= 70
    assert (got["tier"], got["trigger"]) == ("warning", "threshold")
    said = [m for m in got["said"] if "measured against" in m]
    assert len(said) == 1 and f"cgroup v1 {own}/{name} (a parent of" in said[0]
    assert not parent.exists()
