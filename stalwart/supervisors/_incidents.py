"""Incidents: recovery in dependency order once the correlator has named a root cause.

The root forwards every error event to the correlator (``_system/correlator``).
When the correlator traces the errors of some actors to a dependency of theirs,
the root opens an incident: the dependents' supervisors hold their failures
(the failed messages wait; no retries, no restarts) while the cause recovers
through its own ladder. A cause that nothing calls shows no errors, so quiet
alone proves nothing: once the cause has been running without an error for
``incident_quiet_s``, one held message is retried as a trial (a ``trial``
event). The incident is resolved when the trial goes through (or when no
dependent waits any more, each running with nothing left to retry): the held
messages are retried, and the correlator stops counting the cause's older errors.
A trial that fails is held again, and the next one comes after another quiet
period. A dependent is thus not restarted because of the cause while the incident
is open.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ..actors._timers import WAKE
from ._gateway import CORRELATOR
from ._registry import Registry
from .messages import (
    CorrelationNote,
    Event,
    Incident,
    IncidentClosed,
    IncidentHold,
    Registered,
    RootCauseFound,
)

ERROR_KINDS = frozenset(
    {"failure", "crash", "start-failure", "held", "hung", "dead-letter", "poison"}
)
CORRELATED_KINDS = ERROR_KINDS | {"recovered"}  # recoveries end what an error explains
_KEPT = 200
_CHECK_S = 0.1
_UNSETTLED = ("retrying", "restarting", "waiting", "hung", "failed", "starting")


class _Open:
    """An incident while it is open."""

    def __init__(self, ident: int, cause: str, evidence: str, restarts: dict[str, int]) -> None:
        self.id = ident
        self.cause = cause
        self.evidence = evidence
        self.dependents: set[str] = set()
        self.opened = time.time()
        self.opened_mono = time.monotonic()
        self.last_error = self.opened_mono
        self.restarts_at_open = restarts
        self.trial_at = 0.0  # when a held message was last retried as a trial (monotonic)
        self.trials = 0


def under(path: str, node: str) -> bool:
    """``path`` is ``node`` or lies below it (``node/...``, or ``node.protected``)."""
    return path == node or path.startswith(node + "/") or path.startswith(node + ".")


class Incidents:
    """Mixin for the root actor."""

    registry: Registry
    if TYPE_CHECKING:

        @property
        def phase(self) -> str: ...

    correlator_on: bool
    options: Any

    if TYPE_CHECKING:  # provided by the root and its other mixins

        def record(self, kind: str, path: str, context: str = "", **fields: Any) -> None: ...
        def send(self, target: Any, msg: Any) -> None: ...
        def after(self, delay: float, payload: Any, key: Any = None) -> None: ...
        def _sw_send_path(self, path: str, msg: Any) -> bool: ...
        def post(self, path: str, msg: Any) -> None: ...

    def init_incidents(self) -> None:
        self.open_incidents: dict[str, _Open] = {}
        self.closed_incidents: deque[Incident] = deque(maxlen=_KEPT)
        self.incident_ids = 0
        self.incident_quiet_s = 1.0
        self.incident_max_s = 120.0

    def correlate(self, event: Event) -> None:
        """An event was recorded: errors go to the correlator and mark open incidents."""
        if event.kind not in CORRELATED_KINDS and not (
            event.kind == "breaker" and event.detail == "open"  # a breaker gave up on its actor
        ):
            return
        if self.correlator_on:
            self.post(CORRELATOR, event)
        if event.kind == "recovered":
            if event.strategy == "resume":  # a held message went through: its cause is back
                for incident in list(self.open_incidents.values()):
                    if incident.trial_at and event.path in incident.dependents:
                        self.close_incident(incident, "resolved")
        elif event.kind != "held":
            for incident in self.open_incidents.values():
                if under(event.path, incident.cause):
                    incident.last_error = time.monotonic()

    # -- opening ---------------------------------------------------------------------------
    def on_root_cause(self, msg: RootCauseFound, sender: Any) -> None:
        if self.phase != "running":
            return
        if any(msg.path in i.dependents for i in self.open_incidents.values()):
            return  # already held as a dependent of an earlier cause
        # an open incident whose cause turns out to depend on this one becomes part of it
        absorbed = [self.open_incidents[d] for d in msg.dependents if d in self.open_incidents]
        incident = self.open_incidents.get(msg.path)
        if incident is None:
            self.incident_ids += 1
            incident = _Open(
                self.incident_ids,
                msg.path,
                msg.evidence,
                {p: e.restarts for p, e in self.registry.entries.items()},
            )
            self.open_incidents[msg.path] = incident
            self.after(_CHECK_S, (WAKE, "incident", msg.path), key=("incident", msg.path))
        candidates = set(msg.dependents)
        for other in absorbed:
            candidates |= other.dependents
        new = {
            d
            for d in candidates
            if d not in incident.dependents and not under(d, msg.path) and not under(msg.path, d)
        }
        if not new:
            return
        incident.dependents |= new
        self.record(
            "incident",
            msg.path,
            detail=(
                f"#{incident.id}: root cause of errors in {', '.join(sorted(new))}"
                f" (explains {msg.explained:.0%}); dependents held until it is back"
            ),
        )
        self.hold_dependents(incident.cause, new, True)  # replaces the absorbed causes' holds
        for other in absorbed:
            del self.open_incidents[other.cause]
            self.closed_incidents.append(self.snapshot(other, "merged", time.time()))
            self.record(
                "incident-merged",
                other.cause,
                detail=f"#{other.id} is part of #{incident.id}: {other.cause} fails because of"
                f" {incident.cause}",
            )

    def hold_dependents(self, cause: str, dependents: set[str], on: bool) -> None:
        """Tell the supervisors of ``dependents`` to hold (or resume) their failures."""
        by_parent: dict[str, list[str]] = {}
        for path in dependents:
            if "/" in path:
                by_parent.setdefault(path.rsplit("/", 1)[0], []).append(path)
        for parent, paths in by_parent.items():
            address = self.registry.address_of(parent)
            if address is not None:
                self.send(address, IncidentHold(cause, tuple(sorted(paths)), on))

    def incident_holds_for(self, msg: Registered) -> None:
        """A supervisor (re)started: it holds what open incidents hold below it."""
        if msg.kind != "supervisor" or not self.open_incidents:
            return
        for incident in self.open_incidents.values():
            paths = tuple(sorted(d for d in incident.dependents if d.rsplit("/", 1)[0] == msg.path))
            if paths:
                self.send(msg.address, IncidentHold(incident.cause, paths, True))

    # -- closing -----------------------------------------------------------------------------
    def on_incident_timer(self, cause: str) -> None:
        incident = self.open_incidents.get(cause)
        if incident is None:
            return
        now = time.monotonic()
        quiet = now - max(incident.last_error, incident.trial_at) >= self.incident_quiet_s
        if self.cause_settled(cause) and quiet:
            waiting = self.waiting_dependents(incident)
            if not waiting and self.dependents_settled(incident):
                self.close_incident(incident, "resolved")
                return
            if waiting:
                incident.trial_at = now
                incident.trials += 1  # each waiting dependent in turn gives the trial
                dependent = waiting[incident.trials % len(waiting)]
                parent = self.registry.address_of(dependent.rsplit("/", 1)[0])
                if parent is not None:
                    self.send(parent, IncidentHold(cause, (dependent,), True, probe=True))
        if now - incident.opened_mono >= self.incident_max_s:
            self.close_incident(incident, "expired")
        else:
            self.after(_CHECK_S, (WAKE, "incident", cause), key=("incident", cause))

    def waiting_dependents(self, incident: _Open) -> list[str]:
        """The dependents holding messages for ``incident``."""
        entries = self.registry.entries
        return [
            d
            for d in sorted(incident.dependents)
            if "/" in d and (e := entries.get(d)) is not None and e.state == "waiting"
        ]

    def dependents_settled(self, incident: _Open) -> bool:
        """Whether every dependent runs with nothing to recover: one still retrying what
        failed is not done (its next failure is held, and waits for a trial)."""
        entries = self.registry.entries
        return all(
            (e := entries.get(d)) is None or (e.available and e.state not in _UNSETTLED)
            for d in incident.dependents
            if "/" in d
        )

    def cause_settled(self, cause: str) -> bool:
        entries = [e for p, e in self.registry.entries.items() if under(p, cause)]
        return bool(entries) and all(
            e.available and e.state not in _UNSETTLED for e in entries if e.kind != "supervisor"
        )

    def close_incident(self, incident: _Open, state: str) -> None:
        del self.open_incidents[incident.cause]
        self.hold_dependents(incident.cause, incident.dependents, False)
        now = time.time()
        if self.correlator_on:
            self.post(CORRELATOR, IncidentClosed(incident.cause, now))
        self.closed_incidents.append(self.snapshot(incident, state, now))
        took = now - incident.opened
        self.record(
            "incident-" + state,
            incident.cause,
            detail=(
                f"#{incident.id}: {incident.cause} is back after {took:.2f}s;"
                f" {', '.join(sorted(incident.dependents))} resumed"
                if state == "resolved"
                else f"#{incident.id}: {incident.cause} not back after {took:.0f}s;"
                " dependents released to their own recovery"
            ),
            duration_ms=1000 * took,
        )

    def snapshot(self, incident: _Open, state: str, closed: float = 0.0) -> Incident:
        return Incident(
            incident.id,
            incident.cause,
            tuple(sorted(incident.dependents)),
            state,
            incident.opened,
            closed,
            incident.evidence,
            self.restarts_since(incident),
        )

    def incidents(self) -> tuple[Incident, ...]:
        """The closed incidents kept, then the open ones."""
        current = tuple(self.snapshot(i, "open") for i in self.open_incidents.values())
        return (*self.closed_incidents, *current)

    def restarts_since(self, incident: _Open) -> dict[str, int]:
        """How often each dependent restarted since ``incident`` opened."""
        return {
            d: max(0, e.restarts - incident.restarts_at_open.get(d, 0))
            for d in sorted(incident.dependents)
            if (e := self.registry.entries.get(d)) is not None
        }

    def on_correlation_note(self, msg: CorrelationNote, sender: Any) -> None:
        self.record("correlation", msg.path, detail=msg.detail[:300])
