"""What a process uses (RSS, CPU seconds), read cheaply enough for the recovery path.

On Linux the ``/proc/<pid>/statm`` and ``/proc/<pid>/stat`` files are kept open
and re-read with ``pread`` (a few µs); elsewhere psutil answers.
"""

from __future__ import annotations

import os
import weakref
from collections import OrderedDict

import psutil

from ..actors._runtime import stat_fields

_KEPT = 64  # processes whose files stay open
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC = os.path.isdir("/proc/self")


class ProcessUsage:
    """``usage(pid)`` -> (RSS bytes, CPU seconds); zeros for a process that is gone.

    The files of at most ``kept`` processes stay open (two descriptors each).
    """

    def __init__(self, kept: int = _KEPT) -> None:
        self.kept = kept
        self._files: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self._procs: dict[int, psutil.Process] = {}
        weakref.finalize(self, _close_all, self._files)  # a supervisor that goes away

    def usage(self, pid: int) -> tuple[int, float]:
        if not _PROC:
            return self._psutil(pid)
        files = self._files.get(pid)
        try:
            if files is None:
                files = self._open(pid)
            statm = os.pread(files[0], 128, 0)
            stat = os.pread(files[1], 1024, 0)
        except OSError:
            self.forget(pid)
            return 0, 0.0
        rss = int(statm.split()[1]) * _PAGE
        fields = stat_fields(stat)
        return rss, (int(fields[11]) + int(fields[12])) / _TICKS

    def _open(self, pid: int) -> tuple[int, int]:
        statm = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
        try:
            stat = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        except OSError:
            os.close(statm)
            raise
        self._files[pid] = (statm, stat)
        while len(self._files) > self.kept:
            self.forget(next(iter(self._files)))
        return statm, stat

    def _psutil(self, pid: int) -> tuple[int, float]:
        try:
            proc = self._procs.get(pid)
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
            with proc.oneshot():
                cpu = proc.cpu_times()
                return proc.memory_info().rss, cpu.user + cpu.system
        except (psutil.Error, ValueError):
            self._procs.pop(pid, None)
            return 0, 0.0

    def forget(self, pid: int) -> None:
        """Close what is kept open for ``pid``."""
        files = self._files.pop(pid, None)
        for fd in files or ():
            os.close(fd)
        self._procs.pop(pid, None)

    def close(self) -> None:
        _close_all(self._files)


def _close_all(files: OrderedDict[int, tuple[int, int]]) -> None:
    while files:
        _pid, fds = files.popitem()
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
