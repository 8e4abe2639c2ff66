"""Where plain-code recovery records go: a running system, a store file, or nowhere."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ..supervisors._incident_log import Incident, IncidentLog
from ..supervisors.messages import Attempt, Event, EventNote
from ..telemetry._rows import (
    attempt_row,
    error_seen_statements,
    event_row,
    incident_statement,
    recovered_statement,
)
from ..telemetry._store import RecoveryStore, Statement, strategy_score_statements
from ..telemetry._totals import RunningTotals

log = logging.getLogger("stalwart.recover")
ERROR_KINDS = ("failure",)

Note = EventNote | Attempt


def _event(note: EventNote, when: float) -> Event:
    return Event(0, when, note.kind, note.path, **note.event_fields())


class StoreSink:
    """Writes records straight into a recovery store, one batch per handled error (its
    events, attempts and the incident they make, and what they add to the running totals)."""

    def __init__(self, store: RecoveryStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._name = uuid.uuid4().hex[:12]  # (its incidents' keys: one sink, one namespace)
        self._incidents = 0

    def publish(
        self, notes: Sequence[tuple[float, Note]], scores: Mapping[str, Sequence[float]]
    ) -> None:
        rows: dict[str, list[dict[str, Any]]] = {"events": [], "recovery_performance": []}
        statements: list[Statement] = []
        log = IncidentLog()  # a handled error is one incident, all in this batch
        touched: dict[int, Incident] = {}
        totals = RunningTotals()  # (only what this batch adds)
        for when, note in notes:
            if isinstance(note, Attempt):
                rows["recovery_performance"].append(attempt_row(note))
                totals.attempt(note)
                found = log.attempt(note.path, note.fingerprint, note.success, note.duration_s)
                if found is not None:
                    touched[found.id] = found
                continue
            event = _event(note, when)
            touched.update((i.id, i) for i in log.feed(event))
            rows["events"].append(event_row(event))
            totals.event(event)
            if event.kind in ERROR_KINDS and event.fingerprint:
                statements += error_seen_statements(event)
            elif event.kind == "recovered" and event.fingerprint:
                statements.append(recovered_statement(event))
        statements += strategy_score_statements(scores)
        totals.incidents(sorted(touched.values(), key=lambda i: i.id))
        statements += totals.statements()
        with self._lock:
            for incident in touched.values():
                self._incidents += 1
                key = f"recover.{self._name}.{self._incidents}"
                statements.append(incident_statement(incident, key))
            self.store.write_batch(rows, statements)


class SystemSink:
    """Hands records to a running system: its events, correlator and store see them."""

    def __init__(self, system: Any) -> None:
        self.system = system

    def publish(
        self, notes: Sequence[tuple[float, Note]], scores: Mapping[str, Sequence[float]]
    ) -> None:
        try:
            self.system.record(*(note for _, note in notes))
        except Exception as exc:  # a stopped system must not fail the caller's recovery
            log.warning("recovery records not delivered to the system: %s", exc)
