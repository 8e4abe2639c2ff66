"""Answering failures: the five levels, applied by a supervisor to its children.

Every failure of a child comes here with the failed message attached. The
ladder (per child and error fingerprint) picks the level; the adaptive selector
picks the strategy at that level; restart intensity bounds levels 3 and 4.
A message that fails again on a freshly restarted instance is a poison message:
it becomes a dead letter and its sender gets an error, and the ladder does not
climb for it. Errors that retrying cannot fix (bad input, configuration) are
set aside at once, without restarts.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import TYPE_CHECKING, Any

from ..actors.errors import (
    ActorStopped,
    HandlerError,
    PoisonMessageError,
    RecoveryFailed,
    StalwartError,
)
from ..actors.messages import (
    ErrorReply,
    FailureReport,
    Redelivery,
    Reply,
    ReplyTo,
    Request,
    Retry,
    RetryOutcome,
    Started,
)
from ..strategies import (
    AdaptiveSelector,
    ErrorCategory,
    ErrorInfo,
    Severity,
    classify,
    fingerprint_of,
)
from ._children import STARTING, UP, ChildState, FailedMessage, trace_of
from ._ladder import Action, RestartIntensity, decide
from ._plan import restart_set
from ._usage import ProcessUsage
from .messages import Attempt, DeadLetterNote, Escalate, KillSubtree, LearnedState, Unavailable

TREE_CANDIDATES: dict[int, tuple[str, ...]] = {
    1: ("retry",),
    2: ("backoff", "adjust", "fallback"),
    3: ("restart", "reassign"),
    4: ("restart_subtree",),
    5: ("restart_tree",),
}

if TYPE_CHECKING:
    from ._lifecycle import Lifecycle as _Base
else:
    _Base = object


def crash_info(path: str, detail: str) -> ErrorInfo:
    """The classification of an actor process that died."""
    return ErrorInfo(
        ErrorCategory.CRASH,
        Severity.HIGH,
        fingerprint_of("ProcessExit", path),
        True,
        "ProcessExit",
        detail,
    )


class Recovery(_Base):
    """Mixin for the supervisor actor: the failure-handling half of its job."""

    if TYPE_CHECKING:  # from the Holding mixin

        def dependency_down(self, c: ChildState) -> str | None: ...
        def hold(self, c: ChildState, record: FailedMessage, dependency: str) -> None: ...

    intensity: RestartIntensity
    selector: AdaptiveSelector
    failures: dict[int, FailedMessage]
    spec: Any
    slots: list[Any]

    def init_recovery(self, spec: Any, learned: LearnedState | None) -> None:
        self.intensity = RestartIntensity(spec.max_restarts, spec.within_s)
        self.selector = AdaptiveSelector(TREE_CANDIDATES)
        self.timeouts: dict[str, float] = {}
        if learned is not None:
            self.selector.load_state(learned.selector)
            self.timeouts = dict(learned.timeouts)
        self.failures = {}
        self._failure_ids = itertools.count(1)
        self._rng = random.Random()
        self._usage = ProcessUsage()

    def learned_for_children(self) -> LearnedState:
        """What this supervisor knows, for a child supervisor it starts."""
        return LearnedState(self.selector.state(), dict(self.timeouts))

    # -- recording attempts ----------------------------------------------------------------
    def usage(self, pid: int) -> tuple[int, float]:
        """(RSS bytes, CPU seconds) of process ``pid``; zeros if it is gone."""
        return self._usage.usage(pid)

    def attempt_begins(self, c: ChildState, record: FailedMessage) -> None:
        record.level_started = time.monotonic()
        record.usage_pid = c.pid
        record.usage = self.usage(c.pid) if c.pid else (0, 0.0)

    def attempt_done(self, record: FailedMessage, success: bool) -> None:
        """Feed the selector and the recovery store with how an attempt went."""
        if not record.strategy:
            return
        duration = time.monotonic() - record.level_started
        if record.strategy in TREE_CANDIDATES.get(record.level, ()):
            self.selector.record(
                record.info.category, record.level, record.strategy, success, duration
            )
        c = self.children.get(record.assigned_to)
        pid = c.pid if c is not None else 0
        rss, cpu = self.usage(pid) if pid else (0, 0.0)
        rss0, cpu0 = record.usage
        self.send(
            self.root,
            Attempt(
                time.time(),
                c.path if c is not None else self.path,
                _operation(record.message),
                record.info.category,
                record.info.fingerprint,
                record.level,
                record.strategy,
                success,
                duration,
                rss - rss0 if rss0 else 0,
                cpu - cpu0 if pid == record.usage_pid else cpu,
            ),
        )
        record.strategy = ""

    # -- failures reported by a child -------------------------------------------------------
    def on_failure(self, f: FailureReport) -> None:
        c = self.children_by_path().get(f.path)
        if c is None:
            return
        record = self.failures.get(f.failure_id) if f.failure_id is not None else None
        if record is not None:
            self.attempt_done(record, False)
        if record is None:
            record = FailedMessage(next(self._failure_ids), c.name, f.message, f.sender, f.info)
            self.failures[record.id] = record
        record.info, record.traceback = f.info, f.traceback
        c.last_error = f"{f.info.error_type}: {f.info.message}"[:300]
        owner = self.children.get(record.assigned_to, c)
        if f.incarnation != c.incarnation or c.restart_pending or c.phase != UP:
            self.redeliver_later(owner, record)
            return
        dependency = self.dependency_down(c) if f.info.retryable else None
        if dependency is not None and f.message is not None:
            self.hold(c, record, dependency)
            return
        if not f.info.retryable and f.message is not None:
            self.set_aside(
                record,
                HandlerError(
                    f"{c.path}: {f.info.error_type}: {f.info.message}"
                    f" ({f.info.category}; not retried)",
                    c.path,
                ),
            )
            return
        if record.fresh is not None and record.fresh == (c.name, f.incarnation):
            self.set_aside(
                record,
                PoisonMessageError(
                    f"{c.path}: {_describe(record.message)} failed again on a freshly restarted"
                    f" instance ({f.info.error_type}: {f.info.message});"
                    " set aside as a dead letter",
                    c.path,
                ),
                poison=True,
            )
            return
        ladder = c.ladder(f.info.fingerprint)
        action = decide(ladder, self.intensity, seen=record.round)
        record.round = ladder.round
        self.apply(c, record, action)

    def apply(self, c: ChildState, record: FailedMessage, action: Action) -> None:
        if action.escalate:
            self.set_aside(
                record,
                RecoveryFailed(
                    f"{c.path}: restart intensity of {self.path} exceeded; escalated", c.path
                ),
            )
            self.escalate(
                f"{c.path}: {self.spec.max_restarts} restarts within"
                f" {self.spec.within_s:g}s exceeded",
                record.info,
                c.path,
            )
            return
        level = action.level
        strategy = self.choose(c, record, level)
        record.level, record.attempt, record.strategy = level, action.attempt, strategy
        self.attempt_begins(c, record)
        if level >= 3:
            c.restarts += 1
        self.note(
            "failure",
            c,
            level=level,
            info=record.info,
            strategy=strategy,
            detail=f"{record.info.error_type}: {record.info.message}"[:300],
            state="retrying" if level <= 2 else "restarting",
            trace=trace_of(record.sender),
        )
        if level in (1, 2):
            if strategy == "fallback":
                self.answer_with_fallback(c, record)
                return
            delay = (
                c.policy.basic_delay_s
                if level == 1
                else c.policy.backoff.next_delay(action.attempt, record.last_delay, self._rng)
            )
            record.last_delay = delay
            self.after(delay, ("stalwart", "retry", record.id))
        elif level == 3:
            if strategy == "reassign" and self.reassign(c, record):
                c.restart_pending = True
            else:
                self.restart_with(c, record)
            self.reconcile()
        elif level == 4:
            for name in restart_set(self.spec.strategy, [o.slot for o in self.order], c.name):
                other = self.children[name]
                other.restarts += other is not c
                self.mark_restart(other)
            self.restart_with(c, record)
            self.reconcile()
        else:
            self.set_aside(
                record,
                RecoveryFailed(
                    f"{c.path}: recovery escalated to level 5 (system-wide measures)", c.path
                ),
            )
            self.send(
                self.root,
                Escalate(c.path, 5, f"{c.path} kept failing through level 4", record.info, c.path),
            )

    def choose(self, c: ChildState, record: FailedMessage, level: int) -> str:
        available = list(TREE_CANDIDATES.get(level, ()))
        if "fallback" in available and c.kind == "actor" and c.fallback is None:
            available.remove("fallback")
        if "reassign" in available and self.healthy_replica(c) is None:
            available.remove("reassign")
        tried = record.tried.setdefault(level, [])
        try:
            strategy = self.selector.choose(
                record.info.category, level, exclude=tried, available=available
            )
        except LookupError:
            tried.clear()
            strategy = self.selector.choose(record.info.category, level, available=available)
        tried.append(strategy)
        return strategy

    def on_retry_timer(self, record_id: int) -> None:
        record = self.failures.get(record_id)
        if record is None:
            return
        c = self.children[record.assigned_to]
        if c.phase != UP or c.restart_pending:
            self.redeliver_later(c, record)
            return
        self.send(
            c.address,
            Retry(
                record.id,
                record.message,
                record.sender,
                record.level,
                record.attempt,
                record.strategy,
                record.info,
                record.traceback,
            ),
        )
        # an attempt that never answers (a hung handler) counts as failed after a timeout
        timeout = self.timeouts.get(
            f"{c.path}|{_operation(record.message)}", c.policy.retry_timeout_s
        )
        self.after(timeout, ("stalwart", "retry-timeout", record.id, record.attempt, record.level))

    def on_retry_timeout(self, record_id: int, attempt: int, level: int) -> None:
        record = self.failures.get(record_id)
        if record is None or (record.attempt, record.level) != (attempt, level):
            return
        c = self.children.get(record.assigned_to)
        if c is None or c.phase != UP:
            return
        err = TimeoutError(f"{c.path}: a level-{level} retry got no answer")
        info = classify(err)
        self.on_failure(
            FailureReport(
                c.path,
                c.incarnation,
                info,
                record.message,
                record.sender,
                str(err),
                record.id,
                "retry",
            )
        )

    def on_retry_outcome(self, msg: RetryOutcome) -> None:
        record = self.failures.pop(msg.failure_id, None)
        if record is None:
            return
        c = self.children.get(record.child)
        if c is not None:
            c.ladder(record.info.fingerprint).on_success()
            self.note(
                "recovered",
                c,
                level=record.level,
                info=record.info,
                strategy=record.strategy,
                duration_ms=1000 * (time.monotonic() - record.first_time),
                state="running" if c.phase == UP else "",
            )
        self.attempt_done(record, True)
        if c is not None:
            # report the ladder's reset once the quiet period has passed
            self.after(
                c.policy.quiet_period_s + 0.01, ("stalwart", "quiet", c.name), key=("quiet", c.name)
            )

    # -- restarts -----------------------------------------------------------------------
    def mark_restart(self, c: ChildState) -> None:
        if c.spec.restart == "temporary":
            c.stop_for_good = True
        c.restart_pending = True

    def restart_with(self, c: ChildState, record: FailedMessage | None) -> None:
        """Restart ``c`` from its last good checkpoint and hand it the failed message."""
        self.mark_restart(c)
        c.keep_final_state = False  # its state after the failure is not trusted
        if record is not None:
            self.redeliver_later(c, record)

    def redeliver_later(self, c: ChildState, record: FailedMessage) -> None:
        if record.message is None:
            self.failures.pop(record.id, None)
            return
        record.assigned_to = c.name
        c.redeliver.append(Redelivery(record.message, record.sender, record.id))

    def mark_redelivered(self, c: ChildState) -> None:
        """Called as ``c`` starts: its redelivered messages belong to this fresh incarnation."""
        for item in c.redeliver:
            record = self.failures.get(item.failure_id) if item.failure_id else None
            if record is not None:
                record.fresh = (c.name, c.incarnation)

    def drop_redeliveries(self, c: ChildState) -> None:
        """``c`` is gone for good: answer what was waiting for it, and keep it as dead letters."""
        waiting, c.redeliver = c.redeliver, []
        for item in waiting:
            record = self.failures.get(item.failure_id) if item.failure_id else None
            if record is None:
                record = FailedMessage(
                    next(self._failure_ids),
                    c.name,
                    item.message,
                    item.sender,
                    crash_info(c.path, "stopped"),
                )
            self.set_aside(
                record,
                ActorStopped(
                    f"{c.path} was stopped for good before handling {_describe(item.message)}",
                    c.path,
                ),
            )

    def healthy_replica(self, c: ChildState) -> ChildState | None:
        if c.slot.group is None:
            return None
        for other in self.order:
            if (
                other is not c
                and other.slot.group == c.slot.group
                and other.phase == UP
                and not other.restart_pending
                and other.level < 3
            ):
                return other
        return None

    def reassign(self, c: ChildState, record: FailedMessage) -> bool:
        other = self.healthy_replica(c)
        if other is None or record.message is None:
            return False
        record.assigned_to = other.name
        record.fresh = (other.name, other.incarnation)
        self.send(
            other.address,
            Retry(
                record.id,
                record.message,
                record.sender,
                3,
                record.attempt,
                "reassign",
                record.info,
                record.traceback,
            ),
        )
        return True

    def answer_with_fallback(self, c: ChildState, record: FailedMessage) -> None:
        self.reply_to_sender(record.sender, c.fallback)
        self.on_retry_outcome(RetryOutcome(c.path, record.id, True))

    # -- crashes and start failures ---------------------------------------------------------
    def on_child_exited(self, address: Any, reason: str = "process exited unexpectedly") -> None:
        if address in self.forwarders:
            self.forwarders.remove(address)
            self.reconcile()
            return
        for c in self.order:
            if c.retiring_address == address:
                c.retiring_address = None
                self.reconcile()
                return
            if c.address == address:
                break
        else:
            return
        if c.phase == "stopping":
            self.child_down(c)
            return
        # a hung actor's request would hang the new one too: its callers time out instead
        c.phase, c.address, c.pid, c.lost_inflight = "down", None, 0, not c.hung_killed
        c.hung_killed = c.hung_reported = False
        c.last_error = reason
        self.note("crash", c, level=3, detail=f"{c.path}: {reason}")
        self.send(self.root, Unavailable(c.path, "crashed", lost_inflight=True))
        if c.kind == "supervisor":
            self.send(self.root, KillSubtree(c.path))
        self.restart_after_crash(c, crash_info(c.path, reason), 3)

    def on_start_failed(self, c: ChildState, msg: Started) -> None:
        info = msg.error or crash_info(c.path, "start failed")
        c.last_error = f"start failed: {info.error_type}: {info.message}"[:300]
        c.redeliver.extend(msg.held)
        self.note("start-failure", c, level=3, info=info, detail=c.last_error)
        self.restart_after_crash(c, info, 3)

    def restart_after_crash(self, c: ChildState, info: ErrorInfo, minimum: int) -> None:
        if c.spec.restart == "temporary":
            c.stop_for_good = True
            self.reconcile()
            return
        action = decide(c.ladder(info.fingerprint), self.intensity, minimum)
        if action.escalate:
            self.escalate(
                f"{c.path}: {self.spec.max_restarts} restarts within"
                f" {self.spec.within_s:g}s exceeded",
                info,
                c.path,
            )
            return
        c.restarts += 1
        self.note(
            "restart",
            c,
            level=action.level,
            info=info,
            detail=c.last_error,
            strategy="restart" if action.level == 3 else "restart_subtree",
            state="restarting",
        )
        if action.level == 4:
            for name in restart_set(self.spec.strategy, [o.slot for o in self.order], c.name):
                self.mark_restart(self.children[name])
        elif action.level >= 5:
            self.send(self.root, Escalate(c.path, 5, f"{c.path} kept failing to run", info, c.path))
        self.reconcile()

    def on_child_escalated(self, msg: Escalate) -> None:
        c = self.children_by_path().get(msg.path)
        if c is None or c.phase not in (UP, STARTING):
            return
        info = msg.info or crash_info(c.path, msg.reason)
        c.last_error = msg.reason[:300]
        self.note("escalated", c, level=4, info=info, detail=msg.reason)
        if c.phase == STARTING:
            self.kill(c)
            c.phase, c.address = "down", None
        self.restart_after_crash(c, crash_info(c.path, "subtree gave up"), 4)

    def escalate(self, reason: str, info: ErrorInfo | None, origin: str) -> None:
        if self.escalated:
            return
        self.escalated = True
        for record in list(self.failures.values()):
            self.set_aside(record, RecoveryFailed(f"{self.path} gave up: {reason}", self.path))
        self.note("escalate", None, level=4, detail=reason)
        self.send(self.parent, Escalate(self.path, 4, reason, info, origin))

    # -- answers to senders -------------------------------------------------------------------
    def set_aside(self, record: FailedMessage, error: StalwartError, poison: bool = False) -> None:
        self.failures.pop(record.id, None)
        c = self.children.get(record.child)
        self.attempt_done(record, False)
        if c is not None and poison:
            self.note("poison", c, level=record.level, info=record.info, detail=str(error))
        message, request_id, reply_to = record.message, None, None
        if isinstance(message, Request):
            message, request_id, reply_to = message.message, message.id, message.reply_to
        if isinstance(record.sender, ReplyTo):
            request_id, reply_to = record.sender.id, record.sender.address
        self.send(
            self.root,
            DeadLetterNote(
                c.path if c else self.path,
                message,
                str(error),
                record.info.category,
                record.info.fingerprint,
                reply_to,
                request_id,
            ),
        )
        # after the note, so whoever hears of the error can already see the dead letter
        self.reply_to_sender(record.sender, ErrorReply.of(error))

    def reply_to_sender(self, sender: Any, value: Any) -> None:
        if sender is None:
            return
        if isinstance(sender, ReplyTo):
            self.send(sender.address, Reply(sender.id, value))
        else:
            self.send(sender, value)


def _operation(message: Any) -> str:
    """The message type a failure was about (its "operation")."""
    if isinstance(message, Request):
        message = message.message
    return "" if message is None else type(message).__name__


def _describe(message: Any) -> str:
    if isinstance(message, Request):
        message = message.message
    return f"message {type(message).__name__}"
