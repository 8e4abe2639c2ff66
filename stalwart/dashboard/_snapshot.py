"""What the dashboard page polls: the live tree, the timeline, memory and headline figures.

One :class:`Snapshots` per server folds the tree's events into the
:class:`~stalwart.dashboard.Timeline` as they come, so a poll costs only the
events since the last one. The slower figures (the running totals, memory,
alerts), which actors answer, are read at most once per ``slow_s``, in the
background: a poll never waits for them (until the first read is back, the
snapshot says ``"figures": "reading"``; ``"off"`` for a system started with
``store=None``, which keeps none), so the page keeps answering while an actor's handler
holds the in-process base for seconds.

What a snapshot says follows the system: ``live`` only while a tree is attached and
running; an incident still open once the system has stopped is ``unresolved``, and one
read from a store file whose writer has not said it stopped is ``open`` (as last
recorded), never ``recovering``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

import msgspec

from ..actors.errors import ServiceOff, StalwartError
from ._timeline import Timeline, error_groups, shown_outcome

OPEN_BREAKER_STATES = frozenset({"open", "forced_open", "half_open"})
PROTECTED = ".protected"


class Source(Protocol):
    """The part of the API's backend the dashboard reads."""

    def tree(self) -> tuple[str, str, list[dict[str, Any]], dict[str, Any] | None]: ...
    def events(self, since: int) -> list[Any]: ...
    def incidents(self) -> list[dict[str, Any]]: ...
    def memory(self) -> dict[str, Any] | None: ...
    def totals(self) -> Any: ...
    def tree_gauges(self) -> Any: ...
    def alerts(self, active: bool | None) -> list[dict[str, Any]]: ...
    def quiet_periods(self) -> dict[str, float]: ...


def with_breaker_badges(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each protected actor (``x.protected``, ``x.protected.N``) its breaker's state
    and health score.

    A breaker that has not reported a change yet is in its first state: closed.
    """
    for node in nodes:
        if node["kind"] == "breaker" and not node["breaker"]:
            node["breaker"] = "closed"
    breakers = {n["path"]: n for n in nodes if n["kind"] == "breaker"}
    for node in nodes:
        if node["kind"] != "actor" or PROTECTED not in node["path"]:
            continue
        front = breakers.get(node["path"][: node["path"].rindex(PROTECTED)])
        if front is not None:
            node["breaker"] = front["breaker"]
            node["breaker_health"] = front.get("breaker_health")
    return nodes


class Snapshots:
    """Builds the page's snapshots from a backend; thread-safe."""

    def __init__(self, source: Source, slow_s: float = 1.0, keep: int = 200) -> None:
        self.source = source
        self.slow_s = slow_s
        self.timeline = Timeline(keep, source.quiet_periods())
        self._lock = threading.Lock()
        self._slow: dict[str, Any] = {"totals": {}, "memory": None, "alerts": []}
        self._slow_at = float("-inf")  # never read yet
        self._reading = False  # a background read of the slow figures is under way
        self._shown: tuple[Any, list[Any], list[Any]] | None = None  # (what it was made of)

    def snapshot(self, episodes: int = 100) -> dict[str, Any]:
        """The tree, the newest ``episodes`` of the timeline (and as many error groups),
        memory and the headline."""
        name, phase, nodes, actors = self.source.tree()
        live = bool(nodes) and phase != "stopped"
        nodes = with_breaker_badges(nodes)
        incidents = self.source.incidents()
        with self._lock:
            read = time.monotonic() - self._slow_at >= self.slow_s and not self._reading
            self._reading = self._reading or read
        if read:
            threading.Thread(target=self._refresh_slow, daemon=True).start()
        with self._lock:
            self.timeline.feed(self.source.events(self.timeline.seq))
            self.timeline.attach_incidents(incidents)
            slow, ready = self._slow, self._slow_at > float("-inf")
            seq = self.timeline.seq
            timeline, groups = self._shown_episodes((seq, episodes, live, phase, incidents))
        open_breakers = sorted(
            {
                n["path"]
                for n in nodes
                if n["kind"] == "breaker" and n["breaker"] in OPEN_BREAKER_STATES
            }
            | set(slow.get("breakers") or ())
            | (set() if live else set(slow["totals"].get("open_breakers") or ()))
        )
        return {
            "time": time.time(),
            "name": name,
            "phase": phase,
            "live": live,
            "seq": seq,
            "tree": nodes,
            "actors": actors,  # (counts by state; a large tree's rows are not all in "tree")
            "timeline": timeline,
            "groups": groups,
            "figures": "off" if slow.get("off") else "ready" if ready else "reading",
            "memory": slow["memory"],
            "headline": headline(slow["totals"], open_breakers, slow["alerts"]),
        }

    def _shown_episodes(self, made_of: Any) -> tuple[list[Any], list[Any]]:
        """The timeline and groups as shown: made again only when an event came, or the
        incidents or the system's phase changed (most polls see nothing new)."""
        if self._shown is None or self._shown[0] != made_of:
            _, episodes, live, phase, _ = made_of
            timeline = [as_shown(e, live, phase) for e in self.timeline.newest(episodes)]
            groups = error_groups(self.timeline.newest(self.timeline.keep), live, phase, episodes)
            self._shown = (made_of, timeline, groups)
        return self._shown[1], self._shown[2]

    def _refresh_slow(self) -> None:
        try:
            try:
                totals, alerts, off = self.source.totals(), self.source.alerts(True), False
            except ServiceOff:  # started with store=None: no figures to show
                totals, alerts, off = None, [], True
            slow = {
                "totals": msgspec.to_builtins(totals) or {},
                "memory": self.source.memory(),
                "alerts": alerts,
                "off": off,
                "breakers": self._open_breakers_live(),
            }
            with self._lock:
                self._slow, self._slow_at = slow, time.monotonic()
        finally:
            with self._lock:
                self._reading = False

    def _open_breakers_live(self) -> list[str]:
        """The live tree's open breakers, all of them (the rows a poll shows of a large tree
        are not all its rows)."""
        try:
            gauges = self.source.tree_gauges()
        except StalwartError:  # (the system has just stopped)
            return []
        if gauges is None:  # (a store file: no live tree)
            return []
        return [path for path, state in gauges.breakers if state in OPEN_BREAKER_STATES]


def as_shown(episode: Any, live: bool, phase: str) -> dict[str, Any]:
    """An episode as the page shows it (see :func:`shown_outcome`)."""
    shown: dict[str, Any] = msgspec.to_builtins(episode)
    shown["outcome"] = shown_outcome(shown["outcome"], live, phase)
    return shown


def headline(
    totals: dict[str, Any], open_breakers: list[str], alerts: list[dict[str, Any]]
) -> dict[str, Any]:
    """The figures at the top of the page, from the running totals (all of history):
    incidents first, then the attempts they took."""
    return {
        "incidents": totals.get("incidents", 0),
        "incidents_recovered": totals.get("incidents_recovered", 0),
        "incidents_given_up": totals.get("incidents_given_up", 0),
        "incidents_open": totals.get("incidents_open", 0),
        "incident_success_rate": totals.get("incident_success_rate"),
        "mttr_p50_s": totals.get("mttr_p50_s"),
        "mttr_p95_s": totals.get("mttr_p95_s"),
        "attempts": totals.get("attempts", 0),
        "attempt_success_rate": totals.get("attempt_success_rate"),
        "errors": totals.get("errors", 0),
        "restarts": totals.get("restarts", 0),
        "open_breakers": open_breakers,
        "alerts": [
            {"rule": a["rule"], "severity": a["severity"], "message": a.get("message") or ""}
            for a in alerts
        ],
    }
