"""No restart storms: while a dependency's breaker is open, its dependents' failures wait.

Restarting an actor whose dependency is down does not help; the tree directs
recovery at the dependency instead. A supervisor learns of its children's
breakers (``BreakerNote``) and of its own dependencies (``DependencyDown``
from its parent). While a dependency of a child is down, the child's failures
are *held*: no ladder, no restart; when the dependency comes back, the held
messages are retried. Child supervisors that depend on the breaker are told, so
the whole dependent subtree holds its failures too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..actors.messages import Retry
from ._children import UP, ChildState, FailedMessage, trace_of
from .messages import BreakerNote, DependencyDown, IncidentHold

DOWN_STATES = ("open", "forced_open", "half_open")  # half-open: not back until a probe works

if TYPE_CHECKING:
    from ._recovery import Recovery as _Base
else:
    _Base = object


class Holding(_Base):
    """Mixin for the supervisor actor."""

    down_dependencies: set[str]  # paths above this supervisor that are down
    incident_holds: dict[str, str]  # child path -> the root cause it waits for

    def on_breaker_note(self, msg: BreakerNote, sender: Any) -> None:
        c = self.children_by_path().get(msg.path)
        if c is None:
            return
        was_down = c.breaker_state in DOWN_STATES
        c.breaker_state = msg.state
        down = msg.state in DOWN_STATES
        if msg.state == "half_open":
            self.release_held(probe=msg.path)  # one held message is the trial call
        if down == was_down:
            return
        self.note("dependency-down" if down else "dependency-up", c, detail=msg.state)
        for other in self.order:
            if c.name in other.slot.depends_on and other.kind == "supervisor" and other.phase == UP:
                self.send(other.address, DependencyDown(c.path, down))
        if not down:
            self.release_held()

    def on_dependency_down(self, msg: DependencyDown, sender: Any) -> None:
        if msg.down:
            self.down_dependencies.add(msg.path)
        else:
            self.down_dependencies.discard(msg.path)
        for c in self.order:
            if c.kind == "supervisor" and c.phase == UP:
                self.send(c.address, msg)
        if not msg.down:
            self.release_held()

    def on_incident_hold(self, msg: IncidentHold, sender: Any) -> None:
        """The root traced failures of these children to ``cause``: hold them until it is back."""
        for path in msg.dependents:
            if msg.on:
                self.incident_holds[path] = msg.cause
            elif self.incident_holds.get(path) == msg.cause:
                del self.incident_holds[path]
        if not msg.on:
            self.release_held()

    def dependency_down(self, c: ChildState) -> str | None:
        """The path of a dependency of ``c`` that is down, if any."""
        if self.down_dependencies:
            return next(iter(self.down_dependencies))
        cause = self.incident_holds.get(c.path)
        if cause is not None:
            return cause
        for name in c.slot.depends_on:
            dep = self.children.get(name)
            if dep is not None and dep.breaker_state in DOWN_STATES:
                return dep.path
        return None

    def hold(self, c: ChildState, record: FailedMessage, dependency: str) -> None:
        """Park a failure until ``dependency`` is back (no ladder, no restart)."""
        c.held.append(record)
        self.note(
            "held",
            c,
            detail=f"waiting for {dependency}: {record.info.error_type}: {record.info.message}"[
                :300
            ],
            info=record.info,
            state="waiting",
            trace=trace_of(record.sender),
        )

    def release_held(self, probe: str | None = None) -> None:
        """Retry the held messages whose dependencies are back.

        ``probe``: a breaker gone half-open; one message held for it alone is retried.
        """
        for c in self.order:
            if not c.held or self.dependency_down(c) != probe:
                continue
            held, c.held = (c.held[:1], c.held[1:]) if probe else (c.held, [])
            for record in held:
                if c.phase == UP and not c.restart_pending:
                    record.level, record.attempt, record.strategy = 1, 1, "resume"
                    self.attempt_begins(c, record)
                    self.send(
                        c.address,
                        Retry(
                            record.id,
                            record.message,
                            record.sender,
                            1,
                            1,
                            "resume",
                            record.info,
                            record.traceback,
                        ),
                    )
                else:
                    self.redeliver_later(c, record)
            self.note("resumed", c, detail=f"{len(held)} held message(s) retried", state="running")
            if probe:
                return
