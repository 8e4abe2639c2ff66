"""Where memory pressure is measured: a cgroup v2 limit, an explicit budget, or the machine.

The percentage is of the limit that actually applies. In a container that is
the cgroup's ``memory.max`` / ``memory.high`` with usage ``memory.current``
less the inactive file pages of ``memory.stat`` (the page cache the kernel
drops first). With ``memory_budget`` it is the summed RSS of the actor
system's processes against the budget. Otherwise it is the machine: psutil's
``available`` (not ``free``, which ignores reclaimable cache). PSI
(``/proc/pressure/memory``) is read alongside when the kernel has it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec
import psutil

from ..supervisors import SpecError
from ..supervisors._usage import ProcessUsage

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: str | int | float, field: str = "memory_budget") -> int:
    """Bytes in ``"512MiB"``, ``"2GB"``, ``"1.5GiB"`` or a plain number; errors name ``field``."""
    if isinstance(value, bool):
        raise SpecError("start", field, f"expected a size such as '512MiB', got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise SpecError("start", field, f"must be > 0 bytes, got {value!r}")
        return int(value)
    match = _SIZE.match(str(value))
    if match is None:
        raise SpecError("start", field, f"expected a size such as '512MiB', got {value!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit not in _UNITS:
        known = "B, KB, KiB, MB, MiB, GB, GiB, TB, TiB"
        raise SpecError("start", field, f"unknown unit {match.group(2)!r} (known: {known})")
    size = int(number * _UNITS[unit])
    if size <= 0:
        raise SpecError("start", field, f"must be > 0 bytes, got {value!r}")
    return size


# -- cgroup v2 -----------------------------------------------------------------------------------
class CgroupMemory(msgspec.Struct, frozen=True):
    """What a cgroup v2 folder says: ``limit`` None means no limit (``max``)."""

    current: int
    limit: int | None
    inactive_file: int = 0

    @property
    def used(self) -> int:
        """Usage without the inactive page cache (what the kernel reclaims first)."""
        return max(0, self.current - self.inactive_file)


def _limit(text: str) -> int | None:
    text = text.strip()
    return None if text in ("", "max") else int(text)


def read_cgroup(folder: str | os.PathLike[str]) -> CgroupMemory | None:
    """Read ``memory.current``, ``memory.max``, ``memory.high`` and ``memory.stat``.

    The limit is the lower of ``memory.max`` and ``memory.high`` (``max`` is no
    limit). None if the folder has no cgroup v2 memory files.
    """
    base = Path(folder)
    try:
        current = int((base / "memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    limits = []
    for name in ("memory.max", "memory.high"):
        try:
            value = _limit((base / name).read_text())
        except (OSError, ValueError):
            value = None
        if value is not None:
            limits.append(value)
    inactive = 0
    try:
        for line in (base / "memory.stat").read_text().splitlines():
            key, _, number = line.partition(" ")
            if key == "inactive_file":
                inactive = int(number)
                break
    except (OSError, ValueError):
        pass
    return CgroupMemory(current, min(limits) if limits else None, inactive)


def own_cgroup(
    proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup",
    root: str | os.PathLike[str] = "/sys/fs/cgroup",
) -> Path | None:
    """The cgroup v2 folder of this process (the ``0::/path`` line), if it has one."""
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            folder = Path(root) / line[3:].lstrip("/")
            return folder if (folder / "memory.current").exists() else None
    return None


# -- PSI -----------------------------------------------------------------------------------------
class Pressure(msgspec.Struct, frozen=True):
    """PSI memory: the share of time (percent, over 10 s) some / all tasks stalled on memory."""

    some_avg10: float
    full_avg10: float


def read_pressure(path: str | os.PathLike[str] = "/proc/pressure/memory") -> Pressure | None:
    """Parse ``some avg10=.. avg60=.. avg300=.. total=..`` and the ``full`` line."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        fields = dict(item.split("=", 1) for item in rest.split() if "=" in item)
        try:
            values[kind] = float(fields["avg10"])
        except (KeyError, ValueError):
            continue
    if "some" not in values:
        return None
    return Pressure(values["some"], values.get("full", 0.0))


# -- samples -------------------------------------------------------------------------------------
class MemorySample(msgspec.Struct, frozen=True):
    """One measurement. ``source`` is ``budget``, ``cgroup`` or ``system``."""

    time: float
    percent: float
    used: int
    limit: int
    source: str
    pressure: Pressure | None = None
    processes: dict[int, int] = msgspec.field(default_factory=dict)  # pid -> RSS bytes


class MemorySampler:
    """Measures memory pressure; ``sample()`` is cheap enough to run every second.

    ``budget``: bytes for the actor tree (the RSS of ``pids()`` summed), or None
    for the cgroup's limit if there is one, else the machine's memory.
    ``pids`` lists the actor system's processes (default: this one).
    """

    def __init__(
        self,
        budget: int | None = None,
        pids: Callable[[], Iterable[int]] | None = None,
        cgroup: str | os.PathLike[str] | None = None,
        pressure_path: str | os.PathLike[str] | None = "/proc/pressure/memory",
    ) -> None:
        self.budget = budget
        self.pids = pids or (lambda: [os.getpid()])
        self.cgroup = Path(cgroup) if cgroup is not None else own_cgroup()
        self.pressure_path = pressure_path
        self._usage = ProcessUsage(kept=512)

    def process_rss(self) -> dict[int, int]:
        """RSS of each of the system's processes (those that went away are left out)."""
        sizes = {}
        for pid in self.pids():
            rss = self._usage.usage(pid)[0]
            if rss:
                sizes[pid] = rss
        return sizes

    def sample(self) -> MemorySample:
        now = time.time()
        pressure = read_pressure(self.pressure_path) if self.pressure_path else None
        processes = self.process_rss()
        if self.budget is not None:
            used = sum(processes.values())
            return MemorySample(
                now, 100.0 * used / self.budget, used, self.budget, "budget", pressure, processes
            )
        group = read_cgroup(self.cgroup) if self.cgroup is not None else None
        if group is not None and group.limit is not None:
            used = group.used
            return MemorySample(
                now, 100.0 * used / group.limit, used, group.limit, "cgroup", pressure, processes
            )
        vm = psutil.virtual_memory()
        used = vm.total - vm.available
        return MemorySample(
            now, 100.0 * used / vm.total, used, vm.total, "system", pressure, processes
        )
