"""Outages: a dependency is failing, and restarting the actor does not bring it back.

An outage (connection refused, timeouts, ``DownstreamError``...) gets the ladder's
retries and at most ``outage_restarts`` restarts, each only while it fits within the
restart intensity. Once a restart has not helped, the outage is announced (an
``outage`` event; the actor is ``degraded``) and until the fingerprint has been quiet
for ``quiet_period_s`` each message gets its quick level-1 retries, then its sender a
``DownstreamError``. An actor an outage keeps from starting is started again on the
backoff, without counting restarts. An outage never escalates.
"""

from __future__ import annotations

from ...strategies import ErrorInfo
from .._ladder import FailureKind, Ladder
from . import failures, lifecycle
from .commands import Timer
from .common import (
    Out,
    attempt_begins,
    note,
    trace_of,
)
from .state import (
    ChildRecord,
    FailedMessage,
    SupervisorState,
)

OUTAGE_WAIT = "outage"  # a child down because an outage keeps it from starting


def outage_restarts(
    s: SupervisorState, c: ChildRecord, ladder: Ladder, kind: FailureKind, now: float
) -> int | None:
    """How many restarts an outage may have used (None: not an outage, no such cap).

    A restart against an outage is a guess that a fresh instance helps: it is tried
    only while it fits within the restart intensity, never at the price of escalating,
    and not at all while restarting has already not helped ``c`` against another
    outage (the budget is the child's: an outage whose errors vary gets no more).
    """
    if kind is not FailureKind.OUTAGE:
        return None
    if c.in_outage(now) or not s.intensity.room(now):
        return min(ladder.restarts, c.policy.outage_restarts)
    return c.policy.outage_restarts


def announce_outage(
    s: SupervisorState, c: ChildRecord, info: ErrorInfo, now: float, out: Out
) -> None:
    """Restarting does not help: say so once, and stop restarting for it until it is quiet."""
    ladder = c.ladder(info.fingerprint)
    was = ladder.in_outage(now)
    ladder.enter_outage(now)
    failures.quiet_timer(c, out)
    if was:
        return
    note(
        s,
        out,
        "outage",
        c,
        now,
        level=2,
        info=info,
        detail=f"{info.error_type}: {info.message}: a dependency is failing and restarting"
        f" {c.path} did not help; its messages get their retries, then DownstreamError,"
        " until the failures stop",
        state="degraded",
    )


def outage_retry(
    s: SupervisorState, c: ChildRecord, record: FailedMessage, now: float, out: Out
) -> None:
    """During an outage each message gets its quick level-1 retries, then a clear error.

    Backing off against a dependency known to be down only multiplies the load on it
    (and keeps the caller waiting): the level-2 retries are for trouble that passes.
    """
    policy = c.policy
    if record.retries >= max(policy.basic_attempts, 0) or record.level > 1:
        give_up_outage(s, c, record, now, out, f"retried {record.retries} time(s)")
        return
    failures.quiet_timer(c, out)
    first = record.retries == 0
    record.level, record.attempt, record.strategy = 1, record.retries + 1, "retry"
    attempt_begins(out, c, record, now)
    if first:  # one event per message, not one per retry
        note(
            s,
            out,
            "failure",
            c,
            now,
            level=1,
            info=record.info,
            strategy="retry",
            detail=f"{record.info.error_type}: {record.info.message}",
            state="degraded",
            trace=trace_of(record.sender),
        )
    failures.schedule_retry(s, c, record, now, out)


def give_up_outage(
    s: SupervisorState, c: ChildRecord, record: FailedMessage, now: float, out: Out, why: str
) -> None:
    why = f"a dependency is failing; {why}; not restarted while the outage lasts"
    failures.give_up_downstream(s, c, record, why, now, out)


def wait_out_outage(
    s: SupervisorState, c: ChildRecord, info: ErrorInfo, now: float, out: Out
) -> None:
    """An outage keeps ``c`` from starting: try again on the backoff, without counting restarts."""
    announce_outage(s, c, info, now, out)
    c.start_failures += 1
    c.start_outage = info.fingerprint
    delay = c.policy.backoff.next_delay(c.start_failures, 0.0, s.rng)
    c.waiting = OUTAGE_WAIT
    note(
        s,
        out,
        "restart",
        c,
        now,
        level=3,
        info=info,
        strategy="backoff",
        state="waiting",
        detail=f"{c.last_error}; starting again in {delay:.2f}s",
    )
    out.append(Timer(delay, ("start-backoff", c.name), ("start-backoff", c.name)))
    lifecycle.reconcile(s, now, out)
