"""What can be sampled: each probe reads a value and the limit it must stay under."""

from __future__ import annotations

import os
import resource
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import psutil

Reading = tuple[float, float]  # (value, limit)


@dataclass(frozen=True)
class Probe:
    """A named resource: ``read()`` returns ``(value, limit)`` in the same unit."""

    name: str
    read: Callable[[], Reading]
    unit: str = ""


def cpu_probe() -> Probe:
    """System-wide CPU use in percent (of all cores) since the last read; limit 100."""
    psutil.cpu_percent(None)  # the first reading is meaningless: prime it
    return Probe("cpu", lambda: (float(psutil.cpu_percent(None)), 100.0), "%")


def disk_probe(path: str = ".") -> Probe:
    """Bytes used on the filesystem holding ``path``; limit its size."""

    def read() -> Reading:
        usage = shutil.disk_usage(path)
        return float(usage.used), float(usage.total)

    return Probe("disk", read, "bytes")


def fd_limit() -> float:
    """This process's soft limit on open file descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return float(soft) if soft != resource.RLIM_INFINITY else float(1 << 20)


def fds_probe(limit: float | None = None) -> Probe:
    """Open file descriptors of this process; limit ``RLIMIT_NOFILE`` unless given."""
    fd_dir = f"/proc/{os.getpid()}/fd"

    def read() -> Reading:
        try:
            count = len(os.listdir(fd_dir))
        except OSError:
            count = psutil.Process().num_fds()
        return float(count), float(limit) if limit is not None else fd_limit()

    return Probe("fds", read, "fds")


def connections_probe(limit: float | None = None, kind: str = "inet") -> Probe:
    """Sockets of this process (``kind`` as psutil's); limit given, else the fd limit."""
    process = psutil.Process()

    def read() -> Reading:
        count = len(process.net_connections(kind=kind))
        return float(count), float(limit) if limit is not None else fd_limit()

    return Probe("connections", read, "sockets")


def default_probes(disk_path: str = ".") -> list[Probe]:
    """CPU, disk space, file descriptors and connections."""
    return [cpu_probe(), disk_probe(disk_path), fds_probe(), connections_probe()]
