"""The memory-pressure actor: samples memory and runs the cleanup tiers.

It runs at ``_system/memory``. Every ``interval_s`` it samples; when a tier is
due (see :class:`LevelTracker`) it asks every actor of the tree to free memory
(``MemoryPressure``: caches, ``on_memory_pressure``, and from CRITICAL on
``gc.collect()`` plus ``malloc_trim``), waits for their answers, and records a
:class:`CleanupReport`. At every sample at WARNING or above (and with every cleanup
asked for at those tiers) the supervisors passivate some idle children that opted
in. At EMERGENCY the root sheds load (new asks and protected calls get
``Overloaded``) until the level falls back, and the largest restartable actors (per
process RSS) are restarted at level 3.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import time
from collections import deque
from typing import Any

from ..actors import ManagedActor, MemoryLevel, RecoveryRequest
from ..actors._memory import collect_garbage
from ..actors._runtime import pid_alive
from ..actors.messages import MemoryFreed, MemoryPressure
from ..supervisors._bases import SessionWatch, session_processes
from ..supervisors.messages import (
    GatewayQuery,
    GatewayReply,
    MemoryEvent,
    PassivateIdle,
    ShedLoad,
)
from ..supervisors.queries import StatusQuery
from ._levels import LevelTracker, MemorySettings, Trigger
from ._sampler import MemorySample, MemorySampler
from .messages import (
    TIERS,
    ActorFreed,
    CleanupReport,
    MemoryCleanupRequest,
    MemoryQuery,
    MemoryStatus,
)

log = logging.getLogger("stalwart.memory")
_KEPT = 100
_ACTORS_SHOWN = 100  # per report: the actors that freed most (a tree may have 100,000)
_RESCAN_S = 5.0  # how often the session's processes are listed again


class _Cleanup:
    """A cleanup waiting for the actors' answers."""

    def __init__(self, ident: int, trigger: Trigger, sample: MemorySample, asker: Any) -> None:
        self.id = ident
        self.trigger = trigger
        self.sample = sample
        self.asker = asker
        self.started = time.monotonic()
        self.expected: dict[str, int] = {}  # path -> pid
        self.left: set[str] = set()  # expected, not answered yet
        self.freed: dict[str, MemoryFreed] = {}
        self.restartable: list[str] = []


class MemoryPressureActor(ManagedActor):
    """Samples memory and runs the tiers (internal; configure with ``start(memory_*=...)``)."""

    def on_start(self) -> None:
        self.settings = MemorySettings(**self.options.get("settings", {}))
        self.restartable = set(self.options.get("restartable", ()))
        self.own_process = self.options.get("base", "simple") == "simple"
        self._pids: list[int] = [os.getpid()]
        self._scanned = 0.0
        self._session = SessionWatch(os.getsid(0))
        self.sampler = MemorySampler(
            self.options.get("budget"),
            pids=self.system_pids,
            cgroup=self.options.get("cgroup"),
            pressure_path=self.options.get("pressure_path", "auto"),
        )
        if self.incarnation <= 1:  # once, not again after a restart of this actor
            log.info(self.sampler.describe())
        self.tracker = LevelTracker(self.settings)
        self.latest: MemorySample | None = None
        self.reports: deque[CleanupReport] = deque(maxlen=_KEPT)
        self.ids = itertools.count(1)
        self.running: _Cleanup | None = None
        self.waiting: list[tuple[Trigger, Any]] = []
        self.shedding = False
        self.after(self.settings.interval_s, "sample", key="sample")

    def system_pids(self) -> list[int]:
        """This process, and on the multi-process bases every process of the actor system
        (listed again when one has gone or joined, and every few seconds)."""
        if self.own_process:
            return [os.getpid()]
        now = time.monotonic()
        if (
            now - self._scanned >= _RESCAN_S
            or any(not pid_alive(p) for p in self._pids)
            or self._session.joined()
        ):
            self._pids = [os.getpid(), *(p.pid for p in session_processes(self._session.sid))]
            self._scanned = now
        return self._pids

    # -- sampling --------------------------------------------------------------------------------
    def receiveMsg_WakeupMessage(self, msg: Any, sender: Any) -> None:
        if msg.payload == "sample":
            self.after(self.settings.interval_s, "sample", key="sample")
            self.tick()
        elif (
            isinstance(msg.payload, tuple)
            and msg.payload[0] == "cleanup-timeout"
            and self.running is not None
            and self.running.id == msg.payload[1]
        ):
            self.finish()

    def tick(self) -> None:
        sample = self.latest = self.sampler.sample()
        trigger = self.tracker.observe(sample)
        if self.shedding and self.tracker.level < MemoryLevel.EMERGENCY:
            self.shed(False, f"memory back to {sample.percent:.1f}%")
        if self.tracker.level >= MemoryLevel.WARNING:  # until it clears: at every sample
            self.send(self.root, PassivateIdle(int(self.tracker.level)))
        if trigger is not None:
            self.begin(trigger, None)

    # -- a cleanup -------------------------------------------------------------------------------
    def receiveMsg_MemoryCleanupRequest(self, msg: MemoryCleanupRequest, sender: Any) -> None:
        trigger = Trigger(msg.level, "manual", msg.reason or "requested")
        if trigger.level >= MemoryLevel.WARNING:  # idle children that opted in: passivated
            self.send(self.root, PassivateIdle(int(trigger.level)))
        self.begin(trigger, sender)

    def receiveMsg_MemoryQuery(self, msg: MemoryQuery, sender: Any) -> None:
        self.reply(
            sender,
            MemoryStatus(
                self.tracker.level,
                self.sampler.sample(),  # measured now (levels move only on the interval)
                round(self.tracker.slope(), 4),
                self.shedding,
                tuple(self.reports),
            ),
        )

    def begin(self, trigger: Trigger, asker: Any) -> None:
        if self.running is not None:
            self.waiting.append((trigger, asker))
            return
        sample = self.sampler.sample()
        self.running = _Cleanup(next(self.ids), trigger, sample, asker)
        self.send(self.root, GatewayQuery(self.running.id, StatusQuery()))

    def receiveMsg_GatewayReply(self, msg: GatewayReply, sender: Any) -> None:
        cleanup = self.running
        if cleanup is None or msg.id != cleanup.id:
            return
        statuses = msg.value[0]
        level = int(cleanup.trigger.level)
        for status in statuses:
            if status.kind != "actor" or status.path == self.path:
                continue
            if status.state not in ("running", "retrying"):
                continue
            cleanup.expected[status.path] = status.pid
            cleanup.left.add(status.path)
            self.tell(
                status.path,
                MemoryPressure(cleanup.id, level, collect=level >= MemoryLevel.CRITICAL),
            )
            if status.path in self.restartable or status.path.rsplit(".", 1)[0] in self.restartable:
                cleanup.restartable.append(status.path)
        if not cleanup.expected:
            self.finish()
            return
        self.after(self.settings.reply_timeout_s, ("cleanup-timeout", cleanup.id))

    def receiveMsg_MemoryFreed(self, msg: MemoryFreed, sender: Any) -> None:
        cleanup = self.running
        if cleanup is None or msg.id != cleanup.id:
            return
        cleanup.freed[msg.path] = msg
        cleanup.left.discard(msg.path)
        if not cleanup.left:  # (one look per answer: a tree may have 100,000 actors)
            self.finish()

    def finish(self) -> None:
        cleanup, self.running = self.running, None
        if cleanup is None:
            return
        self.cancel(("cleanup-timeout", cleanup.id))
        level = cleanup.trigger.level
        if level >= MemoryLevel.CRITICAL:
            collect_garbage()
        restarted: tuple[str, ...] = ()
        if level >= MemoryLevel.EMERGENCY:
            self.shed(True, f"memory emergency: {cleanup.trigger.detail}")
            restarted = self.restart_largest(cleanup)
        after = self.sampler.sample()
        self.latest = after
        report = CleanupReport(
            cleanup.id,
            TIERS[int(level)],
            cleanup.trigger.reason,
            cleanup.trigger.detail,
            time.time(),
            round(time.monotonic() - cleanup.started, 6),
            round(cleanup.sample.percent, 2),
            round(after.percent, 2),
            cleanup.sample.used,
            after.used,
            _freed_most(cleanup.freed),
            restarted,
            self.shedding,
            tuple(sorted(cleanup.left)[:_ACTORS_SHOWN]),
            len(cleanup.freed),
            len(cleanup.left),
        )
        self.reports.append(report)
        self.send(self.root, _memory_event(report))
        if cleanup.asker is not None:
            self.reply(cleanup.asker, report)
        if self.waiting:
            trigger, asker = self.waiting.pop(0)
            self.begin(trigger, asker)

    # -- emergency measures ----------------------------------------------------------------------
    def shed(self, on: bool, reason: str) -> None:
        if on != self.shedding:
            self.shedding = on
            self.send(self.root, ShedLoad(on, reason))

    def restart_largest(self, cleanup: _Cleanup) -> tuple[str, ...]:
        """Restart the restartable actors whose processes hold the most (multi-process bases)."""
        if self.own_process or not self.settings.restart_largest:
            return ()
        sizes = []
        for path in cleanup.restartable:
            freed = cleanup.freed.get(path)
            pid = cleanup.expected.get(path, 0)
            if freed is None or not pid or pid == os.getpid():
                continue
            sizes.append((freed.rss_after, path))
        largest = sorted(sizes, reverse=True)[: self.settings.restart_largest]
        for size, path in largest:
            reason = f"memory emergency: its process holds {size / 2**20:.0f} MiB"
            self.send(self.root, RecoveryRequest(path, 3, reason, by="memory"))
        return tuple(path for _size, path in largest)

    def receiveMsg_RecoveryResult(self, msg: Any, sender: Any) -> None:
        pass  # the restart is recorded by the tree


def _freed_most(freed: dict[str, MemoryFreed]) -> dict[str, ActorFreed]:
    """What the actors that failed, then those that freed most, reported (at most
    ``_ACTORS_SHOWN``; one that freed nothing is left out)."""
    said = (
        (path, ActorFreed(f.pid, f.caches, f.hook, max(0, f.rss_before - f.rss_after), f.error))
        for path, f in freed.items()
    )
    worth = [(path, a) for path, a in said if a.error or a.caches or a.hook or a.rss_freed]
    return dict(heapq.nlargest(_ACTORS_SHOWN, worth, key=lambda item: _weight(item[1])))


def _weight(a: ActorFreed) -> tuple[bool, int]:
    return (bool(a.error), a.caches + a.hook + a.rss_freed)


def _memory_event(report: CleanupReport) -> MemoryEvent:
    actors = {
        path: {"caches": a.caches, "hook": a.hook, "rss_freed": a.rss_freed}
        for path, a in report.actors.items()
    }
    detail = {"detail": report.detail, "actors": actors, "restarted": list(report.restarted)}
    return MemoryEvent(
        report.time,
        report.tier,
        report.trigger,
        report.percent_before,
        report.before_bytes,
        report.after_bytes,
        report.freed_bytes,
        report.duration_s,
        json.dumps(detail)[:4000],
    )
