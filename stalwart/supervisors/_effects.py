"""What a supervisor does: the kernel's commands, carried out by the supervisor actor.

Each command of :mod:`._kernel.commands` has one function here; they use what the
actor keeps (addresses, processes, checkpoints) and Thespian only through the
runtime adapter.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any

import msgspec

from ..actors._runtime import (
    ActorExitRequest,
    child_process_gone,
    create_child,
    forked_pid,
)
from ..actors._state_file import drop_under
from ..actors._timers import WAKE
from ..actors.errors import ActorStopped
from ..actors.messages import (
    ErrorReply,
    GaveUp,
    Handover,
    Init,
    Release,
    Reply,
    ReplyTo,
    Request,
    Retire,
    Retired,
    Started,
    StoppedNormally,
    Successor,
)
from ._in_order import GAP_S
from ._kernel import commands as cmd
from ._kernel import events as ev
from ._kernel.state import forgotten_key
from ._standby import NEW
from ._stored import StoredStates as Stored
from .messages import (
    ChildrenGone,
    ChildrenPlanned,
    DeadLetterNote,
    Escalate,
    LearnedState,
    Registered,
    SupervisorInit,
)

# how long a finished supervisor waits for its parent's Release before it leaves anyway:
# longer than the root holds a supervisor's mail for an envelope missing before it
LEAVE_WAIT_S = 2 * GAP_S

if TYPE_CHECKING:
    from ._supervisor import Keeper, SupervisorActor


def do_spawn(self: SupervisorActor, c: cmd.Spawn) -> None:
    assert self.state is not None
    child = self.state.children[c.child]
    keeper = self.keeper(c.child)
    cls = _supervisor_class() if child.kind == "supervisor" else _actor_class(child)
    requires = getattr(child.spec, "requires", None)
    kwargs: dict[str, Any] = {}
    if requires and not self.placeable(child.spec):  # it waits for a node that can host it
        why = self.unplaceable(child)
        self.later.append(ev.Unplaceable(c.child, c.incarnation, why, now=self.now))
        return
    if requires:  # placed by Thespian on a node that offers them, never on a lost one
        from ..actors._placement import AVOID

        lost = tuple(self.settings.get("lost", ()))
        kwargs["targetActorRequirements"] = {**requires, AVOID: lost}
    spare = self.spares.take(self, c.child) if child.role == "actor" else None
    if spare is None:
        address = create_child(self, cls, not self.clock_id, **kwargs)
        # an actor can be killed by its pid before it has started (see do_kill); a
        # supervisor is asked to exit, which stops its children in order, as OTP's
        pid = forked_pid(self, address) if child.kind == "actor" and not self.clock_id else 0
        if pid:
            self.record_pid((c.child, c.incarnation), pid, self.node)
    else:
        address = spare.address
        self.spared[c.child] = c.incarnation  # (its registration says so)
        if spare.pid:  # (its exit is looked for by its pid too, as an instance's)
            self.record_pid((c.child, c.incarnation), spare.pid, self.node)
        if not self.crash_notices.named(c.child, address):  # (callers told: Init first)
            self.send_held_now()
        self.spares.make_soon(self, NEW)  # (sooner once it has started: see on_started)
    if child.dynamic and self.stored:  # its path's first start in this run, maybe
        take_stored(self.stored, child.path, child.kind == "supervisor", keeper)
    key = (c.child, c.incarnation)
    self.addresses[key] = address
    self.by_address[str(address)] = key
    # a Pool's keys come and go by the million, and a logger lives for good: below a Pool
    # (below its keys too), actors log through the outermost Pool's logger
    logger_path = str(self.settings.get("logger_path", ""))
    if self.state.pool is not None and not logger_path:
        logger_path = self.path
    if child.kind == "supervisor":
        first = c.child not in self.spawned
        prefix = child.path + "/"
        floors = {p: n for p, n in self.state.floors.items() if p.startswith(prefix)}
        if self.state.floor_forgotten:  # (its children's paths may have been forgotten here)
            floors[forgotten_key(child.path)] = self.state.floor_forgotten
        timeouts, longest = self.state.subtree_timeouts(prefix)
        learned = LearnedState(
            self.state.selector.state(),
            timeouts,
            longest=longest,
            timeout_rule=self.state.timeout_rule,
        )
        init: Any = SupervisorInit(
            child.path,
            child.spec,
            self.myAddress,
            self.root,
            c.incarnation,
            dict(keeper.sub_checkpoints),
            self.clock_id,
            learned,
            {**self.settings, "logger_path": logger_path}
            if self.state.pool is not None
            else self.settings,
            floors if first else None,
        )
    else:
        takes_over = self.crash_notices.takes_over(c.child, address, c.incarnation)
        init = Init(
            child.path,
            self.myAddress,
            self.root,
            c.incarnation,
            keeper.checkpoint if keeper.has_checkpoint else None,
            c.redeliver,
            tuple(keeper.replies.items()),
            _actor_options(child, self.settings),
            getattr(child.spec, "checkpoint", "message"),
            os.getpid(),
            self.clock_id,
            self.state.hold_limit,
            str(self.settings.get("state_dir", "")),
            keeper.source if keeper.has_checkpoint else -1,
            keeper.final,
            bool(getattr(child.spec, "durable", False)),
            bool(getattr(child.spec, "retry_from_checkpoint", False)),
            keeper.marks,
            node=self.node,
            tracing=str(self.settings.get("tracing", "")),
            fresh=child.fresh,
            logger_path=logger_path,
            takes_over=takes_over,
        )
    self.spawned.add(c.child)
    self.send(address, init)
    if child.kind == "supervisor":  # (an actor's are in its Init)
        for item in c.redeliver:  # what its crashed instance had taken: after its Init
            if type(item.message) is Handover:
                self.send(address, item.message)


def do_stop(self: SupervisorActor, c: cmd.Stop) -> None:
    assert self.state is not None
    child = self.state.children.get(c.child)
    if child is None or child.stop_for_good:  # it is not coming back: neither is its spare
        self.spares.drop(self, c.child)
        self.crash_notices.forget(c.child)
    address = self.addresses.get((c.child, c.incarnation))
    if address is not None:
        self.send(address, Retire(c.forward, c.passivate))


def do_kill(self: SupervisorActor, c: cmd.Kill) -> None:
    key = (c.child, c.incarnation)
    address = self.addresses.get(key)
    if address is not None:
        self.send(address, ActorExitRequest())
    pid, node = self.pids.get(key, (0, ""))
    if pid and pid != os.getpid() and node == self.node and not child_process_gone(pid):
        try:  # (a child not yet reaped: its pid cannot have been taken by another process)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # (gone meanwhile: its exit notice is on its way)
            pass


def do_retry(self: SupervisorActor, c: cmd.Retry) -> None:
    address = self.current(c.child)
    if address is not None:
        self.send(address, c.retry)


def do_send(self: SupervisorActor, c: cmd.Send) -> None:
    address = self.current(c.child)
    if address is not None:
        self.send(address, c.message)


def do_answer(self: SupervisorActor, c: cmd.Answer) -> None:
    if self.mail_held is not None:  # after what the root hears of this decision
        self.answers_held.append((c.sender, c.value))
    else:
        answer(self, c.sender, c.value)


def do_dead_letter(self: SupervisorActor, c: cmd.DeadLetter) -> None:
    if type(c.message) is Handover:  # (a lost request held for the next instance)
        c = msgspec.structs.replace(c, message=c.message.request)
    message, request_id, reply_to = c.message, None, None
    if isinstance(message, Request):
        message, request_id, reply_to = message.message, message.id, message.reply_to
    if isinstance(c.sender, ReplyTo):
        request_id, reply_to = c.sender.id, c.sender.address
    if not (c.refused and request_id is not None):  # a refused request: its caller knows
        self.send(
            self.root,
            DeadLetterNote(
                c.path, message, str(c.error), c.category, c.fingerprint, reply_to, request_id
            ),
        )
    # after the note, so whoever hears of the error can already see the dead letter
    error = ErrorReply.of(c.error)
    answer(self, c.sender if not isinstance(c.message, Request) else c.message, error)
    name = self.child_name(c.path)
    if request_id is not None and name is not None:  # it may come again: handle it afresh
        address = self.current(name)
        if address is not None:
            self.send(address, GaveUp(request_id, error))


def do_escalate(self: SupervisorActor, c: cmd.Escalate) -> None:
    self.send(self.parent, Escalate(self.path, 4, c.reason, c.info, c.origin))


def do_report(self: SupervisorActor, c: cmd.Report) -> None:
    self.send(self.root, c.message)


def do_register(self: SupervisorActor, c: cmd.Register) -> None:
    assert self.state is not None
    child = self.state.children[c.child]
    address = self.addresses.get((c.child, c.incarnation))
    pid, node = self.pids.get((c.child, c.incarnation), (0, ""))
    self.send(
        self.root,
        Registered(
            child.path,
            address,
            pid,
            c.incarnation,
            "breaker" if child.role == "breaker" else child.kind,
            child.slot.group,
            c.lost_inflight,
            _class_name(child),
            c.level,
            c.restarts,
            node,
            c.died,
            self.incarnation if child.dynamic else 0,
            c.reactivated,
            c.fresh,
            self.spared.pop(c.child, 0) == c.incarnation,
            child.role == "actor" and bool(getattr(child.spec, "standby", False)),
        ),
    )
    old = self.addresses.get((c.child, c.predecessor)) if c.predecessor else None
    if old is not None:
        self.send(old, Successor(address))


def do_release(self: SupervisorActor, c: cmd.Release) -> None:
    address = self.addresses.get((c.child, c.incarnation))
    if address is not None:
        self.send(address, Release())


def do_timer(self: SupervisorActor, c: cmd.Timer) -> None:
    self.after(c.delay, (WAKE, "kernel", c.payload), c.key)


def do_cancel(self: SupervisorActor, c: cmd.Cancel) -> None:
    self.cancel(c.key)


def do_attempt_begins(self: SupervisorActor, c: cmd.AttemptBegins) -> None:
    assert self.state is not None
    pid = self.pids.get((c.child, self.state.children[c.child].incarnation), (0, ""))[0]
    self.usage_at[c.failure_id] = (pid, self._usage.usage(pid) if pid else (0, 0.0))


def do_attempt_ends(self: SupervisorActor, c: cmd.AttemptEnds) -> None:
    assert self.state is not None
    child = self.state.children.get(c.child)
    key = (c.child, child.incarnation) if child is not None else (c.child, 0)
    pid = self.pids.get(key, (0, ""))[0]
    rss, cpu = self._usage.usage(pid) if pid else (0, 0.0)
    pid0, (rss0, cpu0) = self.usage_at.pop(c.failure_id, (0, (0, 0.0)))
    attempt = msgspec.structs.replace(
        c.attempt,
        time=time.time(),
        mem_delta_bytes=rss - rss0 if rss0 else 0,
        cpu_delta_s=cpu - cpu0 if pid == pid0 else cpu,
    )
    self.send(self.root, attempt)


def take_stored(stored: Stored, path: str, supervisor: bool, keeper: Keeper) -> None:
    """Hand a child added at run time what an earlier run stored for its path (for a
    supervisor, for the paths below it), unless it has something of this run's."""
    if supervisor:
        if not keeper.sub_checkpoints:
            below = stored.under(path)
            if below:
                keeper.sub_checkpoints = {p: (state, ()) for p, state in below.items()}
    elif not keeper.has_checkpoint and path in stored:
        keeper.restore((stored.states[path], ()))


def do_report_started(self: SupervisorActor, c: cmd.ReportStarted) -> None:
    self.send(self.parent, Started(self.path, self.incarnation, True, os.getpid(), node=self.node))


def do_finish(self: SupervisorActor, c: cmd.Finish) -> None:
    assert self.state is not None
    waiting, self.unstored = self.unstored, []  # (it stopped before the root's answer came)
    if self.dropping is not None:  # (the root drops it all the same, unless it started since)
        path, asked = self.dropping
        self.dropping = None
        text = (
            f"{self.path} stopped while deleting what an earlier run stored for {path}: it"
            " is most likely gone (delete_child it again to be sure: UnknownPath says it is)"
        )
        answer(self, asked, ErrorReply.of(ActorStopped(text, self.path)))
    handovers, self.handovers = self.handovers, []  # (it stopped before it began)
    for asked in [asked for _, asked in waiting] + [h.request for h in handovers]:
        answer(self, asked, ErrorReply.of(ActorStopped(f"{self.path} has stopped", self.path)))
    for handover in handovers:
        self.handover_done(handover.request.id)
    table: dict[str, Any] = {}
    for child in self.state.order:
        keeper = self.keeper(child.name)
        if child.kind == "supervisor":
            table.update(keeper.sub_checkpoints)
        elif keeper.has_checkpoint:
            table[child.path] = keeper.table_entry()
    self.spares.stop_all(self)
    leaving = not self.clock_id
    floor = max((*self.state.floors.values(), self.state.floor_forgotten))  # (for its parent)
    retired = Retired(self.path, self.incarnation, table, True, leaving=leaving, floor=floor)
    self.send(self.parent, retired)
    if leaving:  # it exits once its parent has this (see SupervisorActor.leave)
        self.after(LEAVE_WAIT_S, (WAKE, "leave"), key="leave")
    else:  # (in one process nothing sent is lost)
        self.leave()


def do_planned(self: SupervisorActor, c: cmd.Planned) -> None:
    self.send(self.root, ChildrenPlanned(self.path, self.incarnation, c.spec))


def do_forget(self: SupervisorActor, c: cmd.Forget) -> None:
    """The specs went: what was kept for them goes (a child started again under the name
    starts afresh), and the root forgets their paths."""
    for name in c.children:
        self.spares.drop(self, name)
        self.crash_notices.forget(name)
        self.keepers.pop(name, None)
        self.spawned.discard(name)
        filed = self.filed.pop(name, None)
        if filed is not None:
            filed.close()
    directory = str(self.settings.get("state_dir", ""))
    for path in c.paths:
        drop_under(directory, path)
    self.send(self.root, ChildrenGone(c.paths, c.reason))


def do_shut_down(self: SupervisorActor, c: cmd.ShutDown) -> None:
    """auto_shutdown: to the parent this supervisor stops normally (it stops its children
    next, then retires as when the parent stops it)."""
    self.send(self.parent, StoppedNormally(self.path, self.incarnation))


def answer(actor: Any, sender: Any, value: Any) -> None:
    """Answer a request's ``ReplyTo``, a ``Request`` itself, or a plain sender's address
    (a supervisor keeps what it answered a ``Request``: see ``SupervisorActor.answered``)."""
    if sender is None:
        return
    if isinstance(sender, Request):
        actor.answered(sender.id, value)
    reply = reply_of(sender, value)
    if reply is not None:
        actor.send(*reply)
    else:
        actor.send(sender, value)


def reply_of(sender: Any, value: Any) -> tuple[Any, Reply] | None:
    """Where the ``Reply`` to a ``Request`` or ``ReplyTo`` goes, and the reply (None for a
    plain sender's address, which gets ``value`` itself)."""
    if isinstance(sender, Request):
        return sender.reply_to, Reply(sender.id, value)
    if isinstance(sender, ReplyTo):
        return sender.address, Reply(sender.id, value)
    return None


def _actor_class(child: Any) -> type:
    if child.role == "breaker":
        from ._breaker_actor import BreakerActor

        return BreakerActor
    return child.spec.actor  # type: ignore[no-any-return]


def _actor_options(child: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """What the actor reads as ``self.options``."""
    spec = child.spec
    if child.role == "breaker":
        parent = child.path.rsplit("/", 1)[0]
        return {
            "breaker": spec.breaker,
            "protected": f"{parent}/{spec.name}.protected",
            "queues": settings.get("queues"),
        }
    return dict(getattr(spec, "options", {}))


def _class_name(child: Any) -> str:
    if child.kind == "supervisor":
        return "Supervisor"
    cls = _actor_class(child)
    return f"{cls.__module__}.{cls.__qualname__}"


EFFECTS: dict[type, Any] = {
    cmd.Spawn: do_spawn,
    cmd.Stop: do_stop,
    cmd.Kill: do_kill,
    cmd.Retry: do_retry,
    cmd.Send: do_send,
    cmd.Answer: do_answer,
    cmd.DeadLetter: do_dead_letter,
    cmd.Escalate: do_escalate,
    cmd.Report: do_report,
    cmd.Register: do_register,
    cmd.Release: do_release,
    cmd.Timer: do_timer,
    cmd.Cancel: do_cancel,
    cmd.AttemptBegins: do_attempt_begins,
    cmd.AttemptEnds: do_attempt_ends,
    cmd.ReportStarted: do_report_started,
    cmd.Finish: do_finish,
    cmd.Planned: do_planned,
    cmd.Forget: do_forget,
    cmd.ShutDown: do_shut_down,
}


def _supervisor_class() -> type:
    from ._supervisor import SupervisorActor

    return SupervisorActor
