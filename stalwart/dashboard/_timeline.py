"""The incident timeline: the tree's events folded into one entry per incident.

An incident opens at an actor's first error of a fingerprint and gathers what followed on
that actor (the levels tried, restarts, messages set aside) until the actor serves again or
the tree gives it up, by the rules of :class:`~stalwart.supervisors._incident_log.IncidentLog`
(the same rules the telemetry actor records incidents by). Its ``level`` and ``strategy``
are those that answered; ``duration_ms`` runs from the first error to the recovery. Root
causes named by the correlator are attached from its cascades. Operator requests and
system-wide measures get entries of their own. :func:`error_groups` gathers identical
errors (same actor, same fingerprint) into one group with a count.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from ..supervisors._incident_log import GIVEN_UP, OPEN, RECOVERED, Incident, IncidentLog

SYSTEM_WIDE = frozenset({"level5", "restart-tree", "restart-services"})
SHOWN = {OPEN: "recovering", RECOVERED: "recovered", GIVEN_UP: "given up"}
STEPS_KEPT, STEPS_HEAD = 200, 50  # a long outage keeps its first steps and its latest ones


class Step(msgspec.Struct):
    """One event of an episode."""

    seq: int
    time: float
    kind: str
    level: int = 0
    strategy: str = ""
    detail: str = ""


class Episode(msgspec.Struct):
    """An incident (or an operator's request, a system-wide measure) and its steps."""

    id: int  # the sequence number of its first event
    path: str
    started: float
    kind: str  # failure, crash, hung...; "requested" for an operator's recovery request
    error: str = ""
    category: str = ""
    fingerprint: str = ""
    trace: str = ""
    # recovering, recovered, given up, unresolved; system-wide; done, failed (requests)
    outcome: str = "recovering"
    level: int = 0
    strategy: str = ""
    duration_ms: float | None = None
    failures: int = 0  # errors seen in it
    set_aside: int = 0  # messages sent to the dead letters
    root_cause: str = ""
    incident: int = 0  # the correlator's cascade it belongs to
    steps: list[Step] = msgspec.field(default_factory=list)
    steps_dropped: int = 0  # (steps beyond STEPS_KEPT, from the middle)


class Timeline:
    """Folds events (``Event`` structs or their dicts) into episodes; keeps the newest.

    ``quiet_s``: each path's ``quiet_period_s`` (see :class:`IncidentLog`).
    """

    def __init__(
        self,
        keep: int = 200,
        quiet_s: Mapping[str, float] | Callable[[str], float] | None = None,
    ) -> None:
        self.keep = keep
        self.log = IncidentLog(quiet_s)
        self.episodes: OrderedDict[int, Episode] = OrderedDict()
        self.followed: dict[int, Incident] = {}  # episode id -> its incident
        self.by_incident: dict[int, Episode] = {}  # incident id -> its episode
        self.seq = 0

    @property
    def open(self) -> dict[tuple[str, str], Incident]:
        """The open incidents, by (path, fingerprint)."""
        return self.log.open

    def feed(self, events: Iterable[Any]) -> None:
        """Take events in order; those already seen (by ``seq``) are skipped."""
        latest = None
        for event in events:
            e = event if isinstance(event, Mapping) else msgspec.structs.asdict(event)
            if e["seq"] <= self.seq:
                continue
            self.seq, latest = e["seq"], e["time"]
            self._one(e)
        while len(self.episodes) > self.keep:
            ident, _ = self.episodes.popitem(last=False)
            incident = self.followed.pop(ident, None)
            if incident is not None:
                self.by_incident.pop(incident.id, None)
                self.log.forget(incident)
        if latest is not None:
            self.log.prune(latest)

    def _one(self, e: Mapping[str, Any]) -> None:
        kind, path = e["kind"], e["path"]
        step = Step(
            e["seq"], e["time"], kind, e.get("level") or 0, e.get("strategy") or "", e["detail"]
        )
        if kind == "recovery-result":
            request = self._add(Episode(e["seq"], path, e["time"], "requested", error=e["detail"]))
            request.steps.append(step)
            request.outcome = "done" if e["detail"].startswith("ok") else "failed"
            return
        if kind in SYSTEM_WIDE:
            measure = self._add(
                Episode(e["seq"], path, e["time"], kind, error=e["detail"], outcome="system-wide")
            )
            measure.steps.append(step)
            measure.level, measure.strategy = step.level, step.strategy
            measure.duration_ms = 0.0
            return
        for incident in self.log.feed(e):
            episode = self.by_incident.get(incident.id)
            if episode is None:
                episode = self._add(
                    Episode(
                        e["seq"],
                        incident.path,
                        incident.started,
                        incident.kind,
                        error=incident.error,
                        category=incident.category,
                        fingerprint=incident.fingerprint,
                        trace=incident.trace,
                    )
                )
                self.by_incident[incident.id] = episode
                self.followed[episode.id] = incident
            _add_step(episode, step)
            episode.outcome = SHOWN.get(incident.outcome, incident.outcome)
            episode.level, episode.strategy = incident.level, incident.strategy
            done = incident.duration_s
            episode.duration_ms = None if done is None else 1000 * done
            episode.failures, episode.set_aside = incident.failures, incident.set_aside

    def _add(self, episode: Episode) -> Episode:
        self.episodes[episode.id] = episode
        return episode

    def attach_incidents(self, incidents: Iterable[Mapping[str, Any]]) -> None:
        """Name the root cause on the episodes of a cascade's cause and dependents."""
        for inc in incidents:
            members = {inc["cause"], *inc.get("dependents", ())}
            closed = inc.get("closed") or float("inf")
            for episode in self.episodes.values():
                if episode.path in members and inc["opened"] - 5.0 <= episode.started <= closed:
                    episode.root_cause, episode.incident = inc["cause"], inc["id"]

    def newest(self, limit: int = 100) -> list[Episode]:
        """Episodes, newest first."""
        return list(reversed(self.episodes.values()))[:limit]


def _add_step(episode: Episode, step: Step) -> None:
    if episode.steps and episode.steps[-1].seq == step.seq:
        return  # (one event that ended several incidents of one actor)
    episode.steps.append(step)
    if len(episode.steps) > STEPS_KEPT:
        del episode.steps[STEPS_HEAD]
        episode.steps_dropped += 1


def shown_outcome(outcome: str, live: bool, phase: str) -> str:
    """How an outcome reads on the page: an open incident is ``recovering`` only while the
    system runs; ``unresolved`` once it has stopped; ``open`` (as last recorded) from a store
    whose writer has not said it stopped."""
    if outcome != "recovering" or live:
        return outcome
    return "unresolved" if phase == "stopped" else "open"


def group_key(e: Episode) -> str:
    """Identical errors share a key: the same actor and fingerprint (or error text)."""
    if e.kind == "requested" or e.outcome == "system-wide":
        return f"{e.path}|{e.kind}"
    return f"{e.path}|{e.fingerprint or e.error}"


def error_groups(
    episodes: Iterable[Episode], live: bool, phase: str, limit: int = 100
) -> list[dict[str, Any]]:
    """Episodes (newest first) gathered by :func:`group_key`, the most recently seen first.

    Each group counts its incidents (and how they ended), says when the first began and
    when the group was last seen, and carries its latest incident whole (``latest``) and a
    line for each of its newest 50 (``incidents``).
    """
    groups: dict[str, dict[str, Any]] = {}
    for e in episodes:
        key = group_key(e)
        group = groups.get(key)
        last_seen = e.steps[-1].time if e.steps else e.started
        outcome = shown_outcome(e.outcome, live, phase)
        if group is None:
            latest: dict[str, Any] = msgspec.to_builtins(e)
            latest["outcome"] = outcome
            group = groups[key] = {
                "key": key,
                "path": e.path,
                "kind": e.kind,
                "fingerprint": e.fingerprint,
                "category": e.category,
                "error": e.error,
                "count": 0,
                "outcomes": {},
                "first_seen": e.started,
                "last_seen": last_seen,
                "latest": latest,
                "incidents": [],
            }
        group["count"] += 1
        group["outcomes"][outcome] = group["outcomes"].get(outcome, 0) + 1
        group["first_seen"] = min(group["first_seen"], e.started)
        group["last_seen"] = max(group["last_seen"], last_seen)
        if len(group["incidents"]) < 50:
            group["incidents"].append(
                {
                    "id": e.id,
                    "started": e.started,
                    "outcome": outcome,
                    "level": e.level,
                    "strategy": e.strategy,
                    "duration_ms": e.duration_ms,
                }
            )
    ordered = sorted(groups.values(), key=lambda g: -g["last_seen"])
    return ordered[:limit]
