"""The correlator actor: ``_system/correlator``, fed every error event of the tree.

It analyses its window at most every ``analysis_interval_s`` after errors
arrive, tells the root each root cause it finds (the root then holds the
dependents while the cause recovers) and notes new patterns (a high error rate,
a dominant error, an anomalous actor) as ``correlation`` events.
"""

from __future__ import annotations

import time
from typing import Any

from ..actors import ManagedActor
from ..supervisors.messages import (
    AnalysisQuery,
    CorrelationNote,
    Event,
    IncidentClosed,
    RootCauseFound,
    WindowQuery,
)
from ._correlator import Analysis, Correlator, CorrelatorSettings


class CorrelatorActor(ManagedActor):
    """Hosts a :class:`Correlator` (options: ``settings`` and the tree's ``graph``)."""

    def on_start(self) -> None:
        self.settings = CorrelatorSettings.of(self.options.get("settings"))
        self.correlator = Correlator(self.settings, self.options.get("graph"))
        self.due = False
        self.reported: dict[str, set[str]] = {}
        self.noted: set[tuple[str, str]] = set()  # (kind, key) of patterns already noted
        self.latest = Analysis(time.time(), 0, 0.0, False)

    def receiveMsg_Event(self, event: Event, sender: Any) -> None:
        if event.kind == "recovered":
            self.correlator.recovered(event.time, event.path)
            return
        self.correlator.add(
            event.time, event.path, event.fingerprint or event.kind, event.trace, event.detail
        )
        if not self.due:
            self.due = True
            self.after(self.settings.analysis_interval_s, "analyze")

    def receiveMsg_WakeupMessage(self, msg: Any, sender: Any) -> None:
        if msg.payload == "analyze":
            self.due = False
            self.analyze()

    def analyze(self) -> Analysis:
        analysis = self.latest = self.correlator.analyze(time.time())
        for cause in analysis.root_causes:
            known = self.reported.setdefault(cause.path, set())
            if not set(cause.dependents) <= known:
                known |= set(cause.dependents)
                self.send(
                    self.root,
                    RootCauseFound(cause.path, cause.dependents, cause.explained, cause.evidence),
                )
        notes: list[tuple[tuple[str, str], str, str]] = []
        if analysis.high_rate:
            notes.append((("rate", ""), "", f"high error rate: {analysis.rate_per_s:.1f} errors/s"))
        if analysis.dominant is not None:
            d = analysis.dominant
            notes.append(
                (
                    ("dominant", d.fingerprint),
                    d.paths[0] if len(d.paths) == 1 else "",
                    f"dominant error {d.fingerprint} ({d.share:.0%} of {d.count}):"
                    f" {d.example or ''} in {', '.join(d.paths[:5])}",
                )
            )
        for a in analysis.anomalies:
            notes.append(
                (
                    ("anomaly", a.path),
                    a.path,
                    f"anomalous error rate: {a.current} in the last bucket against a baseline"
                    f" of {a.baseline:.2f} (z={a.zscore:.1f})",
                )
            )
        current = {key for key, _path, _detail in notes}
        for key, path, detail in notes:
            if key not in self.noted:
                self.send(self.root, CorrelationNote(path, detail))
        self.noted = current  # a pattern that went away is noted again should it return
        return analysis

    def receiveMsg_IncidentClosed(self, msg: IncidentClosed, sender: Any) -> None:
        self.correlator.settle(msg.cause, msg.time)
        self.reported.pop(msg.cause, None)

    def receiveMsg_AnalysisQuery(self, msg: AnalysisQuery, sender: Any) -> None:
        self.reply(sender, self.analyze())

    def receiveMsg_WindowQuery(self, msg: WindowQuery, sender: Any) -> None:
        correlator = self.correlator
        window = {
            "events": len(correlator),
            "added": correlator.added,
            "bytes": correlator.nbytes(),
        }
        self.reply(sender, window)
