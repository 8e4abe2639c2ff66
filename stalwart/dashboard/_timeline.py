"""The incident timeline: the tree's events folded into one entry per failure episode.

An episode opens at an actor's first error and gathers what followed on that
actor (the levels tried, restarts, messages set aside) until it recovered, gave
up, or the system stopped. Its ``level`` and ``strategy`` are those that
answered; ``duration_ms`` runs from the first error to the recovery. Root
causes named by the correlator are attached from its incidents.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

ERROR_KINDS = frozenset({"failure", "crash", "start-failure", "hung", "poison", "held"})
STEP_KINDS = frozenset(
    {"retry", "restart", "restarting", "restarted", "escalate", "dead-letter", "unhung"}
)
CLOSING = {"recovered": "recovered", "unrecovered": "gave up", "stopped": "stopped"}
SYSTEM_WIDE = frozenset({"level5", "restart-tree", "restart-services"})


class Step(msgspec.Struct):
    """One event of an episode."""

    seq: int
    time: float
    kind: str
    level: int = 0
    strategy: str = ""
    detail: str = ""


class Episode(msgspec.Struct):
    """A failure and what the tree did about it."""

    id: int  # the sequence number of its first event
    path: str
    started: float
    kind: str  # failure, crash, hung...; "requested" for an operator's recovery request
    error: str = ""
    category: str = ""
    fingerprint: str = ""
    trace: str = ""
    outcome: str = "recovering"  # recovered, gave up, stopped, system-wide, done, failed
    level: int = 0
    strategy: str = ""
    duration_ms: float | None = None
    set_aside: int = 0  # messages sent to the dead letters
    root_cause: str = ""
    incident: int = 0
    steps: list[Step] = msgspec.field(default_factory=list)


class Timeline:
    """Folds events (``Event`` structs or their dicts) into episodes; keeps the newest."""

    def __init__(self, keep: int = 200) -> None:
        self.keep = keep
        self.episodes: OrderedDict[int, Episode] = OrderedDict()
        self.open: dict[tuple[str, str], Episode] = {}  # (path, fingerprint) -> episode
        self.seq = 0

    def feed(self, events: Iterable[Any]) -> None:
        """Take events in order; those already seen (by ``seq``) are skipped."""
        for event in events:
            e = event if isinstance(event, Mapping) else msgspec.structs.asdict(event)
            if e["seq"] <= self.seq:
                continue
            self.seq = e["seq"]
            self._one(e)
        while len(self.episodes) > self.keep:
            _, dropped = self.episodes.popitem(last=False)
            self.open.pop((dropped.path, dropped.fingerprint), None)

    def _latest_open(self, path: str, fingerprint: str) -> Episode | None:
        if fingerprint:
            found = self.open.get((path, fingerprint))
            if found is not None:
                return found
        candidates = [e for (p, _), e in self.open.items() if p == path]
        return max(candidates, key=lambda e: e.id) if candidates else None

    def _one(self, e: Mapping[str, Any]) -> None:
        kind, path = e["kind"], e["path"]
        fingerprint = e.get("fingerprint") or ""
        step = Step(
            e["seq"], e["time"], kind, e.get("level") or 0, e.get("strategy") or "", e["detail"]
        )
        if kind == "recovery-result":
            request = self._add(Episode(e["seq"], path, e["time"], "requested", error=e["detail"]))
            request.steps.append(step)
            request.outcome = "done" if e["detail"].startswith("ok") else "failed"
            return
        if kind in ERROR_KINDS or kind in SYSTEM_WIDE:
            found = self.open.get((path, fingerprint))
            if found is not None:
                episode = found
            else:
                episode = self._add(
                    Episode(
                        e["seq"],
                        path,
                        e["time"],
                        kind,
                        error=e["detail"],
                        category=e.get("category") or "",
                        fingerprint=fingerprint,
                        trace=e.get("trace") or "",
                    )
                )
                self.open[(path, fingerprint)] = episode
            episode.steps.append(step)
            episode.level = max(episode.level, step.level)
            episode.strategy = step.strategy or episode.strategy
            if kind in SYSTEM_WIDE:
                self._close(episode, "system-wide", e)
            return
        if kind in STEP_KINDS:
            latest = self._latest_open(path, fingerprint)
            if latest is not None:
                latest.steps.append(step)
                latest.set_aside += kind == "dead-letter"
        elif kind in CLOSING:
            targets = (
                [self.open[(path, fingerprint)]]
                if (path, fingerprint) in self.open
                else [ep for (p, _), ep in self.open.items() if p == path]
            )
            for episode in targets:
                episode.steps.append(step)
                if step.level:
                    episode.level = step.level
                    episode.strategy = step.strategy or episode.strategy
                self._close(episode, CLOSING[kind], e)

    def _add(self, episode: Episode) -> Episode:
        self.episodes[episode.id] = episode
        return episode

    def _close(self, episode: Episode, outcome: str, e: Mapping[str, Any]) -> None:
        episode.outcome = outcome
        episode.duration_ms = (e["time"] - episode.started) * 1000
        self.open.pop((episode.path, episode.fingerprint), None)

    def attach_incidents(self, incidents: Iterable[Mapping[str, Any]]) -> None:
        """Name the root cause on the episodes of an incident's cause and dependents."""
        for inc in incidents:
            members = {inc["cause"], *inc.get("dependents", ())}
            closed = inc.get("closed") or float("inf")
            for episode in self.episodes.values():
                if episode.path in members and inc["opened"] - 5.0 <= episode.started <= closed:
                    episode.root_cause, episode.incident = inc["cause"], inc["id"]

    def newest(self, limit: int = 100) -> list[Episode]:
        """Episodes, newest first."""
        return list(reversed(self.episodes.values()))[:limit]
