"""The correlator's analysis: a bounded window of error events, and what it shows.

Every error event of the tree goes into a ring of numpy arrays (time, path,
fingerprint, trace: 24 bytes an event, so 10,000 events take 240 KB). The
analysis reads the window at once:

- the error rate, and whether it is high;
- one dominant error pattern (a fingerprint behind most of the errors);
- anomalies: a path whose errors in the latest bucket stand out against its own
  recent baseline (an EWMA of the earlier buckets; z-score);
- root causes: an error in a path is *explained* by a dependency (from the
  tree's ``depends_on``, followed transitively) when the dependency failed
  within ``attribution_s`` before it, or failed in the same trace. A failing
  path whose errors are mostly explained by a dependency is its dependent; a
  failing path that explains others and is explained by none is a root cause.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from .._deferred import np
from ..supervisors.spec import SpecError, check_range

OTHER = "(other)"
_RECOVERY = -1  # the fingerprint column of a recovery marker
_BATCH = 256  # events buffered before they are written into the arrays


class CorrelatorSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of the correlator (``start(correlator={...})``).

    - ``capacity``: events kept (the oldest go first).
    - ``window_s``: how far back the analysis looks.
    - ``rate_window_s`` / ``high_rate_per_s``: the error rate is high when the last
      ``rate_window_s`` saw at least ``high_rate_per_s`` errors a second.
    - ``dominant_share`` / ``min_events``: one fingerprint behind at least that share
      of at least ``min_events`` errors is a dominant pattern.
    - ``bucket_s`` / ``ewma_alpha`` / ``z_threshold`` / ``anomaly_min``: a path is
      anomalous when its errors in the latest bucket are ``z_threshold`` standard
      deviations above the EWMA of its earlier buckets (and at least ``anomaly_min``).
    - ``attribution_s`` / ``explain_share``: a dependent's error is explained by a
      dependency's error at most ``attribution_s`` before it; a path is a dependent
      when at least ``explain_share`` of its errors are explained.
    - ``max_paths`` / ``max_fingerprints``: distinct names kept (beyond, "(other)").
    - ``analysis_interval_s``: the correlator actor analyses at most this often.
    - ``incident_quiet_s``: once a root cause has been running without an error for this
      long, one held message is retried as a trial; the cause is back when a trial goes
      through. ``incident_max_s``: dependents are held at most this long.
    """

    capacity: int = 10_000
    window_s: float = 60.0
    rate_window_s: float = 10.0
    high_rate_per_s: float = 5.0
    dominant_share: float = 0.5
    min_events: int = 5
    bucket_s: float = 1.0
    ewma_alpha: float = 0.3
    z_threshold: float = 3.0
    anomaly_min: int = 3
    attribution_s: float = 5.0
    explain_share: float = 0.5
    max_paths: int = 1024
    max_fingerprints: int = 1024
    analysis_interval_s: float = 0.05
    incident_quiet_s: float = 1.0
    incident_max_s: float = 120.0

    def __post_init__(self) -> None:
        positive = ("capacity", "min_events", "anomaly_min", "max_paths", "max_fingerprints")
        check_range("correlator", self, positive, at_least=1)
        seconds = (
            "window_s",
            "rate_window_s",
            "bucket_s",
            "attribution_s",
            "analysis_interval_s",
            "incident_quiet_s",
            "incident_max_s",
        )
        check_range("correlator", self, seconds, above=0)
        shares = ("dominant_share", "explain_share", "ewma_alpha")
        check_range("correlator", self, shares, above=0, at_most=1)
        check_range("correlator", self, ("high_rate_per_s", "z_threshold"), at_least=0)

    @classmethod
    def of(cls, settings: Mapping[str, Any] | None) -> CorrelatorSettings:
        """Validate a settings mapping; an error names the setting."""
        try:
            return msgspec.convert(dict(settings or {}), cls)
        except msgspec.ValidationError as exc:
            text = str(exc)
            if "unknown field" in text.lower():
                field = text.split("`")[1] if "`" in text else "settings"
                known = ", ".join(cls.__struct_fields__)
                raise SpecError("correlator", field, f"unknown setting (known: {known})") from None
            field = text.rsplit("`$.", 1)[-1].rstrip("`") if "`$." in text else "settings"
            raise SpecError("correlator", field, text) from None


class ErrorPattern(msgspec.Struct, frozen=True):
    """One fingerprint behind ``share`` of the errors in the window."""

    fingerprint: str
    count: int
    share: float
    paths: tuple[str, ...]
    example: str = ""


class Anomaly(msgspec.Struct, frozen=True):
    """A path failing far more often than its own recent baseline."""

    path: str
    current: int
    baseline: float
    zscore: float


class RootCause(msgspec.Struct, frozen=True):
    """A failing path that explains the errors of ``dependents`` (and is explained by none)."""

    path: str
    dependents: tuple[str, ...]
    explained: float  # the smallest share of a direct dependent's errors it explains
    first_error: float
    evidence: str


class Analysis(msgspec.Struct, frozen=True):
    """What the window shows at ``time``."""

    time: float
    events: int
    rate_per_s: float
    high_rate: bool
    dominant: ErrorPattern | None = None
    anomalies: tuple[Anomaly, ...] = ()
    root_causes: tuple[RootCause, ...] = ()


class _DependencyIds:
    """The ids of the paths at or under a path's dependencies, found so far."""

    __slots__ = ("covers", "deps", "ids", "prefixes")

    def __init__(self, deps: set[str]) -> None:
        self.deps = deps
        self.prefixes = tuple(p for d in deps for p in (d + "/", d + "."))
        self.ids = np.empty(0, np.int32)
        self.covers = 1  # names looked at (id 0, "(other)", is never one)

    def under(self, name: str) -> bool:
        return name in self.deps or name.startswith(self.prefixes)


class _Names:
    """Small integer ids for strings, at most ``limit`` of them (id 0 is "(other)")."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.ids: dict[str, int] = {OTHER: 0}
        self.names: list[str] = [OTHER]
        self.examples: list[str] = [""]

    def id(self, name: str, live: Any = None) -> int:
        ident = self.ids.get(name)
        if ident is not None:
            return ident
        if len(self.names) > self.limit and (live is None or not live()):
            return 0
        self.ids[name] = len(self.names)
        self.names.append(name)
        self.examples.append("")
        return len(self.names) - 1

    def keep(self, used: np.ndarray) -> np.ndarray:
        """Forget the names not in ``used``; returns the old-id -> new-id table."""
        table = np.zeros(len(self.names), np.int32)
        kept = [0, *(int(i) for i in used if i != 0)]
        self.names = [self.names[i] for i in kept]
        self.examples = [self.examples[i] for i in kept]
        self.ids = {name: i for i, name in enumerate(self.names)}
        table[kept] = np.arange(len(kept), dtype=np.int32)
        return table

    def nbytes(self) -> int:
        strings = sum(sys.getsizeof(s) for s in self.names) + sum(
            sys.getsizeof(s) for s in self.examples
        )
        return (
            strings + sys.getsizeof(self.ids) + sys.getsizeof(self.names) * 2 + 28 * len(self.ids)
        )


class Correlator:
    """A bounded window of error events and its analysis (pure; no actor needed).

    ``depends_on`` maps a path to the paths it depends on (see
    :func:`stalwart.supervisors.dependency_graph`); an error under a dependency
    (``shop/db/pool`` under ``shop/db``) counts as the dependency's.
    """

    def __init__(
        self,
        settings: CorrelatorSettings | None = None,
        depends_on: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.settings = s = settings or CorrelatorSettings()
        self.times = np.zeros(s.capacity, np.float64)
        self.paths = np.zeros(s.capacity, np.int32)
        self.fingerprints = np.zeros(s.capacity, np.int32)
        self.traces = np.zeros(s.capacity, np.int64)
        self.added = 0
        self._pending: list[tuple[float, int, int, int]] = []
        self._paths = _Names(s.max_paths)
        self._fps = _Names(s.max_fingerprints)
        self.graph = {path: tuple(deps) for path, deps in (depends_on or {}).items()}
        self.floors: dict[str, float] = {}
        # per path id: (ids of the paths under its dependencies, how many names those
        # cover, the dependencies); names are only added until a compaction drops them all
        self._deps: dict[int, _DependencyIds] = {}
        self._compact_after: dict[str, int] = {}  # no compaction before so many events

    # -- recording ---------------------------------------------------------------------------
    def add(
        self, time: float, path: str, fingerprint: str, trace: str = "", example: str = ""
    ) -> None:
        """Record one error event."""
        pid = self._paths.ids.get(path)
        if pid is None:
            pid = self._paths.id(path, self._make_room_for_path)
        fid = self._fps.ids.get(fingerprint)
        if fid is None:
            fid = self._fps.id(fingerprint, self._make_room_for_fingerprint)
        if example and not self._fps.examples[fid]:
            self._fps.examples[fid] = example[:120]
        self._pending.append((time, pid, fid, hash(trace) if trace else 0))
        self.added += 1
        if len(self._pending) >= _BATCH:
            self._flush()

    def recovered(self, time: float, path: str) -> None:
        """Record that ``path`` recovered: its earlier errors explain no later ones."""
        self._record(time, self._paths.id(path, self._make_room_for_path), _RECOVERY, 0)

    def _record(self, time: float, pid: int, fid: int, trace: int) -> None:
        self._pending.append((time, pid, fid, trace))
        self.added += 1
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        """Write the buffered events into the ring (in one go: far cheaper than one by one)."""
        rows, self._pending = self._pending, []
        if not rows:
            return
        capacity = self.settings.capacity
        rows = rows[-capacity:]
        at = (np.arange(len(rows)) + (self.added - len(rows))) % capacity
        times, paths, fingerprints, traces = zip(*rows, strict=True)
        self.times[at] = times
        self.paths[at] = paths
        self.fingerprints[at] = fingerprints
        self.traces[at] = traces

    def _make_room_for_path(self) -> bool:
        return self._compact("paths")

    def _make_room_for_fingerprint(self) -> bool:
        return self._compact("fingerprints")

    def _compact(self, which: str) -> bool:
        """The name table is full: drop names no kept event uses; True if room was made.

        A compaction that made no room is not tried again before an eighth of the window
        has been replaced: while new names keep coming, each would otherwise scan it all.
        """
        if self.added < self._compact_after.get(which, 0):
            return False
        self._flush()
        n = min(self.added, self.settings.capacity)
        names, column = (
            (self._paths, self.paths) if which == "paths" else (self._fps, self.fingerprints)
        )
        values = column[:n]
        named = values >= 0  # recoveries carry no fingerprint
        used = np.unique(values[named])
        if len(used) > names.limit * 3 // 4:
            self._compact_after[which] = self.added + max(1, self.settings.capacity // 8)
            return False
        values[named] = names.keep(used)[values[named]]
        if which == "paths":
            self._deps.clear()
        return True

    def settle(self, path: str, time: float) -> None:
        """An incident caused by ``path`` is over: its older errors explain nothing more."""
        self.floors[path] = time

    def __len__(self) -> int:
        return min(self.added, self.settings.capacity)

    def nbytes(self) -> int:
        """The memory the window takes: the arrays and the name tables."""
        self._flush()
        arrays = (
            self.times.nbytes + self.paths.nbytes + self.fingerprints.nbytes + self.traces.nbytes
        )
        deps = sum(d.ids.nbytes + 100 for d in self._deps.values())
        return arrays + self._paths.nbytes() + self._fps.nbytes() + deps

    # -- the dependency graph -----------------------------------------------------------------
    def _closure(self, path: str) -> set[str]:
        """Every path ``path`` depends on, directly or not (through its ancestors too)."""
        start: list[str] = []
        node = path
        while True:
            start.extend(self.graph.get(node, ()))
            if "/" not in node:
                break
            node = node.rsplit("/", 1)[0]
        found: set[str] = set()
        while start:
            dep = start.pop()
            if dep not in found and dep != path:
                found.add(dep)
                start.extend(self.graph.get(dep, ()))
        return found

    def _dependency_ids(self, pid: int) -> np.ndarray:
        """Ids of the known paths that lie at or under a dependency of path ``pid``.

        Kept per path, and extended by the names added since (a storm of failures at new
        paths, a Pool's keys, adds names all the time); a path that depends on nothing
        (most) looks at no name.
        """
        names = self._paths.names
        kept = self._deps.get(pid)
        if kept is None:
            kept = self._deps[pid] = _DependencyIds(self._closure(names[pid]))
        if kept.covers < len(names):
            if kept.deps:
                found = [i for i in range(kept.covers, len(names)) if kept.under(names[i])]
                if found:
                    kept.ids = np.concatenate([kept.ids, np.array(found, np.int32)])
            kept.covers = len(names)
        return kept.ids

    # -- analysis -------------------------------------------------------------------------------
    def analyze(self, now: float) -> Analysis:
        """What the last ``window_s`` before ``now`` shows."""
        self._flush()
        s = self.settings
        n = len(self)
        recent = self.times[:n] >= now - s.window_s
        kinds = self.fingerprints[:n]
        keep = recent & (kinds >= 0)
        t = self.times[:n][keep]
        if len(t) == 0:
            return Analysis(now, 0, 0.0, False)
        p = self.paths[:n][keep]
        f = kinds[keep]
        x = self.traces[:n][keep]
        if len(t) > 1 and (t[1:] < t[:-1]).any():  # the ring wrapped, or late arrivals
            order = np.argsort(t, kind="stable")
            t, p, f, x = t[order], p[order], f[order], x[order]
        back = recent & (kinds == _RECOVERY)
        recoveries = (self.times[:n][back], self.paths[:n][back])
        rate = float(np.count_nonzero(t >= now - s.rate_window_s)) / s.rate_window_s
        per_path = np.bincount(p, minlength=len(self._paths.names))
        failing = np.nonzero(per_path)[0]
        where = np.cumsum(per_path > 0)[p] - 1  # each event's index into ``failing``
        return Analysis(
            now,
            len(t),
            rate,
            rate >= s.high_rate_per_s and rate > 0,
            self._dominant(f, p),
            self._anomalies(now, t, failing, where),
            self._root_causes(t, x, p, per_path, recoveries),
        )

    def _dominant(self, f: np.ndarray, p: np.ndarray) -> ErrorPattern | None:
        s = self.settings
        counts = np.bincount(f)
        counts[0] = 0  # "(other)" is no pattern
        top = int(np.argmax(counts))
        share = counts[top] / len(f)
        if counts[top] < s.min_events or share < s.dominant_share:
            return None
        paths = tuple(sorted(self._paths.names[i] for i in np.unique(p[f == top])))
        return ErrorPattern(
            self._fps.names[top], int(counts[top]), float(share), paths, self._fps.examples[top]
        )

    def _anomalies(
        self, now: float, t: np.ndarray, failing: np.ndarray, where: np.ndarray
    ) -> tuple[Anomaly, ...]:
        s = self.settings
        k = max(2, math.ceil(s.window_s / s.bucket_s))
        bucket = np.minimum(((now - t) / s.bucket_s).astype(np.int64), k - 1)
        counts = np.bincount(where * k + np.maximum(bucket, 0), minlength=len(failing) * k)
        counts = counts.reshape(len(failing), k).astype(np.float64)
        current, past = counts[:, 0], counts[:, 1:]
        weights = s.ewma_alpha * (1 - s.ewma_alpha) ** np.arange(k - 1)
        weights /= weights.sum()
        mean = past @ weights
        var = ((past - mean[:, None]) ** 2) @ weights
        sd = np.sqrt(np.maximum(np.maximum(var, mean), 1.0))
        z = (current - mean) / sd
        found = np.nonzero((current >= s.anomaly_min) & (z >= s.z_threshold))[0]
        return tuple(
            Anomaly(
                self._paths.names[failing[i]],
                int(current[i]),
                round(float(mean[i]), 3),
                round(float(z[i]), 2),
            )
            for i in found
        )

    def _root_causes(
        self,
        t: np.ndarray,
        x: np.ndarray,
        p: np.ndarray,
        per_path: np.ndarray,
        recoveries: tuple[np.ndarray, np.ndarray],
    ) -> tuple[RootCause, ...]:
        """``t`` is sorted; ``per_path`` counts each path's errors in it."""
        s = self.settings
        failing = np.nonzero(per_path)[0]
        if len(failing) < 2:
            return ()
        names = self._paths.names
        failing_set = {int(pid) for pid in failing}
        pairs = [
            (int(pid), int(d))
            for pid in failing
            for d in self._dependency_ids(int(pid))
            if int(d) in failing_set
        ]
        if not pairs:
            return ()
        columns: dict[int, _Column] = {}
        for pid in {q for pair in pairs for q in pair}:
            rows = np.flatnonzero(p == pid)
            columns[pid] = _Column(t[rows], x[rows])
        explained: dict[int, dict[int, tuple[float, int, int]]] = {}
        back_t, back_p = recoveries
        for i, j in pairs:
            back = np.sort(back_t[back_p == j]) if len(back_t) else back_t
            share = self._explained(columns[i], columns[j], back, names[j])
            if share is not None and share[0] >= s.explain_share:
                explained.setdefault(i, {})[j] = share
        if not explained:
            return ()
        causes = {j for by in explained.values() for j in by} - set(explained)
        found = []
        for j in sorted(causes, key=lambda j: float(columns[j].times[0])):
            dependents = _dependents_of(j, explained)
            direct = [(i, explained[i][j]) for i in sorted(dependents) if j in explained[i]]
            evidence = "; ".join(
                f"{names[i]}: {hit} of {total} errors came within"
                f" {s.attribution_s:g}s after {names[j]}'s or in the same trace"
                for i, (_share, hit, total) in direct[:5]
            )
            found.append(
                RootCause(
                    names[j],
                    tuple(sorted(names[i] for i in dependents)),
                    round(min(share for _i, (share, _h, _t) in direct), 3),
                    float(columns[j].times[0]),
                    evidence,
                )
            )
        return tuple(found)

    def _explained(
        self,
        mine: _Column,
        theirs: _Column,
        back: np.ndarray,
        cause: str,
    ) -> tuple[float, int, int] | None:
        """How much of one path's errors another's explain: (share, hits, total).

        An error is explained by the cause's latest error before it, if that came at
        most ``attribution_s`` earlier and the cause did not recover in between, or
        by a cause's error in the same trace.
        """
        floor = self.floors.get(cause, -math.inf)
        tp, traces_p = mine.times, mine.traces
        td, traces_d = theirs.times, theirs.sorted_traces()
        if floor > -math.inf:
            recent = tp > floor
            tp, traces_p = tp[recent], traces_p[recent]
            td = td[td > floor]
            traces_d = theirs.sorted_traces(floor)
        if len(tp) == 0 or len(td) == 0:
            return None
        k = np.searchsorted(td, tp, side="right") - 1
        latest = td[np.maximum(k, 0)]
        hit = (k >= 0) & (tp - latest <= self.settings.attribution_s)
        if len(back):
            r = np.searchsorted(back, tp, side="right") - 1
            hit &= (r < 0) | (back[np.maximum(r, 0)] < latest)
        ask = np.nonzero(~hit & (traces_p != 0))[0]
        if len(ask) and len(traces_d):
            wanted = traces_p[ask]
            at = np.minimum(np.searchsorted(traces_d, wanted), len(traces_d) - 1)
            hit[ask[traces_d[at] == wanted]] = True
        hits = int(np.count_nonzero(hit))
        return hits / len(tp), hits, len(tp)


class _Column:
    """One path's errors in the window, in time order, and their traces."""

    __slots__ = ("_sorted", "times", "traces")

    def __init__(self, times: np.ndarray, traces: np.ndarray) -> None:
        self.times, self.traces = times, traces
        self._sorted: np.ndarray | None = None

    def sorted_traces(self, floor: float = -math.inf) -> np.ndarray:
        """The non-empty trace ids (after ``floor``), sorted for searching."""
        if floor > -math.inf:
            x = self.traces[self.times > floor]
            return np.sort(x[x != 0])
        if self._sorted is None:
            self._sorted = np.sort(self.traces[self.traces != 0])
        return self._sorted


def _dependents_of(cause: int, explained: dict[int, dict[int, Any]]) -> set[int]:
    """Every path explained by ``cause``, directly or through other dependents."""
    found: set[int] = set()
    frontier = {cause}
    while frontier:
        nxt = {i for i, by in explained.items() if i not in found and set(by) & frontier}
        found |= nxt
        frontier = nxt
    found.discard(cause)
    return found
