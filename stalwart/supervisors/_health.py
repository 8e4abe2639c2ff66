"""Health checks: every actor is asked, on an interval, whether it is alive and well.

An actor that misses ``health_misses`` checks in a row is *hung* (a handler that
never returns). On the multi-process bases its process is killed, which the
supervisor sees as a crash: the actor is restarted at level 3. The request it
was stuck on is not sent to the new instance again (it would hang it too); its
caller times out. In one process a hung handler cannot be interrupted: it is
reported (state ``hung``, an event, and by the ``System``'s own watchdog).
An actor whose ``health()`` hook says no is recovered like a failing one.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Any

from ..actors._timers import WAKE
from ..actors.messages import FailureReport, HealthCheck, HealthReport
from ..strategies import ErrorCategory, ErrorInfo, Severity, fingerprint_of
from ._children import UP, ChildState

if TYPE_CHECKING:
    from ._recovery import Recovery as _Base
else:
    _Base = object


class Health(_Base):
    """Mixin for the supervisor actor."""

    health_seq: int

    def start_health(self) -> None:
        if self.spec.health_interval_s > 0:
            self.after(self.spec.health_interval_s, (WAKE, "health"), key="health")

    def on_health_timer(self) -> None:
        self.health_seq += 1
        for c in self.order:
            if c.phase != UP or c.kind != "actor":
                c.health_pending, c.health_missed = False, 0
                continue
            if c.health_pending:
                c.health_missed += 1
                if c.health_missed >= self.spec.health_misses:
                    self.hung(c)
            c.health_pending = True
            self.send(c.address, HealthCheck(self.health_seq))
        self.start_health()

    def on_health_report(self, msg: HealthReport, sender: Any) -> None:
        c = self.children_by_path().get(msg.path)
        if c is None or c.incarnation != msg.incarnation:
            return
        if c.health_missed >= self.spec.health_misses:
            self.note("unhung", c, detail="answers health checks again", state="running")
        c.health_pending, c.health_missed = False, 0
        if not msg.ok:
            info = ErrorInfo(
                ErrorCategory.UNKNOWN,
                Severity.MEDIUM,
                fingerprint_of("Unhealthy", c.path),
                True,
                "Unhealthy",
                msg.detail or "health() said no",
            )
            self.on_failure(
                FailureReport(c.path, c.incarnation, info, None, None, msg.detail, None, "health")
            )

    def hung(self, c: ChildState) -> None:
        missed = c.health_missed
        if c.hung_reported and not (c.pid and c.pid != os.getpid()):
            return
        c.hung_reported = True
        c.last_error = f"hung: missed {missed} health checks"
        self.note(
            "hung", c, level=3, detail=f"{c.path} missed {missed} health checks", state="hung"
        )
        if c.pid and c.pid != os.getpid():
            c.hung_killed = True
            try:
                os.kill(c.pid, signal.SIGKILL)  # seen next as a crash: restarted at level 3
            except (ProcessLookupError, PermissionError):
                pass
