"""Answering failures: the five levels, applied by a supervisor to its children.

Every failure comes here with the failed message attached, and is one of three kinds
(:func:`~.._ladder.failure_kind`):

- **input** (retrying cannot fix it): the sender gets ``HandlerError`` at once;
- **fault** (something in the actor): the ladder picks the level, from retries in
  place (1, 2) to restarting the actor (3) and its restart set (4, repeated);
  restarts are bounded by the supervisor's restart intensity, and only exceeding
  it escalates (to the parent, and at the top to the root: level 5);
- **outage** (a dependency is failing): retries as for a fault, then at most
  ``outage_restarts`` restarts; once a restart has not helped, the tree stops
  restarting for it, and each message gets its retries in place, then a
  ``DownstreamError``. An outage never escalates.

A message that fails again on a freshly restarted instance is a poison message (a
fault) or proof that restarting does not help (an outage). Retries and waits end
before the caller's deadline, so callers get an answer, not a timeout.
"""

from __future__ import annotations

from ...actors.errors import (
    ActorStopped,
    DownstreamError,
    HandlerError,
    PoisonMessageError,
    RecoveryFailed,
    StalwartError,
)
from ...actors.messages import Retry as RetryMessage
from ...strategies import ErrorInfo
from .._ladder import Decision, FailureKind
from . import lifecycle, mediation, outages, restarts
from .commands import Answer, Cancel, Escalate, Retry, Timer
from .common import (
    Out,
    attempt_begins,
    attempt_done,
    context_of,
    describe,
    hang_info,
    note,
    operation,
    set_aside,
    state_note,
    trace_of,
)
from .events import Failed, Recovered
from .state import (
    TREE_CANDIDATES,
    UP,
    ChildRecord,
    FailedMessage,
    SupervisorState,
)

DEADLINE_MARGIN_S = 0.15  # an answer leaves this long before the caller's deadline


def on_failed(s: SupervisorState, e: Failed, out: Out) -> None:
    c = s.children.get(e.child)
    if c is None:
        return
    now = e.now
    record = s.failures.get(e.failure_id) if e.failure_id is not None else None
    if record is not None:  # its retry failed: that retry's timeout is moot (a stale one
        # would fire on its next attempt at the same level, as a held message's resume)
        out.append(Cancel(("retry-timeout", record.id)))
        attempt_done(s, out, record, False, now)
    else:
        record = s.new_failure(c.name, e.message, e.sender, e.info, now)
        record.deadline = e.deadline
    record.info, record.traceback = e.info, e.traceback
    if e.handled_s:
        s.timeout_of(c.path, operation(e.message)).observe_handler(e.handled_s)
    if record.sent_at:
        record.took, record.sent_at = now - record.sent_at, 0.0
    c.last_error = f"{e.info.error_type}: {e.info.message}"[:300]
    owner = s.children.get(record.assigned_to, c)
    if e.incarnation != c.incarnation or c.restart_pending or c.phase != UP:
        restarts.redeliver_later(s, owner, record, now, out)
        return
    kind = c.kind_of(e.info)
    error: StalwartError
    if kind is FailureKind.INPUT and e.message is not None:
        error = HandlerError(
            f"{c.path}: {e.info.error_type}: {e.info.message} ({e.info.category}; not retried)",
            c.path,
        )
        set_aside(s, out, record, error, now, refused=True)
        return
    dependency = mediation.dependency_down(s, c) if e.info.retryable else None
    if dependency is not None and e.message is not None:
        mediation.hold(s, c, record, dependency, now, out)
        return
    if record.fresh is not None and record.fresh == (c.name, e.incarnation):
        if kind is FailureKind.OUTAGE:
            outages.announce_outage(s, c, record.info, now, out)
            outages.give_up_outage(s, c, record, now, out, "restarting it did not help")
        else:
            error = PoisonMessageError(
                f"{c.path}: {describe(record.message)} failed again on a freshly restarted"
                f" instance ({e.info.error_type}: {e.info.message}); set aside as a dead letter",
                c.path,
            )
            set_aside(s, out, record, error, now, poison=True)
        return
    decide_failure(s, c, record, kind, now, out)


def decide_failure(
    s: SupervisorState,
    c: ChildRecord,
    record: FailedMessage,
    kind: FailureKind,
    now: float,
    out: Out,
) -> None:
    """Climb the ladder for ``record`` (a new failure of it) and act on the level."""
    ladder = c.ladder(record.info.fingerprint)
    if kind is FailureKind.OUTAGE and ladder.in_outage(now):
        outages.outage_retry(s, c, record, now, out)
        return
    allowed = outages.outage_restarts(s, c, ladder, kind, now)
    seen = None if record.health else record.round
    decision = ladder.on_failure(now, seen=seen, restarts_allowed=allowed)
    record.round = ladder.round
    if decision is None:
        outages.announce_outage(s, c, record.info, now, out)
        outages.outage_retry(s, c, record, now, out)
        return
    if decision.level >= 3:
        if c.restart == "temporary":
            stop_temporary(s, c, record, decision, now, out)
            return
        if not s.intensity.add(now):
            error = RecoveryFailed(f"{c.path}: restart intensity of {s.path} exceeded", c.path)
            set_aside(s, out, record, error, now)
            escalate(s, intensity_reason(s, c), record.info, c.path, now, out)
            return
    apply(s, c, record, decision, now, out)


def apply(
    s: SupervisorState,
    c: ChildRecord,
    record: FailedMessage,
    decision: Decision,
    now: float,
    out: Out,
) -> None:
    level = decision.level
    strategy = choose(s, c, record, level)
    record.level, record.attempt, record.strategy = level, decision.attempt, strategy
    attempt_begins(out, c, record, now)
    if level >= 3:
        c.restarts += 1
    note(
        s,
        out,
        "failure",
        c,
        now,
        level=level,
        info=record.info,
        strategy=strategy,
        detail=f"{record.info.error_type}: {record.info.message}",
        state="retrying" if level <= 2 else "restarting",
        trace=trace_of(record.sender),
        context=context_of(record.sender),
    )
    if level <= 2:
        if strategy == "fallback":
            answer_with_fallback(s, c, record, now, out)
        else:
            schedule_retry(s, c, record, now, out)
    elif level == 3:
        if strategy == "reassign" and restarts.reassign(s, c, record, out):
            c.restart_pending = True
        else:
            restarts.restart_with(s, c, record, now, out)
        lifecycle.reconcile(s, now, out)
    else:
        lifecycle.mark_restart_set(s, c, count_c=False)
        restarts.restart_with(s, c, record, now, out)
        lifecycle.reconcile(s, now, out)


def choose(s: SupervisorState, c: ChildRecord, record: FailedMessage, level: int) -> str:
    available = list(TREE_CANDIDATES.get(level, ()))
    if "fallback" in available and (c.kind != "actor" or c.fallback is None or record.health):
        available.remove("fallback")
    if "reassign" in available and restarts.healthy_replica(s, c) is None:
        available.remove("reassign")
    tried = record.tried.setdefault(level, [])
    try:
        strategy = s.selector.choose(
            record.info.category, level, exclude=tried, available=available
        )
    except LookupError:
        tried.clear()
        strategy = s.selector.choose(record.info.category, level, available=available)
    tried.append(strategy)
    return strategy


def stop_temporary(
    s: SupervisorState,
    c: ChildRecord,
    record: FailedMessage,
    decision: Decision,
    now: float,
    out: Out,
) -> None:
    """A temporary child is never restarted: it stops for good (no restart is counted)."""
    why = f"{record.info.error_type}: {record.info.message}"
    note(
        s,
        out,
        "failure",
        c,
        now,
        level=decision.level,
        info=record.info,
        strategy="stop",
        detail=why,
        state="stopping",
    )
    text = f"{c.path} was stopped for good: it failed ({why}) and is temporary (never restarted)"
    error = ActorStopped(text[:500], c.path)
    set_aside(s, out, record, error, now)
    c.stop_for_good = True
    lifecycle.reconcile(s, now, out)


# -- retries in place ---------------------------------------------------------------------


def schedule_retry(
    s: SupervisorState, c: ChildRecord, record: FailedMessage, now: float, out: Out
) -> None:
    policy = c.policy
    if record.level == 1:
        delay = policy.basic_delay_s
    else:
        delay = policy.backoff.next_delay(record.attempt, record.last_delay, s.rng)
    # another try must fit, with the time the last one ran, before the caller gives up
    if record.deadline and now + delay + record.took > record.deadline - DEADLINE_MARGIN_S:
        give_up_at_deadline(s, c, record, now, out)
        return
    record.last_delay = delay
    record.retries += 1
    out.append(Timer(delay, ("retry", record.id)))


def on_retry_timer(s: SupervisorState, record_id: int, now: float, out: Out) -> None:
    record = s.failures.get(record_id)
    if record is None or record.held_for:
        return
    c = s.children[record.assigned_to]
    if c.phase != UP or c.restart_pending:
        restarts.redeliver_later(s, c, record, now, out)
        return
    out.append(Retry(c.name, retry_message(record)))
    record.sent_at = now
    # an attempt that never answers (a hung handler) counts as failed after a timeout
    learned = s.timeout_of(c.path, operation(record.message))
    timeout = record.waits_s = learned.value(c.policy.retry_timeout_s)
    payload = ("retry-timeout", record.id, record.attempt, record.level)
    out.append(Timer(timeout, payload, ("retry-timeout", record.id)))


def retry_message(
    record: FailedMessage, level: int | None = None, strategy: str = ""
) -> RetryMessage:
    return RetryMessage(
        record.id,
        record.message,
        record.sender,
        level or record.level,
        record.attempt,
        strategy or record.strategy,
        record.info,
        record.traceback,
    )


def on_retry_timeout(
    s: SupervisorState, record_id: int, attempt: int, level: int, now: float, out: Out
) -> None:
    record = s.failures.get(record_id)
    if record is None or (record.attempt, record.level) != (attempt, level) or record.held_for:
        return
    c = s.children.get(record.assigned_to)
    if c is None or c.phase != UP:
        return
    detail = f"{c.path}: a level-{level} retry got no answer within {record.waits_s:.3g}s"
    info = hang_info(c.path, detail, "RetryTimeout")
    failed = Failed(
        c.name,
        c.incarnation,
        info,
        record.message,
        record.sender,
        info.message,
        record.id,
        "retry",
        now=now,
    )
    on_failed(s, failed, out)


def on_recovered(s: SupervisorState, e: Recovered, out: Out) -> None:
    record = s.failures.get(e.failure_id)
    if record is None:
        return
    out.append(Cancel(("retry-timeout", record.id)))
    if record.sent_at:  # how long the retry really took: the timeout learns from it
        c = s.children.get(record.assigned_to)
        if c is not None:
            s.timeout_of(c.path, operation(record.message)).observe_step(e.now - record.sent_at)
        record.sent_at = 0.0
    if record.health:
        return  # a health check's hooks ran: the next check says whether they helped
    del s.failures[e.failure_id]
    if record.held_for:  # its retry timed out and it was held again, but it was answered
        mediation.answered_late(s, record, out)
    recovered(s, record, e.now, out)


def recovered(s: SupervisorState, record: FailedMessage, now: float, out: Out) -> None:
    c = s.children.get(record.child)
    if c is not None:
        ladder = c.ladder(record.info.fingerprint)
        ladder.on_success(now)
        ladder.end_outage()  # it went through: what it depends on is back
        note(
            s,
            out,
            "recovered",
            c,
            now,
            level=record.level,
            info=record.info,
            strategy=record.strategy,
            duration_ms=1000 * (now - record.first_time),
            # still waiting while it holds other messages (resumed when they are retried)
            state="running" if c.phase == UP and not c.in_outage(now) and not c.held else "",
        )
    attempt_done(s, out, record, True, now)
    if c is not None:
        quiet_timer(c, out)


def quiet_timer(c: ChildRecord, out: Out) -> None:
    """Report the ladder's reset once the quiet period has passed."""
    out.append(Timer(c.policy.quiet_period_s + 0.01, ("quiet", c.name), ("quiet", c.name)))


def on_quiet(s: SupervisorState, name: str, now: float, out: Out) -> None:
    c = s.children.get(name)
    if c is not None and c.phase == UP and not c.in_outage(now):
        state_note(out, c, "running", now)


def answer_with_fallback(
    s: SupervisorState, c: ChildRecord, record: FailedMessage, now: float, out: Out
) -> None:
    out.append(Answer(record.sender if record.sender is not None else record.message, c.fallback))
    s.failures.pop(record.id, None)
    recovered(s, record, now, out)


# -- outages ----------------------------------------------------------------------------------


def give_up_downstream(
    s: SupervisorState, c: ChildRecord, record: FailedMessage, why: str, now: float, out: Out
) -> None:
    """Set ``record`` aside with a ``DownstreamError`` naming its error and ``why``."""
    info = record.info
    error = DownstreamError(f"{c.path}: {info.error_type}: {info.message} ({why})", c.path)
    set_aside(s, out, record, error, now)


def give_up_at_deadline(
    s: SupervisorState, c: ChildRecord, record: FailedMessage, now: float, out: Out
) -> None:
    why = (
        f"gave up after {record.retries} retries: its caller's deadline leaves no time for another"
    )
    if c.kind_of(record.info) is FailureKind.OUTAGE:
        give_up_downstream(s, c, record, why, now, out)
    else:
        info = record.info
        error = RecoveryFailed(f"{c.path}: {info.error_type}: {info.message} ({why})", c.path)
        set_aside(s, out, record, error, now)


# -- restarts -------------------------------------------------------------------------------


def intensity_reason(s: SupervisorState, c: ChildRecord) -> str:
    """Why ``s`` gives up on ``c``: its intensity, and the error that used it up."""
    last = f" (last: {c.last_error})" if c.last_error else ""
    return f"{c.path}: {s.spec.max_restarts} restarts within {s.spec.within_s:g}s exceeded{last}"


def escalate(
    s: SupervisorState, reason: str, info: ErrorInfo | None, origin: str, now: float, out: Out
) -> None:
    """Restart intensity exceeded: this supervisor gives up and its parent takes over."""
    if s.escalated:
        return
    s.escalated = True
    for record in list(s.failures.values()):
        set_aside(s, out, record, RecoveryFailed(f"{s.path} gave up: {reason}", s.path), now)
    note(s, out, "escalate", None, now, level=4, detail=reason)
    out.append(Escalate(reason, info, origin))
