"""A simulated runtime for the supervision kernel: it carries out commands as the actors would.

No actor system runs here: instances start when spawned, stop when asked, and
exit when released or killed; timers fire when the test advances the clock. So a
property test can feed the kernel thousands of event sequences in seconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from stalwart.actors.messages import ErrorReply, Reply, ReplyTo, Request
from stalwart.strategies import ErrorCategory, ErrorInfo, Severity, fingerprint_of
from stalwart.supervisors import SupervisorState, decide
from stalwart.supervisors._kernel import commands as cmd
from stalwart.supervisors._kernel import events as ev
from stalwart.supervisors.spec import Supervisor

Handler = Callable[[str, Any], bool]  # (child, message) -> True if handling it succeeds


def info(category: ErrorCategory = ErrorCategory.CRASH, kind: str = "Boom") -> ErrorInfo:
    retryable = category not in (ErrorCategory.VALIDATION, ErrorCategory.CONFIGURATION)
    return ErrorInfo(category, Severity.MEDIUM, fingerprint_of(kind, ""), retryable, kind, kind)


class Runtime:
    """Runs a kernel state against simulated instances.

    ``handler(child, message)`` decides whether a retried or redelivered message
    succeeds (default: it does). ``log`` records the effects in order:
    ``("spawn", child, incarnation, time)``, ``("stop", child, incarnation)``,
    ``("kill", child)``, ``("escalate", reason, time)``, ``("answer", sender, value)``,
    ``("dead", message, error)``, ``("retry", child, message)``, ``("finish",)``.
    """

    def __init__(
        self,
        spec: Supervisor,
        handler: Handler | None = None,
        start_ok: Callable[[str, int], bool] | None = None,
    ) -> None:
        self.state = SupervisorState(spec.name, spec, can_kill=True, seed=7)
        self.now = 0.0
        self.handler: Handler = handler or (lambda child, message: True)
        self.start_ok = start_ok or (lambda child, incarnation: True)
        self.timers: dict[Any, tuple[float, int, tuple[Any, ...]]] = {}
        self.timer_seq = 0
        self.alive: dict[str, int] = {}  # child -> incarnation of its running instance
        self.log: list[tuple[Any, ...]] = []
        self.reports: list[Any] = []
        self.pending: deque[ev.KernelEvent] = deque()
        self.failure = info(ErrorCategory.CRASH, "Boom")  # what a failing handler raises
        self.defer_starts = False  # spawned instances start only when finish_start is called
        self.starting: dict[str, tuple[int, list[tuple[Any, Any, int | None]]]] = {}

    # -- feeding events -------------------------------------------------------------------
    def feed(self, event: ev.KernelEvent) -> None:
        self.pending.append(event)
        while self.pending:
            _, commands = decide(self.state, self.pending.popleft())
            for command in commands:
                self.apply(command)

    def begin(self) -> None:
        self.feed(ev.Begin(now=self.now))

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass, firing the timers that fall due, in order."""
        end = self.now + seconds
        while True:
            due = [(t, seq, key) for key, (t, seq, _) in self.timers.items() if t <= end]
            if not due:
                break
            t, _, key = min(due)
            self.now = max(self.now, t)
            _, _, payload = self.timers.pop(key)
            self.feed(ev.TimerFired(payload, now=self.now))
        self.now = end

    def settle(self, limit: float = 600.0) -> None:
        """Advance until no timer is left (or ``limit`` seconds), except the health timer."""
        waited = 0.0
        while waited < limit and any(k != "health" for k in self.timers):
            nxt = min(t for k, (t, _, _) in self.timers.items() if k != "health")
            step = max(0.0, nxt - self.now)
            self.advance(step)
            waited += step + 1e-9

    # -- what the instances do ------------------------------------------------------------
    def crash(self, child: str, reason: str = "killed") -> None:
        incarnation = self.alive.pop(child, None)
        if incarnation is not None:
            self.feed(ev.ChildExited(child, incarnation, reason, now=self.now))

    def stop_itself(self, child: str) -> None:
        incarnation = self.alive.get(child)
        if incarnation is not None:
            self.feed(ev.StoppedItself(child, incarnation, now=self.now))
            self.alive.pop(child, None)
            self.feed(ev.ChildRetired(child, incarnation, now=self.now))
            self.feed(ev.ChildExited(child, incarnation, now=self.now))

    def fail(
        self,
        child: str,
        message: Any,
        error: ErrorInfo,
        sender: Any = None,
        deadline: float = 0.0,
    ) -> None:
        """A handler of the running instance of ``child`` raised for ``message``."""
        incarnation = self.alive.get(child)
        if incarnation is not None:
            self.feed(
                ev.Failed(
                    child, incarnation, error, message, sender, deadline=deadline, now=self.now
                )
            )

    # -- carrying out commands ------------------------------------------------------------
    def apply(self, c: cmd.Command) -> None:
        if isinstance(c, cmd.Spawn):
            self.log.append(("spawn", c.child, c.incarnation, self.now))
            if self.defer_starts:  # it holds what reaches it until it has started
                held = [(i.message, i.sender, i.failure_id) for i in c.redeliver]
                self.starting[c.child] = (c.incarnation, held)
            elif self.start_ok(c.child, c.incarnation):
                self.alive[c.child] = c.incarnation
                self.pending.append(ev.ChildStarted(c.child, c.incarnation, True, now=self.now))
                for item in c.redeliver:
                    self.handle(c.child, item.message, item.sender, item.failure_id)
            else:
                failure = info(ErrorCategory.CRASH, "StartFailed")
                self.pending.append(
                    ev.ChildStarted(
                        c.child, c.incarnation, False, failure, c.redeliver, now=self.now
                    )
                )
        elif isinstance(c, cmd.Stop):
            self.log.append(("stop", c.child, c.incarnation))
            self.alive.pop(c.child, None)
            self.pending.append(ev.ChildRetired(c.child, c.incarnation, now=self.now))
            if not c.forward:
                self.pending.append(ev.ChildExited(c.child, c.incarnation, now=self.now))
        elif isinstance(c, cmd.Release):
            self.pending.append(ev.ChildExited(c.child, c.incarnation, now=self.now))
        elif isinstance(c, cmd.Kill):
            self.log.append(("kill", c.child))
            incarnation = self.alive.pop(c.child, None)
            if incarnation is not None:
                self.pending.append(ev.ChildExited(c.child, incarnation, "killed", now=self.now))
        elif isinstance(c, cmd.Timer):
            self.timer_seq += 1
            key = c.key if c.key is not None else ("anon", self.timer_seq)
            self.timers[key] = (self.now + c.delay, self.timer_seq, c.payload)
        elif isinstance(c, cmd.Cancel):
            self.timers.pop(c.key, None)
        elif isinstance(c, cmd.Escalate):
            self.log.append(("escalate", c.reason, self.now))
        elif isinstance(c, cmd.Answer):
            self.log.append(("answer", _sender_of(c.sender), c.value))
        elif isinstance(c, cmd.DeadLetter):
            self.log.append(("dead", c.message, c.error))
            self.log.append(("answer", _sender_of(c.sender, c.message), ErrorReply.of(c.error)))
        elif isinstance(c, cmd.Retry):
            r = c.retry
            self.log.append(("retry", c.child, r.message))
            self.handle(c.child, r.message, r.sender, r.failure_id)
        elif isinstance(c, cmd.Send):
            if isinstance(c.message, Request):
                self.handle(c.child, c.message, c.message.reply_to, None)
        elif isinstance(c, cmd.Finish):
            self.log.append(("finish",))
        elif isinstance(c, cmd.Report):
            self.reports.append(c.message)
        elif isinstance(c, cmd.Planned):
            self.log.append(("planned", c.spec.name))
        elif isinstance(c, cmd.Forget):
            self.log.append(("forget", c.children, c.reason))
        elif isinstance(c, cmd.ShutDown):
            self.log.append(("shutdown", c.reason))

    def finish_start(self, child: str) -> None:
        """A deferred instance finishes its start and handles what it held, in order."""
        incarnation, held = self.starting.pop(child)
        self.alive[child] = incarnation
        self.feed(ev.ChildStarted(child, incarnation, True, now=self.now))
        for message, sender, failure_id in held:
            self.handle(child, message, sender, failure_id)
        self.feed_pending()

    def feed_pending(self) -> None:
        while self.pending:
            _, commands = decide(self.state, self.pending.popleft())
            for command in commands:
                self.apply(command)

    def handle(self, child: str, message: Any, sender: Any, failure_id: int | None) -> None:
        """The running instance of ``child`` handles ``message`` (a retry or a redelivery)."""
        if child in self.starting:
            self.starting[child][1].append((message, sender, failure_id))
            return
        incarnation = self.alive.get(child)
        if incarnation is None or message is None:
            if failure_id is not None and incarnation is not None:
                self.pending.append(ev.Recovered(child, failure_id, now=self.now))
            return
        if self.handler(child, message):
            self.log.append(("answer", _sender_of(sender, message), ("ok", message)))
            if failure_id is not None:
                self.pending.append(ev.Recovered(child, failure_id, now=self.now))
        else:
            failed = ev.Failed(
                child,
                incarnation,
                self.failure,
                message,
                sender,
                failure_id=failure_id,
                now=self.now,
            )
            self.pending.append(failed)

    # -- reading the log ------------------------------------------------------------------
    def effects(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.log if e[0] == kind]

    def answers_to(self, sender: Any) -> list[Any]:
        return [e[2] for e in self.log if e[0] == "answer" and e[1] == sender]

    def events(self, kind: str) -> list[Any]:
        return [r for r in self.reports if getattr(r, "kind", None) == kind]


def _sender_of(sender: Any, message: Any = None) -> Any:
    if isinstance(message, Request):
        return message.reply_to
    if isinstance(sender, ReplyTo):
        return sender.address
    return sender


def request(ident: str, body: Any = "work", deadline: float = 0.0) -> tuple[Any, ReplyTo]:
    """A message and the sender a handler would see for it, as a request from ``ident``."""
    return body, ReplyTo(f"caller-{ident}", ident, ident, deadline)


__all__ = ["Reply", "Runtime", "info", "request"]
