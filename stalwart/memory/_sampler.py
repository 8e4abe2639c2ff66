"""Where memory pressure is measured: an explicit budget, a cgroup limit, or the machine.

The percentage is of the limit that actually applies. With ``memory_budget`` it
is the summed RSS of the actor system's processes against the budget. In a
container it is the cgroup's limit (v1 or v2, the process's cgroup or a parent's:
see :class:`CgroupReader`) with usage less the inactive file pages of
``memory.stat`` (the page cache the kernel drops first). Otherwise it is the
machine: psutil's ``available`` (not ``free``, which ignores reclaimable cache).
PSI is read alongside when the kernel has it: the cgroup's ``memory.pressure``
on v2, else ``/proc/pressure/memory``. Each sample says where its limit and
its PSI came from (``limit_from``, ``pressure_from``).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec
import psutil

from ..supervisors import SpecError
from ..supervisors._usage import ProcessUsage
from ._cgroup import CgroupMemory, CgroupReader, read_cgroup

log = logging.getLogger("stalwart.memory")

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
_LARGEST = 2**63 - 1  # (what a byte count is held in)
_SIZE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


def parse_size(value: str | int | float, field: str = "memory_budget") -> int:
    """Bytes in ``"512MiB"``, ``"2GB"``, ``"1.5GiB"`` or a plain number; errors name ``field``."""
    if isinstance(value, bool):
        raise SpecError("start", field, f"expected a size such as '512MiB', got {value!r}")
    if isinstance(value, (int, float)):
        if not 0 < value <= _LARGEST:  # (nan too)
            problem = "must be > 0 bytes" if not value > 0 else f"must be at most {_LARGEST} bytes"
            raise SpecError("start", field, f"{problem}, got {value!r}")
        return int(value)
    match = _SIZE.match(str(value))
    if match is None:
        raise SpecError("start", field, f"expected a size such as '512MiB', got {value!r}")
    digits, unit = match.group(1), match.group(2).lower()
    if unit not in _UNITS:
        known = "B, K, KB, KiB, M, MB, MiB, G, GB, GiB, T, TB, TiB"
        raise SpecError("start", field, f"unknown unit {match.group(2)!r} (known: {known})")
    whole = "." not in digits  # (a whole number exactly, however many digits)
    size = int(digits) * _UNITS[unit] if whole else int(float(digits) * _UNITS[unit])
    if size <= 0:
        raise SpecError("start", field, f"must be > 0 bytes, got {value!r}")
    if size > _LARGEST:
        raise SpecError("start", field, f"must be at most {_LARGEST} bytes, got {value!r}")
    return size


# -- PSI -----------------------------------------------------------------------------------------
class Pressure(msgspec.Struct, frozen=True):
    """PSI memory: the share of time (percent, over 10 s and 60 s) some / all tasks stalled
    waiting for memory, and the total stall time in microseconds since the counting began."""

    some_avg10: float
    full_avg10: float
    some_avg60: float = 0.0
    full_avg60: float = 0.0
    some_total_us: int = 0
    full_total_us: int = 0


def read_pressure(path: str | os.PathLike[str] = "/proc/pressure/memory") -> Pressure | None:
    """Parse ``some avg10=.. avg60=.. avg300=.. total=..`` and the ``full`` line."""
    try:
        text = Path(path).read_bytes().decode("utf-8", "replace")
    except OSError:
        return None
    values: dict[str, tuple[float, float, int]] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        fields = dict(item.split("=", 1) for item in rest.split() if "=" in item)
        try:
            avg10, avg60 = float(fields["avg10"]), float(fields.get("avg60", "0"))
            total = int(fields.get("total", "0"))
        except (KeyError, ValueError):
            continue
        if all(0 <= v <= 100 for v in (avg10, avg60)) and total >= 0:
            values[kind] = (avg10, avg60, total)
    if "some" not in values:
        return None
    some, full = values["some"], values.get("full", (0.0, 0.0, 0))
    return Pressure(some[0], full[0], some[1], full[1], some[2], full[2])


# -- samples -------------------------------------------------------------------------------------
class MemorySample(msgspec.Struct, frozen=True):
    """One measurement. ``source`` is ``budget``, ``cgroup`` or ``system``; ``limit_from``
    says which limit in words (``cgroup v1 /path``, ``cgroup v2 /path``, ``machine``...),
    ``pressure_from`` the PSI file read (``none`` without one), ``notes`` the cgroup
    files that could not be used."""

    time: float
    percent: float
    used: int
    limit: int
    source: str
    pressure: Pressure | None = None
    processes: dict[int, int] = msgspec.field(default_factory=dict)  # pid -> RSS bytes
    limit_from: str = ""
    pressure_from: str = ""
    notes: tuple[str, ...] = ()


_AUTO = "auto"


class MemorySampler:
    """Measures memory pressure; ``sample()`` is cheap enough to run every second.

    ``budget``: bytes for the actor tree (the RSS of ``pids()`` summed), or None
    for the cgroup's limit if there is one, else the machine's memory.
    ``pids`` lists the actor system's processes (default: this one).
    ``root``: where the cgroup files are looked for (``/``, see :class:`CgroupReader`);
    ``cgroup``: one cgroup v2 folder to read instead (no parents).
    ``pressure_path``: the PSI file; ``"auto"`` finds it, None reads none.
    """

    def __init__(
        self,
        budget: int | None = None,
        pids: Callable[[], Iterable[int]] | None = None,
        cgroup: str | os.PathLike[str] | None = None,
        pressure_path: str | os.PathLike[str] | None = _AUTO,
        root: str | os.PathLike[str] = "/",
    ) -> None:
        self.budget = budget
        self.pids = pids or (lambda: [os.getpid()])
        self.cgroup = Path(cgroup) if cgroup is not None else None
        self.reader = CgroupReader(root) if cgroup is None else None
        self.pressure_from = "none"
        if pressure_path == _AUTO:
            found = (
                self.reader.pressure_file() if self.reader else Path(root, "proc/pressure/memory")
            )
            pressure_path = found if found is not None and found.exists() else None
            if pressure_path is not None and read_pressure(pressure_path) is None:
                self.pressure_from = f"none ({pressure_path} cannot be read)"  # e.g. psi=0
                pressure_path = None
        self.pressure_path = pressure_path
        if pressure_path:
            self.pressure_from = str(pressure_path)
        self.machine_total = psutil.virtual_memory().total
        self._usage = ProcessUsage(kept=512)
        self._noted: set[str] = set(self.reader.notes if self.reader else ())
        self.budget_notes = self._budget_above() if budget is not None else ()

    def _budget_above(self) -> tuple[str, ...]:
        """What says the budget is more than the tree can have: a cgroup limit below it
        (the kernel stops the tree there first: logged at WARNING), or the machine's
        memory (a budget that large only keeps the tiers from firing)."""
        assert self.budget is not None
        group = self.read_group()
        if group is not None and group.limit and group.limit < self.budget:  # (0: not taken)
            note = (
                f"{_mib(self.budget)} is above the limit of {group.describe()}"
                f" ({_mib(group.limit)}): the kernel stops the tree at that limit first"
            )
            log.warning("memory_budget: %s", note)
            return (note,)
        if self.budget > self.machine_total:
            machine = _mib(self.machine_total)
            return (f"{_mib(self.budget)} is above the machine's memory ({machine})",)
        return ()

    def process_rss(self) -> dict[int, int]:
        """RSS of each of the system's processes (those that went away are left out)."""
        sizes = {}
        for pid in self.pids():
            rss = self._usage.usage(pid)[0]
            if rss:
                sizes[pid] = rss
        return sizes

    def read_group(self) -> CgroupMemory | None:
        """The cgroup's figures now (None without one); a file newly found unusable is
        logged once at WARNING."""
        if self.reader is not None:
            group = self.reader.read()
        else:
            group = read_cgroup(self.cgroup) if self.cgroup is not None else None
        for note in group.notes if group is not None else ():
            if note not in self._noted:
                self._noted.add(note)
                log.warning("memory limit: %s (no limit taken from it)", note)
        return group

    def sample(self) -> MemorySample:
        now = time.time()
        pressure = read_pressure(self.pressure_path) if self.pressure_path else None
        processes = self.process_rss()
        psi = self.pressure_from
        if self.budget is not None:
            used = sum(processes.values())
            percent = 100.0 * used / self.budget
            return MemorySample(
                now, percent, used, self.budget, "budget", pressure, processes, "budget", psi,
                self.budget_notes,
            )  # fmt: skip
        group = self.read_group()
        notes = group.notes if group is not None else ()
        if group is not None and group.limit is not None and 0 < group.limit < self.machine_total:
            used, limit = group.used, group.limit
            return MemorySample(
                now,
                100.0 * used / limit,
                used,
                limit,
                "cgroup",
                pressure,
                processes,
                group.describe(),
                psi,
                notes,
            )
        vm = psutil.virtual_memory()
        used = vm.total - vm.available
        return MemorySample(
            now, 100.0 * used / vm.total, used, vm.total, "system", pressure, processes,
            self._machine_reason(group), psi, notes,
        )  # fmt: skip

    def _machine_reason(self, group: CgroupMemory | None) -> str:
        if group is not None and group.limit == 0:  # (nothing could run in it: not taken)
            return f"machine (cgroup v{group.version} {group.path}: its limit is 0)"
        if group is not None and group.limit is not None:
            where = f"cgroup v{group.version} {group.path}"
            return f"machine ({where}: its limit is above the machine's memory)"
        if group is not None and group.notes:  # (a file it could not use: no limit from it)
            return f"machine (cgroup v{group.version} {group.own_path}: {'; '.join(group.notes)})"
        if group is not None:
            return f"machine (cgroup v{group.version} {group.own_path} sets no limit)"
        if self.reader is not None and self.reader.notes:
            return f"machine ({'; '.join(self.reader.notes)})"
        return "machine"

    def describe(self) -> str:
        """One line saying what pressure is measured against, for the log at start."""
        sample = self.sample()
        return (
            f"memory pressure is measured against {sample.limit_from}:"
            f" limit {sample.limit / 2**20:.0f} MiB, {sample.percent:.1f}% used;"
            f" PSI from {sample.pressure_from}"
        )
