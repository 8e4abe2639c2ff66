"""Incidents: the tree's events folded into one incident per failure of a fingerprint at a path.

An incident opens at the first error of a fingerprint at a path (a handler failure, a crash,
a failed start, a hang, a message held for a dependency) and runs until that path serves
again, or until the tree gives it up:

- **recovered**: a failed message of it went through (a ``recovered`` event); for an
  incident without a message (a crash, a failed start, a hang), a new instance of the path
  is running (``restarted``, ``unhung``); for an actor behind a breaker, the breaker closed
  again (a trial call went through). Its time to recover runs from its first error to
  then, and is never less than what the supervisor measured from the recovering message's
  first failure to its success, nor than the sum of its recorded attempts (backoffs
  included).
- **given up**: its work was set aside (a dead letter, a poison message), plain-code
  recovery ran out of levels (``unrecovered``), or the actor stopped for good (crashed
  and not restarted; terminated, or ended idle, with what is below it). A set-aside
  incident is taken up again when the same error comes back at the path while the
  supervisor's ladder still remembers it (within the path's ``quiet_period_s`` of its last
  event): it is the same trouble, and ends when the path serves again.
- **unresolved**: still open when recording stopped (the system stopped).

Errors, steps and set-asides in between are counted on the incident. This is pure logic:
the telemetry actor folds the events it records (and writes each incident to the store),
and the dashboard folds the events it shows, with the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

ERROR_KINDS = frozenset({"failure", "crash", "start-failure", "hung", "held", "poison"})
PROCESS_KINDS = frozenset({"crash", "start-failure", "hung"})  # no message to go through
SET_ASIDE_KINDS = frozenset({"dead-letter", "poison"})
STEP_KINDS = frozenset(
    {"retry", "restart", "restarting", "escalate", "escalated", "outage", "trial", "resumed"}
)
ENDED_KINDS = frozenset({"child-terminated", "idle-stop"})  # stopped for good, and below it
DEFAULT_QUIET_S = 30.0  # LevelPolicy's quiet_period_s
PROTECTED = ".protected"  # the actor behind breaker "x" is "x.protected" (".N" replicas)
OPEN, RECOVERED, GIVEN_UP, UNRESOLVED = "open", "recovered", "given up", "unresolved"


class Incident(msgspec.Struct):
    """One incident as it stands; ``ended`` and ``duration_s`` are None while it is open."""

    id: int
    path: str
    fingerprint: str
    started: float
    kind: str  # the error that opened it: failure, crash, start-failure, hung, held, poison
    error: str = ""
    category: str = ""
    trace: str = ""
    outcome: str = OPEN  # open, recovered, given up, unresolved
    ended: float | None = None
    duration_s: float | None = None
    level: int = 0  # the level that answered (recovered), else the highest reached
    strategy: str = ""
    failures: int = 0  # errors seen in it (the first included)
    attempts: int = 0  # recovery attempts recorded for it
    attempts_failed: int = 0
    attempts_s: float = 0.0  # the recorded attempts' durations, added up
    set_aside: int = 0  # messages of it set aside as dead letters
    last: float = 0.0  # when its latest event happened
    final: bool = False  # given up for good (not taken up again)


def _field(e: Any, name: str, default: Any = None) -> Any:
    value = e.get(name, default) if isinstance(e, Mapping) else getattr(e, name, default)
    return default if value is None else value


class IncidentLog:
    """Folds events (``Event`` structs or their dicts), in order, into incidents.

    ``quiet_s`` gives each path's ``quiet_period_s`` (how long a set-aside incident may be
    taken up again), by default 30 s. :meth:`feed` answers the incidents an event touched,
    so a caller can record or show them. Not thread-safe: one owner folds.
    """

    def __init__(self, quiet_s: Mapping[str, float] | Callable[[str], float] | None = None) -> None:
        if quiet_s is None or isinstance(quiet_s, Mapping):
            table = dict(quiet_s or {})
            self.quiet_s: Callable[[str], float] = lambda p: table.get(p, DEFAULT_QUIET_S)
        else:
            self.quiet_s = quiet_s
        self.open: dict[tuple[str, str], Incident] = {}  # (path, fingerprint) -> open incident
        self.latest: dict[tuple[str, str], Incident] = {}  # the newest of each, even ended
        self.ids = 0

    # -- folding ---------------------------------------------------------------------------
    def feed(self, e: Any) -> list[Incident]:
        """Take one event; answers the incidents it opened, changed or ended."""
        kind, path = _field(e, "kind", ""), _field(e, "path", "")
        fingerprint, now = _field(e, "fingerprint", ""), float(_field(e, "time", 0.0))
        if kind in SET_ASIDE_KINDS:
            return self._set_aside(e, kind, path, fingerprint, now)
        if kind in ERROR_KINDS:
            return [self._error(e, kind, path, fingerprint, now)]
        if kind == "recovered":
            return self._recovered(e, path, fingerprint, now)
        if kind == "breaker":
            return self._breaker_closed(path, now) if e_detail(e) == "closed" else []
        if kind in ("restarted", "unhung"):
            kinds = PROCESS_KINDS if kind == "restarted" else frozenset({"hung"})
            ended = [i for i in self.at(path) if i.kind in kinds]
            for incident in ended:
                self.end(incident, RECOVERED, now)
            return ended
        if kind == "unrecovered" or (kind == "stopped" and "not restarted" in e_detail(e)):
            found = self.open.get((path, fingerprint))
            ended = [found] if found is not None else self.at(path)
            for incident in ended:
                self.end(incident, GIVEN_UP, now, final=True)
            return ended
        if kind in ENDED_KINDS:  # (a session's key ended mid-recovery: nothing will end it)
            ended = self.under(path)
            for incident in ended:
                self.end(incident, GIVEN_UP, now, final=True)
            return ended
        if kind in STEP_KINDS:
            step = self.current(path, fingerprint)
            if step is None:
                return []
            step.level = max(step.level, int(_field(e, "level", 0)))
            step.strategy = _field(e, "strategy", "") or step.strategy
            step.last = now
            return [step]
        return []

    def _error(self, e: Any, kind: str, path: str, fingerprint: str, now: float) -> Incident:
        incident = self.current(path, fingerprint) if not fingerprint else None
        incident = (
            incident
            or self.open.get((path, fingerprint))
            or self._resumable(path, fingerprint, now)
        )
        if incident is None:
            self.ids += 1
            incident = Incident(
                self.ids,
                path,
                fingerprint,
                now,
                kind,
                error=e_detail(e),
                category=_field(e, "category", ""),
                trace=_field(e, "trace", ""),
                last=now,
            )
            self.latest[(path, fingerprint)] = incident
        if incident.outcome != OPEN:  # set aside a moment ago: the same trouble goes on
            incident.outcome, incident.ended, incident.duration_s = OPEN, None, None
        self.open[(incident.path, incident.fingerprint)] = incident
        if kind != "poison" or not incident.failures:  # (a poison's failures came before)
            incident.failures += 1
        incident.level = max(incident.level, int(_field(e, "level", 0)))
        incident.strategy = _field(e, "strategy", "") or incident.strategy
        incident.last = now
        if kind == "poison":
            self.end(incident, GIVEN_UP, now)
        return incident

    def _set_aside(
        self, e: Any, kind: str, path: str, fingerprint: str, now: float
    ) -> list[Incident]:
        if kind == "poison":
            return [self._error(e, kind, path, fingerprint, now)]
        if not fingerprint:
            return []  # (a message that could not be delivered: no failure of it was seen)
        incident = self.open.get((path, fingerprint)) or self._resumable(path, fingerprint, now)
        if incident is None:
            return []  # (a message for an actor gone for good, say: no incident of it)
        incident.set_aside += 1
        incident.last = now
        if incident.outcome == OPEN:
            self.end(incident, GIVEN_UP, now)
        else:
            incident.ended = now
            incident.duration_s = max(now - incident.started, incident.attempts_s)
        return [incident]

    def _recovered(self, e: Any, path: str, fingerprint: str, now: float) -> list[Incident]:
        if fingerprint:
            incident = (
                self.open.get((path, fingerprint))
                or self._resumable(path, fingerprint, now)
                or self.open.get((path, ""))
            )
            targets = [incident] if incident is not None else []
        else:
            targets = self.at(path)
        measured = float(_field(e, "duration_ms", 0.0)) / 1000
        for incident in targets:
            incident.level = int(_field(e, "level", 0)) or incident.level
            incident.strategy = _field(e, "strategy", "") or incident.strategy
            self.end(incident, RECOVERED, now, measured)
        return targets

    def _breaker_closed(self, breaker: str, now: float) -> list[Incident]:
        """A trial call through the breaker at ``breaker`` went through: the actor behind it
        serves again (an outage it set messages aside for is over too)."""
        ended = []
        for (path, fingerprint), incident in list(self.latest.items()):
            behind = path == breaker or path.startswith(breaker + PROTECTED)
            if behind and (
                incident.outcome == OPEN or self._resumable(path, fingerprint, now) is incident
            ):
                incident.strategy = "trial"
                self.end(incident, RECOVERED, now)
                ended.append(incident)
        return ended

    def _resumable(self, path: str, fingerprint: str, now: float) -> Incident | None:
        """The set-aside incident an error of ``(path, fingerprint)`` at ``now`` takes up."""
        incident = self.latest.get((path, fingerprint))
        if (
            incident is None
            or incident.outcome != GIVEN_UP
            or incident.final
            or now - incident.last > self.quiet_s(path)
        ):
            return None
        return incident

    # -- attempts and endings ---------------------------------------------------------------
    def attempt(
        self, path: str, fingerprint: str, success: bool, duration_s: float = 0.0
    ) -> Incident | None:
        """Count a recorded recovery attempt on the incident of ``(path, fingerprint)`` (the
        last attempt of a recovery is recorded just after the recovery itself)."""
        incident = self.latest.get((path, fingerprint)) or self.open.get((path, ""))
        if incident is None:
            return None
        incident.attempts += 1
        incident.attempts_failed += not success
        incident.attempts_s += max(0.0, duration_s)
        if incident.duration_s is not None:
            incident.duration_s = max(incident.duration_s, incident.attempts_s)
        return incident

    def end(
        self,
        incident: Incident,
        outcome: str,
        now: float,
        measured_s: float = 0.0,
        final: bool = False,
    ) -> None:
        """End ``incident`` at ``now``; ``measured_s``: what the supervisor measured of it."""
        self.open.pop((incident.path, incident.fingerprint), None)
        incident.outcome, incident.ended, incident.final = outcome, now, final
        incident.duration_s = max(now - incident.started, measured_s, incident.attempts_s)
        incident.last = max(incident.last, now)

    def end_all(self, now: float) -> list[Incident]:
        """Recording stops: every open incident is unresolved (answered)."""
        ended = list(self.open.values())
        for incident in ended:
            self.end(incident, UNRESOLVED, now, final=True)
        return ended

    def forget(self, incident: Incident) -> None:
        """Stop following ``incident`` (its owner keeps no more of it)."""
        key = (incident.path, incident.fingerprint)
        if self.open.get(key) is incident:
            del self.open[key]
        if self.latest.get(key) is incident:
            del self.latest[key]

    def prune(self, now: float, keep_s: float = 60.0) -> None:
        """Forget ended incidents that nothing can take up or count any more."""
        for key, incident in list(self.latest.items()):
            idle = now - incident.last  # (most are younger than keep_s: no lookup for them)
            if idle > keep_s and incident.outcome != OPEN and idle > self.quiet_s(incident.path):
                del self.latest[key]

    # -- looking up ---------------------------------------------------------------------
    def at(self, path: str) -> list[Incident]:
        """The open incidents at ``path``, oldest first."""
        return sorted((i for (p, _), i in self.open.items() if p == path), key=lambda i: i.id)

    def under(self, path: str) -> list[Incident]:
        """The open incidents at ``path``, below it and at its replicas, oldest first."""
        below, replica = path + "/", path + "."
        found = (
            i
            for (p, _), i in self.open.items()
            if p == path or p.startswith(below) or p.startswith(replica)
        )
        return sorted(found, key=lambda i: i.id)

    def current(self, path: str, fingerprint: str) -> Incident | None:
        """The open incident of ``(path, fingerprint)``, else the newest open one at ``path``."""
        if fingerprint and (path, fingerprint) in self.open:
            return self.open[(path, fingerprint)]
        found = self.at(path)
        return found[-1] if found else None


def e_detail(e: Any) -> str:
    """An event's detail text."""
    return str(_field(e, "detail", ""))
