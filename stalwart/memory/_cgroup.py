"""Which cgroup limits this process's memory: cgroup v1 or v2, with every parent's limit.

The process's cgroup comes from ``/proc/self/cgroup`` (v1 ``N:memory:/path``, v2
``0::/path``) and where that hierarchy is mounted from ``/proc/self/mountinfo``; every
path is read under ``root``, so a whole tree of files can stand in for the real one.
A limit applies to a cgroup and everything below it, so each cgroup from the process's
own up to the top of the mounted hierarchy is read, and the one nearest its limit wins
(usually the smallest limit). A file that is missing or does not hold a number gives no
limit from that level and a note saying which file and why; nothing here raises.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec

# cgroup v1 writes "no limit" as the largest page-aligned long (9223372036854771712 with
# 4 KiB pages, ...710272 with 64 KiB ones): anything this large is no limit.
V1_UNLIMITED = 2**62
_ESCAPE = re.compile(r"\\([0-7]{3})")


class CgroupLevel(msgspec.Struct, frozen=True):
    """One cgroup on the way up: its path, the limit it sets (None: none), what it uses."""

    path: str
    limit: int | None
    current: int | None
    inactive_file: int = 0
    limit_file: str = ""  # the file the limit came from


class CgroupMemory(msgspec.Struct, frozen=True):
    """What the cgroup files say; ``limit`` None means no limit applies.

    ``current`` and ``inactive_file`` belong to ``path``, the cgroup whose limit is
    nearest to being reached (the process's own when none is set); ``levels`` lists
    each cgroup read on the way up and ``notes`` the files that could not be used.
    """

    current: int
    limit: int | None
    inactive_file: int = 0
    version: int = 2
    path: str = ""
    own_path: str = ""
    limit_file: str = ""
    levels: tuple[CgroupLevel, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def used(self) -> int:
        """Usage without the inactive page cache (what the kernel reclaims first)."""
        return max(0, self.current - self.inactive_file)

    def describe(self) -> str:
        """``cgroup v1 /path``, naming the process's own cgroup when a parent's limit applies."""
        where = f"cgroup v{self.version} {self.path or '/'}"
        if self.limit_file == "hierarchical_memory_limit":
            return f"{where} (hierarchical_memory_limit: a limit above it)"
        if self.path and self.own_path and self.path != self.own_path:
            return f"{where} (a parent of {self.own_path})"
        return where


class CgroupPlace(msgspec.Struct, frozen=True):
    """Where the process's memory cgroup is: ``path`` as the kernel names it, ``folder``
    the folder holding its files, ``top`` the folder where the mounted hierarchy starts."""

    version: int
    path: str
    folder: str
    top: str


class _Mount(msgspec.Struct, frozen=True):
    root: str  # the cgroup shown at the mount point
    point: str
    fstype: str
    options: tuple[str, ...]


# -- reading files -------------------------------------------------------------------------------
def _text(path: Path, notes: list[str] | None) -> str | None:
    # os.read, not Path.read_bytes: a third of the cost, and each sample reads several files
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks).decode("utf-8", "replace")
    except FileNotFoundError:
        if notes is not None:
            notes.append(f"{path}: missing")
    except OSError as exc:
        if notes is not None:
            notes.append(f"{path}: unreadable ({exc.strerror or exc})")
    return None


def _number(text: str, where: str, notes: list[str], unlimited: str = "max") -> int | None:
    """A byte count; ``unlimited`` (or a v1 huge value) and anything malformed are None."""
    text = text.strip()
    if text == unlimited:
        return None
    try:
        value = int(text)
    except ValueError:
        notes.append(f"{where}: not a number: {text[:40]!r}")
        return None
    if value < 0:
        notes.append(f"{where}: negative: {value}")
        return None
    return None if value >= V1_UNLIMITED else value


def _file_number(path: Path, notes: list[str], required: bool = True) -> int | None:
    text = _text(path, notes if required else None)
    return None if text is None else _number(text, str(path), notes)


def _stat(path: Path, keys: tuple[str, ...], notes: list[str]) -> dict[str, int]:
    """The first of ``keys`` found in a ``memory.stat`` file (by key), as numbers."""
    text = _text(path, notes)
    found: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.strip().partition(" ")
        if key in keys and key not in found:
            number = _number(value, f"{path} {key}", notes, unlimited="")
            if number is not None:
                found[key] = number
    return found


# -- where the cgroup is -------------------------------------------------------------------------
def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[_Mount]:
    """The cgroup and cgroup2 mounts of a ``/proc/self/mountinfo`` (other lines ignored)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 2 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = tuple(tail[2].split(",")) if len(tail) > 2 else ()
        mounts.append(_Mount(_unescape(fields[3]), _unescape(fields[4]), tail[0], options))
    return mounts


def parse_proc_cgroup(text: str) -> tuple[str | None, str | None]:
    """(the v1 memory controller's cgroup path, the v2 path) from ``/proc/self/cgroup``."""
    v1 = v2 = None
    for line in text.splitlines():
        ident, sep, rest = line.strip().partition(":")
        controllers, sep2, path = rest.partition(":")
        if not (sep and sep2 and path.startswith("/")):
            continue
        if ident == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v1, v2


def _inside(mount: _Mount, path: str) -> list[str] | None:
    """The folders below the mount point leading to ``path``, if the mount shows it."""
    top = mount.root.rstrip("/")
    if mount.root == "/":
        rest = path
    elif path == mount.root or path.startswith(top + "/"):
        rest = path[len(top) :]
    else:
        return None
    parts = [p for p in rest.split("/") if p]
    return None if any(p in (".", "..") for p in parts) else parts


def locate_cgroup(root: str | os.PathLike[str] = "/") -> tuple[CgroupPlace | None, list[str]]:
    """Find this process's memory cgroup under ``root``: v1 if the memory controller is
    mounted as v1, else v2 if the unified hierarchy has it; and the notes on what failed."""
    base = Path(root)
    notes: list[str] = []
    proc = _text(base / "proc/self/cgroup", notes)
    mountinfo = _text(base / "proc/self/mountinfo", notes)
    if proc is None or mountinfo is None:
        return None, notes
    v1, v2 = parse_proc_cgroup(proc)
    mounts = parse_mountinfo(mountinfo)
    wanted = []
    if v1 is not None:
        wanted += [(1, v1, m) for m in mounts if m.fstype == "cgroup" and "memory" in m.options]
    if v2 is not None:
        wanted += [(2, v2, m) for m in mounts if m.fstype == "cgroup2"]
    for version, path, mount in wanted:
        parts = _inside(mount, path)
        point = [p for p in mount.point.split("/") if p]
        if parts is None or any(p in (".", "..") for p in point):
            notes.append(f"cgroup v{version} {path}: not under the mount at {mount.point}")
            continue
        top = base.joinpath(*point)
        folder = top.joinpath(*parts)
        if version == 2 and not _has_v2_memory(top, folder):
            notes.append(f"cgroup v2 at {mount.point}: no memory controller")
            continue
        if folder.is_dir():
            return CgroupPlace(version, path, str(folder), str(top)), notes
        notes.append(f"cgroup v{version} {path}: {folder} is not a folder")
    if not wanted:
        notes.append("no cgroup memory controller mounted for this process")
    return None, notes


def _has_v2_memory(top: Path, folder: Path) -> bool:
    if (folder / "memory.current").exists():
        return True
    controllers = _text(top / "cgroup.controllers", None) or ""
    return "memory" in controllers.split()


# -- reading the limits --------------------------------------------------------------------------
def _level_v2(folder: Path, path: str, notes: list[str], own: bool, top: bool) -> CgroupLevel:
    limit: int | None = None
    source = ""
    for name in ("memory.max", "memory.high"):
        # the root cgroup has neither file: at the top, their absence is no problem
        value = _file_number(folder / name, notes, required=not top)
        if value is not None and (limit is None or value < limit):
            limit, source = value, name
    if limit is None and not own:  # its usage matters only against a limit
        return CgroupLevel(path, None, None)
    current = _file_number(folder / "memory.current", notes, required=not top)
    inactive = {} if current is None else _stat(folder / "memory.stat", ("inactive_file",), notes)
    return CgroupLevel(path, limit, current, inactive.get("inactive_file", 0), source)


def _level_v1(
    folder: Path, path: str, notes: list[str], own: bool
) -> tuple[CgroupLevel, dict[str, int]]:
    limit = _file_number(folder / "memory.limit_in_bytes", notes)
    if limit is None and not own:
        return CgroupLevel(path, None, None), {}
    current = _file_number(folder / "memory.usage_in_bytes", notes)
    keys = ("total_inactive_file", "inactive_file", "hierarchical_memory_limit")
    stat = _stat(folder / "memory.stat", keys, notes)
    # usage_in_bytes counts the cgroups below too, so their inactive cache goes with it
    inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
    source = "memory.limit_in_bytes" if limit is not None else ""
    return CgroupLevel(path, limit, current, inactive, source), stat


def ancestors(place: CgroupPlace) -> list[tuple[Path, str]]:
    """(folder, cgroup path) from the process's cgroup up to the top of the mount; on v1
    not past a parent with ``memory.use_hierarchy`` 0, whose limit does not cover it."""
    folder, top, path = Path(place.folder), Path(place.top), place.path
    chain = [(folder, path)]
    while folder != top and top in folder.parents:
        folder, path = folder.parent, path.rstrip("/").rsplit("/", 1)[0] or "/"
        if place.version == 1 and _use_hierarchy(folder) == "0":
            break
        chain.append((folder, path))
    return chain


def read_levels(
    place: CgroupPlace, chain: list[tuple[Path, str]], notes: list[str]
) -> list[CgroupLevel]:
    """Each cgroup of ``chain`` with its limit, and its usage where it has a limit (the
    process's own always)."""
    levels: list[CgroupLevel] = []
    hierarchical = None
    for i, (folder, path) in enumerate(chain):
        if place.version == 2:
            top = folder == Path(place.top)
            levels.append(_level_v2(folder, path, notes, own=i == 0, top=top))
            continue
        level, stat = _level_v1(folder, path, notes, own=i == 0)
        levels.append(level)
        if i == 0:  # the kernel's own answer, which sees limits above the mount too
            hierarchical = stat.get("hierarchical_memory_limit")
    if hierarchical is not None:
        levels.append(CgroupLevel(place.path, hierarchical, None, 0, "hierarchical_memory_limit"))
    return levels


def _use_hierarchy(folder: Path) -> str:
    return (_text(folder / "memory.use_hierarchy", None) or "1").strip()


def binding_level(levels: list[CgroupLevel], notes: list[str]) -> CgroupLevel | None:
    """The level nearest its limit; one whose usage is unknown is given the process's own
    cgroup's (a lower bound), and one whose usage reads below a cgroup under it is given
    that (the kernel counts a child's usage in its parent: the files were read at
    different moments). Among equals, the first (the lowest cgroup) wins."""
    best: CgroupLevel | None = None
    best_share = -1.0
    below = 0  # the largest usage read so far, going up
    for level in levels:
        limit, current, inactive = level.limit, level.current, level.inactive_file
        if current is not None and current < below:
            level = msgspec.structs.replace(level, current=below)
            current = below
        below = max(below, current or 0)
        if limit is None:
            continue
        if current is None:
            if level.limit_file != "hierarchical_memory_limit":
                notes.append(f"cgroup {level.path}: usage unknown, its own cgroup's counted")
            current, inactive = levels[0].current, levels[0].inactive_file
            if current is None:
                continue
            level = msgspec.structs.replace(level, current=current, inactive_file=inactive)
        share = max(0, current - inactive) / max(1, limit)
        if share > best_share:
            best, best_share = level, share
    return best


class CgroupReader:
    """Reads the memory limit that applies to this process from the cgroup files.

    ``root`` is where the filesystem starts (``/``; a folder holding ``proc/self/cgroup``,
    ``proc/self/mountinfo`` and the mounted hierarchies for a stand-in). The cgroup is
    found once, at construction (``place``, or None with ``notes`` saying why);
    :meth:`read` reads the limits and usage again each time (which cgroups are above
    it is settled at construction too).
    """

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = Path(root)
        self.place, self.notes = locate_cgroup(self.root)
        self.chain = ancestors(self.place) if self.place is not None else []

    def read(self) -> CgroupMemory | None:
        """The cgroups' limits and usage now; None if no memory cgroup was found."""
        place = self.place
        if place is None:
            return None
        notes: list[str] = []
        levels = read_levels(place, self.chain, notes)
        chosen = binding_level(levels, notes) or levels[0]
        return _memory(chosen, place.version, place.path, levels, notes)

    def pressure_file(self) -> Path | None:
        """Where PSI is read: the cgroup's ``memory.pressure`` on v2, else
        ``/proc/pressure/memory``; None if the kernel has neither."""
        if self.place is not None and self.place.version == 2:
            own = Path(self.place.folder) / "memory.pressure"
            if own.exists():
                return own
        machine = self.root / "proc/pressure/memory"
        return machine if machine.exists() else None


def read_cgroup(folder: str | os.PathLike[str]) -> CgroupMemory | None:
    """Read one cgroup v2 folder: ``memory.current``, ``memory.max``, ``memory.high`` and
    ``memory.stat`` (no parents: :class:`CgroupReader` reads those).

    The limit is the lower of ``memory.max`` and ``memory.high`` (``max`` is no
    limit). None if the folder has no ``memory.current``.
    """
    notes: list[str] = []
    base = Path(folder)
    if _file_number(base / "memory.current", notes) is None:
        return None
    level = _level_v2(base, str(base), notes, own=True, top=False)
    return _memory(level, 2, level.path, [level], notes)


def _memory(
    chosen: CgroupLevel, version: int, own: str, levels: list[CgroupLevel], notes: list[str]
) -> CgroupMemory:
    source = chosen.limit_file if chosen.limit is not None else ""
    current, inactive = chosen.current or 0, chosen.inactive_file
    return CgroupMemory(
        current, chosen.limit, inactive, version, chosen.path, own, source, (*levels,), (*notes,)
    )


def own_cgroup(
    proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup",
    root: str | os.PathLike[str] = "/sys/fs/cgroup",
) -> Path | None:
    """The cgroup v2 folder of this process (the ``0::/path`` line), if it has one
    (:class:`CgroupReader` finds v1 too, and the mount point)."""
    _v1, v2 = parse_proc_cgroup(_text(Path(proc_cgroup), None) or "")
    if v2 is None:
        return None
    folder = Path(root) / v2.lstrip("/")
    return folder if (folder / "memory.current").exists() else None
